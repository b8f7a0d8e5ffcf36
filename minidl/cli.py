"""The ``minidl`` command: train, eval and summary.

    minidl train lenet5 --dataset mnist
    minidl eval runs/lenet5-mnist/model.npz
    minidl summary lenet5
"""
import argparse
import os
import sys
import time

# Defaults chosen to reach >= 99.0% MNIST test accuracy with the classic LeNet-5 in few epochs on 2 cores:
# without the random shifts it plateaus near 98.9%, and the lr steps give the last tenths (see README).
DEFAULTS = {"epochs": 9, "batch_size": 64, "lr": 2e-3, "optimizer": "adam", "lr_step": 3, "lr_gamma": 0.3,
            "augment": 2}


def _parser():
    p = argparse.ArgumentParser(prog="minidl", description="Train, evaluate and inspect minidl models.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a dataset")
    t.add_argument("model", help="model name, e.g. lenet5")
    t.add_argument("--dataset", default="mnist", help="mnist, fashion-mnist or cifar10")
    t.add_argument("--epochs", type=int, default=None,
                   help=f"total epochs (default {DEFAULTS['epochs']}; with --resume, the run's own total unless "
                        "given: --epochs 12 extends a 9-epoch run to 12)")
    t.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    t.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    t.add_argument("--optimizer", choices=["sgd", "adam"], default=DEFAULTS["optimizer"])
    t.add_argument("--momentum", type=float, default=0.9, help="for sgd")
    t.add_argument("--weight-decay", type=float, default=0.0)
    t.add_argument("--lr-step", type=int, default=DEFAULTS["lr_step"],
                   help="multiply the lr by --lr-gamma every this many epochs (0: never)")
    t.add_argument("--lr-gamma", type=float, default=DEFAULTS["lr_gamma"])
    t.add_argument("--augment", type=int, default=DEFAULTS["augment"], metavar="PIXELS",
                   help="move training images randomly by up to this many pixels (0: off)")
    t.add_argument("--device", default="cpu", help="cpu or cuda")
    t.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None,
                   help="CPU kernels (default: $MINIDL_KERNELS, else auto = numba when it imports)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--subset", type=int, default=None,
                   help="quick runs: train on the first N training images and test on the first N/5 test images")
    t.add_argument("--data-root", default=None, help="folder with the dataset files (default: the cache)")
    t.add_argument("--out", default=None,
                   help="run directory (default: runs/MODEL-DATASET-TIME; with --resume, the checkpoint's run)")
    t.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from this checkpoint, writing the later epochs into its run directory")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a checkpoint on its dataset's test set")
    e.add_argument("checkpoint")
    e.add_argument("--device", default="cpu")
    e.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None)
    e.add_argument("--data-root", default=None)

    s = sub.add_parser("summary", help="print a model's layers, parameters and cost")
    s.add_argument("model")
    s.add_argument("--input-shape", default=None, help="C,H,W without the batch (default: the model's own)")
    return p


def _kernels_used(device):
    """How the run computes, for its first line: 'with numba kernels', or 'on cuda'."""
    import minidl as mdl

    return f"on {device}" if device.startswith("cuda") else f"with {mdl.config.kernels} kernels"


def _train(args):
    import minidl as mdl
    from minidl.training import Run
    from minidl_models import get_model

    if args.kernels:
        mdl.config.kernels = args.kernels
    if args.resume:
        state = mdl.load(args.resume)
        config = state["config"]
        if config["model"] != args.model:
            raise ValueError(f"the checkpoint {args.resume} is of model {config['model']!r}, not {args.model!r}")
        if args.epochs is not None:
            config["epochs"] = args.epochs
        out = args.out or os.path.dirname(os.path.dirname(os.path.abspath(args.resume)))
    else:
        from minidl.training import model_kwargs
        from minidl_models import model_constructor

        model_constructor(args.model)  # an unknown name fails here, before any data is fetched
        kwargs = model_kwargs(args.dataset)
        config = {"model": args.model, "model_kwargs": kwargs, "dataset": args.dataset,
                  "epochs": args.epochs or DEFAULTS["epochs"],
                  "batch_size": args.batch_size, "lr": args.lr, "optimizer": args.optimizer,
                  "momentum": args.momentum, "weight_decay": args.weight_decay, "lr_step": args.lr_step,
                  "lr_gamma": args.lr_gamma, "augment": args.augment, "device": args.device, "seed": args.seed,
                  "subset": args.subset, "data_root": args.data_root}
        out = args.out or os.path.join("runs", f"{args.model}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
    os.makedirs(out, exist_ok=True)
    mdl.manual_seed(config["seed"])
    run = Run(config, out, get_model(config["model"], **config["model_kwargs"]), progress=not args.quiet)
    if args.resume:
        run.restore(state)
        print(f"resumed from {args.resume} at epoch {run.epoch + 1}, step {run.step}")
    print(f"training {config['model']} on {config['dataset']} ({len(run.train_set)} train, "
          f"{len(run.test_set)} test images) for {config['epochs']} epoch{'s' if config['epochs'] != 1 else ''} {_kernels_used(config['device'])}; "
          f"writing {out}")
    started = time.perf_counter()
    history = run.fit()
    last = history[-1]
    print(f"done in {time.perf_counter() - started:.0f}s: test accuracy {last['test_acc']:.4f}; "
          f"final model {os.path.join(out, 'model.npz')}")
    return 0


def _eval(args):
    import numpy as np

    import minidl as mdl
    from minidl.data import DataLoader
    from minidl.training import evaluate, load_datasets
    from minidl_models import get_model

    if args.kernels:
        mdl.config.kernels = args.kernels
    state = mdl.load(args.checkpoint)
    config = state["config"]
    model = get_model(config["model"], **config["model_kwargs"])
    model.load_state_dict(state["model"])
    model.to(args.device)
    _, test = load_datasets(config["dataset"], args.data_root or config.get("data_root"),
                            image_size=model.input_shape[1:])
    loss, accuracy, confusion = evaluate(model, DataLoader(test, 1000), args.device)
    print(f"{config['model']} on {config['dataset']} test set ({len(test)} images): "
          f"accuracy {accuracy:.4f}, loss {loss:.4f}")
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(5, len(str(confusion.max())) + 1)
    print(" " * 6 + "".join(f"{c:>{width}}" for c in range(len(confusion))))
    for i, row in enumerate(confusion):
        print(f"{i:>5} " + "".join(f"{v:>{width}}" for v in row))
    per_class = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    print("per-class accuracy: " + " ".join(f"{i}:{a:.3f}" for i, a in enumerate(per_class)))
    return 0


def _summary(args):
    from minidl_models import get_model, summary

    model = get_model(args.model)
    shape = tuple(int(n) for n in args.input_shape.split(",")) if args.input_shape else None
    print(summary(model, shape))
    return 0


def run():
    """The ``minidl`` command's entry point: this process's thread settings, then `main`."""
    from minidl.threads import configure_process

    configure_process()
    sys.exit(main())


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    args = _parser().parse_args(argv)
    from minidl.backend import DeviceError
    from minidl.data.sources import DatasetNotFoundError
    from minidl.serialization import SerializationError
    from minidl.training import TrainingError

    try:
        return {"train": _train, "eval": _eval, "summary": _summary}[args.command](args)
    except KeyboardInterrupt:
        return 130
    except (DeviceError, DatasetNotFoundError, ImportError, SerializationError, TrainingError, ValueError) as e:
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 2 if not isinstance(e, TrainingError) else 1


if __name__ == "__main__":
    run()

"""The ``minidl`` command: train, eval and summary.

    minidl train lenet5 --dataset mnist
    minidl eval runs/lenet5-mnist/model.npz
    minidl summary lenet5
"""
import argparse
import os
import signal
import sys
import time

# Defaults chosen to reach >= 99.0% MNIST test accuracy with the classic LeNet-5 in few epochs on 2 cores:
# without the random shifts it plateaus near 98.9%, and the lr steps give the last tenths (see README).
DEFAULTS = {"dataset": "mnist", "epochs": 9, "batch_size": 64, "lr": 2e-3, "optimizer": "adam", "momentum": 0.9,
            "weight_decay": 0.0, "lr_step": 3, "lr_gamma": 0.3, "augment": 2, "device": "cpu", "seed": 0, "subset": None}


def _option(name, parse):
    """An argparse type for the run-config entry ``name``: ``parse`` the text, then hold it to the
    config's own check (`minidl.training.CONFIG`), so that an option and a checkpoint's config
    obey one rule."""

    def convert(text):
        from minidl.training import CONFIG

        ok, expected = CONFIG[name]
        try:
            value = parse(text)
        except ValueError:
            value = None
        if value is None or not ok(value):
            raise argparse.ArgumentTypeError(f"must be {expected}; got {text!r}")
        return value

    return convert


def _folder(text):
    if not os.path.isdir(text):
        raise argparse.ArgumentTypeError(f"must be an existing folder; got {text!r}")
    return text


def _input_shape(text):
    try:
        shape = tuple(int(n) for n in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be C,H,W: three positive ints; got {text!r}")
    return shape


# The options that set up a run, by config name. Their defaults are filled in after parsing, so
# that on --resume the ones the user gave can be told apart (see RESUME_CAN_CHANGE).
TRAIN_OPTIONS = {
    "dataset": ("--dataset", str, "mnist, fashion-mnist or cifar10 (default mnist)"),
    "epochs": ("--epochs", int, f"total epochs (default {DEFAULTS['epochs']}; with --resume, the run's own total "
                                "unless given: --epochs 12 extends a 9-epoch run to 12)"),
    "batch_size": ("--batch-size", int, f"default {DEFAULTS['batch_size']}"),
    "lr": ("--lr", float, f"default {DEFAULTS['lr']}"),
    "optimizer": ("--optimizer", str, f"sgd or adam (default {DEFAULTS['optimizer']})"),
    "momentum": ("--momentum", float, f"for sgd (default {DEFAULTS['momentum']})"),
    "weight_decay": ("--weight-decay", float, f"default {DEFAULTS['weight_decay']}"),
    "lr_step": ("--lr-step", int, f"multiply the lr by --lr-gamma every this many epochs (0: never; default "
                                  f"{DEFAULTS['lr_step']})"),
    "lr_gamma": ("--lr-gamma", float, f"default {DEFAULTS['lr_gamma']}"),
    "augment": ("--augment", int, f"move training images randomly by up to this many pixels (0: off; default "
                                  f"{DEFAULTS['augment']})"),
    "device": ("--device", str, "cpu or cuda (default cpu)"),
    "seed": ("--seed", int, f"default {DEFAULTS['seed']}"),
    "subset": ("--subset", int, "quick runs: train on the first N training images and test on the first N/5 "
                                "test images"),
}
# What --resume takes from the command line: how long to go on, where the data now is and where to
# compute. Every other option would make a different run, so it must match the checkpoint's.
RESUME_CAN_CHANGE = ("epochs", "device", "data_root")


def _parser():
    p = argparse.ArgumentParser(prog="minidl", description="Train, evaluate and inspect minidl models.")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a model on a dataset")
    t.add_argument("model", help="model name, e.g. lenet5")
    for name, (flag, parse, help_text) in TRAIN_OPTIONS.items():
        t.add_argument(flag, dest=name, type=_option(name, parse), default=None, help=help_text)
    t.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None,
                   help="CPU kernels (default: $MINIDL_KERNELS, else auto = numba when it imports)")
    t.add_argument("--data-root", type=_folder, default=None,
                   help="folder with the dataset files (default: the cache)")
    t.add_argument("--out", default=None,
                   help="run directory (default: runs/MODEL-DATASET-TIME; with --resume, the checkpoint's run)")
    t.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from this checkpoint, writing the later epochs into its run directory")
    t.add_argument("--quiet", action="store_true", help="no progress bar")

    e = sub.add_parser("eval", help="evaluate a checkpoint on its dataset's test set")
    e.add_argument("checkpoint")
    e.add_argument("--device", type=_option("device", str), default="cpu")
    e.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None)
    e.add_argument("--data-root", type=_folder, default=None)

    s = sub.add_parser("summary", help="print a model's layers, parameters and cost")
    s.add_argument("model")
    s.add_argument("--input-shape", type=_input_shape, default=None,
                   help="C,H,W without the batch (default: the model's own)")
    return p


def _kernels_used(device):
    """How the run computes, for its first line: 'with numba kernels', or 'on cuda'."""
    import minidl as mdl

    return f"on {device}" if device.startswith("cuda") else f"with {mdl.config.kernels} kernels"


def _read_run_file(path):
    """The checkpoint at ``path`` and its checked config; CheckpointError if it has none."""
    import minidl as mdl
    from minidl.training import CheckpointError, check_config

    state = mdl.load(path)
    if not isinstance(state, dict) or "config" not in state or "model" not in state:
        raise CheckpointError(f"{path} is not a minidl run file: it has no config and model (minidl train writes "
                              "them into model.npz and checkpoints/)")
    check_config(state["config"], path)
    return state, state["config"]


def _build_model(config, where):
    """The model ``config`` names, as `minidl train` builds it; CheckpointError if its arguments do not fit."""
    from minidl.training import CheckpointError
    from minidl_models import get_model

    try:
        return get_model(config["model"], **config["model_kwargs"])
    except TypeError as e:
        raise CheckpointError(f"{where}: the config's model_kwargs {config['model_kwargs']!r} do not fit "
                              f"{config['model']} ({e})") from None


def _resumed_config(args):
    state, config = _read_run_file(args.resume)
    if config["model"] != args.model:
        raise ValueError(f"the checkpoint {args.resume} is of model {config['model']!r}, not {args.model!r}")
    given = {name: getattr(args, name) for name in list(TRAIN_OPTIONS) + ["data_root"]
             if getattr(args, name) is not None}
    differ = [f"{TRAIN_OPTIONS[k][0]} {v} (the run's: {config[k]})" for k, v in given.items()
              if k not in RESUME_CAN_CHANGE and v != config[k]]
    if differ:
        raise ValueError(f"--resume continues the run as it was set up, and these options would change it: "
                         f"{', '.join(differ)}; leave them out, or start a new run")
    done = state.get("epoch")
    if "epochs" in given and isinstance(done, int) and given["epochs"] < done:
        raise ValueError(f"--epochs {given['epochs']} is fewer than the {done} epochs {args.resume} has done")
    config.update({k: given[k] for k in RESUME_CAN_CHANGE if k in given})
    out = args.out or os.path.dirname(os.path.dirname(os.path.abspath(args.resume)))
    return state, config, out


def _new_run_dir(args):
    """The run directory of a new run: never one that holds a run already, whose files it would replace."""
    if args.out is None:
        base = os.path.join("runs", f"{args.model}-{args.dataset}-{time.strftime('%Y%m%d-%H%M%S')}")
        out, n = base, 1
        while os.path.exists(out):  # two runs started in the same second
            n += 1
            out = f"{base}-{n}"
        return out
    if os.path.exists(args.out) and not os.path.isdir(args.out):
        raise ValueError(f"--out {args.out} is a file, not a folder")
    held = [f for f in ("model.npz", "checkpoints", "metrics.jsonl") if os.path.exists(os.path.join(args.out, f))]
    if held:
        raise ValueError(f"--out {args.out} holds a run already ({', '.join(held)}), which a new run would "
                         "overwrite; choose another --out, or --resume one of its checkpoints")
    return args.out


def _train(args):
    import minidl as mdl
    from minidl.training import Run, check_config

    if args.kernels:
        mdl.config.kernels = args.kernels
    if args.resume:
        state, config, out = _resumed_config(args)
    else:
        from minidl.training import model_kwargs
        from minidl_models import model_constructor

        model_constructor(args.model)  # an unknown name fails here, before any data is fetched
        for name in TRAIN_OPTIONS:
            if getattr(args, name) is None:
                setattr(args, name, DEFAULTS[name])
        config = {"model": args.model, "model_kwargs": model_kwargs(args.dataset),
                  **{name: getattr(args, name) for name in TRAIN_OPTIONS}, "data_root": args.data_root}
        check_config(config, "minidl train")
        out = _new_run_dir(args)
    mdl.manual_seed(config["seed"])
    run = Run(config, out, _build_model(config, args.resume or "minidl train"), progress=not args.quiet)
    os.makedirs(out, exist_ok=True)  # once the data and the model are there: a run that cannot start leaves nothing
    if args.resume:
        run.restore(state, args.resume)
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
    from minidl.training import CheckpointError, evaluate, load_datasets

    if args.kernels:
        mdl.config.kernels = args.kernels
    state, config = _read_run_file(args.checkpoint)
    model = _build_model(config, args.checkpoint)
    try:
        model.load_state_dict(state["model"])
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"the weights in {args.checkpoint} do not fit the {config['model']} its config "
                              f"builds: {e}") from None
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

    print(summary(get_model(args.model), args.input_shape))
    return 0


def run():
    """The ``minidl`` command's entry point: this process's thread settings, then `main`."""
    from minidl.threads import configure_process

    configure_process()
    sys.exit(main())


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage and the error (or the help)
        return e.code
    from minidl.backend import DeviceError
    from minidl.data.sources import DatasetNotFoundError
    from minidl.serialization import SerializationError
    from minidl.training import Interrupted, TrainingError

    try:
        return {"train": _train, "eval": _eval, "summary": _summary}[args.command](args)
    except Interrupted as e:
        return 128 + e.signum
    except KeyboardInterrupt:
        return 128 + signal.SIGINT
    except TrainingError as e:
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (DeviceError, DatasetNotFoundError, ImportError, SerializationError, ValueError) as e:
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a folder that cannot be written, a full disk
        print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 2 if isinstance(e, (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)) else 1


if __name__ == "__main__":
    run()

"""The ``minidl`` command: train, eval, summary, predict, export and bench.

    minidl train lenet5 --dataset mnist
    minidl eval runs/latest/model.npz
    minidl summary lenet5
    minidl predict runs/latest/model.npz digit.png
    minidl export runs/latest/model.npz lenet5.onnx
    minidl bench im2col --quick --impl my_im2col.py
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


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be an int >= 1; got {text!r}")
    return value


def _input_shape(text):
    try:
        shape = tuple(int(n) for n in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 3 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"must be C,H,W: three positive ints; got {text!r}")
    return shape


def _train_options():
    """The options that set up a run, by config name. Their defaults are filled in after parsing, so
    that on --resume the ones the user gave can be told apart (see RESUME_CAN_CHANGE)."""
    from minidl.training import DATASETS, OPTIMIZERS

    return {
        "dataset": ("--dataset", str, f"{', '.join(sorted(DATASETS))} (default {DEFAULTS['dataset']})"),
        "epochs": ("--epochs", int, f"total epochs (default {DEFAULTS['epochs']}; with --resume, the run's own total "
                                    "unless given: --epochs 12 extends a 9-epoch run to 12)"),
        "batch_size": ("--batch-size", int, f"default {DEFAULTS['batch_size']}"),
        "lr": ("--lr", float, f"default {DEFAULTS['lr']}"),
        "optimizer": ("--optimizer", str, f"{', '.join(OPTIMIZERS)} (default {DEFAULTS['optimizer']})"),
        "momentum": ("--momentum", float, f"for sgd (default {DEFAULTS['momentum']})"),
        "weight_decay": ("--weight-decay", float, f"default {DEFAULTS['weight_decay']}"),
        "lr_step": ("--lr-step", int, f"multiply the lr by --lr-gamma every this many epochs (0: never; default "
                                      f"{DEFAULTS['lr_step']})"),
        "lr_gamma": ("--lr-gamma", float, f"default {DEFAULTS['lr_gamma']}"),
        "augment": ("--augment", int, "move training images randomly by up to this many pixels, and mirror "
                                      f"CIFAR-10's at random (0: off; default {DEFAULTS['augment']})"),
        "device": ("--device", str, f"cpu, cuda or cuda:N (default {DEFAULTS['device']})"),
        "seed": ("--seed", int, f"default {DEFAULTS['seed']}"),
        "subset": ("--subset", int, "quick runs: train on the first N training images and test on the first N/5 "
                                    "test images (default: all)"),
    }


# What --resume takes from the command line: how long to go on, where the data now is and where to
# compute. Every other option would make a different run, so it must match the checkpoint's.
RESUME_CAN_CHANGE = ("epochs", "device", "data_root")


def _parser():
    p = argparse.ArgumentParser(prog="minidl", description="Train, evaluate and inspect minidl models.")
    sub = p.add_subparsers(dest="command", required=True)

    from minidl_models import MODELS

    models = ", ".join(sorted(MODELS))
    t = sub.add_parser("train", help="train a model on a dataset",
                       epilog=f"models: {models} (`minidl summary MODEL` shows one)")
    t.add_argument("model", help="model name, e.g. lenet5 (all of them are listed below)")
    for name, (flag, parse, help_text) in _train_options().items():
        t.add_argument(flag, dest=name, type=_option(name, parse), default=None, help=help_text)
    t.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None,
                   help="CPU kernels (default: $MINIDL_KERNELS, else auto = numba when it imports)")
    t.add_argument("--data-root", type=_folder, default=None,
                   help="folder with the dataset files (default: $MINIDL_DATA if set, else the cache "
                        "~/.cache/minidl, filled from the download mirrors)")
    t.add_argument("--out", default=None,
                   help=f"run directory (default: runs/MODEL-DATASET-TIME, and {LATEST} points to the newest; with "
                        "--resume, the checkpoint's run)")
    t.add_argument("--resume", default=None, metavar="CKPT",
                   help="continue from this checkpoint, writing the later epochs into its run directory")
    t.add_argument("--quiet", action="store_true", help="no progress (a bar on a terminal, else a line every 30 s)")

    e = sub.add_parser("eval", help="evaluate a checkpoint on its dataset's test set")
    e.add_argument("checkpoint")
    e.add_argument("--device", type=_option("device", str), default="cpu")
    e.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None)
    e.add_argument("--data-root", type=_folder, default=None)

    s = sub.add_parser("summary", help="print a model's layers, parameters and cost")
    s.add_argument("model", help=f"a model name ({models}) or a model.npz or checkpoint of minidl train")
    s.add_argument("--input-shape", type=_input_shape, default=None,
                   help="C,H,W without the batch (default: the model's own)")

    r = sub.add_parser("predict", help="the most likely classes of images, by a trained model")
    r.add_argument("checkpoint", help="a model.npz (or checkpoint) of minidl train")
    r.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files: PNG, JPEG, ... (with Pillow), or .npy arrays of the dataset's image shape")
    r.add_argument("--topk", type=_positive_int, default=5, help="how many classes to show per image (default 5)")
    r.add_argument("--device", type=_option("device", str), default="cpu")

    x = sub.add_parser("export", help="write a trained model as ONNX (for inference runtimes) or safetensors "
                                      "(PyTorch's parameter names)")
    x.add_argument("checkpoint", help="a model.npz (or checkpoint) of minidl train")
    x.add_argument("out", help="the file to write: NAME.onnx or NAME.safetensors (never an existing file)")
    x.add_argument("--opset", type=_positive_int, default=17, help="the ONNX opset (default 17)")

    from minidl.bench import BENCHMARKS

    b = sub.add_parser("bench", help="benchmarks: im2col kernels (yours too), convolutions, training, next to PyTorch",
                       description="Run one of minidl's benchmarks; `minidl bench NAME --help` lists its options.")
    b.add_argument("benchmark", choices=BENCHMARKS, help="im2col: im2col/col2im in GB/s against the copy bandwidth; "
                   "conv: convolution layers; train: LeNet-5 training steps")
    b.add_argument("options", nargs=argparse.REMAINDER, help="the benchmark's own options")
    return p


def _kernels_used(device):
    """How the run computes, for its first line: 'with numba kernels', or 'on cuda'."""
    import minidl as mdl

    return f"on {device}" if device.startswith("cuda") else f"with {mdl.config.kernels} kernels"


def _resumed_config(args):
    from minidl_models.loading import read_run_file

    state, config = read_run_file(args.resume)
    if config["model"] != args.model:
        raise ValueError(f"the checkpoint {args.resume} is of model {config['model']!r}, not {args.model!r}")
    options = _train_options()
    given = {name: getattr(args, name) for name in list(options) + ["data_root"] if getattr(args, name) is not None}
    differ = [f"{options[k][0]} {v} (the run's: {config[k]})" for k, v in given.items()
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


# The newest run of `minidl train` without --out, so that commands written down (the README's) work
# after any number of runs.
LATEST = os.path.join("runs", "latest")


def _point_latest_at(out):
    """Make ``runs/latest`` a link to the run directory ``out`` (under runs/), replacing the link
    atomically; never a file or folder of the user's. Where links cannot be made, nothing happens."""
    if os.path.exists(LATEST) and not os.path.islink(LATEST):
        return
    temporary = f"{LATEST}.{os.getpid()}.tmp"
    try:
        os.symlink(os.path.basename(out), temporary)
        os.replace(temporary, LATEST)
    except OSError:
        if os.path.islink(temporary):
            os.unlink(temporary)


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
    from minidl import distributed
    from minidl.training import CommandRun, check_config
    from minidl_models.loading import build_model

    if distributed.launched_world_size() > 1:
        distributed.init()
        if distributed.world_size() != distributed.launched_world_size():
            raise distributed.DistributedError(
                f"the launcher started {distributed.launched_world_size()} processes, but MPI sees a world of "
                f"{distributed.world_size()}: mpiexec belongs to another MPI than the one mpi4py was built with; "
                f"use the mpiexec of the mpi extra (MPICH), or rebuild mpi4py for yours")
    lead = distributed.rank() == 0  # rank 0 prints and writes for a data-parallel job
    if args.kernels:
        mdl.config.kernels = args.kernels
    if args.resume:
        state, config, out = _resumed_config(args)
    else:
        from minidl.training import model_kwargs
        from minidl_models import model_constructor

        model_constructor(args.model)  # an unknown name fails here, before any data is fetched
        options = _train_options()
        for name in options:
            if getattr(args, name) is None:
                setattr(args, name, DEFAULTS[name])
        config = {"model": args.model, "model_kwargs": model_kwargs(args.dataset),
                  **{name: getattr(args, name) for name in options}, "data_root": args.data_root}
        check_config(config, "minidl train")
        out = distributed.all_gather_json(_new_run_dir(args))[0]  # rank 0's: its clock named it
    mdl.manual_seed(config["seed"])
    run = CommandRun(config, out, build_model(config, args.resume or "minidl train"), progress=not args.quiet)
    if lead:
        os.makedirs(out, exist_ok=True)  # once the data and the model are there: a run that cannot start leaves nothing
        if args.out is None and not args.resume:
            _point_latest_at(out)
    if args.resume:
        run.restore(state, args.resume)
        if lead:
            print(f"resumed from {args.resume} at epoch {run.epoch + 1}, step {run.step}")
    ranks = _ranks_used(run)  # a collective call: every rank makes it
    if lead:
        print(f"training {config['model']} on {config['dataset']} ({len(run.train_set)} train, "
              f"{len(run.test_set)} test images) for {config['epochs']} epoch{'s' if config['epochs'] != 1 else ''} "
              f"{_kernels_used(config['device'])}{ranks}; writing {out}", flush=True)
    started = time.perf_counter()
    history = run.fit()
    last = history[-1]
    if lead:
        print(f"done in {time.perf_counter() - started:.0f}s: test accuracy {last['test_acc']:.4f}; "
              f"final model {os.path.join(out, 'model.npz')}")
    return 0


def _ranks_used(run):
    """For the first line of a data-parallel run: the ranks, how the batch is split and the
    gradients travel, and each rank's process id (which mpiexec names when a rank is killed)."""
    from minidl import distributed

    world = distributed.world_size()
    if world == 1:
        return ""
    pids = distributed.all_gather_json(os.getpid())
    return (f" on {world} MPI ranks (pids {', '.join(map(str, pids))}), {run.train_loader.batch_size} images "
            f"each per batch, gradients averaged through {distributed.gradient_transport(run.device)}")


def _eval(args):
    import numpy as np

    import minidl as mdl
    from minidl.data import DataLoader
    from minidl.training import evaluate, load_datasets
    from minidl_models import load

    if args.kernels:
        mdl.config.kernels = args.kernels
    model = load(args.checkpoint, args.device)
    config = model.run_config
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
    from minidl_models import MODELS, get_model, load, summary

    model = load(args.model) if args.model not in MODELS and os.path.isfile(args.model) else get_model(args.model)
    print(summary(model, args.input_shape))
    return 0


def _predict(args):
    from minidl_models import load, predict
    from minidl_models.loading import read_image

    model = load(args.checkpoint, args.device)
    if model.image_shape is None:
        raise ValueError(f"{args.checkpoint} does not record how to prepare images for its model (minidl train "
                         "writes that into model.npz)")
    for path in args.images:
        ranked = predict(model, read_image(path, model.image_shape), topk=args.topk)[0]
        print(f"{path}: " + ", ".join(f"{label} {p:.3f}" for label, p in ranked))
    return 0


def _bench(args):
    from minidl import bench

    return bench.run(args.benchmark, args.options)


def _export(args):
    from minidl import interop
    from minidl_models import load

    kind = os.path.splitext(args.out)[1].lower()
    if kind not in (".onnx", ".safetensors"):
        raise ValueError(f"{args.out}: the file to write must end in .onnx or .safetensors")
    if os.path.lexists(args.out):
        raise ValueError(f"{args.out} exists already; export writes a new file, so choose another name")
    model = load(args.checkpoint)
    if kind == ".onnx":
        interop.export_onnx(model, args.out, model.input_shape, opset=args.opset)
        print(f"wrote {args.out}: {model.run_config['model']}, input (batch, {', '.join(map(str, model.input_shape))})")
    else:
        interop.save_safetensors(model.state_dict(), args.out, metadata={"model": model.run_config["model"]})
        print(f"wrote {args.out}: {len(model.state_dict())} tensors of {model.run_config['model']}, with PyTorch's names")
    return 0


def run():
    """The ``minidl`` command's entry point: this process's thread settings (in an MPI rank, its
    share of the cores, for which the process starts again), then `main`. ``minidl bench`` leaves
    them alone: it measures in processes it starts, PyTorch's from the environment as it is."""
    from minidl.threads import configure_process

    if sys.argv[1:2] != ["bench"] and configure_process():  # an MPI rank's share of the cores, read by OpenBLAS
        os.execv(sys.executable, sys.orig_argv)  # this command again, as it was started
    sys.exit(main())


def main(argv=None):
    """Run the command line ``argv`` (default: ``sys.argv[1:]``) and return its exit status."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse has printed the usage and the error (or the help)
        return e.code
    try:
        return _dispatch(args)
    except BaseException as e:
        if not _in_parallel_job():
            raise
        # A rank that ended by itself would leave the others waiting in their next collective call.
        import traceback

        from minidl import distributed

        distributed.abort(f"minidl {args.command}: {''.join(traceback.format_exception(e)).rstrip()}")


def _dispatch(args):
    """Run the command of ``args``; its exit status, with the error printed for the ones expected."""
    from minidl.backend import DeviceError
    from minidl.data.sources import DatasetNotFoundError
    from minidl.distributed import DistributedError
    from minidl.interop import OnnxExporterError
    from minidl.serialization import SerializationError
    from minidl.training import Interrupted, TrainingError

    try:
        commands = {"train": _train, "eval": _eval, "summary": _summary, "predict": _predict, "export": _export,
                    "bench": _bench}
        return commands[args.command](args)
    except Interrupted as e:
        if e.checkpoint is None and _in_parallel_job():  # a second signal: this rank stopped where it was
            _fail(args.command, "stopped by a second signal, without a checkpoint", 128 + e.signum)
        return 128 + e.signum  # every rank of a job stops at the same step (they agree on signals)
    except KeyboardInterrupt:
        if _in_parallel_job():
            _fail(args.command, "interrupted", 128 + signal.SIGINT)
        return 128 + signal.SIGINT
    except TrainingError as e:  # every rank of a job stops alike: they check the whole batch's loss
        from minidl import distributed

        if distributed.rank() == 0:
            print(f"minidl {args.command}: error: {e}", file=sys.stderr)
        return 1
    except (DeviceError, DatasetNotFoundError, DistributedError, ImportError, OnnxExporterError, SerializationError,
            ValueError) as e:
        _fail(args.command, f"error: {e}", 2)
        return 2
    except OSError as e:  # a folder that cannot be written, a full disk
        code = 2 if isinstance(e, (PermissionError, FileExistsError, NotADirectoryError, IsADirectoryError)) else 1
        _fail(args.command, f"error: {e}", code)
        return code


def _in_parallel_job():
    from minidl import distributed

    return distributed.world_size() > 1


def _fail(command, message, code):
    """Print ``minidl COMMAND: message``; in a data-parallel job, as this rank's, ending the job."""
    if _in_parallel_job():
        from minidl import distributed

        distributed.abort(f"minidl {command}: {message}", code)
    print(f"minidl {command}: {message}", file=sys.stderr)


if __name__ == "__main__":
    run()

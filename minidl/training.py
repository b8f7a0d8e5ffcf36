"""The training loop: `Trainer` (and `fit`) for any Module, optimizer and DataLoaders, and behind it
``minidl train`` and ``minidl eval``.

A run directory holds everything a run produced:

    metrics.jsonl, metrics.csv   one row per epoch
    checkpoints/epoch-NNN.npz    model, optimizer, scheduler, RNG and data-order state (atomic writes)
    model.npz                    the final weights (``minidl train`` adds what rebuilds the model and
                                 prepares its input, for ``minidl_models.load``)
    curves.png                   loss and accuracy curves (when matplotlib is installed)

A checkpoint holds every piece of state the next step depends on, so a resumed run
(`Trainer.load_checkpoint`, ``minidl train --resume``) ends with the same weights as an
uninterrupted one, bit for bit. Ctrl-C (SIGINT) and SIGTERM (what schedulers and ``docker stop``
send) ask the run to stop: the step under way finishes, a checkpoint of that step is
saved, and `Trainer.fit` raises `Interrupted`. A second signal stops at once, saving nothing
more (the last checkpoint stays as it was).

A run stops with `TrainingError` when its loss becomes NaN or infinite, or explodes:
the mean over the last ``DIVERGENCE_WINDOW`` steps above ``DIVERGENCE_FACTOR`` times
the run's first loss (a fresh model's loss is that of guessing, ln 10 = 2.3 for ten
classes; a run that learns stays far below it).
"""
import json
import math
import os
import signal
import sys
import threading
import time
from collections import deque

import numpy as np

import minidl as mdl
from minidl import backend, distributed, kernels, random
from minidl._checks import check_int, is_int, is_real, require
from minidl.data import DataLoader, datasets, transforms as T
from minidl.serialization import atomic_open

DATASETS = {
    "mnist": (datasets.MNIST, (0.1307,), (0.3081,)),
    "fashion-mnist": (datasets.FashionMNIST, (0.2860,), (0.3530,)),
    "cifar10": (datasets.CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


# ``minidl train --optimizer``: every optimizer of minidl.optim, by its class name there.
OPTIMIZERS = {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW", "adagrad": "Adagrad", "rmsprop": "RMSprop"}

DIVERGENCE_WINDOW, DIVERGENCE_FACTOR = 20, 10


class TrainingError(RuntimeError):
    """Training cannot go on (its loss became NaN or exploded); the message says where and why."""


class CheckpointError(ValueError):
    """A file that loads but cannot serve: a final model given where a training checkpoint is needed,
    weights that do not fit the model its config builds, or a config or state with bad values."""


class Interrupted(KeyboardInterrupt):
    """`Run.fit` stopped on a signal (``signum``: SIGINT or SIGTERM) after saving ``checkpoint``
    (None when a second signal stopped it at once). A KeyboardInterrupt, so code that stops on
    Ctrl-C stops on it too."""

    def __init__(self, signum, checkpoint):
        super().__init__(signum, checkpoint)
        self.signum, self.checkpoint = signum, checkpoint


def _nonnegative(v):
    return is_real(v) and math.isfinite(v) and v >= 0


def _device(v):
    try:
        backend.parse_device(v)
    except backend.DeviceError:
        return False
    return True


# What a run's config may hold: name -> (test, what is expected). `check_config` applies it to a
# config from the command line and to one read back from a checkpoint alike.
CONFIG = {
    "model": (lambda v: isinstance(v, str) and v != "", "a model name"),
    "model_kwargs": (lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v), "a dict of arguments"),
    "dataset": (lambda v: v in DATASETS, "one of " + ", ".join(sorted(DATASETS))),
    "epochs": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
    "batch_size": (lambda v: is_int(v) and v >= 1, "an int >= 1"),
    "lr": (lambda v: _nonnegative(v) and v > 0, "a finite number > 0"),
    "optimizer": (lambda v: v in OPTIMIZERS, "one of " + ", ".join(OPTIMIZERS)),
    "momentum": (_nonnegative, "a finite number >= 0"),
    "weight_decay": (_nonnegative, "a finite number >= 0"),
    "lr_step": (lambda v: is_int(v) and v >= 0, "an int >= 0 (0: never)"),
    "lr_gamma": (lambda v: _nonnegative(v) and v > 0, "a finite number > 0"),
    "augment": (lambda v: is_int(v) and v >= 0, "an int >= 0 (0: off)"),
    "device": (_device, "'cpu', 'cuda' or 'cuda:N'"),
    "seed": (lambda v: is_int(v) and 0 <= v < 2 ** 63, "an int in [0, 2**63)"),
    "subset": (lambda v: v is None or (is_int(v) and v >= 1), "an int >= 1, or None for all"),
    "data_root": (lambda v: v is None or isinstance(v, str), "a folder, or None for the default"),
}


def check_config(config, where):
    """Raise CheckpointError naming ``where`` and the first bad or missing entry of ``config``."""
    if not isinstance(config, dict):
        raise CheckpointError(f"{where}: the config must be a dict; got {type(config).__name__}")
    for name, (ok, expected) in CONFIG.items():
        if name not in config:
            raise CheckpointError(f"{where}: the config has no {name!r}")
        if not ok(config[name]):
            raise CheckpointError(f"{where}: the config's {name} must be {expected}; got {config[name]!r}")


def dataset_names():
    return sorted(DATASETS)


def model_kwargs(dataset):
    """What a model needs to know of ``dataset``: its input channels and number of classes."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of: {', '.join(dataset_names())}")
    cls, mean, _ = DATASETS[dataset]
    return {"num_classes": len(cls.classes), "in_channels": len(mean)}


# Datasets whose mirror images are of the same class (a mirrored digit is not): their training
# images are also flipped at random, the standard augmentation for CIFAR-10 with the random shifts.
FLIPPABLE = {"cifar10"}


def load_datasets(name, root=None, subset=None, image_size=(32, 32), augment=0):
    """Train and test datasets brought to ``image_size`` (h, w) and normalised; with ``augment`` > 0
    each training image is also moved by up to that many pixels (a random crop of the image padded
    by that much), and for CIFAR-10 mirrored left to right half of the time.

    Images up to 8 pixels smaller than ``image_size`` are padded (MNIST's 28 -> 32 for LeNet-5, as
    in its paper); others are resized, so any model can be fed any dataset."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(dataset_names())}")
    cls, mean, std = DATASETS[name]
    train, test = cls(root=root, train=True), cls(root=root, train=False)
    (h, w), (target_h, target_w) = train.data.shape[-2:], image_size
    pad = target_h - h
    if (h, w) == (target_h, target_w):
        head = []
    elif 0 < pad <= 8 and pad % 2 == 0 and target_w - w == pad:
        # Pad before normalising: the border must be the images' own background (pixel value 0).
        head = [T.Pad(pad // 2)]
    else:
        head = [T.Resize((target_h, target_w))]
    tail = [T.ToFloat(), T.Normalize(mean, std)]
    augmentation = []
    if augment:
        augmentation = [T.RandomShift(augment)] + ([T.RandomHorizontalFlip()] if name in FLIPPABLE else [])
    train.transform = T.Compose(head + augmentation + tail)
    test.transform = T.Compose(head + tail)
    if subset:
        if subset > len(train):
            raise ValueError(f"subset {subset} is more than the {len(train)} training images of {name}")
        train, test = train.subset(subset), test.subset(min(max(subset // 5, 1), len(test)))
    return train, test


def make_optimizer(name, params, lr, momentum, weight_decay):
    """The optimizer ``minidl train --optimizer name`` uses; ``momentum`` is SGD's alone."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose one of: {', '.join(OPTIMIZERS)}")
    extra = {"momentum": momentum} if name == "sgd" else {}
    return getattr(mdl.optim, OPTIMIZERS[name])(params, lr=lr, weight_decay=weight_decay, **extra)


def evaluate(model, loader, device="cpu", num_classes=10):
    """Mean loss, accuracy and the confusion matrix (rows: true class, columns: predicted)."""
    model.eval()
    confusion = np.zeros((num_classes, num_classes), np.int64)
    total_loss, n = 0.0, 0
    with mdl.no_grad():
        for x, y in loader:
            logits = model(x.to(device))
            total_loss += mdl.nn.functional.cross_entropy(logits, y, reduction="sum").item()
            predicted = backend.as_numpy(logits.data.argmax(axis=1))
            np.add.at(confusion, (y.numpy(), predicted), 1)
            n += len(y)
    return total_loss / n, float(np.trace(confusion)) / n, confusion


class Trainer:
    """Train any Module: the loop behind ``minidl train``, with its progress, metrics files, curves,
    checkpoints, Ctrl-C handling and bit-exact resume, for your own model and data::

        trainer = Trainer(model, optim.AdamW(model.parameters(), lr=1e-3), train_loader,
                          val_loader=val_loader, epochs=10, out="runs/mine")
        history = trainer.fit()          # one dict per epoch: train_loss, val_loss, val_acc, lr, ...

    ``train_loader`` is a `minidl.data.DataLoader`: it can replay any epoch's order from any step,
    which resuming needs. ``val_loader`` (optional) is any iterable of ``(input, target)`` batches,
    evaluated after each epoch with the model in eval mode. ``loss_fn(output, target)`` returns a
    scalar Tensor (default: the model's ``criterion`` if it has one, as GoogLeNet weighs its auxiliary
    heads, else cross-entropy). Where the output is a (N, classes) array of scores (or a tuple whose
    first item is) and the target N class indices, the rows also hold accuracies.

    ``scheduler`` steps after each epoch (``scheduler_interval="epoch"``) or after each optimizer step
    (``"step"``, as `OneCycleLR` expects); a `ReduceLROnPlateau` is given the epoch's validation loss
    (the training loss without ``val_loader``). ``max_grad_norm`` clips the gradients' total norm before
    each step (`minidl.nn.utils.clip_grad_norm_`). ``out`` is the run directory; without it nothing
    is written and a signal stops the run without a checkpoint. ``config`` (a dict of plain values)
    is stored in every checkpoint and in model.npz, to record how the run was set up.

    ``progress``: a progress bar on a terminal; when the output is a file or a pipe, a line every
    ``log_interval`` seconds instead of a redraw per batch. Each epoch ends with a line on stdout.

    **Data-parallel** under MPI (after `minidl.distributed.init` in a job of several ranks): the
    ``train_loader`` must have a `minidl.distributed.DistributedSampler`, and every rank runs the
    same Trainer. Each step then averages the gradients over the ranks, weighted by their numbers of
    examples (`minidl.distributed.all_reduce_gradients`), and the loss, accuracy, divergence checks
    and signals are the whole batch's, so that every rank makes the same decisions. A
    ``val_loader`` with a sampler is evaluated in shares and summed. Only rank 0 prints and writes
    files; the others' ``out`` only names them. At the start the ranks check that they agree on the
    model, the optimizer, the data and ``config``, and take rank 0's weights. Dropout on each rank
    draws from a generator seeded by (loader seed, epoch, step, rank), so the ranks draw independent
    masks and a run resumed on as many ranks continues the same draws.
    """

    eval_name = "val"  # the prefix of the evaluation's entries in the history
    lr_hint = "a smaller learning rate"

    def __init__(self, model, optimizer, train_loader, *, epochs=1, loss_fn=None, val_loader=None,
                 scheduler=None, scheduler_interval="epoch", max_grad_norm=None, out=None, device="cpu",
                 config=None, progress=True, log_interval=30.0):
        where = type(self).__name__
        if not isinstance(model, mdl.nn.Module):
            raise TypeError(f"{where}: model must be a minidl.nn.Module; got {type(model).__name__}")
        if not isinstance(optimizer, mdl.optim.Optimizer):
            raise TypeError(f"{where}: optimizer must be a minidl.optim optimizer; got {type(optimizer).__name__}")
        if not isinstance(train_loader, DataLoader):
            raise TypeError(f"{where}: train_loader must be a minidl.data.DataLoader (it replays an epoch's order "
                            f"from any step, which resuming needs); got {type(train_loader).__name__}")
        if val_loader is not None and not hasattr(val_loader, "__iter__"):
            raise TypeError(f"{where}: val_loader must be an iterable of (input, target) batches, or None; "
                            f"got {type(val_loader).__name__}")
        require(loss_fn is None or callable(loss_fn), where, "loss_fn", loss_fn, "a function (output, target) -> loss")
        require(scheduler is None or hasattr(scheduler, "step"), where, "scheduler", scheduler,
                "a learning-rate scheduler or None")
        require(scheduler_interval in ("epoch", "step"), where, "scheduler_interval", scheduler_interval,
                "'epoch' or 'step'")
        require(max_grad_norm is None or (is_real(max_grad_norm) and max_grad_norm > 0), where, "max_grad_norm",
                max_grad_norm, "a number > 0, or None")
        require(out is None or isinstance(out, (str, os.PathLike)), where, "out", out, "a folder path or None")
        require(config is None or isinstance(config, dict), where, "config", config, "a dict or None")
        require(is_real(log_interval) and log_interval > 0, where, "log_interval", log_interval, "seconds > 0")
        self.epochs = check_int(where, "epochs", epochs, 1)
        backend.parse_device(device)
        self.device = device
        self.model, self.optimizer, self.scheduler = model, optimizer, scheduler
        self.train_loader, self.val_loader = train_loader, val_loader
        self.loss_fn = loss_fn or getattr(model, "criterion", mdl.nn.functional.cross_entropy)
        self.scheduler_interval, self.max_grad_norm = scheduler_interval, max_grad_norm
        self.out = None if out is None else os.fspath(out)
        self.config = {} if config is None else config
        self.progress, self.log_interval = progress, float(log_interval)
        self.model.to(self.device)
        self.world = distributed.world_size()
        if self.world > 1:
            sampler = train_loader.sampler
            if sampler is None or sampler.num_replicas != self.world:
                raise ValueError(f"{where}: a data-parallel run of {self.world} ranks needs a train_loader with a "
                                 f"minidl.distributed.DistributedSampler of {self.world} replicas; got "
                                 f"{'none' if sampler is None else sampler}, with which every rank would train on "
                                 f"the same examples")
        self.writes = self.out is not None and distributed.rank() == 0  # rank 0 writes for the job
        self.progress = self.progress and distributed.rank() == 0
        # sums: the epoch so far (loss x examples, correct, examples, seconds)
        self.epoch, self.step, self.sums, self.history = 0, 0, [0.0, 0, 0, 0.0], []
        self.first_loss, self.recent_losses = None, deque(maxlen=DIVERGENCE_WINDOW)
        self._scores = True  # whether the outputs are class scores, so that accuracy means something

    # --- checkpoints -------------------------------------------------------------------
    def state(self):
        """Everything the next step depends on, as `mdl.save` writes it."""
        return {"config": self.config, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "epoch": self.epoch, "step": self.step, "sums": list(self.sums), "history": self.history,
                "rng": json.dumps(random.get_rng_state()), "loader_seed": self.train_loader.seed,
                "losses": {"first": self.first_loss, "recent": list(self.recent_losses)}}

    def save_checkpoint(self, name):
        """Write `state()` to ``out/checkpoints/name`` (atomically; in a data-parallel run only rank 0
        writes); its path."""
        path = os.path.join(self._require_out("save_checkpoint"), "checkpoints", name)
        if self.writes:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            mdl.save(self.state(), path)
        return path

    def final_state(self):
        """What model.npz holds: the config and the weights."""
        return {"config": self.config, "model": self.model.state_dict()}

    def _require_out(self, what):
        if self.out is None:
            raise ValueError(f"{type(self).__name__}.{what}: this trainer has no run directory (out=None)")
        return self.out

    def load_checkpoint(self, path):
        """Continue from the checkpoint at ``path``: the next `fit` goes on from its step."""
        self.restore(mdl.load(path), path)

    def restore(self, state, where="the checkpoint"):
        """Continue from ``state`` (a `state()` read back); a state that cannot serve raises
        CheckpointError naming ``where``. The trainer's own counters and generator are checked first
        and set last; the optimizer, scheduler and model each check all of their state before they
        change any of it. (After a refusal the trainer is not meant to go on.)"""
        if not isinstance(state, dict):
            raise CheckpointError(f"{where} is not a training checkpoint: it holds a {type(state).__name__}")
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "step", "sums", "history", "rng")
                   if k not in state]
        if missing:
            raise CheckpointError(f"{where} is not a training checkpoint: it has no {', '.join(missing)}"
                                  + (" (a final model.npz holds the weights only; resume from a file under "
                                     "checkpoints/)" if "optimizer" in missing else ""))
        epoch, step, sums, history, losses = (state["epoch"], state["step"], state["sums"], state["history"],
                                              state.get("losses", {"first": None, "recent": []}))
        seed = state.get("loader_seed", self.train_loader.seed)
        checks = [
            (is_int(epoch) and 0 <= epoch <= self.epochs, f"epoch {epoch!r}"),
            (is_int(step) and 0 <= step <= len(self.train_loader), f"step {step!r}"),
            (isinstance(sums, list) and len(sums) == 4 and all(is_real(v) for v in sums), f"sums {sums!r}"),
            (isinstance(history, list) and all(isinstance(row, dict) for row in history), "history"),
            (isinstance(losses, dict) and (losses.get("first") is None or is_real(losses["first"]))
             and isinstance(losses.get("recent"), list) and all(is_real(v) for v in losses["recent"]), "losses"),
            (is_int(seed) and 0 <= seed < 2 ** 63, f"loader_seed {seed!r}"),
        ]
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise CheckpointError(f"{where}: its {', '.join(bad)} do not fit this run "
                                  f"({self.epochs} epochs of {len(self.train_loader)} steps)")
        if self.scheduler is not None and state["scheduler"] is None:
            raise CheckpointError(f"{where} has no scheduler state, but this run has a {type(self.scheduler).__name__}")
        try:
            rng = json.loads(state["rng"])
            random.check_rng_state(rng)
        except (TypeError, ValueError) as e:
            raise CheckpointError(f"{where}: its random generator state is unusable ({e})") from None
        try:
            # The weights last: a refused optimizer or scheduler state leaves them as they were.
            self.optimizer.load_state_dict(state["optimizer"])
            if self.scheduler is not None:
                self.scheduler.load_state_dict(state["scheduler"])
            self.model.load_state_dict(state["model"])
        except (KeyError, TypeError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{where}: {e}") from None
        self.epoch, self.step, self.sums, self.history = int(epoch), int(step), list(sums), list(history)
        self.first_loss = losses["first"]
        self.recent_losses = deque(losses["recent"], maxlen=DIVERGENCE_WINDOW)
        self.train_loader.seed = int(seed)
        if self.train_loader.sampler is not None:  # its order is the run's, as a shuffling loader's is
            self.train_loader.sampler.seed = int(seed)
        random.set_rng_state(rng)

    # --- training ------------------------------------------------------------------------
    def fit(self):
        """Train up to ``epochs``, then write model.npz (with ``out``); returns the history, one dict
        per epoch. On SIGINT or SIGTERM: finish the step, save a checkpoint of it, raise `Interrupted`."""
        if self.progress and self.epoch < self.epochs and kernels.numba_kernels_on_disk() is False:
            print("compiling the Numba kernels, once per machine (later runs load them from Numba's cache); "
                  "the first steps take seconds", file=sys.stderr, flush=True)
        if self.world > 1:
            self._check_ranks_agree()
        with _StopRequests() as stop:
            while self.epoch < self.epochs:
                self._train_epoch(stop)
                signum = self._stop_requested(stop) if self.epoch < self.epochs else None
                if signum is not None:
                    path = os.path.join(self.out, "checkpoints", f"epoch-{self.epoch:03d}.npz") if self.out else None
                    self._interrupted(signum, path)
            if self.writes:
                mdl.save(self.final_state(), os.path.join(self.out, "model.npz"))
        return self.history

    def _check_ranks_agree(self):
        """Every rank of a data-parallel run trains the same model with the same settings on the same
        data, from the same point: a rank started otherwise would make the average meaningless."""
        opt = self.optimizer
        config = json.loads(json.dumps(self.config, default=str))
        distributed.check_same(type(self).__name__, {
            **{f"the config's {k}": v for k, v in config.items()},
            "the model's parameters": [[n, list(p.shape), str(p.dtype)] for n, p in self.model.named_parameters()],
            "the optimizer": [type(opt).__name__] + [{k: v for k, v in g.items() if k != "params"}
                                                     for g in opt.param_groups],
            "the batch size per rank": self.train_loader.batch_size, "the batches per epoch": len(self.train_loader),
            "the examples": len(self.train_loader.dataset), "the loader's seed": self.train_loader.seed,
            "the sampler (seed, shuffle)": [self.train_loader.sampler.seed, self.train_loader.sampler.shuffle],
            "the gradient transport": distributed.gradient_transport(self.device),
            "the epochs": self.epochs, "the position (epoch, step)": [self.epoch, self.step]})
        distributed.broadcast_parameters(self.model)

    def resume_hint(self, path):
        """How to continue from the checkpoint at ``path``, for the message of an interrupted run."""
        return f"{type(self).__name__}.load_checkpoint({path!r}), then fit()"

    def _interrupted(self, signum, path):
        saved = f"saved {path}\nresume with: {self.resume_hint(path)}" if path else "no run directory: nothing saved"
        if distributed.rank() == 0:
            print(f"\n{signal.Signals(signum).name}: {saved}", file=sys.stderr)
        raise Interrupted(signum, path)

    def _check_loss(self, value):
        where = f"at epoch {self.epoch + 1}, step {self.step + 1}"
        lr = self.optimizer.param_groups[0]["lr"]
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} {where}; try {self.lr_hint} (this run's is {lr:g})")
        if self.first_loss is None:
            self.first_loss = value
        self.recent_losses.append(value)
        mean = sum(self.recent_losses) / len(self.recent_losses)
        if mean > DIVERGENCE_FACTOR * self.first_loss:
            raise TrainingError(f"the loss diverged {where}: its mean over the last {len(self.recent_losses)} "
                                f"steps is {mean:.4g}, over {DIVERGENCE_FACTOR} times the first step's "
                                f"{self.first_loss:.4g}; try {self.lr_hint} (this run's is {lr:g})")

    def _step_scheduler(self, metric):
        if isinstance(self.scheduler, mdl.optim.lr_scheduler.ReduceLROnPlateau):
            self.scheduler.step(metric)
        else:
            self.scheduler.step()

    def _train_epoch(self, stop):
        model, opt = self.model, self.optimizer
        start = time.perf_counter() - self.sums[3]
        n_batches = len(self.train_loader)
        progress = _Progress(self.progress, n_batches, self.step, f"epoch {self.epoch + 1}/{self.epochs}",
                             self.log_interval)
        model.train()
        try:
            for x, y in self.train_loader.batches(self.epoch, start=self.step):
                if self.world > 1:
                    value, correct, n, agreed = self._parallel_step(x, y, stop)
                else:
                    value, correct, n = self._one_step(x, y)
                if self.max_grad_norm is not None:
                    mdl.nn.utils.clip_grad_norm_(model.parameters(), self.max_grad_norm)
                opt.step()
                if self.scheduler is not None and self.scheduler_interval == "step":
                    self._step_scheduler(value)
                self._scores = correct is not None
                self.sums[0] += value * n
                self.sums[1] += correct or 0
                self.sums[2] += n
                self.step += 1
                self.sums[3] = time.perf_counter() - start
                progress.update(self._running_stats())
                # One process stops on a signal that came at any time in the step, the optimizer's
                # included; the ranks of a job on the one they agreed on in it.
                signum = agreed if self.world > 1 else stop.signum
                if signum is not None and self.step < n_batches:
                    path = (self.save_checkpoint(f"interrupted-epoch-{self.epoch + 1:03d}-step-{self.step:05d}.npz")
                            if self.out else None)
                    self._interrupted(signum, path)
        finally:
            progress.close()
        if self.world > 1:
            # Batch norm's running statistics are each rank's own: evaluate and save rank 0's everywhere.
            distributed.broadcast_parameters(self.model)
        train_time = self.sums[3]
        row = {"epoch": self.epoch + 1, "train_loss": self.sums[0] / self.sums[2]}
        if self._scores:
            row["train_acc"] = self.sums[1] / self.sums[2]
        if self.val_loader is not None:
            loss, accuracy = self.evaluate(self.val_loader)
            row[f"{self.eval_name}_loss"] = loss
            if accuracy is not None:
                row[f"{self.eval_name}_acc"] = accuracy
        row.update(lr=opt.param_groups[0]["lr"], time_s=train_time, images_per_s=self.sums[2] / train_time)
        self.history.append(row)
        if self.scheduler is not None and self.scheduler_interval == "epoch":
            self._step_scheduler(row.get(f"{self.eval_name}_loss", row["train_loss"]))
        self.epoch, self.step, self.sums = self.epoch + 1, 0, [0.0, 0, 0, 0.0]
        if self.writes:
            self.save_checkpoint(f"epoch-{self.epoch:03d}.npz")
            self._write_metrics()
        if distributed.rank() == 0:
            print(_epoch_line(row, self.eval_name), flush=True)

    def _stop_requested(self, stop):
        """The signal that stops the run at this epoch's end, if any: in a data-parallel run any
        rank's, so that they all stop (each rank gets mpiexec's Ctrl-C at its own moment)."""
        if self.world > 1:
            return _agree(stop, distributed.all_reduce(np.array(_asked(stop), np.float64)))
        return stop.signum

    def _one_step(self, x, y):
        """Forward and backward on one batch: its mean loss, how many it got right (None where the
        outputs are not class scores) and its size."""
        # The targets stay on the host: the loss checks their range there and then copies them,
        # which on a GPU saves waiting for the device before each step's loss.
        out = self.model(x.to(self.device))
        loss = self.loss_fn(out, y)
        value = loss.item()
        self._check_loss(value)
        self.optimizer.zero_grad()
        loss.backward()
        return value, _correct(out, y), len(y)

    def _parallel_step(self, x, y, stop):
        """`_one_step` on this rank's share of the batch. The loss, the count of right answers, the
        size and the stop requests are summed over the ranks first, so every rank decides alike
        (the signal agreed on is returned last); then the gradients are averaged, weighted by each
        rank's examples. A rank with no examples (the last batch of an epoch can be smaller than
        the number of ranks) only takes part."""
        n = len(y)
        random.manual_seed(_stream_seed(self.train_loader.seed, self.epoch, self.step, distributed.rank()))
        self.optimizer.zero_grad()
        value, correct, loss = 0.0, 0, None
        if n:
            out = self.model(x.to(self.device))
            loss = self.loss_fn(out, y)
            value, correct = loss.item(), _correct(out, y)
        # Sums over the ranks: loss x examples, right answers, examples, ranks whose outputs are not
        # class scores, ranks asked to stop by SIGINT and by SIGTERM.
        total = distributed.all_reduce(np.array([value * n, correct or 0, n, n and correct is None, *_asked(stop)],
                                                np.float64))
        signum = _agree(stop, total[4:])
        mean = total[0] / total[2]
        self._check_loss(mean)
        if loss is not None:
            loss.backward()
        distributed.all_reduce_gradients(self.model, weight=n)
        return mean, (None if total[3] else int(total[1])), int(total[2]), signum

    def _running_stats(self):
        n = self.sums[2]
        stats = f"loss {self.sums[0] / n:.4f}" + (f" acc {self.sums[1] / n:.4f}" if self._scores else "")
        return f"{stats}  {n / max(self.sums[3], 1e-9):.0f} img/s"

    def evaluate(self, loader):
        """Mean loss and accuracy (None where the outputs are not class scores) over ``loader``, in
        eval mode without a graph."""
        self.model.eval()
        total, correct, n = 0.0, 0, 0
        with mdl.no_grad():
            for x, y in loader:
                if not len(y):  # a rank's empty share of a last batch
                    continue
                out = self.model(x.to(self.device))
                total += self.loss_fn(out, y).item() * len(y)
                c = _correct(out, y)
                correct = None if c is None or correct is None else correct + c
                n += len(y)
        if self.world > 1 and getattr(loader, "sampler", None) is not None:
            sums = distributed.all_reduce(np.array([total, correct or 0, n, correct is None and n > 0], np.float64))
            total, correct, n = sums[0], (None if sums[3] else int(sums[1])), int(sums[2])
        if n == 0:
            raise ValueError(f"{type(self).__name__}.evaluate: the loader gave no batches")
        return total / n, None if correct is None else correct / n

    def _write_metrics(self):
        with atomic_open(os.path.join(self.out, "metrics.jsonl")) as f:
            f.write("".join(json.dumps(row) + "\n" for row in self.history).encode())
        header = list(self.history[0])
        rows = [",".join(header)] + [",".join(f"{row[k]:.6g}" if isinstance(row[k], float) else str(row[k])
                                              for k in header) for row in self.history]
        with atomic_open(os.path.join(self.out, "metrics.csv")) as f:
            f.write(("\n".join(rows) + "\n").encode())
        if not plot_curves(self.history, os.path.join(self.out, "curves.png")) and len(self.history) == 1:
            print("curves.png is not drawn: matplotlib is not installed (`pip install matplotlib`)",
                  file=sys.stderr, flush=True)


def fit(model, optimizer, train_loader, val_loader=None, **options):
    """Train ``model`` and return the history: ``Trainer(model, optimizer, train_loader,
    val_loader=val_loader, **options).fit()`` (see `Trainer` for the options)."""
    return Trainer(model, optimizer, train_loader, val_loader=val_loader, **options).fit()


def _asked(stop):
    """Whether this rank was asked to stop by SIGINT, and by SIGTERM: summed over the ranks by `_agree`."""
    return [stop.signum == signal.SIGINT, stop.signum == signal.SIGTERM]


def _agree(stop, asked):
    """The signal every rank stops on, from the reduced ``asked`` alone (SIGTERM first: a
    scheduler's), or None. A signal that reaches this rank after the reduction counts at the
    next one, as it does on the others: deciding from ``stop.signum`` here could stop this rank
    alone. A rank that was not asked takes the agreed signal as its own."""
    if not asked.any():
        return None
    agreed = signal.SIGTERM if asked[1] else signal.SIGINT
    if stop.signum is None:
        stop.signum = agreed
    return agreed


def _stream_seed(*key):
    """A seed for minidl's generator that depends on ``key`` alone (63 bits of NumPy's SeedSequence)."""
    return int(np.random.SeedSequence(list(key)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def _correct(out, y):
    """How many rows of the class scores ``out`` (or its first item) pick ``y``; None where they are
    not (N, classes) scores for N integer targets."""
    logits = out[0] if isinstance(out, tuple) else out  # the rest are auxiliary heads
    if not (isinstance(logits, mdl.Tensor) and isinstance(y, mdl.Tensor) and logits.ndim == 2
            and y.ndim == 1 and len(y) == len(logits) and y.dtype.kind in "iu"):
        return None
    return int((backend.as_numpy(logits.data.argmax(axis=1)) == y.numpy()).sum())


def _epoch_line(row, eval_name):
    parts = [f"epoch {row['epoch']:3d}", f"train loss {row['train_loss']:.4f}"
             + (f" acc {row['train_acc']:.4f}" if "train_acc" in row else "")]
    if f"{eval_name}_loss" in row:
        acc = row.get(f"{eval_name}_acc")
        parts.append(f"{eval_name} loss {row[f'{eval_name}_loss']:.4f}" + (f" acc {acc:.4f}" if acc is not None else ""))
    parts.append(f"{row['time_s']:.1f}s  {row['images_per_s']:.0f} img/s")
    return "  ".join(parts)


class _Progress:
    """Progress through an epoch on stderr: a tqdm bar on a terminal; elsewhere (a log file, a pipe)
    a line every ``interval`` seconds, since a redraw per batch fills a file with carriage returns.
    The bar starts after the first step, which may compile kernels or warm caches and would
    otherwise make its first estimates of the time left absurd."""

    def __init__(self, enabled, total, initial, desc, interval):
        self.enabled, self.total, self.n, self.desc, self.interval = enabled, total, initial, desc, interval
        self.terminal = enabled and sys.stderr.isatty()
        self.bar, self.last_line = None, time.perf_counter()

    def update(self, stats):
        self.n += 1
        if not self.enabled:
            return
        if self.terminal:
            if self.bar is None:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, initial=self.n, desc=self.desc, leave=False, unit="batch")
            else:
                self.bar.update(1)
            self.bar.set_postfix_str(stats, refresh=False)
        elif time.perf_counter() - self.last_line >= self.interval and self.n < self.total:
            self.last_line = time.perf_counter()
            print(f"{self.desc}  step {self.n}/{self.total}  {stats}", file=sys.stderr, flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


class CommandRun(Trainer):
    """The trainer of ``minidl train``: a model from ``minidl_models``, a built-in dataset and the
    run config (see `CONFIG`) that sets up everything else. ``model`` is built by the caller right
    after ``mdl.manual_seed(config["seed"])``, so that its initial weights, and every random draw of
    the run after them, repeat. Its model.npz also records the test images' preprocessing and the
    class names, which `minidl_models.load` and ``minidl predict`` use.

    In a data-parallel job (`minidl.distributed` initialised, several ranks) the config's batch size
    is the whole batch, split evenly over the ranks, and the test set is evaluated in shares. Rank 0
    fetches and verifies the data while the others wait, then they read it from the cache; with
    ``device='cuda'`` each rank takes the GPU of its local rank."""

    eval_name = "test"
    lr_hint = "a smaller --lr"

    def __init__(self, config, out, model, progress=True):
        world, device = distributed.world_size(), config["device"]
        if config["batch_size"] % world:
            raise ValueError(f"the batch size {config['batch_size']} is the whole batch, split evenly over the "
                             f"{world} ranks; choose a --batch-size that {world} divides, or (resuming a run) a "
                             f"number of ranks that divides {config['batch_size']}")
        if world > 1 and device == "cuda":
            device = f"cuda:{distributed.local_rank()}"
        if world > 1 and device.startswith("cuda"):
            # The rank's GPU current, for NCCL's communicator and stream and CuPy's temporaries.
            backend.cupy().cuda.Device(backend.parse_device(device)[1]).use()
        if distributed.rank() != 0:
            distributed.barrier()  # rank 0 fetches and verifies the files first
        self.train_set, self.test_set = load_datasets(config["dataset"], config.get("data_root"),
                                                      config.get("subset"), model.input_shape[1:],
                                                      config.get("augment", 0))
        if distributed.rank() == 0:
            distributed.barrier()
        optimizer = make_optimizer(config["optimizer"], model.parameters(), config["lr"], config["momentum"],
                                   config["weight_decay"])
        scheduler = (mdl.optim.lr_scheduler.StepLR(optimizer, config["lr_step"], config["lr_gamma"])
                     if config.get("lr_step") else None)
        if world > 1:
            share = distributed.DistributedSampler
            train = DataLoader(self.train_set, config["batch_size"] // world,
                               sampler=share(self.train_set, seed=config["seed"]))
            test = DataLoader(self.test_set, -(-1000 // world), sampler=share(self.test_set, shuffle=False))
        else:
            train = DataLoader(self.train_set, config["batch_size"], shuffle=True, seed=config["seed"])
            test = DataLoader(self.test_set, 1000)
        super().__init__(model, optimizer, train, val_loader=test, scheduler=scheduler, epochs=config["epochs"],
                         out=out, device=device, config=config, progress=progress)

    def resume_hint(self, path):
        return f"minidl train {self.config['model']} --resume {path}"

    def final_state(self):
        return {**super().final_state(), "preprocess": self.test_set.transform.spec(),
                "classes": list(self.test_set.classes), "image_shape": list(self.test_set.data.shape[1:])}


class _StopRequests:
    """While open, SIGINT and SIGTERM set ``signum`` instead of stopping the program, so the run
    stops between steps, where its state is whole; a second signal stops at once. Signals reach
    only the main thread, so elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        # signum: the signal the run stops on (in a data-parallel run possibly another rank's);
        # received: whether this process got one itself, which makes its next one a second.
        self.signum, self.received, self._previous = None, False, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.received:
            raise Interrupted(signum, None)
        self.received = True
        if self.signum is None:
            self.signum = signum
        if distributed.rank() == 0:  # mpiexec passes a Ctrl-C to every rank
            print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint "
                  "(again to stop at once, without one)", file=sys.stderr, flush=True)


def plot_curves(history, path):
    """Loss and accuracy per epoch, when matplotlib is installed; returns whether it drew. Drawn on
    a Figure of its own, without pyplot, so that the host program's matplotlib backend and open
    figures stay as they are."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return False
    epochs = [row["epoch"] for row in history]
    fig = Figure(figsize=(10, 4))
    left, right = fig.subplots(1, 2)
    for ax, metric, label in ((left, "loss", "loss"), (right, "acc", "accuracy")):
        for part in ("train", "val", "test"):
            values = [row.get(f"{part}_{metric}") for row in history]
            if all(v is not None for v in values):
                ax.plot(epochs, values, "o-", label=part)
        ax.set(xlabel="epoch", ylabel=label, title=label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    return True

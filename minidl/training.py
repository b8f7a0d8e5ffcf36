"""The training loop behind ``minidl train`` and ``minidl eval``.

A run directory holds everything a run produced:

    metrics.jsonl, metrics.csv   one row per epoch
    checkpoints/epoch-NNN.npz    model, optimizer, scheduler, RNG and data-order state (atomic writes)
    model.npz                    the final weights and the config that builds the model
    curves.png                   loss and accuracy curves (when matplotlib is installed)

A checkpoint holds every piece of state the next step depends on, so
``--resume`` continues exactly: a resumed run ends with the same weights as an
uninterrupted one. Ctrl-C (SIGINT) and SIGTERM (what schedulers and ``docker stop``
send) ask the run to stop: the step under way finishes, a checkpoint of that step is
saved, and `fit` raises `Interrupted`. A second signal stops at once, saving nothing
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
from minidl import backend, random
from minidl._checks import is_int, is_real
from minidl.data import DataLoader, datasets, transforms as T
from minidl.serialization import atomic_open

DATASETS = {
    "mnist": (datasets.MNIST, (0.1307,), (0.3081,)),
    "fashion-mnist": (datasets.FashionMNIST, (0.2860,), (0.3530,)),
    "cifar10": (datasets.CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


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
    "optimizer": (lambda v: v in ("sgd", "adam"), "'sgd' or 'adam'"),
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


def load_datasets(name, root=None, subset=None, image_size=(32, 32), augment=0):
    """Train and test datasets brought to ``image_size`` (h, w) and normalised; with ``augment`` > 0
    each training image is also moved by up to that many pixels.

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
    train.transform = T.Compose(head + ([T.RandomShift(augment)] if augment else []) + tail)
    test.transform = T.Compose(head + tail)
    if subset:
        if subset > len(train):
            raise ValueError(f"subset {subset} is more than the {len(train)} training images of {name}")
        train, test = train.subset(subset), test.subset(min(max(subset // 5, 1), len(test)))
    return train, test


def make_optimizer(name, params, lr, momentum, weight_decay):
    if name == "sgd":
        return mdl.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    if name == "adam":
        return mdl.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    raise ValueError(f"unknown optimizer {name!r}; choose sgd or adam")


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


class Run:
    """One training run: the model, optimizer, data and the files it writes.

    ``model`` is any Module with an ``input_shape`` attribute (the ``minidl`` command builds it by
    name from ``minidl_models``, right after ``mdl.manual_seed(config["seed"])``, so that its
    initial weights, and every random draw of the run after them, repeat)."""

    def __init__(self, config, out, model, progress=True):
        self.config, self.out, self.progress = config, out, progress
        self.model = model
        self.train_set, self.test_set = load_datasets(config["dataset"], config.get("data_root"),
                                                      config.get("subset"), self.model.input_shape[1:],
                                                      config.get("augment", 0))
        # A model with auxiliary outputs (GoogLeNet) defines the loss that weighs them.
        self.criterion = getattr(self.model, "criterion", mdl.nn.functional.cross_entropy)
        self.device = config["device"]
        self.model.to(self.device)
        self.optimizer = make_optimizer(config["optimizer"], self.model.parameters(), config["lr"],
                                        config["momentum"], config["weight_decay"])
        self.scheduler = (mdl.optim.lr_scheduler.StepLR(self.optimizer, config["lr_step"], config["lr_gamma"])
                          if config.get("lr_step") else None)
        self.loader = DataLoader(self.train_set, config["batch_size"], shuffle=True, seed=config["seed"])
        self.test_loader = DataLoader(self.test_set, 1000)
        self.epoch, self.step, self.sums, self.history = 0, 0, [0.0, 0, 0, 0.0], []
        self.first_loss, self.recent_losses = None, deque(maxlen=DIVERGENCE_WINDOW)

    # --- checkpoints -------------------------------------------------------------------
    def state(self):
        return {"config": self.config, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "epoch": self.epoch, "step": self.step, "sums": list(self.sums), "history": self.history,
                "rng": json.dumps(random.get_rng_state()),
                "losses": {"first": self.first_loss, "recent": list(self.recent_losses)}}

    def save_checkpoint(self, name):
        path = os.path.join(self.out, "checkpoints", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mdl.save(self.state(), path)
        return path

    def restore(self, state, where="the checkpoint"):
        """Continue from ``state`` (a `state()` read back); a state that cannot serve raises
        CheckpointError naming ``where``. The run's own counters and generator are checked first
        and set last; the optimizer, scheduler and model each check all of their state before they
        change any of it. (After a refusal the run is not meant to go on.)"""
        missing = [k for k in ("model", "optimizer", "scheduler", "epoch", "step", "sums", "history", "rng")
                   if k not in state]
        if missing:
            raise CheckpointError(f"{where} is not a training checkpoint: it has no {', '.join(missing)}"
                                  + (" (a final model.npz holds the weights only; resume from a file under "
                                     "checkpoints/)" if "optimizer" in missing else ""))
        epoch, step, sums, history, losses = (state["epoch"], state["step"], state["sums"], state["history"],
                                              state.get("losses", {"first": None, "recent": []}))
        checks = [
            (is_int(epoch) and 0 <= epoch <= self.config["epochs"], f"epoch {epoch!r}"),
            (is_int(step) and 0 <= step <= len(self.loader), f"step {step!r}"),
            (isinstance(sums, list) and len(sums) == 4 and all(is_real(v) for v in sums), f"sums {sums!r}"),
            (isinstance(history, list) and all(isinstance(row, dict) for row in history), "history"),
            (isinstance(losses, dict) and (losses.get("first") is None or is_real(losses["first"]))
             and isinstance(losses.get("recent"), list) and all(is_real(v) for v in losses["recent"]), "losses"),
        ]
        bad = [what for ok, what in checks if not ok]
        if bad:
            raise CheckpointError(f"{where}: its {', '.join(bad)} do not fit this run "
                                  f"({self.config['epochs']} epochs of {len(self.loader)} steps)")
        if self.scheduler is not None and state["scheduler"] is None:
            raise CheckpointError(f"{where} has no scheduler state, but its config asks for --lr-step "
                                  f"{self.config['lr_step']}")
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
        random.set_rng_state(rng)

    # --- training ------------------------------------------------------------------------
    def fit(self):
        """Train up to the config's epochs, then write model.npz; returns the history. On SIGINT or
        SIGTERM: finish the step, save a checkpoint of it, raise `Interrupted`."""
        epochs = self.config["epochs"]
        with _StopRequests() as stop:
            while self.epoch < epochs:
                self._train_epoch(stop)
                if stop.signum is not None and self.epoch < epochs:
                    self._interrupted(stop.signum, os.path.join(self.out, "checkpoints", f"epoch-{self.epoch:03d}.npz"))
            mdl.save({"config": self.config, "model": self.model.state_dict()}, os.path.join(self.out, "model.npz"))
        return self.history

    def _interrupted(self, signum, path):
        print(f"\n{signal.Signals(signum).name}: saved {path}\nresume with: minidl train {self.config['model']} "
              f"--resume {path}", file=sys.stderr)
        raise Interrupted(signum, path)

    def _check_loss(self, value):
        where = f"at epoch {self.epoch + 1}, step {self.step + 1}"
        if not math.isfinite(value):
            raise TrainingError(f"the loss became {value} {where}; try a smaller --lr (this run's is "
                                f"{self.config['lr']:g})")
        if self.first_loss is None:
            self.first_loss = value
        self.recent_losses.append(value)
        mean = sum(self.recent_losses) / len(self.recent_losses)
        if mean > DIVERGENCE_FACTOR * self.first_loss:
            raise TrainingError(f"the loss diverged {where}: its mean over the last {len(self.recent_losses)} "
                                f"steps is {mean:.4g}, over {DIVERGENCE_FACTOR} times the first step's "
                                f"{self.first_loss:.4g}; try a smaller --lr (this run's is {self.config['lr']:g})")

    def _train_epoch(self, stop):
        from tqdm import tqdm

        cfg, model, opt = self.config, self.model, self.optimizer
        start = time.perf_counter() - self.sums[3]
        n_batches = len(self.loader)
        bar = tqdm(total=n_batches, initial=self.step, desc=f"epoch {self.epoch + 1}/{cfg['epochs']}",
                   disable=not self.progress, leave=False, unit="batch")
        model.train()
        try:
            for x, y in self.loader.batches(self.epoch, start=self.step):
                # The targets stay on the host: the loss checks their range there and then copies
                # them, which on a GPU saves waiting for the device before each step's loss.
                x = x.to(self.device)
                out = model(x)
                logits = out[0] if isinstance(out, tuple) else out  # the rest are auxiliary heads
                loss = self.criterion(out, y)
                value = loss.item()
                self._check_loss(value)
                opt.zero_grad()
                loss.backward()
                opt.step()
                correct = int((backend.as_numpy(logits.data.argmax(axis=1)) == y.numpy()).sum())
                self.sums[0] += value * len(y)
                self.sums[1] += correct
                self.sums[2] += len(y)
                self.step += 1
                self.sums[3] = time.perf_counter() - start
                bar.update(1)
                bar.set_postfix(loss=f"{self.sums[0] / self.sums[2]:.4f}", acc=f"{self.sums[1] / self.sums[2]:.4f}")
                if stop.signum is not None and self.step < n_batches:
                    self._interrupted(stop.signum, self.save_checkpoint(
                        f"interrupted-epoch-{self.epoch + 1:03d}-step-{self.step:05d}.npz"))
        finally:
            bar.close()
        train_time = self.sums[3]
        test_loss, test_acc, _ = evaluate(model, self.test_loader, self.device)
        row = {"epoch": self.epoch + 1, "train_loss": self.sums[0] / self.sums[2],
               "train_acc": self.sums[1] / self.sums[2], "test_loss": test_loss, "test_acc": test_acc,
               "lr": opt.param_groups[0]["lr"], "time_s": train_time, "images_per_s": self.sums[2] / train_time}
        self.history.append(row)
        if self.scheduler is not None:
            self.scheduler.step()
        self.epoch, self.step, self.sums = self.epoch + 1, 0, [0.0, 0, 0, 0.0]
        self.save_checkpoint(f"epoch-{self.epoch:03d}.npz")
        self._write_metrics()
        print(f"epoch {row['epoch']:3d}  train loss {row['train_loss']:.4f} acc {row['train_acc']:.4f}  "
              f"test loss {row['test_loss']:.4f} acc {row['test_acc']:.4f}  "
              f"{row['time_s']:.1f}s  {row['images_per_s']:.0f} img/s", flush=True)

    def _write_metrics(self):
        with atomic_open(os.path.join(self.out, "metrics.jsonl")) as f:
            f.write("".join(json.dumps(row) + "\n" for row in self.history).encode())
        header = list(self.history[0])
        rows = [",".join(header)] + [",".join(f"{row[k]:.6g}" if isinstance(row[k], float) else str(row[k])
                                              for k in header) for row in self.history]
        with atomic_open(os.path.join(self.out, "metrics.csv")) as f:
            f.write(("\n".join(rows) + "\n").encode())
        plot_curves(self.history, os.path.join(self.out, "curves.png"))


class _StopRequests:
    """While open, SIGINT and SIGTERM set ``signum`` instead of stopping the program, so the run
    stops between steps, where its state is whole; a second signal stops at once. Signals reach
    only the main thread, so elsewhere this does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum, self._previous = None, {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
        return self

    def __exit__(self, *exc):
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def _handle(self, signum, frame):
        if self.signum is not None:
            raise Interrupted(signum, None)
        self.signum = signum
        print(f"\n{signal.Signals(signum).name}: stopping after this step, with a checkpoint "
              "(again to stop at once, without one)", file=sys.stderr, flush=True)


def plot_curves(history, path):
    """Loss and accuracy per epoch, when matplotlib is installed; returns whether it drew."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [row["epoch"] for row in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    left.plot(epochs, [r["test_loss"] for r in history], "o-", label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    right.plot(epochs, [r["train_acc"] for r in history], "o-", label="train")
    right.plot(epochs, [r["test_acc"] for r in history], "o-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    for ax in (left, right):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    with atomic_open(path) as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return True

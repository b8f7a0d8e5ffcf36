"""The training loop behind ``minidl train`` and ``minidl eval``.

A run directory holds everything a run produced:

    metrics.jsonl, metrics.csv   one row per epoch
    checkpoints/epoch-NNN.npz    model, optimizer, scheduler, RNG and data-order state (atomic writes)
    model.npz                    the final weights and the config that builds the model
    curves.png                   loss and accuracy curves (when matplotlib is installed)

A checkpoint holds every piece of state the next step depends on, so
``--resume`` continues exactly: a resumed run ends with the same weights as an
uninterrupted one. Ctrl-C saves a checkpoint at the current step first.
"""
import json
import math
import os
import sys
import time

import numpy as np

import minidl as mdl
from minidl import backend, random
from minidl.data import DataLoader, datasets, transforms as T
from minidl.serialization import atomic_open

DATASETS = {
    "mnist": (datasets.MNIST, (0.1307,), (0.3081,)),
    "fashion-mnist": (datasets.FashionMNIST, (0.2860,), (0.3530,)),
    "cifar10": (datasets.CIFAR10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
}


class TrainingError(RuntimeError):
    """Training cannot go on (a NaN loss, an unusable checkpoint); the message says where and why."""


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
        train, test = train.subset(subset), test.subset(max(subset // 5, 1))
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

    # --- checkpoints -------------------------------------------------------------------
    def state(self):
        return {"config": self.config, "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict() if self.scheduler else None,
                "epoch": self.epoch, "step": self.step, "sums": list(self.sums), "history": self.history,
                "rng": json.dumps(random.get_rng_state())}

    def save_checkpoint(self, name):
        path = os.path.join(self.out, "checkpoints", name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mdl.save(self.state(), path)
        return path

    def restore(self, state):
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scheduler is not None and state["scheduler"] is not None:
            self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step, self.sums = int(state["epoch"]), int(state["step"]), list(state["sums"])
        self.history = list(state["history"])
        random.set_rng_state(json.loads(state["rng"]))

    # --- training ------------------------------------------------------------------------
    def fit(self):
        epochs = self.config["epochs"]
        try:
            while self.epoch < epochs:
                self._train_epoch()
        except KeyboardInterrupt:
            path = self.save_checkpoint(f"interrupted-epoch-{self.epoch + 1:03d}-step-{self.step:05d}.npz")
            print(f"\ninterrupted: saved {path}\nresume with: minidl train {self.config['model']} "
                  f"--resume {path}", file=sys.stderr)
            raise
        final = os.path.join(self.out, "model.npz")
        mdl.save({"config": self.config, "model": self.model.state_dict()}, final)
        return self.history

    def _train_epoch(self):
        from tqdm import tqdm

        cfg, model, opt = self.config, self.model, self.optimizer
        start = time.perf_counter() - self.sums[3]
        n_batches = len(self.loader)
        bar = tqdm(total=n_batches, initial=self.step, desc=f"epoch {self.epoch + 1}/{cfg['epochs']}",
                   disable=not self.progress, leave=False, unit="batch")
        model.train()
        for x, y in self.loader.batches(self.epoch, start=self.step):
            # The targets stay on the host: the loss checks their range there and then copies
            # them, which on a GPU saves waiting for the device before each step's loss.
            x = x.to(self.device)
            out = model(x)
            logits = out[0] if isinstance(out, tuple) else out  # the rest are auxiliary heads
            loss = self.criterion(out, y)
            value = loss.item()
            if not math.isfinite(value):
                bar.close()
                raise TrainingError(f"the loss became {value} at epoch {self.epoch + 1}, step {self.step + 1}; "
                                    "try a smaller --lr")
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

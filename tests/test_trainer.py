"""`Trainer` and `fit` with a model, data and loss of one's own: the files, the history, resume bit for
bit (at an epoch's end and from a signal mid-epoch), schedulers per epoch and per step, gradient
clipping, output for a terminal and for a log file, and the errors."""
import json
import os
import signal
import sys

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import kernels, nn, optim, training
from minidl.data import ArrayDataset, DataLoader
from minidl.training import Interrupted, Trainer, fit


def blobs(n, seed):
    """Two classes of 8-feature points around +1 and -1."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = (rng.normal(size=(n, 8)) + np.where(y[:, None] == 1, 1.0, -1.0)).astype(np.float32)
    return ArrayDataset(x, y)


def mlp():
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))


def make(out=None, epochs=2, seed=0, **options):
    """A trainer of a fresh model; the loader is seeded from the framework's generator, so that a
    resumed run must get its data order from the checkpoint."""
    mdl.manual_seed(seed)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    options.setdefault("scheduler", optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5))
    loader = DataLoader(blobs(96, 0), batch_size=16, shuffle=True)
    return Trainer(model, opt, loader, val_loader=DataLoader(blobs(32, 1), 16), epochs=epochs, out=out,
                   progress=False, **options)


def weights(model):
    return {k: v.numpy().copy() for k, v in model.state_dict().items()}


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


PLOT_CURVES = training.plot_curves


@pytest.fixture(autouse=True)
def no_curves(monkeypatch):
    monkeypatch.setattr(training, "plot_curves", lambda history, path: False)


def test_fit_writes_the_run_directory_and_learns(tmp_path, capsys):
    trainer = make(tmp_path, epochs=3)
    history = trainer.fit()
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert list(history[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "time_s",
                                "images_per_s"]
    assert history[-1]["val_acc"] > 0.9 and history[-1]["train_loss"] < history[0]["train_loss"]
    assert [row["lr"] for row in history] == [0.1, 0.05, 0.025]
    assert [json.loads(line) for line in open(tmp_path / "metrics.jsonl")] == history
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch-001.npz", "epoch-002.npz", "epoch-003.npz"]
    saved = mdl.load(tmp_path / "model.npz")
    assert_same({k: v.numpy() for k, v in saved["model"].items()}, weights(trainer.model))
    assert "epoch   3  train loss" in capsys.readouterr().out


def test_fit_is_trainer_fit():
    mdl.manual_seed(3)
    model = mlp()
    history = fit(model, optim.Adam(model.parameters(), lr=1e-2), DataLoader(blobs(64, 0), 16, seed=1),
                  DataLoader(blobs(32, 1), 16), epochs=2, progress=False)
    assert len(history) == 2 and history[-1]["val_acc"] > 0.8


def test_resume_at_an_epoch_end_equals_an_uninterrupted_run(tmp_path):
    full = make(tmp_path / "full", epochs=3)
    full.fit()
    make(tmp_path / "cut", epochs=1).fit()
    # Another seed: other initial weights and data order, which the checkpoint must replace.
    resumed = make(tmp_path / "cut", epochs=3, seed=7)
    resumed.load_checkpoint(tmp_path / "cut" / "checkpoints" / "epoch-001.npz")
    untimed = [{k: v for k, v in row.items() if k not in ("time_s", "images_per_s")} for row in full.history]
    assert [{k: row[k] for k in untimed[0]} for row in resumed.fit()] == untimed
    assert_same(weights(resumed.model), weights(full.model))


def test_a_signal_mid_epoch_saves_the_step_and_resume_is_bit_exact(tmp_path, capsys):
    full = make(tmp_path / "full", epochs=2)
    full.fit()
    calls = []

    def loss_then_signal(out, y):
        calls.append(1)
        if len(calls) == 11:  # epoch 2, step 3 (6 training and 2 validation batches an epoch)
            os.kill(os.getpid(), signal.SIGINT)
        return F.cross_entropy(out, y)

    cut = make(tmp_path / "cut", epochs=2, loss_fn=loss_then_signal)
    with pytest.raises(Interrupted) as stopped:
        cut.fit()
    assert stopped.value.checkpoint.endswith("interrupted-epoch-002-step-00003.npz")
    assert "resume with: Trainer.load_checkpoint(" in capsys.readouterr().err
    resumed = make(tmp_path / "cut", epochs=2, seed=5)
    resumed.load_checkpoint(stopped.value.checkpoint)
    assert (resumed.epoch, resumed.step) == (1, 3)
    resumed.fit()
    assert_same(weights(resumed.model), weights(full.model))


def test_without_a_run_directory_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = make(None, epochs=1)
    trainer.fit()
    assert os.listdir(tmp_path) == []
    with pytest.raises(ValueError, match=r"Trainer.save_checkpoint: this trainer has no run directory"):
        trainer.save_checkpoint("x.npz")


class Regression:
    """Inputs and real-valued targets, batched in one step."""

    def __init__(self, n):
        self.x = np.random.default_rng(0).normal(size=(n, 8)).astype(np.float32)
        self.y = self.x[:, :2] * 2 - 1

    def __len__(self):
        return len(self.x)

    def get_batch(self, indices, rng=None):
        return self.x[indices], self.y[indices]


def test_a_regression_loss_gives_no_accuracy():
    mdl.manual_seed(0)
    model = nn.Linear(8, 2)
    history = Trainer(model, optim.SGD(model.parameters(), lr=0.1), DataLoader(Regression(32), 8, seed=0),
                      loss_fn=F.mse_loss, epochs=3, progress=False).fit()
    assert history[-1]["train_loss"] < history[0]["train_loss"] / 2
    assert list(history[0]) == ["epoch", "train_loss", "lr", "time_s", "images_per_s"]


def test_a_scheduler_steps_per_optimizer_step_when_asked():
    mdl.manual_seed(0)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    trainer = Trainer(model, opt, DataLoader(blobs(96, 0), 16, seed=0), epochs=2, progress=False,
                      scheduler=optim.lr_scheduler.ExponentialLR(opt, gamma=0.9), scheduler_interval="step")
    history = trainer.fit()
    assert history[0]["lr"] == pytest.approx(0.1 * 0.9 ** 6) and history[1]["lr"] == pytest.approx(0.1 * 0.9 ** 12)


def test_reduce_on_plateau_gets_the_validation_loss():
    seen = []

    class Recording(optim.lr_scheduler.ReduceLROnPlateau):
        def step(self, metric):
            seen.append(metric)
            super().step(metric)

    mdl.manual_seed(0)
    model = mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    history = Trainer(model, opt, DataLoader(blobs(96, 0), 16, seed=0), val_loader=DataLoader(blobs(32, 1), 16),
                      scheduler=Recording(opt), epochs=2, progress=False).fit()
    assert seen == [row["val_loss"] for row in history]


def test_max_grad_norm_clips_every_step(monkeypatch):
    norms = []
    original = optim.SGD.step

    def step(self):
        grads = [p.grad.numpy() for p in self.param_groups[0]["params"] if p.grad is not None]
        norms.append(np.sqrt(sum((g.astype(np.float64) ** 2).sum() for g in grads)))
        original(self)

    monkeypatch.setattr(optim.SGD, "step", step)
    make(epochs=1, max_grad_norm=0.05).fit()
    assert len(norms) == 6 and max(norms) <= 0.05 * (1 + 1e-5) and min(norms) > 0.04


def test_a_log_file_gets_a_line_every_interval_not_a_redraw_per_batch(capsys):
    trainer = make(epochs=1)
    trainer.progress, trainer.log_interval = True, 1e-9
    trainer.fit()
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("epoch 1/1  step ")]
    # every step but the last, which the epoch's own line reports
    assert [line.split()[3] for line in lines] == [f"{n}/6" for n in range(1, 6)], err
    assert "\r" not in err and "loss" in lines[0] and "img/s" in lines[0]


def test_a_fresh_install_is_told_that_the_kernels_compile(monkeypatch, capsys):
    monkeypatch.setattr(kernels, "numba_kernels_on_disk", lambda: False)
    trainer = make(epochs=1)
    trainer.progress = True
    trainer.fit()
    assert "compiling the Numba kernels, once per machine" in capsys.readouterr().err
    monkeypatch.setattr(kernels, "numba_kernels_on_disk", lambda: True)
    make(epochs=1).fit()
    assert "compiling" not in capsys.readouterr().err


def test_numba_kernels_on_disk_answers_for_the_kernels_in_use():
    with mdl.using_config("kernels", "numpy"):
        assert kernels.numba_kernels_on_disk() is None
    pytest.importorskip("numba")
    with mdl.using_config("kernels", "numba"):
        assert kernels.numba_kernels_on_disk() in (True, False)


@pytest.mark.parametrize("change, message", [
    (dict(model="m"), "Trainer: model must be a minidl.nn.Module; got str"),
    (dict(optimizer=None), "Trainer: optimizer must be a minidl.optim optimizer; got NoneType"),
    (dict(train_loader=[1, 2]), "Trainer: train_loader must be a minidl.data.DataLoader"),
    (dict(scheduler_interval="batch"), "Trainer: scheduler_interval must be 'epoch' or 'step'; got 'batch'"),
    (dict(max_grad_norm=0), "Trainer: max_grad_norm must be a number > 0, or None; got 0"),
    (dict(epochs=0), "Trainer: epochs must be"),
    (dict(device="gpu"), "unknown device 'gpu'"),
])
def test_bad_arguments_are_refused_by_name(change, message):
    model = mlp()
    args = dict(model=model, optimizer=optim.SGD(model.parameters(), lr=0.1),
                train_loader=DataLoader(blobs(16, 0), 4, seed=0))
    args.update(change)
    with pytest.raises((TypeError, ValueError, mdl.backend.DeviceError), match=message.replace("(", r"\(")):
        Trainer(args.pop("model"), args.pop("optimizer"), args.pop("train_loader"), **args)


def test_a_checkpoint_of_another_length_of_run_is_refused(tmp_path):
    make(tmp_path, epochs=2).fit()
    short = make(tmp_path / "other", epochs=1)
    with pytest.raises(training.CheckpointError, match=r"its epoch 2 do not fit this run \(1 epochs of 6 steps\)"):
        short.load_checkpoint(tmp_path / "checkpoints" / "epoch-002.npz")
    with pytest.raises(training.CheckpointError, match="is not a training checkpoint: it has no optimizer"):
        short.load_checkpoint(tmp_path / "model.npz")


def test_curves_are_drawn_or_the_run_says_why_not(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    monkeypatch.setattr(training, "plot_curves", PLOT_CURVES)
    make(tmp_path / "drawn", epochs=1).fit()
    assert (tmp_path / "drawn" / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "curves.png" not in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if matplotlib were not installed
    make(tmp_path / "not", epochs=2).fit()
    assert not (tmp_path / "not" / "curves.png").exists()
    err = capsys.readouterr().err
    assert err.count("curves.png is not drawn: matplotlib is not installed (`pip install matplotlib`)") == 1


@pytest.mark.parametrize("name, flips", [("mnist", False), ("cifar10", True)])
def test_minidl_trains_cifar10_with_flips_and_digits_without(monkeypatch, name, flips):
    from minidl.data import transforms as T
    from test_cli import TinyDigits

    monkeypatch.setitem(training.DATASETS, name, (TinyDigits, (0.1,), (0.3,)))
    train, test = training.load_datasets(name, augment=2)
    kinds = [type(t) for t in train.transform.transforms]
    assert (T.RandomHorizontalFlip in kinds) == flips and T.RandomShift in kinds
    assert not any(getattr(t, "random", False) for t in test.transform.transforms)
    train, _ = training.load_datasets(name, augment=0)
    assert not train.transform.random

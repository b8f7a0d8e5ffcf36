"""Ctrl-C and SIGTERM at any moment: the run stops between steps with a checkpoint of the last
finished step, and resuming from it ends with the weights of a run never interrupted, bit for bit."""
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time

import pytest

import minidl as mdl
from minidl import cli
from test_cli import TinyDigits, assert_same_weights, tiny_mnist, train  # noqa: F401 - autouse fixture

EPOCHS = "2"


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The final weights that every interrupted run must end with, and the wall time of a run (the
    second one: the first also compiles and warms caches)."""
    out = tmp_path_factory.mktemp("uninterrupted")
    with pytest.MonkeyPatch.context() as mp:
        from minidl import training

        mp.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
        # The curves take most of a run this small, and have no part in what resumes.
        mp.setattr(training, "plot_curves", lambda history, path: False)
        assert train(out / "first", "--epochs", EPOCHS) == 0
        started = time.perf_counter()
        assert train(out / "second", "--epochs", EPOCHS) == 0
        duration = time.perf_counter() - started
    assert_same_weights(out / "first" / "model.npz", out / "second" / "model.npz")
    return out / "first" / "model.npz", duration


class Outside:
    """Signal handlers for when the run's own are not installed: during the run under test a signal
    stops it as Python's default SIGINT handler would (KeyboardInterrupt), before or after it the
    signal is dropped, so that a late timer cannot stop pytest."""

    def __init__(self):
        self.inside = False

    def __call__(self, signum, frame):
        if self.inside:
            raise KeyboardInterrupt


@pytest.fixture
def outside():
    handler = Outside()
    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    yield handler
    for s, h in previous.items():
        signal.signal(s, h)


def finish(out, err):
    """Carry an interrupted run in ``out`` to its end, from the checkpoint it named in ``err`` or,
    when the signal came before training began, from the start; the final model's path."""
    named = re.search(r"--resume (\S+)", err)
    if named:
        assert cli.main(["train", "lenet5", "--resume", named.group(1), "--quiet"]) == 0
        return out / "model.npz"
    assert not os.path.exists(out / "checkpoints")  # nothing was saved: the run had not begun
    assert train(out.parent / (out.name + "-again"), "--epochs", EPOCHS) == 0
    return out.parent / (out.name + "-again") / "model.npz"


def test_signals_at_random_moments_resume_bit_exactly(uninterrupted, outside, tmp_path, monkeypatch, capsys):
    from minidl import training

    monkeypatch.setattr(training, "plot_curves", lambda history, path: False)
    reference, duration = uninterrupted
    rng = random.Random(0)
    stopped_at = set()
    for trial in range(16):
        sig = (signal.SIGINT, signal.SIGTERM)[trial % 2]
        timer = threading.Timer(rng.uniform(0, duration), os.kill, (os.getpid(), sig))
        out = tmp_path / f"trial-{trial}"
        capsys.readouterr()
        outside.inside = True
        timer.start()
        try:
            code = train(out, "--epochs", EPOCHS)
        finally:
            outside.inside = False
            timer.cancel()
            timer.join()
        err = capsys.readouterr().err
        if code == 0:  # the signal came as the last epoch ended, or after the run
            final = out / "model.npz"
        else:
            assert code == 128 + sig, (code, err)
            final = finish(out, err)
            stopped_at.add(re.search(r"--resume \S*?([^/\s]+\.npz)", err + " --resume none.npz").group(1))
        assert_same_weights(reference, final)
    assert len(stopped_at) >= 4, stopped_at  # the trials stopped the run at several different points


def test_a_signal_inside_the_optimizer_step_waits_for_the_step(uninterrupted, tmp_path, monkeypatch, capsys):
    # The probe's worst case: SIGINT while step() has updated only some parameters.
    calls = []
    original = mdl.optim.Adam._update

    def update(self, p, grad, state, group):
        calls.append(1)
        if len(calls) == 3 * 10 + 3:  # the fourth step's third parameter (LeNet-5 has 10)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, p, grad, state, group)

    monkeypatch.setattr(mdl.optim.Adam, "_update", update)
    assert train(tmp_path, "--epochs", EPOCHS) == 130
    err = capsys.readouterr().err
    assert "interrupted-epoch-001-step-00004.npz" in err
    monkeypatch.setattr(mdl.optim.Adam, "_update", original)
    assert_same_weights(uninterrupted[0], finish(tmp_path, err))


def test_a_second_signal_stops_at_once_and_saves_nothing_more(uninterrupted, tmp_path, monkeypatch, capsys):
    original = TinyDigits.get_batch

    def get_batch(self, indices, rng=None):
        if self.train and TinyDigits.calls == 7:  # the second batch of epoch 2
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)
        return original(self, indices, rng)

    monkeypatch.setattr(TinyDigits, "get_batch", get_batch)
    assert train(tmp_path, "--epochs", EPOCHS) == 130
    assert "stopping after this step" in capsys.readouterr().err
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch-001.npz"]
    monkeypatch.setattr(TinyDigits, "get_batch", original)
    assert cli.main(["train", "lenet5", "--resume", str(tmp_path / "checkpoints" / "epoch-001.npz"), "--quiet"]) == 0
    assert_same_weights(uninterrupted[0], tmp_path / "model.npz")


def test_sigterm_to_the_minidl_command_saves_and_exits_143(uninterrupted, tmp_path):
    # A real process, as a scheduler or `docker stop` sees it: the console entry point's own handlers.
    script = f"""if True:
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        from minidl import cli, training
        import test_cli
        training.DATASETS["mnist"] = (test_cli.TinyDigits, (0.1,), (0.3,))
        original = test_cli.TinyDigits.get_batch

        def get_batch(self, indices, rng=None):
            if self.train and test_cli.TinyDigits.calls == 3:  # loading the fourth batch
                print("batch 4", flush=True)
                sys.stdin.readline()  # wait here until the test has sent SIGTERM
            return original(self, indices, rng)

        test_cli.TinyDigits.get_batch = get_batch
        sys.argv = ["minidl", "train", "lenet5", "--batch-size", "32", "--epochs", "{EPOCHS}", "--quiet",
                    "--out", {str(tmp_path)!r}]
        cli.run()
    """
    proc = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:
            if line.startswith("batch 4"):
                break
        proc.send_signal(signal.SIGTERM)
        proc.stdin.write("\n")
        proc.stdin.flush()
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 143, err
    assert "SIGTERM: stopping after this step" in err
    assert "interrupted-epoch-001-step-00004.npz" in err
    assert_same_weights(uninterrupted[0], finish(tmp_path, err))

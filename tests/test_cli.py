"""`minidl train / eval / summary` end to end, on a small generated dataset (no network)."""
import json
import os
import signal

import numpy as np
import pytest

import minidl as mdl
from minidl import cli, training
from minidl.data import ArrayDataset


class TinyDigits(ArrayDataset):
    """MNIST-shaped (1x28x28 uint8) images where class k is a bright bar at row 2k plus noise."""

    classes = [str(i) for i in range(10)]
    calls = 0
    interrupt_at = None  # send this process SIGINT at this training-batch call, to test Ctrl-C
    poison = False  # NaN pixels, to test the NaN-loss stop

    def __init__(self, root=None, train=True, download=True, transform=None):
        rng = np.random.default_rng(0 if train else 1)
        n = 192 if train else 64
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 60, (n, 1, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 0, 2 * k + 4: 2 * k + 6, 4:24] = 255
        super().__init__(x, y, transform)
        self.train = train

    def get_batch(self, indices, rng=None):
        if self.train:
            TinyDigits.calls += 1
            if TinyDigits.interrupt_at == TinyDigits.calls:
                os.kill(os.getpid(), signal.SIGINT)
        x, y = super().get_batch(indices, rng)
        if TinyDigits.poison:
            x = x * np.float32(np.nan)
        return x, y


@pytest.fixture(autouse=True)
def tiny_mnist(monkeypatch):
    monkeypatch.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
    TinyDigits.calls, TinyDigits.interrupt_at, TinyDigits.poison = 0, None, False


def train(out, *extra):
    return cli.main(["train", "lenet5", "--dataset", "mnist", "--batch-size", "32", "--out", str(out),
                     "--quiet", *extra])


def weights(path):
    return {k: v.data for k, v in mdl.load(path)["model"].items()}


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        assert np.array_equal(wa[k], wb[k]), k


def test_train_writes_the_run_directory_and_learns(tmp_path, capsys):
    assert train(tmp_path, "--epochs", "3", "--lr", "3e-3") == 0
    out = capsys.readouterr().out
    assert "epoch   3" in out and "img/s" in out and "test accuracy" in out
    rows = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert rows[-1]["test_acc"] > 0.5  # ten classes: chance is 0.1
    assert open(tmp_path / "metrics.csv").readline().startswith("epoch,train_loss,train_acc")
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["epoch-001.npz", "epoch-002.npz", "epoch-003.npz"]
    assert os.path.exists(tmp_path / "model.npz")
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_curves_png_when_matplotlib_is_installed(tmp_path):
    pytest.importorskip("matplotlib")
    assert train(tmp_path, "--epochs", "1") == 0
    with open(tmp_path / "curves.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_resume_at_an_epoch_boundary_equals_an_uninterrupted_run(tmp_path):
    assert train(tmp_path / "full", "--epochs", "2") == 0
    assert train(tmp_path / "half", "--epochs", "1") == 0
    resumed = cli.main(["train", "lenet5", "--resume", str(tmp_path / "half" / "checkpoints" / "epoch-001.npz"),
                        "--epochs", "2", "--quiet"])
    assert resumed == 0
    assert_same_weights(tmp_path / "full" / "model.npz", tmp_path / "half" / "model.npz")


def test_ctrl_c_saves_a_checkpoint_and_resume_continues_exactly(tmp_path, capsys):
    assert train(tmp_path / "full", "--epochs", "2") == 0
    # While the second batch of epoch 2 loads (6 batches per epoch): that step is finished, then saved.
    TinyDigits.calls, TinyDigits.interrupt_at = 0, 8
    assert train(tmp_path / "cut", "--epochs", "2") == 130
    saved = [f for f in os.listdir(tmp_path / "cut" / "checkpoints") if f.startswith("interrupted")]
    assert saved == ["interrupted-epoch-002-step-00002.npz"], saved
    assert "resume with: minidl train lenet5 --resume" in capsys.readouterr().err
    TinyDigits.interrupt_at = None
    assert cli.main(["train", "lenet5", "--resume", str(tmp_path / "cut" / "checkpoints" / saved[0]),
                     "--quiet"]) == 0
    assert_same_weights(tmp_path / "full" / "model.npz", tmp_path / "cut" / "model.npz")


def test_nan_loss_stops_naming_epoch_and_step(tmp_path, capsys):
    TinyDigits.poison = True
    assert train(tmp_path, "--epochs", "1") == 1
    assert "the loss became nan at epoch 1, step 1" in capsys.readouterr().err


def test_eval_prints_accuracy_and_confusion_matrix(tmp_path, capsys):
    assert train(tmp_path, "--epochs", "1") == 0
    capsys.readouterr()
    assert cli.main(["eval", str(tmp_path / "model.npz")]) == 0
    out = capsys.readouterr().out
    assert "accuracy" in out and "confusion matrix" in out
    matrix = [line.split()[1:] for line in out.splitlines() if line[:5].strip().isdigit()]
    assert len(matrix) == 10 and sum(int(v) for row in matrix for v in row) == 64


def test_unknown_names_list_the_valid_ones(tmp_path, capsys):
    assert cli.main(["train", "lenet6", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'lenet6'; choose one of: alexnet, alexnet_small," in err and "lenet5" in err
    assert cli.main(["train", "lenet5", "--dataset", "mnits", "--out", str(tmp_path)]) == 2
    assert "--dataset: must be one of cifar10, fashion-mnist, mnist; got 'mnits'" in capsys.readouterr().err


def test_missing_checkpoint_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["eval", str(tmp_path / "nope.npz")]) == 2
    assert "nope.npz" in capsys.readouterr().err


def test_cuda_without_a_gpu_fails_with_the_clear_message(tmp_path, capsys):
    from minidl import backend

    try:
        backend.cupy()
        pytest.skip("a GPU is usable here")
    except mdl.DeviceError:
        pass
    assert train(tmp_path, "--epochs", "1", "--device", "cuda") == 2
    err = capsys.readouterr().err
    assert "minidl train: error: device 'cuda'" in err and ("cupy-cuda12x" in err or "GPU" in err)


def test_a_full_size_model_gets_its_input_size(tmp_path, capsys):
    # AlexNet takes 227x227: MNIST's 28x28 digits are resized for it (a few images, one batch)
    assert cli.main(["train", "alexnet", "--dataset", "mnist", "--subset", "8", "--batch-size", "8",
                     "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 0
    assert cli.main(["eval", str(tmp_path / "model.npz")]) == 0
    assert "accuracy" in capsys.readouterr().out


def test_every_small_variant_trains_through_the_cli(tmp_path):
    for name in ("alexnet_small", "vgg_small", "googlenet_small", "resnet_small"):
        TinyDigits.calls = 0
        assert cli.main(["train", name, "--dataset", "mnist", "--subset", "64", "--epochs", "1",
                         "--batch-size", "32", "--out", str(tmp_path / name), "--quiet"]) == 0, name


def test_aux_heads_are_trained_with_the_models_criterion(tmp_path, monkeypatch):
    import minidl_models
    from minidl_models.googlenet import GoogLeNetSmall, googlenet_small

    seen = []
    original = GoogLeNetSmall.criterion

    def spy(self, outputs, target):
        seen.append(len(outputs) if isinstance(outputs, tuple) else 1)
        return original(self, outputs, target)

    monkeypatch.setattr(GoogLeNetSmall, "criterion", spy)
    monkeypatch.setitem(minidl_models.MODELS, "googlenet_small", lambda **kw: googlenet_small(aux_logits=True, **kw))
    assert cli.main(["train", "googlenet_small", "--dataset", "mnist", "--subset", "64", "--epochs", "1",
                     "--batch-size", "32", "--out", str(tmp_path), "--quiet"]) == 0
    assert seen == [2, 2, 1]  # (logits, aux) in each training step, the logits alone in evaluation


def test_kernels_option_chooses_the_cpu_kernels(tmp_path, capsys):
    with mdl.using_config("kernels", mdl.config.kernels):  # restore whatever was set before
        assert train(tmp_path, "--epochs", "1", "--kernels", "numpy") == 0
        assert "with numpy kernels" in capsys.readouterr().out and mdl.config.kernels == "numpy"


def test_summary_prints_the_table(capsys):
    assert cli.main(["summary", "lenet5"]) == 0
    out = capsys.readouterr().out
    assert "Total params: 61,706 (61.71 K)" in out and "Conv2d: features.0" in out
    assert "Total MACs: 416,520 (416.52 K)" in out


@pytest.mark.parametrize("count, text", [
    (0, "0"), (999, "999"), (1_000, "1,000 (1.00 K)"), (416_520, "416,520 (416.52 K)"),
    (999_994, "999,994 (999.99 K)"), (999_995, "999,995 (1.00 M)"), (2_514_176, "2,514,176 (2.51 M)"),
    (4_089_184_256, "4,089,184,256 (4.09 G)"), (15_470_264_320, "15,470,264,320 (15.47 G)"),
    (2_000_000_000_000_000, "2,000,000,000,000,000 (2000.00 T)")])
def test_summary_totals_are_exact_and_in_the_unit_that_fits(count, text):
    from minidl_models.summary import _readable

    assert _readable(count) == text


class SharedLayers(mdl.nn.Module):
    """Calls ``fc`` and ``act`` twice each; ``unused`` never runs."""

    def __init__(self):
        super().__init__()
        self.fc = mdl.nn.Linear(4, 4)
        self.act = mdl.nn.ReLU()
        self.head = mdl.nn.Linear(4, 2)
        self.unused = mdl.nn.Linear(4, 3)

    def forward(self, x):
        return self.head(self.act(self.fc(self.act(self.fc(x)))))


def test_summary_has_a_row_for_every_call_of_a_shared_module():
    from minidl_models import summary

    s = summary(SharedLayers(), (4,))
    assert [(r.name, r.call, r.output_shape, r.macs) for r in s.rows] == [
        ("", 1, (2,), 0), ("fc", 1, (4,), 16), ("act", 1, (4,), 0), ("fc", 2, (4,), 16), ("act", 2, (4,), 0),
        ("head", 1, (2,), 8), ("unused", 1, None, 0)]
    assert s.macs == 40 and s.total_params == 20 + 10 + 15
    table = str(s).splitlines()
    rows = {(line.split()[1], line.split()[-2]) for line in table if line.startswith("  ")}
    # the shared Linear's parameters are counted on its first row only, as torchinfo marks them
    assert rows == {("fc", "20"), ("act", "--"), ("fc", "(recursive)"), ("head", "10"), ("unused", "15")}
    assert "Total MACs: 40" in table and "Total params: 45" in table


def test_the_first_line_names_the_device_or_the_cpu_kernels():
    from minidl.cli import _kernels_used

    assert _kernels_used("cuda:1") == "on cuda:1"
    with mdl.using_config("kernels", "numpy"):
        assert _kernels_used("cpu") == "with numpy kernels"

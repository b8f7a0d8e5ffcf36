"""A trained model back in one call (`minidl_models.load`), `minidl predict` on image files, `minidl summary`
of a checkpoint, the runs/latest link, every optimizer on the command line and what --help tells."""
import os

import numpy as np
import pytest

import minidl as mdl
import minidl_models
from minidl import cli
from minidl.data import DataLoader
from minidl.training import CheckpointError
from test_cli import TinyDigits, tiny_mnist, train  # noqa: F401 - autouse fixture


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    with pytest.MonkeyPatch.context() as mp:
        from minidl import training

        mp.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
        mp.setattr(training, "plot_curves", lambda history, path: False)
        assert train(out, "--epochs", "2", "--lr", "3e-3") == 0
    return out / "model.npz"


def test_load_gives_the_model_in_eval_mode_with_its_preprocessing(trained):
    model = minidl_models.load(trained)
    assert not model.training and model.classes == [str(i) for i in range(10)] and model.image_shape == (1, 28, 28)
    assert model.preprocess.spec() == {"name": "Compose", "transforms": [
        {"name": "Pad", "padding": 2}, {"name": "ToFloat"},
        {"name": "Normalize", "mean": [pytest.approx(0.1)], "std": [pytest.approx(0.3)]}]}
    test = TinyDigits(train=False)
    test.transform = model.preprocess
    x, _ = next(iter(DataLoader(test, 64)))
    with mdl.no_grad():
        expected = model(x).numpy().argmax(axis=1)
    ranked = minidl_models.predict(model, TinyDigits(train=False).data, topk=3)
    assert [int(row[0][0]) for row in ranked] == expected.tolist()
    for row in ranked:
        probabilities = [p for _, p in row]
        assert len(row) == 3 and probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1


def test_predict_takes_one_image_in_either_layout(trained):
    model = minidl_models.load(trained)
    image = TinyDigits(train=False).data[5]
    assert minidl_models.predict(model, image) == minidl_models.predict(model, image[0])
    with pytest.raises(ValueError, match=r"predict: expected images of shape \(1, 28, 28\) \(C, H, W\) or a batch"):
        minidl_models.predict(model, np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(ValueError, match="predict: topk must be an int >= 1; got 0"):
        minidl_models.predict(model, image, topk=0)


def test_minidl_predict_prints_the_top_classes_of_each_file(trained, tmp_path, capsys):
    images = TinyDigits(train=False).data
    np.save(tmp_path / "a.npy", images[0])
    np.save(tmp_path / "b.npy", images[1][0])  # (H, W) for one channel
    capsys.readouterr()
    assert cli.main(["predict", str(trained), str(tmp_path / "a.npy"), str(tmp_path / "b.npy"), "--topk", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    model = minidl_models.load(trained)
    for line, image in zip(lines, images):
        (best, p), _ = minidl_models.predict(model, image, topk=2)[0]
        assert line.startswith(f"{tmp_path}/") and f": {best} {p:.3f}, " in line
    assert len(lines) == 2


def test_minidl_predict_reads_image_files_with_pillow(trained, tmp_path, capsys):
    Image = pytest.importorskip("PIL.Image")
    image = TinyDigits(train=False).data[3][0]
    Image.fromarray(image).resize((56, 56), Image.NEAREST).save(tmp_path / "digit.png")
    capsys.readouterr()
    assert cli.main(["predict", str(trained), str(tmp_path / "digit.png"), "--topk", "1"]) == 0
    label = capsys.readouterr().out.split(": ")[1].split()[0]
    assert label == minidl_models.predict(minidl_models.load(trained), image, topk=1)[0][0][0]


@pytest.mark.parametrize("content, message", [
    (np.zeros((28, 27), np.uint8), r"expected an array of shape \(1, 28, 28\) \(or \(28, 28\) for one channel\)"),
    (np.zeros((28, 28), np.float32), "expected uint8 pixels"),
    (b"not an image", "not an image file Pillow can read"),
])
def test_predict_refuses_what_is_not_an_image_of_the_model(trained, tmp_path, capsys, content, message):
    path = tmp_path / ("x.npy" if isinstance(content, np.ndarray) else "x.png")
    if isinstance(content, np.ndarray):
        np.save(path, content)
    else:
        path.write_bytes(content)
    assert cli.main(["predict", str(trained), str(path)]) == 2
    err = capsys.readouterr().err
    assert message.replace("\\", "") in err.replace("\\", "") and "Traceback" not in err


def test_load_refuses_a_file_that_is_no_model(tmp_path):
    mdl.save({"weights": np.zeros(3)}, tmp_path / "other.npz")
    with pytest.raises(CheckpointError, match="is not a minidl run file: it has no config and model"):
        minidl_models.load(tmp_path / "other.npz")


def test_summary_of_a_checkpoint(trained, capsys):
    assert cli.main(["summary", str(trained)]) == 0
    from_file = capsys.readouterr().out
    assert cli.main(["summary", "lenet5"]) == 0
    assert from_file == capsys.readouterr().out and "61,706" in from_file


def test_runs_latest_follows_the_newest_run(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    common = ["train", "lenet5", "--subset", "32", "--epochs", "1", "--quiet"]
    assert cli.main(common) == 0
    first = os.readlink("runs/latest")
    assert cli.main([*common, "--seed", "1"]) == 0
    second = os.readlink("runs/latest")
    assert first != second and sorted(os.listdir("runs")) == sorted([first, second, "latest"])
    assert cli.main(["eval", "runs/latest/model.npz"]) == 0
    assert cli.main(["train", "lenet5", "--resume", "runs/latest/checkpoints/epoch-001.npz", "--epochs", "2",
                     "--quiet"]) == 0
    assert os.readlink("runs/latest") == second  # a resumed run is not a new one
    assert "epoch   2" in capsys.readouterr().out


def test_runs_latest_never_replaces_a_file_of_the_users(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.makedirs("runs")
    (tmp_path / "runs" / "latest").write_text("mine")
    assert cli.main(["train", "lenet5", "--subset", "32", "--epochs", "1", "--quiet"]) == 0
    assert (tmp_path / "runs" / "latest").read_text() == "mine"


@pytest.mark.parametrize("name", ["adamw", "adagrad", "rmsprop"])
def test_every_optimizer_trains_from_the_command_line(tmp_path, name):
    assert train(tmp_path, "--optimizer", name, "--subset", "64", "--epochs", "1") == 0
    state = mdl.load(tmp_path / "checkpoints" / "epoch-001.npz")
    assert state["config"]["optimizer"] == name and state["optimizer"]["state"]


def test_train_help_lists_the_models_datasets_and_defaults(capsys):
    assert cli.main(["train", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in minidl_models.MODELS:
        assert name in text
    assert "cifar10, fashion-mnist, mnist (default mnist)" in text
    assert "sgd, adam, adamw, adagrad, rmsprop (default adam)" in text
    assert "(default 9;" in text and "default 64" in text and "default 0.002" in text


def test_minidl_export_writes_onnx_and_safetensors_that_give_the_models_outputs(trained, tmp_path, capsys):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("safetensors")
    from minidl.interop import load_safetensors

    model = minidl_models.load(trained)
    x = np.random.default_rng(0).normal(size=(3, 1, 32, 32)).astype(np.float32)
    with mdl.no_grad():
        expected = model(mdl.tensor(x)).numpy()
    assert cli.main(["export", str(trained), str(tmp_path / "m.onnx")]) == 0
    assert "wrote" in capsys.readouterr().out
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(None, {"input": x})[0], expected, rtol=1e-5, atol=1e-5)
    assert cli.main(["export", str(trained), str(tmp_path / "m.safetensors")]) == 0
    again = minidl_models.lenet5()
    again.load_state_dict(load_safetensors(tmp_path / "m.safetensors"))
    with mdl.no_grad():
        np.testing.assert_array_equal(again.eval()(mdl.tensor(x)).numpy(), expected)


@pytest.mark.parametrize("name, message", [("m.onnx", "exists already"), ("m.pt", "must end in .onnx or .safetensors")])
def test_minidl_export_never_overwrites_and_names_the_formats(trained, tmp_path, capsys, name, message):
    (tmp_path / "m.onnx").write_text("mine")
    assert cli.main(["export", str(trained), str(tmp_path / name)]) == 2
    assert message in capsys.readouterr().err and (tmp_path / "m.onnx").read_text() == "mine"

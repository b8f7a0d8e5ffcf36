"""Every mistake a user can make on the ``minidl`` command line gets exit 2 and a message naming the
option or file and what was expected: no traceback, no silent reinterpretation, no half-made run.
A run whose loss explodes stops with exit 1 and a hint."""
import os
import pickle

import numpy as np
import pytest

import minidl as mdl
from minidl import cli
from test_cli import TinyDigits, tiny_mnist, train  # noqa: F401 - tiny_mnist is an autouse fixture


@pytest.mark.parametrize("option, value, expected", [
    ("--epochs", "-1", "an int >= 1"), ("--epochs", "0", "an int >= 1"), ("--epochs", "2.5", "an int >= 1"),
    ("--batch-size", "0", "an int >= 1"), ("--batch-size", "-3", "an int >= 1"), ("--batch-size", "x", "an int"),
    ("--lr", "0", "a finite number > 0"), ("--lr", "-1e-3", "> 0"), ("--lr", "nan", "finite"), ("--lr", "inf", "finite"),
    ("--optimizer", "lbfgs", "one of sgd, adam, adamw, adagrad, rmsprop"), ("--momentum", "-0.1", ">= 0"),
    ("--momentum", "nan", "finite"),
    ("--weight-decay", "-1", ">= 0"), ("--lr-step", "-1", "an int >= 0"), ("--lr-step", "1.5", "an int >= 0"),
    ("--lr-gamma", "0", "> 0"), ("--augment", "-1", "an int >= 0"), ("--device", "gpu", "'cpu', 'cuda' or 'cuda:N'"),
    ("--device", "cuda:x", "'cuda:N'"), ("--seed", "-1", "an int in [0, 2**63)"), ("--seed", "1.5", "an int"),
    ("--subset", "0", "an int >= 1"), ("--subset", "-5", "an int >= 1"), ("--dataset", "mnits", "one of cifar10"),
    ("--data-root", "/no/such/folder", "an existing folder"), ("--kernels", "fast", "invalid choice"),
])
def test_an_invalid_option_value_is_refused_by_name(tmp_path, capsys, option, value, expected):
    assert train(tmp_path / "run", f"{option}={value}") == 2
    err = capsys.readouterr().err
    assert f"argument {option}" in err and expected in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "run")


def test_a_subset_larger_than_the_dataset_is_refused(tmp_path, capsys):
    assert train(tmp_path / "run", "--subset", "1000") == 2
    assert "subset 1000 is more than the 192 training images" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")


def test_subset_trains_and_tests_on_what_it_says(tmp_path, capsys):
    assert train(tmp_path, "--subset", "5", "--epochs", "1") == 0
    assert "(5 train, 1 test images)" in capsys.readouterr().out


@pytest.mark.parametrize("value", ["1,2", "a,b,c", "0,32,32", "1,32,32,4"])
def test_summary_refuses_a_bad_input_shape(capsys, value):
    assert cli.main(["summary", "lenet5", "--input-shape", value]) == 2
    assert "argument --input-shape: must be C,H,W" in capsys.readouterr().err


def test_a_new_run_never_overwrites_an_earlier_one(tmp_path, capsys):
    assert train(tmp_path, "--epochs", "1") == 0
    before = open(tmp_path / "model.npz", "rb").read()
    capsys.readouterr()
    assert train(tmp_path, "--epochs", "1", "--seed", "3") == 2
    assert "holds a run already (model.npz, checkpoints, metrics.jsonl)" in capsys.readouterr().err
    assert open(tmp_path / "model.npz", "rb").read() == before
    (tmp_path / "file").write_text("mine")
    assert train(tmp_path / "file", "--epochs", "1") == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    assert (tmp_path / "file").read_text() == "mine"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished two-epoch run: its directory."""
    out = tmp_path_factory.mktemp("finished")
    with pytest.MonkeyPatch.context() as mp:
        from minidl import training

        mp.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
        assert train(out, "--epochs", "2") == 0
    return out


def resume(path, *extra):
    return cli.main(["train", "lenet5", "--resume", str(path), "--quiet", *extra])


def test_resume_from_the_final_model_says_what_to_resume_from(finished, capsys):
    assert resume(finished / "model.npz") == 2
    err = capsys.readouterr().err
    assert "model.npz is not a training checkpoint: it has no optimizer" in err
    assert "resume from a file under checkpoints/" in err


def test_resume_refuses_options_that_would_change_the_run_and_names_them(finished, tmp_path, capsys):
    ckpt = finished / "checkpoints" / "epoch-001.npz"
    assert resume(ckpt, "--lr", "7", "--batch-size", "5", "--optimizer", "sgd", "--out", str(tmp_path)) == 2
    err = capsys.readouterr().err
    assert "--batch-size 5 (the run's: 32), --lr 7.0 (the run's: 0.002), --optimizer sgd (the run's: adam)" in err
    assert not os.listdir(tmp_path)
    assert resume(ckpt, "--epochs", "1", "--out", str(tmp_path)) == 0  # the run's own values are fine to repeat
    assert resume(finished / "checkpoints" / "epoch-002.npz", "--epochs", "1") == 2
    assert "--epochs 1 is fewer than the 2 epochs" in capsys.readouterr().err


def test_resume_honours_a_new_data_root(finished, tmp_path):
    ckpt = finished / "checkpoints" / "epoch-001.npz"
    root = tmp_path / "data"
    root.mkdir()
    assert resume(ckpt, "--data-root", str(root), "--out", str(tmp_path / "run")) == 0
    assert mdl.load(tmp_path / "run" / "model.npz")["config"]["data_root"] == str(root)


def test_eval_of_a_file_that_is_not_a_run_file(tmp_path, capsys):
    mdl.save({"weights": np.zeros(3)}, tmp_path / "other.npz")
    assert cli.main(["eval", str(tmp_path / "other.npz")]) == 2
    assert "other.npz is not a minidl run file: it has no config and model" in capsys.readouterr().err
    with open(tmp_path / "pickled.pt", "wb") as f:
        pickle.dump({"config": {}}, f)
    assert cli.main(["eval", str(tmp_path / "pickled.pt")]) == 2
    assert "minidl never unpickles" in capsys.readouterr().err


def test_eval_with_another_models_weights(finished, tmp_path, capsys):
    from minidl_models import get_model

    state = mdl.load(finished / "model.npz")
    state["model"] = get_model("alexnet_small", num_classes=10, in_channels=1).state_dict()
    mdl.save(state, tmp_path / "swapped.npz")
    assert cli.main(["eval", str(tmp_path / "swapped.npz")]) == 2
    err = capsys.readouterr().err
    assert "the weights in" in err and "do not fit the lenet5 its config builds" in err and "Traceback" not in err


@pytest.mark.parametrize("change, message", [
    (lambda s: s["config"].update(epochs="9"), "the config's epochs must be an int >= 1; got '9'"),
    (lambda s: s["config"].update(seed=-1), "the config's seed must be an int in [0, 2**63); got -1"),
    (lambda s: s["config"].pop("lr"), "the config has no 'lr'"),
    (lambda s: s["config"].update(model_kwargs={"bogus": 1}), "the config's model_kwargs {'bogus': 1} do not fit"),
    (lambda s: s.update(config=[1, 2]), "the config must be a dict"),
    (lambda s: s.update(step=999), "its step 999 do not fit this run"),
    (lambda s: s.update(sums="x"), "its sums 'x' do not fit"),
    (lambda s: s.update(rng='{"seed": 0}'), "its random generator state is unusable"),
    (lambda s: s.update(rng="not json"), "its random generator state is unusable"),
    (lambda s: s["optimizer"].pop("state"), "epoch-001.npz: "),
    (lambda s: s["model"].pop("features.0.weight"), "missing keys"),
])
def test_a_checkpoint_with_bad_contents_is_refused_before_training(finished, tmp_path, capsys, change, message):
    state = mdl.load(finished / "checkpoints" / "epoch-001.npz")
    change(state)
    path = tmp_path / "checkpoints" / "epoch-001.npz"
    path.parent.mkdir()
    mdl.save(state, path)
    assert resume(path) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not os.path.exists(tmp_path / "model.npz")


def test_a_loss_that_explodes_stops_the_run_with_a_hint(tmp_path, capsys):
    assert train(tmp_path, "--lr", "1e6", "--epochs", "1") == 1
    err = capsys.readouterr().err
    assert "the loss diverged at epoch 1, step 2" in err and "try a smaller --lr (this run's is 1e+06)" in err
    assert not os.path.exists(tmp_path / "model.npz")


def test_the_divergence_guard_survives_a_resume(finished, tmp_path):
    # The guard's memory (the first loss and the recent ones) is part of the checkpoint.
    state = mdl.load(finished / "checkpoints" / "epoch-001.npz")
    assert state["losses"]["first"] > 2 and len(state["losses"]["recent"]) == 6

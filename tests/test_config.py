"""The settings: one way to read and change them, per-thread grad mode, and an import that
leaves its host process alone."""
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minidl as mdl
from minidl.config import Config


def test_every_setting_reads_changes_and_restores():
    values = {"kernels": "numpy", "conv_algorithm": "im2col", "workspace_limit": 4096, "grad_enabled": False,
              "anomaly": True}
    assert sorted(dir(mdl.config)) == sorted(values)
    before = {name: getattr(mdl.config, name) for name in values}
    for name, value in values.items():
        with mdl.using_config(name, value):
            assert getattr(mdl.config, name) == value
        assert getattr(mdl.config, name) == before[name]
        with pytest.raises(KeyError):
            with mdl.using_config(name, value):
                raise KeyError("restored after an error too")
        assert getattr(mdl.config, name) == before[name]


def test_each_setting_is_documented_with_its_scope():
    text = mdl.config.describe()
    for name, scope in [("kernels", "per process"), ("conv_algorithm", "per process"),
                        ("workspace_limit", "per process"), ("grad_enabled", "per thread"),
                        ("anomaly", "per thread")]:
        assert f"{name} = " in text and f"({scope})" in text.split(f"{name} = ", 1)[1].split("\n", 1)[0]


def test_unknown_settings_and_bad_values_are_named():
    with pytest.raises(AttributeError, match=r"minidl has no setting 'kernel'; the settings are anomaly, "):
        mdl.config.kernel
    with pytest.raises(AttributeError, match=r"no setting 'speed'"):
        mdl.config.speed = 2
    with pytest.raises(ValueError, match=r"config.workspace_limit: expected a positive number of bytes; got -1"):
        mdl.using_config("workspace_limit", -1).__enter__()
    assert mdl.config.workspace_limit > 0


def test_a_per_process_default_is_read_when_first_needed():
    calls = []
    config = Config()
    config.register("answer", lambda: calls.append(1) or 42, per_thread=False, doc="a test setting")
    assert calls == []
    assert config.answer == 42 and config.answer == 42 and calls == [1]


def test_grad_mode_is_per_thread():
    # One thread evaluates under no_grad while another trains: the trainer's graph must be recorded.
    inside, trained = threading.Event(), threading.Event()
    results = {}

    def evaluate():
        with mdl.no_grad():
            inside.set()
            trained.wait(10)
            results["evaluator"] = mdl.is_grad_enabled()

    def train():
        inside.wait(10)
        x = mdl.tensor(np.ones(3), requires_grad=True)
        y = (x * x).sum()
        results["trainer"] = (mdl.is_grad_enabled(), y.requires_grad)
        y.backward()
        results["grad"] = x.grad.numpy().tolist()
        trained.set()

    threads = [threading.Thread(target=evaluate), threading.Thread(target=train)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert results == {"evaluator": False, "trainer": (True, True), "grad": [2.0, 2.0, 2.0]}


def test_a_new_thread_starts_with_grad_enabled_and_no_anomaly_checks():
    seen = []
    with mdl.no_grad(), mdl.detect_anomaly():
        t = threading.Thread(target=lambda: seen.append((mdl.config.grad_enabled, mdl.config.anomaly)))
        t.start()
        t.join()
        assert (mdl.config.grad_enabled, mdl.config.anomaly) == (False, True)
    assert seen == [(True, False)]


def test_configure_process_asks_threads_to_sleep_unless_the_environment_says_otherwise(monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    mdl.configure_process()
    assert os.environ["OMP_WAIT_POLICY"] == "PASSIVE"
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    mdl.configure_process()
    assert os.environ["OMP_WAIT_POLICY"] == "ACTIVE"


def test_importing_and_using_minidl_leaves_the_environment_alone():
    # A training step on the Numba kernels too: they are imported on first use.
    code = """if True:
        import json, os, sys
        before = dict(os.environ)
        import numpy as np
        import minidl as mdl
        from minidl_models import lenet5
        model = lenet5()
        x = mdl.tensor(np.zeros((2, 1, 32, 32), np.float32))
        mdl.nn.functional.cross_entropy(model(x), np.array([1, 2])).backward()
        changed = sorted(k for k in set(before) | set(os.environ) if before.get(k) != os.environ.get(k))
        print(json.dumps([changed, "numba" in sys.modules]))
    """
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    changed, numba_used = json.loads(out)
    assert changed == [] and numba_used == (mdl.config.kernels == "numba")

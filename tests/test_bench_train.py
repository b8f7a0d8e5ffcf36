"""benchmarks/bench_train.py (`minidl bench train`): each framework is timed in processes of its own, alternating, and the
PyTorch processes keep the thread settings the user started the benchmark with."""
import json
import os
import subprocess
import sys

import pytest

# What minidl's processes add to the environment (minidl.bench.common.minidl_settings); this test's
# own process has some of them, and the benchmark is started without them, as a user would start it.
THREAD_VARIABLES = ("OMP_WAIT_POLICY", "NUMBA_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "MINIDL_BENCH_ADDED")
SCRIPT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks", "bench_train.py")


def test_each_framework_in_its_own_processes(tmp_path):
    pytest.importorskip("torch")
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    done = subprocess.run([sys.executable, SCRIPT, "--batch-sizes", "8", "--steps", "2", "--rounds", "1",
                           "--json", str(tmp_path / "out.json")], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    torch_line = next(line for line in out.splitlines() if line.startswith("torch processes:"))
    minidl_line = next(line for line in out.splitlines() if line.startswith("minidl processes:"))
    assert "thread settings: library defaults" in torch_line  # minidl's settings never reach PyTorch
    assert "'OMP_WAIT_POLICY': 'PASSIVE'" in minidl_line
    assert "each framework in 1 process(es) of its own, alternating" in out
    row = json.loads((tmp_path / "out.json").read_text())["rows"][0]
    assert row["batch_size"] == 8 and row["minidl_images_per_s"] > 0 and row["torch_images_per_s"] > 0


def test_a_benchmark_process_gets_minidl_settings_and_pytorchs_gets_the_users_environment(monkeypatch):
    from minidl.bench import common

    for name in THREAD_VARIABLES + ("MINIDL_BENCH_SIDE",):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the user's own choice: every process keeps it
    user = dict(os.environ)
    ours = common.environment_for()
    assert ours["OMP_WAIT_POLICY"] == "PASSIVE" and ours["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert ours["NUMBA_NUM_THREADS"] == "1" and ours["OMP_NUM_THREADS"] == "1"
    assert set(ours["MINIDL_BENCH_ADDED"].split(",")) == {"OMP_WAIT_POLICY", "NUMBA_NUM_THREADS",
                                                          "OPENBLAS_THREAD_TIMEOUT"}
    assert common.environment_for("torch") == {**user, "MINIDL_BENCH_SIDE": "torch"}
    # in the process started with them, the user's environment is still known, for PyTorch's processes
    monkeypatch.setattr(os, "environ", dict(ours))
    assert common.started_for_benchmark() and common.user_environment() == user
    assert common.environment_for("torch") == {**user, "MINIDL_BENCH_SIDE": "torch"}
    assert common.environment_for("minidl") == {**ours, "MINIDL_BENCH_SIDE": "minidl"}


@pytest.mark.parametrize("name", ["im2col", "conv", "train"])
def test_the_minidl_command_runs_each_benchmark_in_a_process_of_its_own(name, capfd):
    from minidl import cli

    assert cli.main(["bench", name, "--help"]) == 0
    out = capfd.readouterr().out
    assert out.startswith(f"usage: minidl bench {name} ") and "--json" in out
    assert cli.main(["bench", name, "--no-such-option"]) == 2  # the benchmark's own parser refused it
    assert "unrecognized arguments: --no-such-option" in capfd.readouterr().err

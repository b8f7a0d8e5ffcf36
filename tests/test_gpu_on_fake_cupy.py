"""The GPU tests (every test marked gpu), run in CI on a CuPy made of NumPy (tests/fake_cupy), with minidl's CUDA kernels
compiled for the CPU by the harness. CI has no GPU; this proves what a CPU can of the GPU path:
that every op, layer, optimizer, checkpoint and the command line keep device arrays on the device,
never mix them with host arrays, and run the CUDA kernels (not the reference) where they should.
What only a GPU can prove is listed in tests/fake_cupy/cupy/__init__.py."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.skipif(shutil.which("g++") is None, reason="the CUDA kernels' CPU harness needs g++")
def test_the_gpu_tests_pass_on_a_cupy_made_of_numpy():
    path = [str(ROOT / "tests" / "fake_cupy"), str(ROOT), os.environ.get("PYTHONPATH", "")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in path if p))
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                          str(ROOT / "tests")], cwd=ROOT, env=env, capture_output=True, text=True)
    summary = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    passed = re.search(r"(\d+) passed", summary)
    # Every test ran: only the PyTorch-CUDA comparisons may skip (no CUDA PyTorch here).
    assert passed and int(passed.group(1)) >= 570 and "failed" not in summary, summary

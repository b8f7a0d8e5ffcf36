import contextlib
import hashlib
import os
import re
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent


def numba_cache_dir_for(sources, parent=ROOT / ".pytest_cache" / "numba"):
    """Where Numba caches the code it compiles from ``sources`` (paths): a directory of ``parent``
    of its own for each content of them all. Numba trusts a cached function while its own source
    file is unchanged, whatever changed in the functions it calls from other files (pooling.py's
    kernels hold im2col.py's ``spans``), and Numba before numba/numba#10659 judges "unchanged" by
    the file's mtime and size alone (an edit copied with its timestamp, a fast checkout); from a
    shared cache either would run the code compiled before the edit."""
    digest = hashlib.sha256()
    for path in sorted(map(Path, sources)):
        content = path.read_bytes()
        digest.update(len(content).to_bytes(8, "little") + content)
    return Path(parent) / digest.hexdigest()[:16]


# Numba reads NUMBA_CACHE_DIR once, when it is imported: nothing has imported it yet (minidl
# imports it on first use, pytest's plugins not at all), and the subprocesses the tests start
# inherit the setting. A cache directory the user chose is theirs to keep fresh.
os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir_for((ROOT / "minidl" / "kernels").rglob("*.py"))))

import minidl as mdl  # noqa: E402

# The test run is a process that trains: its threads sleep between kernels, as minidl train's do.
mdl.configure_process()


def ops_in_graph(outputs):
    """Names of the Function classes in the graph behind ``outputs``."""
    outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
    names, seen = set(), set()
    stack = [y.creator for y in outputs if isinstance(y, mdl.Tensor) and y.creator is not None]
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        names.add(type(f).__name__)
        stack += [producer for producer, _ in f.next_functions if producer is not None]
    return names


@pytest.fixture(scope="module")
def torch():
    """PyTorch, the optional reference: tests that take this fixture skip cleanly without it."""
    return pytest.importorskip("torch")


def close(actual, expected):
    """Agreement with the PyTorch reference, in float64."""
    np.testing.assert_allclose(actual, expected, rtol=1e-7, atol=1e-12)


def randn(*shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(params=["numpy", "numba"])
def kernel_set(request):
    """Runs a test once per kernel implementation (the ``kernels`` setting), restoring the
    previous choice afterwards; the Numba run is skipped where Numba cannot be imported.
    A module applies it to all of its tests with ``pytestmark = pytest.mark.usefixtures("kernel_set")``."""
    if request.param == "numba":
        pytest.importorskip("numba")
    with mdl.using_config("kernels", request.param):
        yield request.param


@pytest.fixture(scope="session")
def cuda_harness(tmp_path_factory):
    """The CPU harness that runs minidl's CUDA kernels (tests/cuda_host.py); skips without g++."""
    import cuda_host

    if cuda_host.COMPILER is None:
        pytest.skip("g++ is not installed")
    return cuda_host.Host(tmp_path_factory.mktemp("cuda_host"))


@pytest.fixture
def setting():
    """``setting(name, value)`` changes a minidl setting (``mdl.config``) inside a test, as often as
    the test likes; every setting it changed comes back afterwards."""
    with contextlib.ExitStack() as stack:
        yield lambda name, value: stack.enter_context(mdl.using_config(name, value))


# $MINIDL_REQUIRE (a comma list of modules, CI's "torch,numba,mpi4py") turns a skip for one of them
# missing into a failure, so that a run which must cross-check against them cannot pass without.
# Every such skip is pytest.importorskip's, in a test, a fixture or a module's top level, whose
# reason is "could not import 'NAME': ..."; skips for anything else (no GPU, no g++) stay skips.
_IMPORTORSKIP = re.compile(r"could not import '(?P<module>[\w.]+)'")


def _fail_if_required(report):
    """Turn ``report``, if it is a skip for a module $MINIDL_REQUIRE names, into a failure."""
    required = {name.strip() for name in os.environ.get("MINIDL_REQUIRE", "").split(",") if name.strip()}
    if not (required and report.skipped and isinstance(report.longrepr, tuple)):
        return
    reason = report.longrepr[2].removeprefix("Skipped: ")
    found = _IMPORTORSKIP.match(reason)
    module = found and found["module"].split(".")[0]
    if module in required:
        report.outcome = "failed"
        report.longrepr = (f"{reason}\nMINIDL_REQUIRE={os.environ['MINIDL_REQUIRE']} asks for {module!r}, "
                           "so this fails instead of skipping")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    _fail_if_required((yield).get_result())


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    _fail_if_required((yield).get_result())

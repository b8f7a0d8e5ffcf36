import contextlib

import numpy as np
import pytest

import minidl as mdl

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

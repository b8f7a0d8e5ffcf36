import numpy as np
import pytest

import minidl as mdl
from minidl import backend
from minidl.ops import conv


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
        stack += [x.creator for x in f.inputs if x.creator is not None]
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
    """Runs a test once per kernel implementation (see minidl.backend.set_kernels), restoring the
    previous choice afterwards; the Numba run is skipped where Numba cannot be imported.
    A module applies it to all of its tests with ``pytestmark = pytest.mark.usefixtures("kernel_set")``."""
    if request.param == "numba":
        pytest.importorskip("numba")
    with backend.use_kernels(request.param):
        yield request.param


@pytest.fixture
def workspace_limit():
    """Set the convolution workspace limit inside a test (minidl.ops.conv.set_workspace_limit);
    the old one comes back afterwards."""
    old = conv.get_workspace_limit()
    yield conv.set_workspace_limit
    conv.set_workspace_limit(old)

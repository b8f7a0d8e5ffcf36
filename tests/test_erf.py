"""erf: the kernels against Python's math.erf, value by value, and the op mdl.erf through
minidl.testing's checks.

The reference and the Numba kernels must give math.erf's float64 value rounded to the input's dtype,
bit for bit, sign of zero included; the CUDA kernels (on the CPU through the harness, on a GPU where
there is one) CUDA's erff and erf, within the 2 ulp CUDA documents. The inputs cover every range
a C library's erf treats apart (below 2**-28, up to 0.84375, 1.25, 1/0.35, 6), the tails where
erf rounds to +-1, subnormals, +-0, +-inf and NaN.
"""
import math

import numpy as np
import pytest

import minidl as mdl
from minidl import kernels
from minidl.kernels import numpy_impl
from minidl.testing import OpTestCase
from test_kernels import assert_bits, impl  # noqa: F401 (impl: each compiled implementation, a fixture)

DTYPES = [np.float32, np.float64]
CUDA_ULPS = 2


def erf_inputs(dtype):
    rng = np.random.default_rng(0)
    info = np.finfo(dtype)
    edges = np.array([2.0 ** -28, 0.84375, 1.25, 1 / 0.35, 6.0, 3.9, 5.9, 5.93, 10.0, 27.0, 30.0])
    edges = np.concatenate([edges, np.nextafter(edges, 0), np.nextafter(edges, np.inf)])
    magnitudes = np.concatenate([
        edges, 10.0 ** rng.uniform(np.log10(info.smallest_subnormal), np.log10(30), 4000),
        np.abs(rng.standard_normal(4000)) * 3,
        [0.0, info.smallest_subnormal, info.tiny, 1e-300 if dtype == np.float64 else 1e-40, 1.0, info.max,
         np.inf, np.nan]])
    x = magnitudes.astype(dtype)
    return np.concatenate([x, -x])


def math_erf(x):
    """math.erf of each value, in float64, rounded to x's dtype."""
    return np.array([math.erf(float(v)) for v in x.ravel()], dtype=np.float64).reshape(x.shape).astype(x.dtype)


def ulps(a, b):
    """How many representable numbers apart a and b are (same-sign values, as erf's are)."""
    signed = np.int64 if a.dtype == np.float64 else np.int32
    return np.abs(a.view(signed).astype(np.int64) - b.view(signed).astype(np.int64))


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_reference_is_math_erf(dtype):
    x = erf_inputs(dtype)
    y = numpy_impl.erf_forward(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    assert_bits(y, math_erf(x))
    assert list(numpy_impl.erf_forward(np.array([0.0, -0.0, np.inf, -np.inf], dtype))) == [0.0, -0.0, 1.0, -1.0]
    assert np.signbit(numpy_impl.erf_forward(np.array([-0.0], dtype)))[0]
    for a in (np.array(0.5, dtype), np.zeros((0, 3), dtype), x[:12].reshape(3, 4).T):
        y = numpy_impl.erf_forward(a)
        assert type(y) is np.ndarray and y.dtype == a.dtype
        assert_bits(y, math_erf(a))


@pytest.mark.parametrize("dtype", DTYPES)
def test_compiled_erf_against_math_erf(impl, dtype):  # noqa: F811 (impl is the fixture)
    x = erf_inputs(dtype)
    y, expected = impl.erf_forward(x), math_erf(x)
    assert y.dtype == x.dtype and y.shape == x.shape
    nan = np.isnan(x)
    assert np.isnan(y[nan]).all() and not np.isnan(y[~nan]).any()
    special = (x == 0) | np.isinf(x)
    assert_bits(y[special], expected[special])  # erf(+-0) = +-0, erf(+-inf) = +-1
    if impl.name == "numba":
        assert_bits(y, expected)
    else:
        assert ulps(y[~nan], expected[~nan]).max() <= CUDA_ULPS


@pytest.mark.parametrize("shape", [(), (0,), (3, 5, 17), (4, 300)])
def test_compiled_erf_on_any_shape_and_layout(impl, shape):  # noqa: F811
    x = np.asarray(np.random.default_rng(1).standard_normal(shape) * 2)  # 0-d: an array, not a NumPy scalar
    for a in (x, x.T):  # the transpose is not contiguous
        y = impl.erf_forward(a)
        assert y.shape == a.shape
        assert ulps(y, math_erf(a)).max(initial=0) <= (0 if impl.name == "numba" else CUDA_ULPS)


def test_float16_keeps_its_dtype():
    x = np.array([-3.0, -0.5, -0.0, 0.25, 1.5, np.inf], np.float16)
    assert_bits(kernels.erf_forward(x), math_erf(x))
    y = mdl.erf(mdl.tensor(x))
    assert y.dtype == np.float16
    assert_bits(y.numpy(), math_erf(x))


def test_the_op_on_either_kernel_set(kernel_set):
    x = erf_inputs(np.float32)
    assert_bits(mdl.erf(mdl.tensor(x)).numpy(), math_erf(x))


def test_integers_become_float32_as_in_pytorch(torch):
    y = mdl.erf(mdl.tensor(np.array([-2, 0, 3])))
    assert y.dtype == np.float32 and torch.erf(torch.tensor([-2, 0, 3])).dtype == torch.float32
    np.testing.assert_array_equal(y.numpy(), math_erf(np.array([-2.0, 0.0, 3.0], np.float32)))


class TestErf(OpTestCase):
    cases = [dict(shapes=[(3, 4)], id="unit"),
             dict(shapes=[(5,)], id="tails", make_inputs=lambda rng, shapes, dtype: [
                 (rng.uniform(2.0, 4.0, shapes[0]) * rng.choice([-1, 1], shapes[0])).astype(dtype)])]
    op = staticmethod(mdl.erf)
    reference = staticmethod(math_erf)
    torch_reference = "torch.erf"

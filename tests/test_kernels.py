"""The kernel implementations against the NumPy reference, and choosing between them.

Every compiled implementation (the ``impl`` fixture: the Numba kernels, the CUDA kernels run on
the CPU by the harness, the CUDA kernels on a GPU where there is one) is run on random geometries
(stride, padding, dilation, ceil_mode, count_include_pad, rectangular kernels, overlapping and
gapped windows) in float32 and float64 and compared with ``numpy_impl``. Where an implementation
adds in the reference's order (im2col, col2im, pooling, LRN's window sums, the Winograd input
transform and output adjoint) or does its arithmetic in its order (the activations' gradients) the
results must be identical bit for bit, and tanh is held to the error each implementation documents
(float32 tanh to one rational function on the CPU and the GPU); batch norm, whose
statistics are float64 sums there and NumPy's pairwise sums in the input's dtype here, the Winograd
output transform and, on CUDA, LRN's power agree to 1e-6 relative. The reference itself is checked
for what running on CuPy needs: no host reads, no scatter.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl
from minidl import backend, kernels
from minidl.kernels import numpy_impl

DTYPES = [np.float32, np.float64]


@pytest.fixture(scope="module")
def numba_impl():
    pytest.importorskip("numba")
    from minidl.kernels import numba_impl

    return numba_impl


def assert_same(actual, expected):
    """Same dtype, shape and values (NaN where NaN)."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_array_equal(actual, expected)


def assert_close(actual, expected):
    """1e-6 relative, per element or, for elements near zero, to the largest magnitude."""
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6 * np.abs(expected).max())


def conv_case(seed):
    """A random convolution geometry with at least one output position."""
    rng = np.random.default_rng(seed)
    while True:
        kernel, stride = tuple(rng.integers(1, 5, 2)), tuple(rng.integers(1, 4, 2))
        padding, dilation = tuple(rng.integers(0, 3, 2)), tuple(rng.integers(1, 3, 2))
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5))) + tuple(int(v) for v in rng.integers(1, 12, 2))
        if all(kernels.conv_output_size(shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) >= 1
               for a in (0, 1)):
            return shape, *(tuple(int(v) for v in p) for p in (kernel, stride, padding, dilation))


def pool_case(seed):
    """A random pooling geometry PyTorch accepts (padding at most half the kernel)."""
    rng = np.random.default_rng(seed)
    while True:
        kernel, stride = tuple(int(v) for v in rng.integers(1, 5, 2)), tuple(int(v) for v in rng.integers(1, 5, 2))
        padding = tuple(int(rng.integers(0, k // 2 + 1)) for k in kernel)
        ceil_mode = bool(rng.integers(2))
        shape = (int(rng.integers(1, 4)), int(rng.integers(1, 5))) + tuple(int(v) for v in rng.integers(1, 12, 2))
        if all(kernels.conv_output_size(shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) >= 1
               for a in (0, 1)):
            return shape, kernel, stride, padding, ceil_mode


SEEDS = range(12)


class Implementation:
    """A kernel implementation under test: ``impl.NAME(*args)`` runs its NAME with the host arrays
    among ``args`` copied to its device (where it has one), checks that they come back
    unmodified, checks that the outputs are on that device, and returns them as host arrays."""

    def __init__(self, name, module, to_device=None, to_host=None):
        self.name, self.module = name, module
        self._to_device = to_device or (lambda a: a)
        self._to_host = to_host or (lambda a: a)

    def __getattr__(self, name):
        function = getattr(self.module, name)

        def call(*args, **kwargs):
            before = [a.copy() if isinstance(a, np.ndarray) else None for a in args]
            args = [self._to_device(a) if isinstance(a, np.ndarray) else a for a in args]
            out = function(*args, **kwargs)
            for a, b in zip(args, before):
                if b is not None:
                    assert_same(self._to_host(a), b)  # inputs are never modified
            host = tuple(self._to_host(o) for o in (out if isinstance(out, tuple) else (out,)))
            return host if isinstance(out, tuple) else host[0]

        return call


def _on_the_gpu(a):
    assert backend.is_cupy_array(a), type(a)
    return a.get()


@pytest.fixture(params=["numba", "cuda-harness", pytest.param("cuda", marks=pytest.mark.gpu)])
def impl(request, monkeypatch):
    """Each compiled implementation, held to the reference by the same tests: the Numba kernels;
    the CUDA kernels run on the CPU by the harness (tests/cuda_host.py, at most 3 blocks a launch
    so that the larger cases also run the grid-stride loops); the CUDA kernels on a GPU."""
    if request.param == "numba":
        pytest.importorskip("numba")
        from minidl.kernels import numba_impl

        return Implementation("numba", numba_impl)
    from minidl.kernels import cuda_impl
    from minidl.kernels.cuda_impl import _module

    if request.param == "cuda-harness":
        monkeypatch.setattr(_module, "function", request.getfixturevalue("cuda_harness").function)
        monkeypatch.setattr(_module, "MAX_BLOCKS", 3)
        return Implementation("cuda-harness", cuda_impl)
    try:
        cp = backend.cupy()
    except backend.DeviceError as e:
        pytest.skip(str(e))
    return Implementation("cuda", cuda_impl, cp.asarray, _on_the_gpu)


@pytest.mark.parametrize("fold_batch", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_im2col_and_col2im_are_bit_identical(impl, seed, dtype, fold_batch):
    shape, *geometry = conv_case(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    col = impl.im2col(x, *geometry, None, fold_batch)
    assert_same(col, numpy_impl.im2col(x, *geometry, None, fold_batch))
    c = rng.standard_normal(col.shape).astype(dtype)
    assert_same(impl.col2im(c, shape, *geometry, fold_batch), numpy_impl.col2im(c, shape, *geometry, fold_batch))


@pytest.mark.parametrize("seed", SEEDS)
def test_the_batch_folded_columns_are_the_per_sample_ones_side_by_side(seed):
    shape, *geometry = conv_case(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    col = numpy_impl.im2col(x, *geometry)
    n, rows, length = col.shape
    folded = numpy_impl.im2col(x, *geometry, None, True)
    assert_same(folded, col.transpose(1, 0, 2).reshape(rows, n * length))
    c = rng.standard_normal(col.shape)
    assert_same(numpy_impl.col2im(c.transpose(1, 0, 2).reshape(rows, n * length), shape, *geometry, True),
                numpy_impl.col2im(c, shape, *geometry))


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_of_a_non_contiguous_input(numba_impl, dtype):
    x = np.random.default_rng(0).standard_normal((5, 6, 7, 3)).astype(dtype).transpose(0, 3, 1, 2)
    for geometry in [((1, 1), (1, 1), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 1), (1, 2))]:
        for fold_batch in (False, True):
            assert_same(numba_impl.im2col(x, *geometry, None, fold_batch),
                        numpy_impl.im2col(x, *geometry, None, fold_batch))


def special_values(shape, dtype, seed):
    """Small integers (many ties), some NaN and some -inf: max pooling's hard cases."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-2, 3, shape).astype(dtype)
    x[rng.random(shape) < 0.05] = np.nan
    x[rng.random(shape) < 0.3] = -np.inf
    return x


@pytest.mark.parametrize("values", ["random", "ties-nan-inf"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_max_pool_is_bit_identical(impl, seed, dtype, values):
    shape, kernel, stride, padding, ceil_mode = pool_case(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype) if values == "random" else special_values(shape, dtype, seed)
    y, argmax = impl.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
    y_ref, argmax_ref = numpy_impl.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)
    assert_same(y, y_ref)
    assert_same(argmax, argmax_ref)
    # Backward sums in float64 in the reference's order, so it is exact even where windows overlap.
    gy = rng.standard_normal(y.shape).astype(dtype)
    geometry = (shape, kernel, stride, padding)
    assert_same(impl.max_pool2d_backward(gy, argmax, *geometry), numpy_impl.max_pool2d_backward(gy, argmax, *geometry))


def test_max_pool_windows_of_only_nan_or_only_minus_inf(impl):
    x = np.array([[[[np.nan, np.nan, -np.inf, -np.inf], [1.0, np.nan, -np.inf, -np.inf]]]])
    for geometry in [((2, 2), (2, 2), (0, 0), False), ((2, 3), (1, 1), (1, 1), True)]:
        for a, b in zip(impl.max_pool2d_forward(x, *geometry), numpy_impl.max_pool2d_forward(x, *geometry)):
            assert_same(a, b)


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("seed", SEEDS)
def test_avg_pool_is_bit_identical(impl, seed, dtype, count_include_pad):
    shape, kernel, stride, padding, ceil_mode = pool_case(seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(dtype)
    args = (kernel, stride, padding, ceil_mode, count_include_pad)
    y = impl.avg_pool2d_forward(x, *args)
    assert_same(y, numpy_impl.avg_pool2d_forward(x, *args))
    gy = rng.standard_normal(y.shape).astype(dtype)
    assert_same(impl.avg_pool2d_backward(gy, shape, *args), numpy_impl.avg_pool2d_backward(gy, shape, *args))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, size", [((2, 5, 3, 4), 5), ((3, 7, 6), 2), ((2, 4, 3, 3), 9), ((1, 6, 2, 1, 3), 1)])
def test_lrn_agrees(impl, shape, size, dtype):
    rng = np.random.default_rng(0)
    x, gy = (rng.standard_normal(shape).astype(dtype) for _ in range(2))
    args = (size, 2.0, 0.75, 2.0)  # a large alpha, so the window sums matter
    y, scale = impl.lrn_forward(x, *args)
    y_ref, scale_ref = numpy_impl.lrn_forward(x, *args)
    assert_same(scale, scale_ref)  # the window sums, in the reference's order
    # Numba calls NumPy's power; CUDA's pow (and glibc's, in the harness) may differ by an ulp.
    agrees = assert_same if impl.name == "numba" else assert_close
    agrees(y, y_ref)
    agrees(impl.lrn_backward(x, y_ref, scale_ref, gy, *args), numpy_impl.lrn_backward(x, y_ref, scale_ref, gy, *args))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", [(16, 3), (5, 4, 7), (4, 3, 6, 5), (64, 2, 9, 9), (40, 2100)])
def test_batch_norm_agrees(impl, shape, dtype):
    # The statistics are float64 sums here and NumPy's pairwise sums in the reference. The CUDA
    # kernels sum (64, 2, 9, 9) in 1024 partials per channel, (40, 2100) in 32 of 1 or 2 values.
    rng = np.random.default_rng(0)
    c = shape[1]
    x = (rng.standard_normal(shape) * 2 + 1).astype(dtype)
    gamma, beta = rng.uniform(0.5, 2, c).astype(dtype), rng.standard_normal(c).astype(dtype)
    ref = numpy_impl.batch_norm_forward(x, gamma, beta, 1e-5)
    for a, b in zip(impl.batch_norm_forward(x, gamma, beta, 1e-5), ref):
        assert_close(a, b)
    gy = rng.standard_normal(shape).astype(dtype)
    mean, invstd = ref[1:]
    for a, b in zip(impl.batch_norm_backward(gy, x, gamma, mean, invstd),
                    numpy_impl.batch_norm_backward(gy, x, gamma, mean, invstd)):
        assert_close(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, padding", [((2, 3, 5, 7), (1, 1)), ((1, 2, 4, 4), (0, 0)), ((3, 4, 6, 5), (2, 1)),
                                            ((2, 1, 3, 3), (0, 2)), ((1, 3, 9, 8), (1, 0))])
def test_winograd_transforms_agree(impl, shape, padding, dtype):
    # The input transform and the output adjoint add at most two terms per value (bit-identical);
    # the output transform adds three, in an order NumPy's matmul does not promise (1e-6).
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    v = impl.winograd_input_transform(x, padding)
    assert_same(v, numpy_impl.winograd_input_transform(x, padding))
    out_shape = (shape[0], 4, shape[2] + 2 * padding[0] - 2, shape[3] + 2 * padding[1] - 2)
    m = rng.standard_normal((16, 4, v.shape[2])).astype(dtype)
    assert_close(impl.winograd_output_transform(m, out_shape), numpy_impl.winograd_output_transform(m, out_shape))
    gy = rng.standard_normal(out_shape).astype(dtype)
    assert_same(impl.winograd_output_transform_adjoint(gy), numpy_impl.winograd_output_transform_adjoint(gy))


# --- the activations: the gradients bit for bit, tanh within its error ---------------------------

def assert_bits(actual, expected):
    """`assert_same`, and the same sign wherever the value is not NaN: -0.0 is not 0.0 here."""
    assert_same(actual, expected)
    numbers = ~np.isnan(expected)
    np.testing.assert_array_equal(np.signbit(np.asarray(actual))[numbers], np.signbit(np.asarray(expected))[numbers])


def activation_values(shape, dtype, seed, largest=True):
    """Normal values, one in five replaced by a hard case: +-0, +-1, +-inf, NaN, a subnormal and,
    if ``largest``, the largest finite magnitude (whose square overflows)."""
    rng = np.random.default_rng(seed)
    x = np.asarray(rng.standard_normal(shape)).astype(dtype)
    info = np.finfo(dtype)
    hard = [0.0, -0.0, 1.0, -1.0, np.inf, -np.inf, np.nan, info.smallest_subnormal] + [-info.max] * largest
    hard = np.array(hard, dtype)
    where = np.asarray(rng.random(shape) < 0.2)
    x[where] = rng.choice(hard, int(where.sum()))
    return x


ACTIVATION_SHAPES = [(), (0,), (7,), (3, 5, 17), (4, 300)]  # 1200 values: the harness's grid-stride loop
GRADIENTS = ["tanh_backward", "sigmoid_backward", "relu_backward"]


@pytest.mark.parametrize("name", GRADIENTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", ACTIVATION_SHAPES)
def test_activation_gradients_are_bit_identical(impl, name, shape, dtype):
    gy, y = activation_values(shape, dtype, 0), activation_values(shape, dtype, 1)
    with np.errstate(over="ignore", invalid="ignore"):  # inf * 0, and the square of the largest value
        for a, b in [(gy, y), (gy.T, y.T)]:  # transposed: inputs that are not contiguous
            assert_bits(getattr(impl, name)(a, b), getattr(numpy_impl, name)(a, b))


def test_relu_backward_passes_gy_only_where_y_is_positive(impl):
    y = np.array([1.0, 0.0, -0.0, -1.0, np.nan, np.inf, -np.inf, 5e-324, 2.0])
    gy = np.array([np.nan, np.inf, np.nan, -np.inf, np.inf, -2.0, np.nan, -0.0, -0.0])
    expected = np.array([np.nan, 0.0, 0.0, 0.0, 0.0, -2.0, 0.0, -0.0, -0.0])
    for implementation in (impl, numpy_impl):
        assert_bits(implementation.relu_backward(gy, y), expected)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_activation_gradients_follow_pytorch(torch, dtype):
    # The reference against ATen's backward kernels on the same (gy, y), special values included. ATen
    # fuses multiply-adds and multiplies in another order, so to rounding, and without the values whose
    # products overflow in one order only; ReLU's differs where y is NaN: PyTorch passes gy there.
    gy, y = (activation_values((40, 50), dtype, seed, largest=False) for seed in (0, 1))
    tgy, ty = torch.from_numpy(gy), torch.from_numpy(y)
    aten = torch.ops.aten
    with np.errstate(over="ignore", invalid="ignore"):
        pairs = [(numpy_impl.tanh_backward(gy, y), aten.tanh_backward(tgy, ty).numpy()),
                 (numpy_impl.sigmoid_backward(gy, y), aten.sigmoid_backward(tgy, ty).numpy())]
        for ours, theirs in pairs:
            assert_same(np.isfinite(ours), np.isfinite(theirs))
            finite = np.isfinite(ours)
            assert_same(ours[~finite], theirs[~finite])
            # Where 1 - y*y (or 1 - y) cancels, y*y's rounding (an ulp of 1, times gy) is all that is
            # left; a subnormal gy is rounded to a multiple of the smallest one.
            info = np.finfo(dtype)
            slack = 1e-6 * np.abs(theirs) + 2 * info.eps * np.abs(gy) + 2 * info.smallest_subnormal
            assert (np.abs(ours - theirs)[finite] <= slack[finite]).all()
    theirs = aten.threshold_backward(tgy, ty, 0).numpy()
    ours = numpy_impl.relu_backward(gy, y)
    numbers = ~np.isnan(y)
    assert_same(ours[numbers], theirs[numbers])
    assert not ours[~numbers].any()
    assert_same(theirs[~numbers], gy[~numbers])


# Float32 tanh: |t - tanh x| in ulps of tanh x (the float32 spacing of its binade), against float64
# tanh. The rational approximation of the Numba and the CUDA kernels is within 6.14 ulp over every
# float32 in [-10, 10] (the worst at x = 6.533985) and +-1 past that.
TANH_ULPS = 6.5
# Float64: the distance in ulps to NumPy's tanh (within 1.2 ulp of tanh, measured). The Numba kernels
# call NumPy's tanh; CUDA's is within 1 ulp (documented), glibc's, which the harness runs, within 2.2
# (measured).
TANH_ULPS_FLOAT64 = 3


def tanh_inputs(dtype):
    """float32: every 1024th float32 from 0 to 10 (8192 in each binade, subnormals included), the
    4000 around the worst case of the Numba kernels, and their negatives; float64: 10**5 values
    spread alike over magnitudes from 1e-310 to 20. Both: +-0, +-inf, NaN, the largest magnitude."""
    if dtype == np.float32:
        ten, hardest = (int(np.array(v, np.float32).view(np.uint32)) for v in (10.0, 6.533985))
        grid = np.arange(0, ten + 1, 1024, dtype=np.uint32)
        near = np.arange(hardest - 2000, hardest + 2000, dtype=np.uint32)
        x = np.concatenate([grid, near]).view(np.float32)
    else:
        x = 10.0 ** np.random.default_rng(0).uniform(-310, np.log10(20), 10**5)
    special = np.array([np.inf, np.nan, np.finfo(dtype).max, 0.0], dtype)
    return np.concatenate([x, special, -x, -special])


def ulps_from_tanh(t, x):
    exact = np.tanh(x.astype(np.float64))
    _, exponent = np.frexp(exact)
    return np.abs(t.astype(np.float64) - exact) / np.ldexp(1.0, np.maximum(exponent - 24, -149))


@pytest.mark.parametrize("dtype", DTYPES)
def test_tanh_forward_is_within_its_error(impl, dtype):
    x = tanh_inputs(dtype)
    t = impl.tanh_forward(x)
    assert t.dtype == x.dtype and t.shape == x.shape
    nan = np.isnan(x)
    assert np.isnan(t[nan]).all() and not np.isnan(t[~nan]).any()
    zero = x == 0
    assert_bits(t[zero], x[zero])  # tanh(-0) = -0
    x, t = x[~nan], t[~nan]
    if dtype == np.float32:
        assert ulps_from_tanh(t, x).max() <= TANH_ULPS
    elif impl.name == "numba":
        assert_same(t, numpy_impl.tanh_forward(x))
    else:
        assert np.abs(t.view(np.int64) - numpy_impl.tanh_forward(x).view(np.int64)).max() <= TANH_ULPS_FLOAT64


def test_float32_tanh_is_the_same_function_on_the_cpu_and_the_gpu(impl, numba_impl):
    x = tanh_inputs(np.float32)
    assert_bits(impl.tanh_forward(x), numba_impl.tanh_forward(x))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size, weight_decay", [(5, 0.0), (3000, 0.01), (70000, 0.0)])
def test_adam_update_is_bit_identical(impl, size, weight_decay, dtype):
    # In place, so not through impl's check that inputs come back unchanged: the arrays go to the
    # device, take five steps there and come back to be compared with the reference's.
    rng = np.random.default_rng(size)
    start = [rng.standard_normal(size).astype(dtype), np.zeros(size, dtype), np.zeros(size, dtype)]
    grads = [rng.standard_normal(size).astype(dtype) for _ in range(5)]
    ours, reference = [impl._to_device(a.copy()) for a in start], [a.copy() for a in start]
    for t, g in enumerate(grads, 1):
        settings = (0.9, 0.999, 0.01 / (1 - 0.9 ** t), (1 - 0.999 ** t) ** 0.5, 1e-8, weight_decay)
        impl.module.adam_update(ours[0], impl._to_device(g), ours[1], ours[2], *settings)
        numpy_impl.adam_update(reference[0], g, reference[1], reference[2], *settings)
    for a, b in zip(ours, reference):
        assert_same(impl._to_host(a), b)
    assert np.abs(reference[0] - start[0]).max() > 0.01


def test_kernels_run_as_plain_python_with_the_jit_disabled():
    # NUMBA_DISABLE_JIT=1 is how a kernel is stepped through in a debugger; it must still be right.
    pytest.importorskip("numba")
    code = """if True:
        import numpy as np
        from minidl.kernels import numba_impl as nb, numpy_impl as ref
        assert not hasattr(nb.pooling._max_pool, "py_func")  # a plain function, not a dispatcher
        rng = np.random.default_rng(0)
        x, col = rng.standard_normal((2, 3, 5, 4)), rng.standard_normal((2, 12, 4))
        pairs = [(nb.im2col(x, (2, 3), (1, 2), (1, 1), (2, 1)), ref.im2col(x, (2, 3), (1, 2), (1, 1), (2, 1))),
                 (nb.col2im(col, (2, 3, 3, 3), (2, 2), (1, 1), (0, 0), (1, 1)),
                  ref.col2im(col, (2, 3, 3, 3), (2, 2), (1, 1), (0, 0), (1, 1)))]
        pairs += zip(nb.max_pool2d_forward(x, (3, 2), (2, 1), (1, 1), True),
                     ref.max_pool2d_forward(x, (3, 2), (2, 1), (1, 1), True))
        pairs.append((nb.avg_pool2d_backward(x, (2, 3, 9, 5), (2, 2), (2, 1), (1, 0), True, False),
                      ref.avg_pool2d_backward(x, (2, 3, 9, 5), (2, 2), (2, 1), (1, 0), True, False)))
        pairs += zip(nb.lrn_forward(x, 3, 2.0, 0.75, 2.0), ref.lrn_forward(x, 3, 2.0, 0.75, 2.0))
        pairs += zip(nb.batch_norm_forward(x, np.ones(3), np.zeros(3), 1e-5),
                     ref.batch_norm_forward(x, np.ones(3), np.zeros(3), 1e-5))
        g = rng.standard_normal(x.shape)
        pairs += [(getattr(nb, name)(g, x), getattr(ref, name)(g, x))
                  for name in ("tanh_backward", "sigmoid_backward", "relu_backward")]
        start = [rng.standard_normal(7), rng.standard_normal(7), np.zeros(7), np.zeros(7)]
        for module in (nb, ref):
            arrays = [a.copy() for a in start]
            module.adam_update(*arrays, 0.9, 0.99, 0.1, 0.5, 1e-8, 0.1)
            pairs.append(arrays[0])
        pairs[-2:] = [tuple(pairs[-2:])]
        pairs += [(nb.tanh_forward(x), ref.tanh_forward(x)),
                  (nb.tanh_forward(x.astype(np.float32)), ref.tanh_forward(x.astype(np.float32)))]
        m = rng.standard_normal((16, 2, 12))
        pairs += [(nb.winograd_input_transform(x, (1, 0)), ref.winograd_input_transform(x, (1, 0))),
                  (nb.winograd_output_transform(m, (2, 2, 5, 3)), ref.winograd_output_transform(m, (2, 2, 5, 3))),
                  (nb.winograd_output_transform_adjoint(x), ref.winograd_output_transform_adjoint(x))]
        for a, b in pairs:  # float32 tanh: the rational approximation, to float32's rounding
            tol = 1e-6 if a.dtype == np.float32 else 1e-12
            np.testing.assert_allclose(a, b, rtol=tol, atol=tol)
    """
    env = dict(os.environ, NUMBA_DISABLE_JIT="1")
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


# --- choosing the implementation ----------------------------------------------------------

def test_numba_is_not_imported_by_importing_minidl():
    code = "import minidl, sys; assert 'numba' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_the_kernels_setting_and_its_context():
    x = np.ones((1, 1, 2, 2), np.float32)
    with mdl.using_config("kernels", "numpy"):
        assert mdl.config.kernels == "numpy"
        assert kernels.implementation(x) is numpy_impl
        with pytest.raises(RuntimeError):
            with mdl.using_config("kernels", "auto"):
                raise RuntimeError("the previous choice comes back after an error too")
        assert mdl.config.kernels == "numpy"
    with pytest.raises(ValueError, match=r"config.kernels: unknown kernel set 'cuda'; expected one of auto, numpy, "
                                         r"numba"):
        mdl.config.kernels = "cuda"


def test_numba_kernels_serve_float32_and_float64_only(numba_impl):
    with mdl.using_config("kernels", "numba"):
        assert mdl.config.kernels == "numba"
        for dtype in DTYPES:
            assert kernels.implementation(np.ones(2, dtype), np.zeros(2, np.int64)) is numba_impl
        # float16, or a mix of dtypes, is left to the reference, which promotes like NumPy
        assert kernels.implementation(np.ones(2, np.float16)) is numpy_impl
        assert kernels.implementation(np.ones(2, np.float32), np.ones(2)) is numpy_impl
        x = mdl.tensor(np.ones((1, 2, 4, 4), np.float16))
        assert mdl.nn.functional.max_pool2d(x, 2).dtype == np.float16


def _forget_kernels(monkeypatch):
    """As if the kernels setting had never been read in this process (it reads its default once)."""
    monkeypatch.delitem(mdl.config._process, "kernels", raising=False)


def test_the_default_comes_from_the_environment(monkeypatch):
    with mdl.using_config("kernels", mdl.config.kernels):  # restores this process's choice afterwards
        _forget_kernels(monkeypatch)
        monkeypatch.setenv("MINIDL_KERNELS", "numpy")
        assert mdl.config.kernels == "numpy"
        _forget_kernels(monkeypatch)
        monkeypatch.setenv("MINIDL_KERNELS", "fast")
        with pytest.raises(ValueError, match=r"MINIDL_KERNELS: unknown kernel set 'fast'"):
            mdl.config.kernels
        _forget_kernels(monkeypatch)
        monkeypatch.delenv("MINIDL_KERNELS")
        assert mdl.config.kernels in ("numpy", "numba")  # 'auto'


def test_auto_and_numba_without_numba(monkeypatch):
    with mdl.using_config("kernels", mdl.config.kernels):
        monkeypatch.setitem(sys.modules, "numba", None)  # `import numba` now raises ImportError
        with pytest.raises(ImportError, match=r"kernels 'numba' asked for, but Numba cannot be imported .*"
                                              r"`pip install numba`"):
            mdl.config.kernels = "numba"
        mdl.config.kernels = "auto"
        assert mdl.config.kernels == "numpy"
        monkeypatch.undo()


def test_configure_process_limits_numba_threads_with_omp_num_threads():
    pytest.importorskip("numba")
    code = ("import minidl; minidl.configure_process(); import numba; "
            "n = numba.get_num_threads(); assert n == 1, n")
    env = {k: v for k, v in os.environ.items() if k != "NUMBA_NUM_THREADS"}
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(env, OMP_NUM_THREADS="1"))


# --- the reference on the GPU: no host reads, no scatter ---------------------------------------

class _DeviceLike(np.ndarray):
    """An array that, like a cupy.ndarray, must not be read back on the host: every way Python
    turns an array's value into a bool or a number raises, so a kernel that branches on values
    (and on the GPU would wait for the device) fails here."""

    def _host_read(self, *args):
        raise AssertionError("a host read of array values: on CuPy this waits for the GPU")

    __bool__ = __int__ = __float__ = __index__ = item = tolist = _host_read


class _DeviceModule:
    """numpy, with every array it returns made _DeviceLike and, refused, the calls that read
    values back or scatter with atomics on CuPy (bincount reads the largest index back;
    sliding_window_view checks the window on the device; add.at and scatter are atomics)."""

    forbidden = {"bincount", "add", "nonzero", "argwhere", "unique"}

    def __init__(self, module=np):
        self._module = module

    def __getattr__(self, name):
        if name in self.forbidden:
            raise AssertionError(f"xp.{name}: on CuPy it reads back or scatters")
        value = getattr(self._module, name)
        if name == "lib":
            return _DeviceModule(value)
        if name == "stride_tricks":
            return _DeviceModule(value)
        if name == "sliding_window_view":
            raise AssertionError("sliding_window_view: CuPy's checks the window on the GPU")
        if callable(value) and not isinstance(value, type):
            def wrapped(*args, **kwargs):
                out = value(*args, **kwargs)
                return out.view(_DeviceLike) if type(out) is np.ndarray else out
            return wrapped
        return value


def kernel_calls(dtype=np.float64, seed=3):
    """One call of every function of the kernel interface, on host arrays of ``dtype``: (name,
    args). Integer arguments (argmax) stay int64."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    conv = ((3, 2), (2, 1), (1, 1), (1, 2))
    col = rng.standard_normal(numpy_impl.im2col(x, *conv).shape).astype(dtype)
    pool = ((3, 2), (2, 2), (1, 1), True)
    y, argmax = numpy_impl.max_pool2d_forward(x, *pool)
    gy = rng.standard_normal(y.shape).astype(dtype)
    lrn = (3, 2.0, 0.75, 2.0)
    ly, scale = numpy_impl.lrn_forward(x, *lrn)
    gamma, beta = rng.uniform(0.5, 2, 3).astype(dtype), rng.standard_normal(3).astype(dtype)
    _, mean, invstd = numpy_impl.batch_norm_forward(x, gamma, beta, 1e-5)
    m = rng.standard_normal((16, 3, 2 * 3 * 3)).astype(dtype)
    folded = rng.standard_normal(numpy_impl.im2col(x, *conv, None, True).shape).astype(dtype)
    ty = numpy_impl.tanh_forward(x)
    return [("im2col", x, *conv), ("col2im", col, x.shape, *conv), ("im2col", x, *conv, None, True),
            ("col2im", folded, x.shape, *conv, True), ("max_pool2d_forward", x, *pool),
            ("max_pool2d_backward", gy, argmax, x.shape, *pool[:3]), ("avg_pool2d_forward", x, *pool, False),
            ("avg_pool2d_backward", gy, x.shape, *pool, False), ("lrn_forward", x, *lrn),
            ("lrn_backward", x, ly, scale, x, *lrn), ("batch_norm_forward", x, gamma, beta, 1e-5),
            ("batch_norm_backward", x, x, gamma, mean, invstd), ("winograd_input_transform", x, (1, 0)),
            ("winograd_output_transform", m, (2, 3, 6, 5)), ("winograd_output_transform_adjoint", x),
            ("tanh_forward", x), ("tanh_backward", x, ty), ("sigmoid_backward", x, ty * 0.5 + 0.5),
            ("relu_backward", x, ly)]


def _on_a_device(monkeypatch):
    """numpy_impl sees _DeviceModule as the array module of every array."""
    device = _DeviceModule()
    monkeypatch.setattr(backend, "get_array_module", lambda *arrays: device)
    for name in ("im2col", "winograd"):  # these two import the function itself
        monkeypatch.setattr(sys.modules[f"minidl.kernels.numpy_impl.{name}"], "get_array_module",
                            lambda *arrays: device)
    return device


def test_the_reference_reads_nothing_back_and_scatters_nothing(monkeypatch):
    # What the CuPy fallback (float16, mixed dtypes) needs; batch norm uses only array methods.
    calls = kernel_calls()
    expected = [getattr(numpy_impl, name)(*args) for name, *args in calls]
    _on_a_device(monkeypatch)
    for (name, *args), want in zip(calls, expected):
        args = [a.view(_DeviceLike) if isinstance(a, np.ndarray) else a for a in args]
        got = getattr(numpy_impl, name)(*args)
        for g, w in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,)):
            np.testing.assert_array_equal(np.asarray(g), w, err_msg=name)


def test_the_device_probe_catches_what_it_must(monkeypatch):
    xp = _on_a_device(monkeypatch)
    a = np.ones(3).view(_DeviceLike)
    with pytest.raises(AssertionError, match="host read"):
        bool((a > 0).any())
    with pytest.raises(AssertionError, match="bincount"):
        xp.bincount(np.arange(3))
    with pytest.raises(AssertionError, match="sliding_window_view"):
        xp.lib.stride_tricks.sliding_window_view(a, 2)

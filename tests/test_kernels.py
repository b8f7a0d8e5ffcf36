"""The kernel implementations against the NumPy reference, and choosing between them.

Every compiled implementation (the ``impl`` fixture: the Numba kernels, the CUDA kernels run on
the CPU by the harness, the CUDA kernels on a GPU where there is one) is run on random geometries
(stride, padding, dilation, ceil_mode, count_include_pad, rectangular kernels, overlapping and
gapped windows) in float32 and float64 and compared with ``numpy_impl``. Where an implementation
adds in the reference's order (im2col, col2im, pooling, LRN's window sums, the Winograd input
transform and output adjoint) the results must be identical bit for bit; batch norm, whose
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
        m = rng.standard_normal((16, 2, 12))
        pairs += [(nb.winograd_input_transform(x, (1, 0)), ref.winograd_input_transform(x, (1, 0))),
                  (nb.winograd_output_transform(m, (2, 2, 5, 3)), ref.winograd_output_transform(m, (2, 2, 5, 3))),
                  (nb.winograd_output_transform_adjoint(x), ref.winograd_output_transform_adjoint(x))]
        for a, b in pairs:
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
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
    return [("im2col", x, *conv), ("col2im", col, x.shape, *conv), ("im2col", x, *conv, None, True),
            ("col2im", folded, x.shape, *conv, True), ("max_pool2d_forward", x, *pool),
            ("max_pool2d_backward", gy, argmax, x.shape, *pool[:3]), ("avg_pool2d_forward", x, *pool, False),
            ("avg_pool2d_backward", gy, x.shape, *pool, False), ("lrn_forward", x, *lrn),
            ("lrn_backward", x, ly, scale, x, *lrn), ("batch_norm_forward", x, gamma, beta, 1e-5),
            ("batch_norm_backward", x, x, gamma, mean, invstd), ("winograd_input_transform", x, (1, 0)),
            ("winograd_output_transform", m, (2, 3, 6, 5)), ("winograd_output_transform_adjoint", x)]


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

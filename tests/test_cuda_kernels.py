"""The CUDA kernels (``minidl.kernels.cuda_impl``) without a GPU.

Every kernel source is compiled with nvcc, for dtype float32 and float64, exactly as CuPy
would hand it to NVRTC, for the oldest architecture CUDA 13 builds (sm_75) and for Hopper
(sm_90), with every warning an error and local memory or spills counted as warnings. The
kernels' results against the NumPy reference are tested in ``test_kernels.py``, with the other
implementations, through the CPU harness (``cuda_host.py``: the same sources built with g++ and
launched thread by thread, swapped in at ``_module.function``); here are what is particular to
the CUDA set: the seam that compiles and launches, launch sizes, writing into a workspace, and
which implementation runs on CuPy arrays.
"""
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from minidl import backend
from minidl.kernels import cuda_impl, numpy_impl
from minidl.kernels.cuda_impl import _module
from test_kernels import DTYPES, assert_same, kernel_calls

STEMS = sorted(p.stem for p in Path(_module.__file__).parent.glob("*.cu"))
ARCHS = ["-gencode", "arch=compute_75,code=sm_75", "-gencode", "arch=compute_90,code=sm_90"]
# The kernels that compute in double even for float32, on purpose: the float64 sums of max
# pooling's backward and of the batch-norm statistics.
DOUBLE_KERNELS = {"max_pool_backward", "sum_partials", "square_partials", "mean_from_partials",
                  "invstd_from_partials", "grad_partials", "totals_from_partials"}


# --- compiling for the GPU ------------------------------------------------------------------

@pytest.fixture(scope="module")
def nvcc_builds(tmp_path_factory):
    """Every (file, dtype) compiled by nvcc, on all cores at once: the folder that keeps the
    intermediate files (the PTX among them), and (file, dtype) -> nvcc's result."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc (the CUDA compiler) is not installed")
    directory = tmp_path_factory.mktemp("nvcc")

    def build(stem, dtype):
        path = directory / f"{stem}-{np.dtype(dtype).name}.cu"
        path.write_text(_module.source(stem, dtype))
        return subprocess.run([nvcc, "--fatbin", *ARCHS, *_module.OPTIONS, "-Xptxas", "-warn-lmem-usage,-warn-spills",
                               "-Werror", "all-warnings", "--keep", "--keep-dir", str(directory),
                               "-o", str(path.with_suffix(".fatbin")), str(path)], capture_output=True, text=True)

    with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
        futures = {(stem, dtype): pool.submit(build, stem, dtype) for stem in STEMS for dtype in DTYPES}
        return directory, {key: future.result() for key, future in futures.items()}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("stem", STEMS)
def test_kernels_compile_with_nvcc(nvcc_builds, stem, dtype):
    _, results = nvcc_builds
    result = results[stem, dtype]
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("stem", STEMS)
def test_float32_kernels_compute_in_float32(nvcc_builds, stem):
    # A double literal or math function would silently promote; in PTX it shows as .f64 instructions.
    directory, _ = nvcc_builds
    entries = (directory / f"{stem}-float32.compute_75.ptx").read_text().split(".entry ")[1:]
    assert entries
    for entry in entries:
        name = entry.split("(")[0]
        assert (re.search(r"\.f64\b", entry) is not None) == (name in DOUBLE_KERNELS), name


def test_the_compiled_text_is_the_element_type_then_the_file():
    for stem in STEMS:
        for dtype, c_type in [(np.float32, "float"), (np.float64, "double")]:
            text = _module.source(stem, dtype)
            assert text == f"typedef {c_type} T;\n" + (Path(_module.__file__).parent / f"{stem}.cu").read_text()
            assert "#include" not in text  # NVRTC has no standard headers
    with pytest.raises(TypeError, match="float32 and float64, not float16"):
        _module.source("pooling", np.float16)


# --- the seam, with a stand-in for CuPy -------------------------------------------------------

class _FakeCupy:
    """Records what the seam asks CuPy for."""

    def __init__(self):
        self.modules, self.launches = [], []
        fake = self

        class RawModule:
            def __init__(self, code, options):
                fake.modules.append((code, options))

            def get_function(self, name):
                return lambda grid, block, args: fake.launches.append((name, grid, block, args))

        self.RawModule = RawModule


def test_the_seam_compiles_each_file_once_per_dtype_and_launches_on_the_shape(monkeypatch):
    fake = _FakeCupy()
    monkeypatch.setattr(backend, "cupy", lambda: fake)
    _module._compiled.cache_clear()
    _module.function.cache_clear()
    try:
        x = np.zeros(3, np.float32)
        for n in (1000, 1, 0, 10**9):
            _module.launch("pooling", "max_pool_forward", np.dtype(np.float32), n, (x,))
        _module.launch("pooling", "avg_pool_forward", np.dtype(np.float32), 5, (x,))
        _module.launch("pooling", "avg_pool_forward", np.dtype(np.float64), 5, (x,))
    finally:
        _module._compiled.cache_clear()
        _module.function.cache_clear()
    assert fake.modules == [(_module.source("pooling", np.float32), _module.OPTIONS),
                            (_module.source("pooling", np.float64), _module.OPTIONS)]
    blocks = [grid for _, grid, _, _ in fake.launches]
    assert blocks == [(4,), (1,), (_module.MAX_BLOCKS,), (1,), (1,)]  # n = 0 launches nothing
    assert all(block == (_module.BLOCK,) for _, _, block, _ in fake.launches)
    name, _, _, args = fake.launches[0]
    assert name == "max_pool_forward" and type(args[0]) is np.int64 and args[0] == 1000 and args[1] is x


def test_importing_the_cuda_kernels_does_not_import_cupy():
    code = "import minidl.kernels.cuda_impl, sys; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# --- running the kernels on the CPU -----------------------------------------------------------

@pytest.fixture
def cuda(cuda_harness, monkeypatch):
    """``cuda_impl`` with its kernels run by the CPU harness. At most 3 blocks a launch: the
    larger cases then also run the kernels' grid-stride loops, and the harness's Python loop
    over the threads stays short."""
    monkeypatch.setattr(_module, "function", cuda_harness.function)
    monkeypatch.setattr(_module, "MAX_BLOCKS", 3)
    return cuda_impl


def run(f, *args, **outputs):
    """``f(*args, **outputs)``, checking that the arrays in ``args`` come back unmodified."""
    arrays = [a for a in args if isinstance(a, np.ndarray)]
    before = [a.copy() for a in arrays]
    out = f(*args, **outputs)
    for a, b in zip(arrays, before):
        assert_same(a, b)
    return out


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_into_a_workspace_of_a_non_contiguous_input(cuda, dtype):
    x = np.random.default_rng(0).standard_normal((2, 6, 7, 3)).astype(dtype).transpose(0, 3, 1, 2)
    for geometry in [((1, 1), (1, 1), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 1), (1, 2))]:
        expected = numpy_impl.im2col(x, *geometry)
        out = np.full(expected.shape, np.nan, dtype)
        assert run(cuda.im2col, x, *geometry, out=out) is out
        assert_same(out, expected)


def test_im2col_returns_the_input_where_the_columns_are_the_input(cuda):
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    for geometry in [((1, 1), (1, 1), (0, 0), (1, 1)), ((4, 5), (2, 3), (0, 0), (1, 1))]:
        out = np.zeros_like(numpy_impl.im2col(x, *geometry))
        col = cuda.im2col(x, *geometry, out)
        assert np.shares_memory(col, x) and not out.any()
        assert_same(col, numpy_impl.im2col(x, *geometry))


@pytest.mark.parametrize("grid, block", [((1,), (1,)), ((2,), (3,)), ((40,), (64,))])
def test_results_do_not_depend_on_the_launch_size(cuda, cuda_harness, monkeypatch, grid, block):
    # One thread doing all the work, a few threads each doing many items, and far more threads
    # than items (2560 for at most 540): every kernel is launched with this grid and block instead.
    monkeypatch.setattr(_module, "function",
                        lambda stem, dtype, name: lambda _grid, _block, args: cuda_harness.function(stem, dtype, name)(
                            grid, block, args))
    calls = kernel_calls()
    for name, *args in calls:
        ours, ref = getattr(cuda, name)(*args), getattr(numpy_impl, name)(*args)
        for a, b in zip(ours if isinstance(ours, tuple) else (ours,), ref if isinstance(ref, tuple) else (ref,)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12, err_msg=name)


def test_other_dtypes_are_refused(cuda):
    with pytest.raises(TypeError, match="float32 and float64, not float16"):
        cuda.max_pool2d_forward(np.ones((1, 1, 2, 2), np.float16), (2, 2), (2, 2), (0, 0), False)


# --- which implementation runs on CuPy arrays -----------------------------------------------

class _FakeCupyArray:
    """Stands in for a cupy.ndarray where only the choice of implementation is tested:
    minidl recognises CuPy arrays by their type's module."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)


_FakeCupyArray.__module__ = "cupy"


@pytest.mark.parametrize("kernel_set", ["numpy", "numba"])
def test_cupy_arrays_run_the_cuda_kernels_whatever_the_cpu_kernel_set(kernel_set):
    from minidl import kernels

    if kernel_set == "numba":
        pytest.importorskip("numba")
    with mdl.using_config("kernels", kernel_set):
        for dtype in DTYPES:
            assert kernels.implementation(_FakeCupyArray(dtype), _FakeCupyArray(np.int64)) is cuda_impl
        # float16, or float32 next to float64, is not compiled: the reference runs it on CuPy
        assert kernels.implementation(_FakeCupyArray(np.float16)) is numpy_impl
        assert kernels.implementation(_FakeCupyArray(np.float32), _FakeCupyArray(np.float64)) is numpy_impl

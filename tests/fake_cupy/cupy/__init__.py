"""A stand-in for CuPy made of NumPy, so that tests/test_gpu.py runs in CI, which has no GPU
(tests/test_gpu_on_fake_cupy.py puts this folder first on the path of a subprocess). Test code,
not a product: it never runs in the main test process and nothing in minidl knows of it.

What it holds minidl to, as CuPy would:
- arrays are a numpy.ndarray subclass whose type's module is 'cupy', so minidl takes them for
  CuPy arrays, and a ufunc or array function that mixes them with host arrays raises TypeError;
- `.get()` is the only way back to the host, `.data` is a pointer object, not the array;
- RawModule compiles minidl's kernel sources for the CPU with tests/cuda_host.py and launches
  them, and refuses a host array passed to a kernel.
What it cannot: implicit conversions NumPy does itself (np.asarray of a device array succeeds
here, where CuPy raises), streams, memory pools, timing. A real GPU run (benchmarks/gpu_check.sh)
still has the last word.
"""
import sys
import tempfile
import types
from pathlib import Path

import numpy as _np

__version__ = "0.0+fake"


class _DeviceObj:
    def __init__(self, id=0):
        self.id = int(id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def synchronize(self):
        pass

    @property
    def compute_capability(self):
        return "90"


def _base(a):
    return a.view(_np.ndarray) if isinstance(a, ndarray) else a


def _unwrap(obj):
    if isinstance(obj, ndarray):
        return obj.view(_np.ndarray)
    if isinstance(obj, tuple):
        return tuple(_unwrap(o) for o in obj)
    if isinstance(obj, list):
        return [_unwrap(o) for o in obj]
    if isinstance(obj, dict):
        return {k: _unwrap(v) for k, v in obj.items()}
    return obj


def _flatten(obj, out=None):
    out = [] if out is None else out
    if isinstance(obj, (tuple, list)):
        for o in obj:
            _flatten(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten(o, out)
    else:
        out.append(obj)
    return out


def _check(objs):
    ours = any(isinstance(o, ndarray) for o in objs)
    host = [o for o in objs if type(o) is _np.ndarray]
    if ours and host:
        raise TypeError(f"Unsupported type {type(host[0])} (fake cupy: a host array mixed with device arrays)")


def _wrap(result):
    if isinstance(result, ndarray):
        return result
    if type(result) is _np.ndarray:
        return result.view(ndarray)
    if isinstance(result, _np.generic):
        return _np.asarray(result).view(ndarray)
    if isinstance(result, tuple):
        return tuple(_wrap(r) for r in result)
    if isinstance(result, list):
        return [_wrap(r) for r in result]
    return result


class MemoryPointer:
    def __init__(self, ptr):
        self.ptr = ptr


MemoryPointer.__module__ = "cupy.cuda.memory"


class ndarray(_np.ndarray):
    @property
    def data(self):  # as CuPy's: a MemoryPointer (minidl's get_array_module looks through .data)
        return MemoryPointer(self.ctypes.data)

    @property
    def device(self):
        return _DeviceObj(0)

    def get(self, stream=None, order="C", out=None, blocking=True):
        return _np.array(self.view(_np.ndarray), copy=True, order=order)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        _check(list(inputs) + list(out or ()))
        if out is not None:
            kwargs["out"] = tuple(_base(o) for o in out)
        result = getattr(ufunc, method)(*(_unwrap(list(inputs))), **_unwrap(kwargs))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result)

    def __array_function__(self, func, types_, args, kwargs):
        _check(_flatten(args) + _flatten(kwargs))
        return _wrap(func(*_unwrap(args), **_unwrap(kwargs)))


_CREATION = {"asarray", "array", "asanyarray"}


def _wrapfn(name, fn):
    if name in _CREATION:
        def creation(a, *args, **kwargs):
            if isinstance(a, ndarray):
                return _wrap(getattr(_np, name)(a.view(_np.ndarray), *args, **kwargs))
            r = _np.array(_unwrap(a), *args, **kwargs)  # a host -> device copy, never a view
            return r.view(ndarray)
        return creation
    if name == "ascontiguousarray":
        def contiguous(a, dtype=None):
            if not isinstance(a, ndarray):
                raise TypeError("Argument 'a' has incorrect type (expected cupy._core.core._ndarray_base)")
            return _wrap(_np.ascontiguousarray(a.view(_np.ndarray), dtype=dtype))
        return contiguous

    def wrapper(*args, **kwargs):
        _check(_flatten(args) + _flatten(kwargs))
        return _wrap(fn(*_unwrap(args), **_unwrap(kwargs)))
    wrapper.__name__ = name
    return wrapper


def asnumpy(a, stream=None, order="C", out=None, blocking=True):
    return a.get() if isinstance(a, ndarray) else _np.asarray(a)


def __getattr__(name):
    obj = getattr(_np, name)
    if isinstance(obj, (type, _np.ufunc)) or not callable(obj):
        return obj
    return _wrapfn(name, obj)


class _Generator:
    def __init__(self, seed=None):
        self._g = _np.random.default_rng(seed)

    def random(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._g.random(size, dtype=dtype))

    def standard_normal(self, size=None, dtype=_np.float64, out=None):
        return _wrap(self._g.standard_normal(size, dtype=dtype))

    def integers(self, low, high=None, size=None, dtype=_np.int64, endpoint=False):
        return _wrap(self._g.integers(low, high, size, dtype=dtype, endpoint=endpoint))

    def uniform(self, low=0.0, high=1.0, size=None, dtype=_np.float64):
        return _wrap(self._g.uniform(low, high, size).astype(dtype))


random = types.SimpleNamespace(default_rng=lambda seed=None: _Generator(seed))
lib = types.SimpleNamespace(stride_tricks=types.SimpleNamespace(
    as_strided=_wrapfn("as_strided", _np.lib.stride_tricks.as_strided),
    sliding_window_view=_wrapfn("sliding_window_view", _np.lib.stride_tricks.sliding_window_view)))


class _Pool:
    def used_bytes(self):
        return 0

    def total_bytes(self):
        return 0

    def free_all_blocks(self):
        pass


_pool = _Pool()


def get_default_memory_pool():
    return _pool


def get_default_pinned_memory_pool():
    return _pool


_host = None


class RawModule:
    def __init__(self, code=None, options=(), **kwargs):
        global _host
        sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/, for cuda_host
        import cuda_host
        from minidl.kernels.cuda_impl import _module
        # One thread per launch, whose grid-stride loop does all the work: the harness calls each
        # thread from Python, and test_cuda_kernels.py covers the real launch sizes.
        _module.BLOCK, _module.MAX_BLOCKS = 1, 1
        if _host is None:
            _host = cuda_host.Host(tempfile.mkdtemp(prefix="fakecupy"))
        for stem in sorted(p.stem for p in Path(_module.__file__).parent.glob("*.cu")):
            for dtype in (_np.float32, _np.float64):
                if _module.source(stem, dtype) == code:
                    self.stem, self.dtype = stem, _np.dtype(dtype)
        self.options = options

    def get_function(self, name):
        launcher = _host.function(self.stem, self.dtype, name)

        def f(grid, block, args):
            for a in args:
                if type(a) is _np.ndarray:
                    raise TypeError(f"{name}: a host array passed to a device kernel: {[(type(b).__module__, type(b).__name__) for b in args]}")
            launcher(grid, block, tuple(_base(a) for a in args))
        return f


class _Runtime(types.SimpleNamespace):
    pass


def _props(i):
    return {"name": b"Fake GPU (numpy)", "totalGlobalMem": 1 << 34, "major": 9, "minor": 0,
            "multiProcessorCount": 1}


class _Stream:
    null = None

    def synchronize(self):
        pass


class MemoryHook:
    name = "fake"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


cuda = types.SimpleNamespace(MemoryHook=MemoryHook,
    runtime=_Runtime(getDeviceCount=lambda: 1, getDevice=lambda: 0, deviceSynchronize=lambda: None,
                     driverGetVersion=lambda: 13000, runtimeGetVersion=lambda: 13000,
                     getDeviceProperties=_props),
    Device=_DeviceObj, Stream=_Stream, get_current_stream=lambda: _Stream(),
    MemoryPool=_Pool, get_device_id=lambda: 0,
    nvrtc=types.SimpleNamespace(getVersion=lambda: (13, 0)),
)

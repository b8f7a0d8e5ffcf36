"""The one seam between NumPy and CuPy.

Every other module asks this one for the array module (``xp``) of its data and
works unchanged on ``numpy.ndarray`` or ``cupy.ndarray``. CuPy is imported
lazily, the first time a CUDA device is asked for: importing minidl never
imports CuPy, so a broken CUDA install cannot break CPU users.

Device strings follow PyTorch: ``'cpu'``, ``'cuda'`` (the current GPU) and
``'cuda:N'``.

It also chooses the CPU kernels behind ``minidl.kernels`` (`set_kernels`):
the NumPy reference or the Numba ones, with Numba imported lazily like CuPy.
"""
import contextlib
import os

import numpy as np

_cupy = None


class DeviceError(RuntimeError):
    """A device was asked for that is not available, or arrays on different
    devices were mixed in one operation."""


def _is_cupy_array(a):
    # Checked by module name so that CuPy need not be imported to answer.
    return type(a).__module__.startswith("cupy")


def cupy():
    """Return the CuPy module, importing it on first use.

    Raises DeviceError naming what is missing: the CuPy package, or a usable
    GPU behind it.
    """
    global _cupy
    if _cupy is not None:
        return _cupy
    try:
        import cupy as cp
    except ImportError as e:
        raise DeviceError(
            "device 'cuda' needs CuPy, which is not installed "
            f"({e}). Install the wheel that matches your CUDA toolkit: "
            "`pip install cupy-cuda12x` (CUDA 12) or `pip install cupy-cuda13x` (CUDA 13), "
            "or `pip install minidl[gpu]`."
        ) from None
    try:
        count = cp.cuda.runtime.getDeviceCount()
    except Exception as e:  # CuPy raises its own CUDARuntimeError subclasses
        raise DeviceError(
            f"device 'cuda' asked for, CuPy {cp.__version__} is installed, but no usable "
            f"GPU was found ({type(e).__name__}: {e}). Check the NVIDIA driver "
            "(`nvidia-smi`) and that the CuPy wheel matches its CUDA version."
        ) from None
    if count == 0:
        raise DeviceError(
            f"device 'cuda' asked for, CuPy {cp.__version__} is installed, but no GPU is visible."
        )
    _cupy = cp
    return cp


def get_array_module(*xs):
    """Return ``numpy`` or ``cupy``: the module that owns the given arrays.

    Tensors are looked through to their data. With no CuPy array among
    ``xs`` the answer is ``numpy``, without importing CuPy.
    """
    for x in xs:
        a = getattr(x, "data", x)
        if _is_cupy_array(a):
            return cupy()
    return np


def parse_device(device):
    """Split a device string into ``('cpu', None)`` or ``('cuda', index)``.

    ``'cuda'`` means the current GPU (index None).
    """
    if not isinstance(device, str):
        raise DeviceError(f"device must be a string such as 'cpu', 'cuda' or 'cuda:0'; got {device!r}")
    name, _, index = device.partition(":")
    if name == "cpu" and not index:
        return "cpu", None
    if name == "cuda":
        if not index:
            return "cuda", None
        if index.isdigit():
            return "cuda", int(index)
    raise DeviceError(f"unknown device {device!r}; expected 'cpu', 'cuda' or 'cuda:N'")


def device_of(a):
    """The device string of an array: ``'cpu'`` or ``'cuda:N'``."""
    if _is_cupy_array(a):
        return f"cuda:{a.device.id}"
    return "cpu"


def to_device(a, device):
    """Return ``a`` on ``device``, copying only when it is elsewhere."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return a.get() if _is_cupy_array(a) else a
    cp = cupy()
    if index is None:
        index = cp.cuda.runtime.getDevice()
    if index >= cp.cuda.runtime.getDeviceCount():
        raise DeviceError(
            f"device 'cuda:{index}' asked for, but only {cp.cuda.runtime.getDeviceCount()} GPU(s) are visible"
        )
    if _is_cupy_array(a) and a.device.id == index:
        return a
    with cp.cuda.Device(index):
        return cp.asarray(a)


def as_numpy(a):
    """A host ``numpy.ndarray`` with the values of ``a``."""
    return a.get() if _is_cupy_array(a) else np.asarray(a)


def check_same_device(op_name, arrays):
    """Raise DeviceError if ``arrays`` do not all live on one device."""
    if all(type(a) is np.ndarray for a in arrays):  # the common case, kept cheap
        return
    devices = [device_of(a) for a in arrays]
    if any(d != devices[0] for d in devices):
        raise DeviceError(
            f"{op_name}: inputs are on different devices {devices}; move them to one device "
            "with .to(device) first"
        )


def scatter_add(target, index, values):
    """``target[index] += values``, accumulating where ``index`` repeats."""
    if _is_cupy_array(target):
        import cupyx  # present whenever cupy is; only reached with CuPy arrays

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)


# --- random numbers ---------------------------------------------------------

_seed = None
_numpy_rng = np.random.default_rng()
_cupy_rng = None


def manual_seed(seed):
    """Seed every random source minidl uses (initialisers, dropout, shuffling)."""
    global _seed, _numpy_rng, _cupy_rng
    _seed = int(seed)
    _numpy_rng = np.random.default_rng(_seed)
    _cupy_rng = None  # re-created from _seed on next use


def rng(xp=np):
    """The framework's random generator for array module ``xp``."""
    global _cupy_rng
    if xp is np:
        return _numpy_rng
    if _cupy_rng is None:
        _cupy_rng = xp.random.default_rng(_seed)
    return _cupy_rng


def get_rng_state():
    """The state of the framework's NumPy generator, as plain JSON-able values (for checkpoints)."""
    return {"seed": _seed, "bit_generator": _numpy_rng.bit_generator.state}


def set_rng_state(state):
    """Restore a state from `get_rng_state`, so a resumed run draws the same numbers."""
    global _seed, _cupy_rng
    _seed = state["seed"]
    _numpy_rng.bit_generator.state = state["bit_generator"]
    _cupy_rng = None


# --- kernel implementations ---------------------------------------------------

KERNEL_SETS = ("auto", "numpy", "numba")
_kernels = None  # the resolved name ('numpy' or 'numba'); None until first asked for


def _import_numba():
    """The numba module, or ImportError naming the fix. Imported here, on first use, so that
    importing minidl never pays Numba's import time nor breaks with a broken Numba install."""
    try:
        import numba
    except ImportError as e:
        raise ImportError(
            f"kernels 'numba' asked for, but Numba cannot be imported ({e}). Install it with "
            "`pip install numba`, or choose the NumPy kernels: set_kernels('numpy') or MINIDL_KERNELS=numpy."
        ) from None
    return numba


def _resolve(name, source):
    if name not in KERNEL_SETS:
        raise ValueError(f"{source}: unknown kernel set {name!r}; expected one of {', '.join(KERNEL_SETS)}")
    if name == "auto":
        try:
            _import_numba()
        except ImportError:
            return "numpy"
        return "numba"
    if name == "numba":
        _import_numba()
    return name


def set_kernels(name):
    """Choose the CPU kernels: ``'numba'`` (parallel, compiled), ``'numpy'`` (the reference) or
    ``'auto'`` (Numba when it can be imported, else NumPy). The default comes from the
    environment variable ``MINIDL_KERNELS``, else ``'auto'``. CuPy arrays are unaffected."""
    global _kernels
    _kernels = _resolve(name, "set_kernels")


def get_kernels():
    """The kernel set in use, resolved: ``'numpy'`` or ``'numba'``."""
    global _kernels
    if _kernels is None:
        _kernels = _resolve(os.environ.get("MINIDL_KERNELS", "auto"), "MINIDL_KERNELS")
    return _kernels


@contextlib.contextmanager
def use_kernels(name):
    """``with use_kernels('numpy'): ...`` runs the block with that kernel set, then restores the previous one."""
    old = get_kernels()
    set_kernels(name)
    try:
        yield
    finally:
        set_kernels(old)


def kernel_module(*arrays):
    """The module of kernels (see ``minidl.kernels``) for NumPy ``arrays``.

    The Numba kernels are compiled for float32 and float64 alone; any other mix of dtypes
    (float16, or float32 next to float64) runs on the NumPy reference, which promotes like NumPy.
    """
    if get_kernels() == "numba":
        dtypes = {a.dtype for a in arrays if a.dtype.kind == "f"}
        if len(dtypes) == 1 and dtypes <= {np.dtype(np.float32), np.dtype(np.float64)}:
            from minidl.kernels import numba_impl

            return numba_impl
    from minidl.kernels import numpy_impl

    return numpy_impl

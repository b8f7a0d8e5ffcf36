"""The one seam between NumPy and CuPy: arrays and devices.

Every other module asks this one for the array module (``xp``) of its data and
works unchanged on ``numpy.ndarray`` or ``cupy.ndarray``. CuPy is imported
lazily, the first time a CUDA device is asked for: importing minidl never
imports CuPy, so a broken CUDA install cannot break CPU users.

Device strings follow PyTorch: ``'cpu'``, ``'cuda'`` (the current GPU) and
``'cuda:N'``. Which kernels run on an array is chosen in ``minidl.kernels``;
the random generators live in ``minidl.random``.
"""
import numpy as np

_cupy = None


class DeviceError(RuntimeError):
    """A device was asked for that is not available, or arrays on different
    devices were mixed in one operation."""


def is_cupy_array(a):
    """Whether ``a`` is a ``cupy.ndarray``, answered without importing CuPy (by module name)."""
    return type(a).__module__.startswith("cupy")


def is_array(a):
    """Whether ``a`` is an array minidl computes on: a ``numpy.ndarray`` or a ``cupy.ndarray``."""
    return isinstance(a, np.ndarray) or is_cupy_array(a)


def _gpu_extra_hint():
    """The install command of minidl's gpu extra that fits where this minidl comes from: a source
    checkout (installed in editable mode, or not at all) or an installed package."""
    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(root, "setup.py")):
        return f', or `pip install -e "{root}[gpu]"` (the extra, from this source checkout)'
    return ', or `pip install "minidl[gpu]"`'


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
            "`pip install cupy-cuda12x` (CUDA 12) or `pip install cupy-cuda13x` (CUDA 13)"
            f"{_gpu_extra_hint()}."
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
        if is_cupy_array(x) or is_cupy_array(getattr(x, "data", None)):
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
    if is_cupy_array(a):
        return f"cuda:{a.device.id}"
    return "cpu"


def to_device(a, device):
    """Return ``a`` on ``device``, copying only when it is elsewhere."""
    kind, index = parse_device(device)
    if kind == "cpu":
        return a.get() if is_cupy_array(a) else a
    cp = cupy()
    if index is None:
        index = cp.cuda.runtime.getDevice()
    if index >= cp.cuda.runtime.getDeviceCount():
        raise DeviceError(
            f"device 'cuda:{index}' asked for, but only {cp.cuda.runtime.getDeviceCount()} GPU(s) are visible"
        )
    if is_cupy_array(a) and a.device.id == index:
        return a
    with cp.cuda.Device(index):
        return cp.asarray(a)


def as_numpy(a):
    """A host ``numpy.ndarray`` with the values of ``a``."""
    return a.get() if is_cupy_array(a) else np.asarray(a)


def check_same_device(op_name, arrays):
    """Raise DeviceError if ``arrays`` do not all live on one device."""
    for a in arrays:  # all NumPy arrays is the common case, kept cheap (a loop, not all())
        if type(a) is not np.ndarray:
            break
    else:
        return
    devices = [device_of(a) for a in arrays]
    if any(d != devices[0] for d in devices):
        raise DeviceError(
            f"{op_name}: inputs are on different devices {devices}; move them to one device "
            "with .to(device) first"
        )


def scatter_add(target, index, values):
    """``target[index] += values``, accumulating where ``index`` repeats."""
    if is_cupy_array(target):
        import cupyx  # present whenever cupy is; only reached with CuPy arrays

        cupyx.scatter_add(target, index, values)
    else:
        np.add.at(target, index, values)

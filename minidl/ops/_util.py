"""Small helpers shared by the ops: operand conversion and axis handling."""
import numpy as np

from minidl import backend
from minidl.tensor import Tensor, _to_array


def as_operand(value, like):
    """Make ``value`` a Tensor to combine with tensor ``like``.

    A Python number takes the dtype NumPy's promotion rules (NEP 50) give it
    next to ``like``, so ``float32 * 2.0`` stays float32, as in PyTorch. Anything
    else becomes an array by the rule ``mdl.tensor`` uses (lists of floats are
    float32), on ``like``'s device.
    """
    if isinstance(value, Tensor):
        return value
    xp = backend.get_array_module(like.data)
    if isinstance(value, (bool, int, float)):
        dtype = np.result_type(like.data.dtype, value)
        return Tensor._wrap(xp.asarray(value, dtype=dtype))
    return Tensor._wrap(backend.to_device(_to_array(value), like.device))


def binary_operands(a, b):
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
        a = as_operand(a, b)
    b = as_operand(b, a)
    return a, b


def pick_axis(axis, dim):
    """``dim=`` is PyTorch's spelling of ``axis=``; accept either, not both."""
    if dim is not None:
        if axis is not None:
            raise TypeError("pass axis= or dim=, not both")
        return dim
    return axis


def pick_keepdims(keepdims, keepdim):
    return keepdims if keepdim is None else keepdim


def normalize_axis(op, axis, ndim):
    """Axis as a sorted tuple of non-negative ints (None means every axis)."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, (int, np.integer)) else tuple(axis)
    out = []
    for a in axes:
        if not -ndim <= a < max(ndim, 1):
            raise ValueError(f"{op}: axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(int(a) % max(ndim, 1))
    if len(set(out)) != len(out):
        raise ValueError(f"{op}: repeated axis in {axis}")
    return tuple(sorted(out))


def broadcast_shape(op, *shapes):
    try:
        return np.broadcast_shapes(*shapes)
    except ValueError:
        raise ValueError(
            f"{op}: shapes {' and '.join(str(tuple(s)) for s in shapes)} cannot be broadcast together"
        ) from None

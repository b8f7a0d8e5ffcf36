"""Small helpers shared by the ops: operand conversion, the dtype policy at op entry, and axis handling."""
import numpy as np

from minidl import backend
from minidl.tensor import DEFAULT_FLOAT, Tensor, _to_array, check_dtype, result_type, scalar_dtype

# What an op does with the dtype its inputs promote to (tensor.result_type): the families of the
# table in docs/learn/autograd-engine.md, each following what PyTorch does for the op.
ANY = "any"                # every dtype: add, mul, maximum, sum, max, concat, clip
NUMBER = "number"          # bool refused: sub, neg, abs, relu, pow, matmul, linear
FLOAT = "float"            # bool and integers promoted to float32: exp, log, sqrt, tanh, sigmoid, div
FLOAT_ONLY = "float only"  # bool and integers refused: mean, softmax, conv, pooling, norms, losses, dropout


def op_dtype(op, policy, tensors, what=None):
    """The dtype ``op`` computes in on ``tensors`` (Tensors or arrays) under ``policy`` (above);
    ValueError naming ``op``, the dtypes and what was expected otherwise. ``what`` names the inputs
    in that message."""
    dtype = tensors[0].dtype
    for t in tensors:
        if t.dtype != dtype:
            dtype = result_type(op, [t.data if isinstance(t, Tensor) else t for t in tensors])
            break
    if dtype.kind == "f" and dtype.itemsize <= 8:
        return dtype
    check_dtype(op, dtype)  # a dtype put into .data by hand, past the check at creation
    if policy == ANY:
        return dtype
    if policy == FLOAT:
        return DEFAULT_FLOAT
    got = " and ".join(str(t.dtype) for t in tensors)
    if policy == FLOAT_ONLY:
        what = what or ("input" if len(tensors) == 1 else "inputs")
        article = "a " if len(tensors) == 1 else ""
        raise ValueError(f"{op}: expected {article}floating-point {what}; got {got} (convert first, e.g. x.float())")
    if dtype.kind == "b":
        raise ValueError(f"{op}: not defined for bool tensors; got {got} (convert first, e.g. x.astype(np.int64))")
    return dtype


def compute_dtype(dtype):
    """The dtype a kernel that accumulates (a window's sum, a channel's statistics) runs in: float16
    in float32, as PyTorch does, since float16 sums and squares overflow at 65504; the output goes
    back to the input's dtype."""
    return np.promote_types(dtype, np.float32)


def cast_all(dtype, tensors):
    """``tensors`` converted to ``dtype`` where they differ (a Cast in the graph, so that a mixed-
    precision input gets its gradient back in its own dtype)."""
    for t in tensors:
        if t.data.dtype != dtype:
            return tuple(t if t.dtype == dtype else t.astype(dtype) for t in tensors)
    return tensors  # the common case, without building a tuple: every op passes through here


def operands(op, policy, *tensors, what=None):
    """``tensors`` (made Tensors) in the dtype ``op`` computes in: the entry check of every op's dtypes."""
    for t in tensors:
        if not isinstance(t, Tensor):
            tensors = tuple(t if isinstance(t, Tensor) else Tensor(t) for t in tensors)
            break
    return cast_all(op_dtype(op, policy, tensors, what), tensors)


def as_operand(op, value, like):
    """Make ``value`` a Tensor to combine with tensor ``like`` in ``op``.

    A Python number gets the dtype PyTorch gives it next to ``like`` (`scalar_dtype`): ``float32
    * 2.0`` stays float32, ``int64 * 0.5`` is float32. Anything else becomes an array by the rule
    ``mdl.tensor`` uses (lists of floats are float32), on ``like``'s device.
    """
    if isinstance(value, Tensor):
        return value
    xp = backend.get_array_module(like.data)
    if isinstance(value, (bool, int, float)):
        return Tensor._wrap(xp.asarray(value, dtype=scalar_dtype(op, like.dtype, value)))
    return Tensor._wrap(backend.to_device(_to_array(value), like.device))


def binary_operands(op, policy, a, b):
    """The two operands of a binary op, as Tensors in the dtype it computes in."""
    if not isinstance(a, Tensor):
        if not isinstance(b, Tensor):
            raise TypeError(f"{op}: expected at least one Tensor, got {type(a).__name__} and {type(b).__name__}")
        a = as_operand(op, a, b)
    b = as_operand(op, b, a)
    return operands(op, policy, a, b)


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

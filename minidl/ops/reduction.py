"""Reductions and broadcasting: sum, mean, max, min, sum_to, broadcast_to.

Broadcasting and summing are each other's adjoints: if ``y = broadcast_to(x)``
copies each element of ``x`` to several places, then ``dL/dx`` is the sum of
``dL/dy`` over those places, ``sum_to(gy, x.shape)``; and the gradient of a
sum is its upstream gradient copied back to every summed element.
"""
import numpy as np

from minidl import backend
from minidl.ops._util import ANY, FLOAT_ONLY, normalize_axis, operands, pick_axis, pick_keepdims
from minidl.tensor import Function


def _keepdims_shape(shape, axes):
    """``shape`` with the reduced ``axes`` kept as size 1."""
    return tuple(1 if i in axes else n for i, n in enumerate(shape))


def _check_not_empty(op, shape, axes, what):
    """ValueError unless every reduced axis has elements (a reduction over the others is fine)."""
    if any(shape[a] == 0 for a in axes):
        raise ValueError(f"{op}: cannot {what} over an empty axis; got shape {shape} with axis {axes}")


class BroadcastTo(Function):
    """y = x repeated along new or size-1 axes to ``shape``.  dL/dx = sum_to(dL/dy, x.shape)."""

    keep_inputs = keep_outputs = ()

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        xp = backend.get_array_module(x)
        try:
            return xp.broadcast_to(x, self.shape)
        except ValueError:
            raise ValueError(f"broadcast_to: cannot broadcast shape {x.shape} to {self.shape}") from None

    def backward(self, gy):
        return sum_to(gy, self.in_shape)


class SumTo(Function):
    """y = x summed over the axes that broadcasting ``shape`` to x.shape added or
    stretched.  dL/dx = broadcast_to(dL/dy, x.shape)."""

    keep_inputs = keep_outputs = ()

    def __init__(self, shape):
        self.shape = tuple(shape)

    def forward(self, x):
        self.in_shape = x.shape
        lead = x.ndim - len(self.shape)
        axes = tuple(range(lead)) + tuple(
            lead + i for i, n in enumerate(self.shape) if n == 1 and x.shape[lead + i] != 1
        )
        y = x.sum(axis=axes, keepdims=True) if axes else x
        return y.reshape(self.shape) if lead else y

    def backward(self, gy):
        return broadcast_to(gy, self.in_shape)


def broadcast_to(x, shape):
    if tuple(x.shape) == tuple(shape):
        return x
    return BroadcastTo(shape)(x)


def sum_to(x, shape):
    """Sum ``x`` down to ``shape`` (the reverse of broadcasting ``shape`` up to x.shape)."""
    if tuple(x.shape) == tuple(shape):
        return x
    return SumTo(shape)(x)


class Sum(Function):
    """y = sum of x over ``axis``.  dL/dx = dL/dy broadcast back over the summed axes.
    Bool and integers are summed in int64, as in PyTorch (NumPy would sum uint8 in uint64)."""

    keep_inputs = keep_outputs = ()

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = normalize_axis("sum", self.axis, x.ndim)
        return x.sum(axis=self.axes, keepdims=self.keepdims, dtype=None if x.dtype.kind == "f" else np.int64)

    def backward(self, gy):
        return broadcast_to(gy.reshape(_keepdims_shape(self.in_shape, self.axes)), self.in_shape)


class Mean(Function):
    """y = mean of x over ``axis`` (n elements each).  dL/dx = dL/dy / n, broadcast back."""

    keep_inputs = keep_outputs = ()

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.in_shape = x.shape
        self.axes = normalize_axis("mean", self.axis, x.ndim)
        _check_not_empty("mean", x.shape, self.axes, "average")
        return x.mean(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        n = 1
        for a in self.axes:
            n *= self.in_shape[a]
        return broadcast_to(gy.reshape(_keepdims_shape(self.in_shape, self.axes)), self.in_shape) / n


class _Extremum(Function):
    """Shared code of Max and Min: y = extreme of x over ``axis``.

    dL/dx_i = dL/dy where x_i is the extreme, else 0. Where several elements
    tie for the extreme, the gradient is split evenly between them (as
    PyTorch's ``amax`` does), which keeps it a valid subgradient.
    """

    reduce = None  # "max" or "min"
    keep_inputs = keep_outputs = (0,)

    def __init__(self, axis, keepdims):
        self.axis, self.keepdims = axis, keepdims

    def forward(self, x):
        self.axes = normalize_axis(self.reduce, self.axis, x.ndim)
        _check_not_empty(self.reduce, x.shape, self.axes, "reduce")
        return getattr(x, self.reduce)(axis=self.axes, keepdims=self.keepdims)

    def backward(self, gy):
        x = self.inputs[0]
        shape = _keepdims_shape(x.shape, self.axes)
        y = self.output().data.reshape(shape)
        mask = x.data == y
        weight = mask / mask.sum(axis=self.axes, keepdims=True)
        return broadcast_to(gy.reshape(shape), x.shape) * weight.astype(x.dtype)


class Max(_Extremum):
    __doc__ = _Extremum.__doc__
    reduce = "max"


class Min(_Extremum):
    __doc__ = _Extremum.__doc__
    reduce = "min"


def sum(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return Sum(pick_axis(axis, dim), pick_keepdims(keepdims, keepdim))(*operands("sum", ANY, x))


def mean(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    """The mean over ``axis``; refused for bool and integers, as in PyTorch (convert them first)."""
    return Mean(pick_axis(axis, dim), pick_keepdims(keepdims, keepdim))(*operands("mean", FLOAT_ONLY, x))


def max(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return Max(pick_axis(axis, dim), pick_keepdims(keepdims, keepdim))(*operands("max", ANY, x))


def min(x, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return Min(pick_axis(axis, dim), pick_keepdims(keepdims, keepdim))(*operands("min", ANY, x))

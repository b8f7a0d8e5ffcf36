"""Activations: relu, tanh, sigmoid, softmax, log_softmax."""
from minidl import backend
from minidl.ops._util import FLOAT, FLOAT_ONLY, NUMBER, normalize_axis, operands, pick_axis
from minidl.tensor import Function, Tensor


class ReLU(Function):
    """y = max(x, 0).  dL/dx = gy where x > 0, else 0; y > 0 exactly where x > 0, so the
    output, which the next layer usually keeps anyway, gives the mask."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        y = self.output().data
        return gy * Tensor._wrap((y > 0).astype(y.dtype))


class Tanh(Function):
    """y = tanh x.  dL/dx = gy (1 - y^2)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return backend.get_array_module(x).tanh(x)

    def backward(self, gy):
        y = self.output()
        return gy * (1 - y * y)


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (tanh(x/2) + 1) / 2, which never
    overflows.  dL/dx = gy y (1 - y)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.tanh(x * 0.5) * 0.5 + 0.5  # Python floats take x's dtype (NEP 50), float16 included

    def backward(self, gy):
        y = self.output()
        return gy * y * (1 - y)


class Softmax(Function):
    """y_i = e^(x_i - m) / sum_j e^(x_j - m) along ``axis``, with m = max_j x_j.

    Subtracting m changes nothing mathematically (it cancels) but keeps every
    exponent <= 0, so nothing overflows for large inputs.
    dy_i/dx_k = y_i (delta_ik - y_k), hence dL/dx = y * (gy - sum(gy * y)).
    """

    keep_inputs, keep_outputs = (), (0,)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:  # nothing to normalise (and max of an empty axis is undefined)
            return x.copy()
        xp = backend.get_array_module(x)
        e = xp.exp(x - x.max(axis=self.axis, keepdims=True))
        return e / e.sum(axis=self.axis, keepdims=True)

    def backward(self, gy):
        y = self.output()
        return y * (gy - (gy * y).sum(axis=self.axis, keepdims=True))


class LogSoftmax(Function):
    """y_i = x_i - m - log sum_j e^(x_j - m) along ``axis`` (the log-sum-exp trick).

    dy_i/dx_k = delta_ik - softmax_k, hence dL/dx = gy - softmax(x) * sum(gy),
    with softmax(x) = e^y.
    """

    keep_inputs, keep_outputs = (), (0,)

    def __init__(self, axis):
        self.axis = axis

    def forward(self, x):
        if x.size == 0:
            return x.copy()
        xp = backend.get_array_module(x)
        shifted = x - x.max(axis=self.axis, keepdims=True)
        return shifted - xp.log(xp.exp(shifted).sum(axis=self.axis, keepdims=True))

    def backward(self, gy):
        y = self.output()
        return gy - y.exp() * gy.sum(axis=self.axis, keepdims=True)


def relu(x):
    return ReLU()(*operands("relu", NUMBER, x))


def tanh(x):
    return Tanh()(*operands("tanh", FLOAT, x))


def sigmoid(x):
    return Sigmoid()(*operands("sigmoid", FLOAT, x))


def softmax(x, axis=-1, *, dim=None):
    x, = operands("softmax", FLOAT_ONLY, x)
    axis = normalize_axis("softmax", pick_axis(axis if dim is None else None, dim), x.ndim)[0]
    return Softmax(axis)(x)


def log_softmax(x, axis=-1, *, dim=None):
    x, = operands("log_softmax", FLOAT_ONLY, x)
    axis = normalize_axis("log_softmax", pick_axis(axis if dim is None else None, dim), x.ndim)[0]
    return LogSoftmax(axis)(x)

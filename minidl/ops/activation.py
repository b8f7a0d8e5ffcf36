"""Activations: relu, tanh, sigmoid, softmax, log_softmax, and the gradients of the first three;
leaky_relu, silu and gelu composed of ops."""
import math

from minidl import _checks, backend, kernels
from minidl.ops._util import FLOAT, FLOAT_ONLY, NUMBER, normalize_axis, operands, pick_axis
from minidl.ops.special import erf
from minidl.tensor import Function


class ReLU(Function):
    """y = max(x, 0).  dL/dx = gy where x > 0, else 0; y > 0 exactly where x > 0, so the
    output, which the next layer usually keeps anyway, gives the mask (`ReLUGrad`)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return backend.get_array_module(x).maximum(x, 0)

    def backward(self, gy):
        return ReLUGrad()(gy, self.output())


class ReLUGrad(Function):
    """The backward of ReLU as one kernel: gx = gy where y > 0, else 0 (also where y is NaN, and
    whatever gy is there; `kernels.relu_backward`).

    gx is linear in gy with the 0/1 mask as its coefficient, so dL/dgy = g where y > 0, else 0:
    ReLUGrad(g, y) again. The mask is piecewise constant in y (its derivative is 0 wherever it
    has one), so y gets no gradient.
    """

    keep_inputs, keep_outputs = (1,), ()

    def forward(self, gy, y):
        return kernels.relu_backward(gy, y)

    def backward(self, g):
        return ReLUGrad()(g, self.inputs[1]) if self.needs_input_grad[0] else None, None


class Tanh(Function):
    """y = tanh x.  dL/dx = gy (1 - y^2) (`TanhGrad`). The kernel may approximate tanh (within
    6.2 ulp in float32 with the Numba and the CUDA kernels; see `kernels.tanh_forward`)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return kernels.tanh_forward(x)

    def backward(self, gy):
        return TanhGrad()(gy, self.output())


class TanhGrad(Function):
    """The backward of Tanh as one kernel: gx = gy (1 - y^2), rounded as written
    (`kernels.tanh_backward`).

    d gx / d gy = 1 - y^2, so dL/dgy = g (1 - y^2) = TanhGrad(g, y);
    d gx / d y = -2 gy y, so dL/dy = -2 g gy y.
    """

    keep_inputs, keep_outputs = (0, 1), ()

    def forward(self, gy, y):
        return kernels.tanh_backward(gy, y)

    def backward(self, g):
        gy, y = self.inputs
        need_gy, need_y = self.needs_input_grad
        return TanhGrad()(g, y) if need_gy else None, -2 * g * gy * y if need_y else None


class Sigmoid(Function):
    """y = 1 / (1 + e^-x), computed as (tanh(x/2) + 1) / 2, which never
    overflows.  dL/dx = gy y (1 - y) (`SigmoidGrad`)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        xp = backend.get_array_module(x)
        return xp.tanh(x * 0.5) * 0.5 + 0.5  # Python floats take x's dtype (NEP 50), float16 included

    def backward(self, gy):
        return SigmoidGrad()(gy, self.output())


class SigmoidGrad(Function):
    """The backward of Sigmoid as one kernel: gx = (gy y) (1 - y), rounded as written
    (`kernels.sigmoid_backward`).

    d gx / d gy = y (1 - y), so dL/dgy = g y (1 - y) = SigmoidGrad(g, y);
    d gx / d y = gy (1 - y) - gy y = gy (1 - 2y), so dL/dy = g gy (1 - 2y).
    """

    keep_inputs, keep_outputs = (0, 1), ()

    def forward(self, gy, y):
        return kernels.sigmoid_backward(gy, y)

    def backward(self, g):
        gy, y = self.inputs
        need_gy, need_y = self.needs_input_grad
        return SigmoidGrad()(g, y) if need_gy else None, g * gy * (1 - 2 * y) if need_y else None


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


def leaky_relu(x, negative_slope=0.01):
    """x where x > 0, ``negative_slope * x`` elsewhere: relu(x) - negative_slope * relu(-x), so its
    gradient, 1 for x > 0 and ``negative_slope`` for x < 0, is ReLU's twice."""
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
        raise TypeError(f"leaky_relu: negative_slope must be a number; got {negative_slope!r}")
    x, = operands("leaky_relu", FLOAT, x)
    return relu(x) - relu(-x) * negative_slope


def silu(x):
    """x * sigmoid(x) (SiLU, also called swish). By the product rule, d/dx = s + x s (1 - s) with
    s = sigmoid(x): the gradients of Mul and Sigmoid."""
    x, = operands("silu", FLOAT, x)
    return x * sigmoid(x)


GELU_APPROXIMATIONS = ("none", "tanh")


def check_gelu_approximate(where, approximate):
    """``approximate`` if it is 'none' or 'tanh'; a GELU layer runs this once, when it is made."""
    if not (isinstance(approximate, str) and approximate in GELU_APPROXIMATIONS):
        _checks.fail(where, "approximate", approximate, "'none' or 'tanh'")
    return approximate


def _gelu(x, approximate):
    """GELU on a checked ``approximate``: gelu and nn.GELU both end here."""
    x, = operands("gelu", FLOAT_ONLY, x)
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2 / math.pi)
        return x * 0.5 * (tanh(inner) + 1)
    return x * 0.5 * (erf(x * math.sqrt(0.5)) + 1)


def gelu(x, approximate="none"):
    """The Gaussian error linear unit (Hendrycks & Gimpel 2016), x times the standard normal
    distribution function: x * Phi(x) = x/2 * (1 + erf(x / sqrt 2)). With ``approximate='tanh'``,
    x/2 * (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), as PyTorch computes either.

    Composed of ops with their own gradients (Mul, Add, `minidl.ops.special.Erf` or Tanh), so the
    gradient, Phi(x) + x phi(x) with phi the normal density, and its own derivative come from theirs.
    """
    return _gelu(x, check_gelu_approximate("gelu", approximate))


def softmax(x, axis=-1, *, dim=None):
    x, = operands("softmax", FLOAT_ONLY, x)
    axis = normalize_axis("softmax", pick_axis(axis if dim is None else None, dim), x.ndim)[0]
    return Softmax(axis)(x)


def log_softmax(x, axis=-1, *, dim=None):
    x, = operands("log_softmax", FLOAT_ONLY, x)
    axis = normalize_axis("log_softmax", pick_axis(axis if dim is None else None, dim), x.ndim)[0]
    return LogSoftmax(axis)(x)

"""Activation layers: thin wrappers around the functions in ``F``."""
from minidl.nn import functional as F
from minidl.nn.module import Module
from minidl.ops import activation


class ReLU(Module):
    """max(x, 0). ``inplace`` is accepted for ported PyTorch code; the result is
    always a new tensor (the values are the same)."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class LeakyReLU(Module):
    """x for x > 0, ``negative_slope * x`` elsewhere. ``inplace`` is accepted as ReLU's is."""

    def __init__(self, negative_slope=0.01, inplace=False):
        super().__init__()
        if isinstance(negative_slope, bool) or not isinstance(negative_slope, (int, float)):
            raise TypeError(f"LeakyReLU: negative_slope must be a number; got {negative_slope!r}")
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope)

    def extra_repr(self):
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class SiLU(Module):
    """x * sigmoid(x). ``inplace`` is accepted as ReLU's is."""

    def __init__(self, inplace=False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.silu(x)

    def extra_repr(self):
        return "inplace=True" if self.inplace else ""


class GELU(Module):
    """x * Phi(x), Phi the standard normal distribution function; ``approximate='tanh'`` uses
    PyTorch's tanh approximation of it (see `minidl.ops.activation.gelu`)."""

    def __init__(self, approximate="none"):
        super().__init__()
        self.approximate = activation.check_gelu_approximate("GELU", approximate)

    def forward(self, x):
        return activation._gelu(x, self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class Tanh(Module):
    def forward(self, x):
        return F.tanh(x)


class Sigmoid(Module):
    def forward(self, x):
        return F.sigmoid(x)


class Softmax(Module):
    """softmax along ``dim``. ``dim`` has no default: PyTorch's implicit choice
    depends on the input's rank, and silently differing from it would be worse."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, axis=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Module):
    """log(softmax) along ``dim``, computed stably (see Softmax for why ``dim`` is required)."""

    def __init__(self, dim):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.log_softmax(x, axis=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"

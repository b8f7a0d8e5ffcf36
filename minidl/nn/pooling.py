"""Pooling layers. The window arithmetic (and its checks) lives in ``minidl.ops.pooling``;
output sizes follow PyTorch, ``ceil_mode`` included."""
from minidl import _checks
from minidl.nn import functional as F
from minidl.nn.module import Module
from minidl.ops import pooling


class MaxPool2d(Module):
    """Maximum over each kernel_size window of (N, C, H, W); stride defaults to kernel_size."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        # Checked once, here; the attributes keep what was passed, for the repr (PyTorch's).
        self._window = pooling.pool_settings("MaxPool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode

    def forward(self, x):
        pooling.check_pool_input(_checks.layer_name(self), x, *self._window, self.ceil_mode)
        return pooling._max_pool2d(x, *self._window, self.ceil_mode)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class AvgPool2d(Module):
    """Mean over each kernel_size window of (N, C, H, W); stride defaults to kernel_size.
    With ``count_include_pad`` the zero padding counts in the divisor."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__()
        # Checked once, here; the attributes keep what was passed, for the repr (PyTorch's).
        self._window = pooling.pool_settings("AvgPool2d", kernel_size, stride, padding)
        self.kernel_size = kernel_size
        self.stride = kernel_size if stride is None else stride
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def forward(self, x):
        pooling.check_pool_input(_checks.layer_name(self), x, *self._window, self.ceil_mode)
        return pooling._avg_pool2d(x, *self._window, self.ceil_mode, self.count_include_pad)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}, count_include_pad={self.count_include_pad}")


class AdaptiveAvgPool2d(Module):
    """Averages (N, C, H, W) down to (N, C, *output_size), whatever H and W are
    (e.g. output_size=1 before a classifier)."""

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return F.adaptive_avg_pool2d(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"

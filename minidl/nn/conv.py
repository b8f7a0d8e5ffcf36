"""2-D convolution layer."""

import numpy as np

from minidl.nn import functional as F
from minidl.nn import init
from minidl.nn._checks import check_int, check_pair, layer_name
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter


class Conv2d(Module):
    """Cross-correlation of (N, in_channels, H, W) with ``out_channels`` filters of
    shape (in_channels/groups, kh, kw). With ``groups`` g the channels split into g
    independent groups (AlexNet's two-GPU layout is groups=2).

    Initialised as PyTorch does: weight and bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
    fan_in = in_channels/groups * kh * kw.
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1, groups=1,
                 bias=True):
        super().__init__()
        self.in_channels = check_int("Conv2d", "in_channels", in_channels, 1)
        self.out_channels = check_int("Conv2d", "out_channels", out_channels, 1)
        self.kernel_size = check_pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride = check_pair("Conv2d", "stride", stride, 1)
        self.padding = check_pair("Conv2d", "padding", padding, 0)
        self.dilation = check_pair("Conv2d", "dilation", dilation, 1)
        self.groups = check_int("Conv2d", "groups", groups, 1)
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must both be "
                f"divisible by groups ({groups})"
            )
        shape = (self.out_channels, self.in_channels // self.groups) + self.kernel_size
        self.weight = Parameter(np.empty(shape, dtype=np.float32))
        if bias:
            self.bias = Parameter(np.empty(self.out_channels, dtype=np.float32))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.default_(self.weight, self.bias)

    def forward(self, x):
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"{layer_name(self)}: expected a 4-D input (N, {self.in_channels}, H, W); got shape {tuple(x.shape)}"
            )
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)

    def extra_repr(self):
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

"""2-D convolution layer."""

import numpy as np

from minidl import _checks
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops import conv


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
        self.in_channels = _checks.check_int("Conv2d", "in_channels", in_channels, 1)
        self.out_channels = _checks.check_int("Conv2d", "out_channels", out_channels, 1)
        self.kernel_size = _checks.pair("Conv2d", "kernel_size", kernel_size, 1)
        self.stride, self.padding, self.dilation, self.groups = conv.conv_settings(
            "Conv2d", stride, padding, dilation, groups)
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
        # The settings were checked in __init__; only the input is new.
        settings = self.stride, self.padding, self.dilation, self.groups
        conv.check_conv_input(_checks.layer_name(self), x, self.weight, self.bias, *settings)
        return conv._conv2d(x, self.weight, self.bias, *settings)

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

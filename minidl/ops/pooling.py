"""Pooling: max, average and adaptive average over the last two axes of NCHW tensors.

Sizes follow PyTorch exactly (``minidl.kernels.conv_output_size``): with
``ceil_mode`` a partial window at the bottom/right edge is kept unless it
would start inside the padding only. Ported models rely on these sizes.
"""
import numbers

from minidl import backend, kernels
from minidl.ops.shape import stack
from minidl.tensor import Function


class MaxPool2d(Function):
    """y = max of x over each window (padding counts as -inf).

    y is x at one pixel per window (``argmax``), so dL/dx_p is the sum of
    gy over the windows whose max is pixel p, and 0 for pixels no window
    chose. On ties the first pixel in window order gets it all, as in PyTorch.
    """

    keep_inputs = keep_outputs = ()  # the argmax and x's shape are all backward needs

    def __init__(self, kernel, stride, padding, ceil_mode):
        self.kernel, self.stride, self.padding, self.ceil_mode = kernel, stride, padding, ceil_mode

    def forward(self, x):
        self.x_shape = x.shape
        y, self.argmax = kernels.max_pool2d_forward(x, self.kernel, self.stride, self.padding, self.ceil_mode)
        return y

    def backward(self, gy):
        return MaxPool2dGrad(self.argmax, self.x_shape)(gy)


class MaxPool2dGrad(Function):
    """The backward of MaxPool2d: gx = scatter-add of gy into the ``argmax`` pixels.

    It is linear in gy, and its adjoint is the gather: dL/dgy = ggx read at
    ``argmax``, written with getitem so it is differentiable again.
    """

    keep_inputs = keep_outputs = ()

    def __init__(self, argmax, x_shape):
        self.argmax, self.x_shape = argmax, tuple(x_shape)

    def forward(self, gy):
        return kernels.max_pool2d_backward(gy, self.argmax, self.x_shape)

    def backward(self, ggx):
        xp = backend.get_array_module(self.argmax)
        n, c, h, w = self.x_shape
        plane = (xp.arange(n * c, dtype=xp.int64) * (h * w)).reshape(n, c, 1, 1)
        return ggx.reshape(-1)[self.argmax + plane]


class AvgPool2d(Function):
    """y = sum of x over each window / divisor (PyTorch's, see ``kernels.avg_pool2d_forward``).

    y is linear in x: each pixel contributes 1/divisor to every window that
    holds it, so dL/dx_p = sum over those windows of gy / divisor, which is
    AvgPool2dGrad. The two are each other's adjoints (backward of backward).
    """

    keep_inputs = keep_outputs = ()

    def __init__(self, kernel, stride, padding, ceil_mode, count_include_pad):
        self.args = (kernel, stride, padding, ceil_mode, count_include_pad)

    def forward(self, x):
        self.x_shape = x.shape
        return kernels.avg_pool2d_forward(x, *self.args)

    def backward(self, gy):
        return AvgPool2dGrad(self.x_shape, *self.args)(gy)


class AvgPool2dGrad(Function):
    """The backward of AvgPool2d: spread each gy / divisor over its window. Its
    adjoint, hence its backward, is AvgPool2d with the same settings."""

    keep_inputs = keep_outputs = ()

    def __init__(self, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
        self.x_shape, self.args = tuple(x_shape), (kernel, stride, padding, ceil_mode, count_include_pad)

    def forward(self, gy):
        return kernels.avg_pool2d_backward(gy, self.x_shape, *self.args)

    def backward(self, ggx):
        return AvgPool2d(*self.args)(ggx)


# --- argument checking ------------------------------------------------------------

def _is_int(v):
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _pair(op, name, value):
    """An int or a pair of ints as an (h, w) tuple of Python ints."""
    pair = (value, value) if _is_int(value) else tuple(value) if isinstance(value, (tuple, list)) else None
    if pair is None or len(pair) != 2 or not all(_is_int(v) for v in pair):
        raise ValueError(f"{op}: {name} must be an int or a pair of ints; got {value!r}")
    return tuple(int(v) for v in pair)


def _check_4d(op, x):
    if x.ndim != 4:
        raise ValueError(f"{op}: expected a 4-D input (N, C, H, W); got shape {tuple(x.shape)}")


def _pool_args(op, x, kernel_size, stride, padding, ceil_mode):
    """Validated (kernel, stride, padding) pairs; ValueError naming the values otherwise."""
    _check_4d(op, x)
    kernel = _pair(op, "kernel_size", kernel_size)
    stride = kernel if stride is None else _pair(op, "stride", stride)
    padding = _pair(op, "padding", padding)
    if min(kernel) < 1:
        raise ValueError(f"{op}: kernel_size must be positive; got {kernel}")
    if min(stride) < 1:
        raise ValueError(f"{op}: stride must be at least 1; got {stride}")
    if min(padding) < 0 or any(2 * p > k for p, k in zip(padding, kernel)):
        raise ValueError(
            f"{op}: padding must be between 0 and half the kernel size; got padding {padding} "
            f"for kernel_size {kernel}"
        )
    out = tuple(kernels.conv_output_size(n, k, s, p, 1, ceil_mode)
                for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    if min(out) < 1:
        raise ValueError(
            f"{op}: the {kernel[0]}x{kernel[1]} window does not fit the input of shape {tuple(x.shape)} "
            f"with padding {padding} (output would be {out[0]}x{out[1]})"
        )
    return kernel, stride, padding


# --- user-facing functions ------------------------------------------------------

def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over each ``kernel_size`` window of an NCHW image, with PyTorch's semantics: ``stride``
    defaults to the kernel size, padding counts as -inf, ``ceil_mode`` keeps a last partial window
    unless it would start in the right padding. The gradient goes to the pixel each max came from."""
    kernel, stride, padding = _pool_args("max_pool2d", x, kernel_size, stride, padding, ceil_mode)
    if x.dtype.kind != "f":
        raise ValueError(f"max_pool2d: expected a floating-point input; got {x.dtype}")
    return MaxPool2d(kernel, stride, padding, bool(ceil_mode))(x)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each ``kernel_size`` window of an NCHW image, with PyTorch's semantics and divisor:
    with ``count_include_pad`` the window clipped to the padded image, else the real pixels in it.
    The gradient spreads each output's evenly over its window."""
    kernel, stride, padding = _pool_args("avg_pool2d", x, kernel_size, stride, padding, ceil_mode)
    if x.dtype.kind != "f":
        raise ValueError(f"avg_pool2d: expected a floating-point input; got {x.dtype}")
    return AvgPool2d(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad))(x)


def _adaptive_mean(x, axis, out):
    """Mean over PyTorch's adaptive bins along ``axis``: bin i spans
    [floor(i*n/out), ceil((i+1)*n/out)), so neighbouring bins may overlap."""
    n = x.shape[axis]
    lead = (slice(None),) * axis
    bins = [x[lead + (slice(i * n // out, -(-(i + 1) * n // out)),)].mean(axis=axis) for i in range(out)]
    return stack(bins, axis=axis)


def adaptive_avg_pool2d(x, output_size):
    """Average pooling to a fixed output size (int or pair; None keeps that axis's size).

    When the output divides the input evenly every bin has the same size and
    stride, which is plain avg_pool2d. Otherwise the bins differ in size: the
    mean over a rectangular bin is the mean over its columns of the means
    over its rows, so the rows are pooled first and then the columns, a loop
    over OH + OW bins of slices and means (differentiable through those ops).
    """
    op = "adaptive_avg_pool2d"
    _check_4d(op, x)
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2 or not all(s is None or _is_int(s) for s in size):
        raise ValueError(f"{op}: output_size must be an int, None, or a pair of them; got {output_size!r}")
    oh, ow = (n if s is None else int(s) for s, n in zip(size, x.shape[2:]))
    if min(oh, ow) < 1:
        raise ValueError(f"{op}: output_size must be positive; got {output_size!r}")
    h, w = x.shape[2:]
    if min(h, w) < 1:
        raise ValueError(f"{op}: input of shape {tuple(x.shape)} has an empty spatial axis")
    if h % oh == 0 and w % ow == 0:
        kernel = (h // oh, w // ow)
        return avg_pool2d(x, kernel, kernel)
    return _adaptive_mean(_adaptive_mean(x, 2, oh), 3, ow)


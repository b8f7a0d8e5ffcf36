"""Pooling: max, average and adaptive average over the last two axes of NCHW tensors.

Sizes follow PyTorch exactly (``minidl.kernels.conv_output_size``): with
``ceil_mode`` a partial window at the bottom/right edge is kept unless it
would start inside the padding only. Ported models rely on these sizes.
"""
from minidl import _checks, backend, kernels
from minidl.ops._util import FLOAT_ONLY, compute_dtype, op_dtype
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
        return MaxPool2dGrad(self.argmax, self.x_shape, self.kernel, self.stride, self.padding)(gy)


class MaxPool2dGrad(Function):
    """The backward of MaxPool2d: gx = scatter-add of gy into the ``argmax`` pixels.

    It is linear in gy, and its adjoint is the gather: dL/dgy = ggx read at
    ``argmax``, written with getitem so it is differentiable again.
    """

    keep_inputs = keep_outputs = ()

    def __init__(self, argmax, x_shape, kernel, stride, padding):
        self.argmax, self.x_shape, self.geometry = argmax, tuple(x_shape), (kernel, stride, padding)

    def forward(self, gy):
        return kernels.max_pool2d_backward(gy, self.argmax, self.x_shape, *self.geometry)

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
        # a float16 window's sum overflows at 65504 where its mean does not
        y = kernels.avg_pool2d_forward(x.astype(compute_dtype(x.dtype), copy=False), *self.args)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        return AvgPool2dGrad(self.x_shape, *self.args)(gy)


class AvgPool2dGrad(Function):
    """The backward of AvgPool2d: spread each gy / divisor over its window. Its
    adjoint, hence its backward, is AvgPool2d with the same settings."""

    keep_inputs = keep_outputs = ()

    def __init__(self, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
        self.x_shape, self.args = tuple(x_shape), (kernel, stride, padding, ceil_mode, count_include_pad)

    def forward(self, gy):
        gx = kernels.avg_pool2d_backward(gy.astype(compute_dtype(gy.dtype), copy=False), self.x_shape, *self.args)
        return gx.astype(gy.dtype, copy=False)

    def backward(self, ggx):
        return AvgPool2d(*self.args)(ggx)


# --- argument checking ------------------------------------------------------------

def pool_settings(where, kernel_size, stride, padding):
    """The (kernel, stride, padding) pairs, checked (stride None means the kernel size);
    ValueError naming ``where`` (the op or the layer) otherwise. A layer runs this once, when made."""
    kernel = _checks.pair(where, "kernel_size", kernel_size, 1)
    stride = kernel if stride is None else _checks.pair(where, "stride", stride, 1)
    pad = _checks.pair(where, "padding", padding, 0)
    # PyTorch's rule: with more, a window at the edge could lie in the padding only.
    if 2 * pad[0] > kernel[0] or 2 * pad[1] > kernel[1]:
        _checks.fail(where, "padding", padding, f"at most half of kernel_size={kernel}")
    return kernel, stride, pad


def check_pool_input(where, x, kernel, stride, padding, ceil_mode):
    """ValueError naming ``where`` unless x is a 4-D floating-point input that the window fits
    (settings as pool_settings returns them): what must be checked on every call."""
    _checks.check_ndim(where, x, (4,), "4-D (N, C, H, W)")
    out = tuple(kernels.conv_output_size(n, k, s, p, 1, ceil_mode)
                for n, k, s, p in zip(x.shape[2:], kernel, stride, padding))
    if min(out) < 1:
        raise ValueError(
            f"{where}: the {kernel[0]}x{kernel[1]} window does not fit the input of shape {tuple(x.shape)} "
            f"with padding {padding} (output would be {out[0]}x{out[1]})"
        )
    op_dtype(where, FLOAT_ONLY, (x,))


# --- user-facing functions ------------------------------------------------------

def _max_pool2d(x, kernel, stride, padding, ceil_mode):
    """Max pooling on checked arguments: max_pool2d and nn.MaxPool2d both end here."""
    return MaxPool2d(kernel, stride, padding, bool(ceil_mode))(x)


def _avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Average pooling on checked arguments: avg_pool2d and nn.AvgPool2d both end here."""
    return AvgPool2d(kernel, stride, padding, bool(ceil_mode), bool(count_include_pad))(x)


def max_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False):
    """Max over each ``kernel_size`` window of an NCHW image, with PyTorch's semantics: ``stride``
    defaults to the kernel size, padding counts as -inf, ``ceil_mode`` keeps a last partial window
    unless it would start in the right padding. The gradient goes to the pixel each max came from."""
    kernel, stride, padding = pool_settings("max_pool2d", kernel_size, stride, padding)
    check_pool_input("max_pool2d", x, kernel, stride, padding, ceil_mode)
    return _max_pool2d(x, kernel, stride, padding, ceil_mode)


def avg_pool2d(x, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    """Mean over each ``kernel_size`` window of an NCHW image, with PyTorch's semantics and divisor:
    with ``count_include_pad`` the window clipped to the padded image, else the real pixels in it.
    The gradient spreads each output's evenly over its window."""
    kernel, stride, padding = pool_settings("avg_pool2d", kernel_size, stride, padding)
    check_pool_input("avg_pool2d", x, kernel, stride, padding, ceil_mode)
    return _avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad)


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
    _checks.check_ndim(op, x, (4,), "4-D (N, C, H, W)")
    op_dtype(op, FLOAT_ONLY, (x,))  # here, or avg_pool2d or mean would report it under their names
    size = (output_size, output_size) if not isinstance(output_size, (tuple, list)) else tuple(output_size)
    if len(size) != 2 or not all(s is None or _checks.is_int(s) for s in size):
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


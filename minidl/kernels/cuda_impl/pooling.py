"""Max and average pooling as CUDA kernels (``pooling.cu``), bit-identical to the reference.

Forward passes run one thread per output over its window clipped to the image; both
backward passes are a gather per input pixel over the windows that can hold it (for max
pooling, those whose argmax is the pixel, summed in float64 in window order as the
reference does).
"""
import numpy as np

from minidl.backend import get_array_module
from minidl.kernels import conv_output_size
from minidl.kernels.cuda_impl._module import ints, launch


def _geometry(x_shape, kernel, stride, padding, ceil_mode):
    """(OH, OW), and the integers every pooling kernel takes after its input."""
    h, w = x_shape[2:]
    oh, ow = (conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) for a in (0, 1))
    return (oh, ow), ints(h, w, oh, ow, *kernel, *stride, *padding)


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    xp = get_array_module(x)
    out, geometry = _geometry(x.shape, kernel, stride, padding, ceil_mode)
    y = xp.empty(x.shape[:2] + out, dtype=x.dtype)
    argmax = xp.empty(y.shape, dtype=np.int64)
    launch("pooling", "max_pool_forward", x.dtype, y.size,
           (xp.ascontiguousarray(x), *geometry, x.dtype.type(-np.inf), y, argmax))
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding):
    xp = get_array_module(gy)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    launch("pooling", "max_pool_backward", gy.dtype, gx.size,
           (xp.ascontiguousarray(gy), xp.ascontiguousarray(argmax),
            *ints(*x_shape[2:], *gy.shape[2:], *kernel, *stride, *padding), gx))
    return gx


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = get_array_module(x)
    out, geometry = _geometry(x.shape, kernel, stride, padding, ceil_mode)
    y = xp.empty(x.shape[:2] + out, dtype=x.dtype)
    launch("pooling", "avg_pool_forward", x.dtype, y.size,
           (xp.ascontiguousarray(x), *geometry, np.int64(count_include_pad), y))
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = get_array_module(gy)
    gx = xp.empty(x_shape, dtype=gy.dtype)
    launch("pooling", "avg_pool_backward", gy.dtype, gx.size,
           (xp.ascontiguousarray(gy), *_geometry(x_shape, kernel, stride, padding, ceil_mode)[1],
            np.int64(count_include_pad), gx))
    return gx

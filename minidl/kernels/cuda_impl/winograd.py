"""The Winograd F(2x2, 3x3) transforms as CUDA kernels (``winograd.cu``), one thread per
(channel, tile). The input transform and the output adjoint add at most two terms per value
and are bit-identical to the reference; the output transform adds three, in an order NumPy's
matmul does not promise, and agrees to rounding."""
from minidl.backend import get_array_module
from minidl.kernels.cuda_impl._module import ints, launch


def _tiles(size):
    return (size + 1) // 2


def winograd_input_transform(x, padding):
    xp = get_array_module(x)
    n, c, h, w = x.shape
    th, tw = _tiles(h + 2 * padding[0] - 2), _tiles(w + 2 * padding[1] - 2)
    v = xp.empty((16, c, n * th * tw), dtype=x.dtype)
    launch("winograd", "input_transform", x.dtype, c * n * th * tw,
           (xp.ascontiguousarray(x), *ints(c, h, w, *padding, th, tw), v))
    return v


def winograd_output_transform(m, out_shape):
    xp = get_array_module(m)
    n, k, oh, ow = out_shape
    th, tw = _tiles(oh), _tiles(ow)
    y = xp.empty(out_shape, dtype=m.dtype)
    launch("winograd", "output_transform", m.dtype, k * n * th * tw,
           (xp.ascontiguousarray(m), *ints(k, oh, ow, th, tw), y))
    return y


def winograd_output_transform_adjoint(gy):
    xp = get_array_module(gy)
    n, k, oh, ow = gy.shape
    th, tw = _tiles(oh), _tiles(ow)
    gm = xp.empty((16, k, n * th * tw), dtype=gy.dtype)
    launch("winograd", "output_transform_adjoint", gy.dtype, k * n * th * tw,
           (xp.ascontiguousarray(gy), *ints(k, oh, ow, th, tw), gm))
    return gm

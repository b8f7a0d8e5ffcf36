"""im2col and col2im as CUDA kernels (``im2col.cu``): one thread per column entry, and a
gather per image pixel for col2im (no atomics), both bit-identical to the reference."""
from minidl.backend import get_array_module
from minidl.kernels import conv_output_size
from minidl.kernels.cuda_impl._module import ints, launch


def _geometry(x_shape, kernel, stride, padding, dilation):
    """(OH, OW), and the integers both kernels take after their input."""
    h, w = x_shape[2:]
    oh, ow = (conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    return (oh, ow), ints(h, w, oh, ow, *kernel, *stride, *padding, *dilation)


def im2col(x, kernel, stride, padding, dilation, out=None):
    xp = get_array_module(x)
    n, c, h, w = x.shape
    (oh, ow), geometry = _geometry(x.shape, kernel, stride, padding, dilation)
    shape = (n, c * kernel[0] * kernel[1], oh * ow)
    if padding == (0, 0) and x.flags.c_contiguous and ((kernel == (1, 1) and stride == (1, 1)) or kernel == (h, w)):
        # The columns are x itself (a 1x1 kernel, or one window over the whole image): a view, not a
        # copy. CuPy has no read-only arrays, so unlike the reference's this view is writable.
        return x.reshape(shape)
    col = xp.empty(shape, dtype=x.dtype) if out is None else out
    launch("im2col", "im2col", x.dtype, col.size, (xp.ascontiguousarray(x), *geometry, col))
    return col


def col2im(col, x_shape, kernel, stride, padding, dilation):
    xp = get_array_module(col)
    x = xp.empty(x_shape, dtype=col.dtype)
    launch("im2col", "col2im", col.dtype, x.size,
           (xp.ascontiguousarray(col), *_geometry(x_shape, kernel, stride, padding, dilation)[1], x))
    return x

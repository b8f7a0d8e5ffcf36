"""im2col and col2im as CUDA kernels (``im2col.cu``): one thread per column entry, and a
gather per image pixel for col2im (no atomics), both bit-identical to the reference."""
from minidl.backend import get_array_module
from minidl.kernels import columns_view, conv_output_size
from minidl.kernels.cuda_impl._module import ints, launch


def _geometry(x_shape, kernel, stride, padding, dilation, fold_batch):
    """The columns' shape, and the integers both kernels take after their input: the image's
    geometry, then where sample s's run of row r starts, ``s*ss + r*rs``."""
    n, c, h, w = x_shape
    oh, ow = (conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], dilation[a]) for a in (0, 1))
    rows, length = c * kernel[0] * kernel[1], oh * ow
    shape, strides = ((rows, n * length), (length, n * length)) if fold_batch else \
        ((n, rows, length), (rows * length, length))
    return shape, ints(c, h, w, oh, ow, *kernel, *stride, *padding, *dilation, *strides)


def im2col(x, kernel, stride, padding, dilation, out=None, fold_batch=False):
    xp = get_array_module(x)
    n, c, h, w = x.shape
    shape, geometry = _geometry(x.shape, kernel, stride, padding, dilation, fold_batch)
    col = columns_view(x, kernel, stride, padding, fold_batch)
    if col is not None:  # CuPy has no read-only arrays, so unlike the reference's this view is writable
        return col
    col = xp.empty(shape, dtype=x.dtype) if out is None else out
    launch("im2col", "im2col", x.dtype, col.size, (xp.ascontiguousarray(x), *geometry, col))
    return col


def col2im(col, x_shape, kernel, stride, padding, dilation, fold_batch=False):
    xp = get_array_module(col)
    x = xp.empty(x_shape, dtype=col.dtype)
    launch("im2col", "col2im", col.dtype, x.size,
           (xp.ascontiguousarray(col), *_geometry(x_shape, kernel, stride, padding, dilation, fold_batch)[1], x))
    return x

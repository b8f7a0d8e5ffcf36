"""im2col and col2im compiled with Numba.

im2col fills the columns in their final layout, (N, C*kh*kw, OH*OW) or, folding the batch,
(C*kh*kw, N*OH*OW), in parallel over the (n, c) planes of the image: for each kernel tap
(i, j), row (c, i, j) of the columns is what the tap reads at every output position, one
strided run of an image row per output row, with 0 written where the tap lands in the
padding (the padded image is never built). The two layouts differ only in where sample n's
run of OH*OW entries of a row starts: ``n*sample_stride + row*row_stride``.

col2im runs in parallel over the (n, c) planes too, so each thread adds into a plane no
other thread touches: no atomics and no races. Within a plane it adds tap by tap, in
the reference's order, so every pixel's sum is rounded exactly as the reference's is.

Both work on flat views and index them with unsigned integers (``np.uintp``): every
index is non-negative by construction, and an unsigned one spares Numba its check for
Python's negative indices, which otherwise keeps LLVM from vectorising the inner loops
(2-3x slower).
"""
import numpy as np
from numba import njit, prange

from minidl.kernels import columns_view, conv_output_size
from minidl.kernels.numba_impl._parallel import parallel


@njit(cache=True)
def _inside(count, start, step, limit):
    """The range [lo, hi) of the q in [0, count) with 0 <= start + q*step < limit."""
    lo = min(count, max(0, (step - 1 - start) // step))
    hi = max(lo, min(count, (limit - 1 - start) // step + 1))
    return lo, hi


@njit(cache=True)
def spans(count, kernel, stride, padding, dilation, size):
    """Row k: the range of output positions (as ``_inside``) whose tap k lands inside the image.
    Computed once per call, not once per plane: integer division is slow."""
    out = np.empty((kernel, 2), dtype=np.int64)
    for k in range(kernel):
        out[k, 0], out[k, 1] = _inside(count, k * dilation - padding, stride, size)
    return out


@parallel
@njit(parallel=True, cache=True)
def _im2col(x, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, sample_stride, row_stride, col):
    n, c, h, w = x.shape
    rows, cols = spans(oh, kh, sh, ph, dh, h), spans(ow, kw, sw, pw, dw, w)
    src, dst = x.reshape(-1), col.reshape(-1)
    length = oh * ow
    for plane in prange(n * c):
        sample = plane // c
        channel = plane - sample * c
        for i in range(kh):
            p0, p1 = rows[i, 0], rows[i, 1]
            for j in range(kw):
                q0, q1 = cols[j, 0], cols[j, 1]
                # where sample n's run of column row (c, i, j) starts
                row = sample * sample_stride + ((channel * kh + i) * kw + j) * row_stride
                for k in range(row, row + p0 * ow):  # output rows whose tap is in the top padding
                    dst[np.uintp(k)] = 0
                for p in range(p0, p1):
                    out = row + p * ow
                    pixel = (plane * h + p * sh - ph + i * dh) * w - pw + j * dw  # where q = 0 would read
                    for k in range(out, out + q0):
                        dst[np.uintp(k)] = 0
                    for q in range(q0, q1):
                        dst[np.uintp(out + q)] = src[np.uintp(pixel + q * sw)]
                    for k in range(out + q1, out + ow):
                        dst[np.uintp(k)] = 0
                for k in range(row + p1 * ow, row + length):  # and in the bottom padding
                    dst[np.uintp(k)] = 0


@parallel
@njit(parallel=True, cache=True)
def _col2im(col, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow, sample_stride, row_stride, x):
    n, c, h, w = x.shape
    rows, cols = spans(oh, kh, sh, ph, dh, h), spans(ow, kw, sw, pw, dw, w)
    src, dst = col.reshape(-1), x.reshape(-1)
    for plane in prange(n * c):
        sample = plane // c
        channel = plane - sample * c
        for i in range(kh):
            for j in range(kw):
                q0, q1 = cols[j, 0], cols[j, 1]
                row = sample * sample_stride + ((channel * kh + i) * kw + j) * row_stride
                for p in range(rows[i, 0], rows[i, 1]):
                    out = row + p * ow
                    pixel = (plane * h + p * sh - ph + i * dh) * w - pw + j * dw
                    for q in range(q0, q1):
                        dst[np.uintp(pixel + q * sw)] += src[np.uintp(out + q)]


def _output_size(h, w, kernel, stride, padding, dilation):
    return (conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0]),
            conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1]))


def _layout(n, c, kernel, length, fold_batch):
    """The columns' shape, and (sample_stride, row_stride): where sample n's run of row r starts."""
    rows = c * kernel[0] * kernel[1]
    if fold_batch:
        return (rows, n * length), (length, n * length)
    return (n, rows, length), (rows * length, length)


def im2col(x, kernel, stride, padding, dilation, out=None, fold_batch=False):
    n, c, h, w = x.shape
    oh, ow = _output_size(h, w, kernel, stride, padding, dilation)
    shape, strides = _layout(n, c, kernel, oh * ow, fold_batch)
    col = columns_view(x, kernel, stride, padding, fold_batch)
    if col is not None:
        col.flags.writeable = False
        return col
    col = np.empty(shape, dtype=x.dtype) if out is None else out
    _im2col(np.ascontiguousarray(x), *kernel, *stride, *padding, *dilation, oh, ow, *strides, col)
    return col


def col2im(col, x_shape, kernel, stride, padding, dilation, fold_batch=False):
    n, c, h, w = x_shape
    oh, ow = _output_size(h, w, kernel, stride, padding, dilation)
    x = np.zeros((n, c, h, w), dtype=col.dtype)
    _col2im(np.ascontiguousarray(col), *kernel, *stride, *padding, *dilation, oh, ow,
            *_layout(n, c, kernel, oh * ow, fold_batch)[1], x)
    return x

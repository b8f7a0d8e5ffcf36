"""Max and average pooling compiled with Numba, in parallel over the (n, c) planes.

Windows are clipped to the image before they are read: the padding (-inf for max, 0 for
average) never wins a max that a real pixel can win, nor changes a sum, so it is never
built. Sizes and divisors follow the reference (``conv_output_size``, PyTorch's rules);
so do the ties, NaN and all-(-inf) windows of max pooling, and the order of every sum,
so the results are bit-identical to the reference's. Flat views indexed with ``np.uintp``
let LLVM vectorise the inner loops (see ``im2col``).
"""
import numpy as np
from numba import njit, prange

from minidl.kernels import conv_output_size
from minidl.kernels.numba_impl._parallel import parallel
from minidl.kernels.numba_impl.im2col import spans


@parallel
@njit(parallel=True, cache=True)
def _max_pool(x, kh, kw, sh, sw, ph, pw, y, argmax):
    n, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    src, out, chosen = x.reshape(-1), y.reshape(-1), argmax.reshape(-1)
    lowest = x.dtype.type(-np.inf)
    for plane in prange(n * c):
        image = plane * h * w
        for p in range(oh):
            i0, i1 = max(p * sh - ph, 0), min(p * sh - ph + kh, h)
            for q in range(ow):
                j0, j1 = max(q * sw - pw, 0), min(q * sw - pw + kw, w)
                # Starting from -inf at the window's first real pixel gives PyTorch's answer for a
                # window of -inf values (that pixel). A strictly larger value moves the max, so ties
                # keep the first in window order; a NaN always moves it and nothing but another NaN
                # moves it afterwards, so the last NaN is named, as in the reference.
                best, where = lowest, i0 * w + j0
                for i in range(i0, i1):
                    for j in range(j0, j1):
                        v = src[np.uintp(image + i * w + j)]
                        if v > best or v != v:
                            best, where = v, i * w + j
                k = np.uintp((plane * oh + p) * ow + q)
                out[k], chosen[k] = best, where


@parallel
@njit(parallel=True, cache=True)
def _max_pool_backward(gy, argmax, gx):
    for plane in prange(gy.shape[0]):
        # Summed in float64 in output order, then rounded once, as the reference does.
        acc = np.zeros(gx.shape[1])
        for k in range(gy.shape[1]):
            acc[argmax[plane, k]] += gy[plane, k]
        for k in range(gx.shape[1]):
            gx[plane, k] = acc[k]


@njit(cache=True)
def _count(start, kernel, size, pad, count_include_pad):
    """Pixels of a window along one axis that count towards PyTorch's divisor."""
    end = min(start + kernel, size + pad)
    if count_include_pad:
        return end - start
    return min(end, size) - max(start, 0)


@parallel
@njit(parallel=True, cache=True)
def _avg_pool(x, kh, kw, sh, sw, ph, pw, count_include_pad, y):
    n, c, h, w = x.shape
    oh, ow = y.shape[2], y.shape[3]
    rows, cols = spans(oh, kh, sh, ph, 1, h), spans(ow, kw, sw, pw, 1, w)
    src, out = x.reshape(-1), y.reshape(-1)
    t = x.dtype.type
    for plane in prange(n * c):
        image, first = plane * h * w, plane * oh * ow
        for k in range(first, first + oh * ow):
            out[np.uintp(k)] = 0
        # Tap by tap, like the reference (so every window sums in its order), each tap a strided
        # run per output row that LLVM can vectorise.
        for i in range(kh):
            for j in range(kw):
                q0, q1 = cols[j, 0], cols[j, 1]
                for p in range(rows[i, 0], rows[i, 1]):
                    pixel = image + (p * sh - ph + i) * w - pw + j
                    for q in range(q0, q1):
                        out[np.uintp(first + p * ow + q)] += src[np.uintp(pixel + q * sw)]
        for p in range(oh):
            height = _count(p * sh - ph, kh, h, ph, count_include_pad)
            for q in range(ow):
                out[np.uintp(first + p * ow + q)] /= t(height * _count(q * sw - pw, kw, w, pw, count_include_pad))


@parallel
@njit(parallel=True, cache=True)
def _avg_pool_backward(gy, kh, kw, sh, sw, ph, pw, count_include_pad, gx):
    n, c, h, w = gx.shape
    oh, ow = gy.shape[2], gy.shape[3]
    rows, cols = spans(oh, kh, sh, ph, 1, h), spans(ow, kw, sw, pw, 1, w)
    src, dst = gy.reshape(-1), gx.reshape(-1)
    t = gy.dtype.type
    for plane in prange(n * c):
        first = plane * oh * ow
        g = np.empty(oh * ow, dtype=gy.dtype)
        for p in range(oh):
            height = _count(p * sh - ph, kh, h, ph, count_include_pad)
            for q in range(ow):
                k = p * ow + q
                g[k] = src[np.uintp(first + k)] / t(height * _count(q * sw - pw, kw, w, pw, count_include_pad))
        # The transpose of the forward: each tap adds g back where it read, in the same tap order.
        image = plane * h * w
        for i in range(kh):
            for j in range(kw):
                q0, q1 = cols[j, 0], cols[j, 1]
                for p in range(rows[i, 0], rows[i, 1]):
                    pixel = image + (p * sh - ph + i) * w - pw + j
                    for q in range(q0, q1):
                        dst[np.uintp(pixel + q * sw)] += g[np.uintp(p * ow + q)]


def _output_size(x_shape, kernel, stride, padding, ceil_mode):
    return tuple(conv_output_size(x_shape[2 + a], kernel[a], stride[a], padding[a], 1, ceil_mode) for a in (0, 1))


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    out = x.shape[:2] + _output_size(x.shape, kernel, stride, padding, ceil_mode)
    y, argmax = np.empty(out, dtype=x.dtype), np.empty(out, dtype=np.int64)
    _max_pool(np.ascontiguousarray(x), *kernel, *stride, *padding, y, argmax)
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding):
    # One thread per plane adds the plane's gradients at their argmax in output order: the
    # geometry is not needed on the CPU, where a plane is the unit of parallel work anyway.
    n, c, h, w = x_shape
    planes, outputs = n * c, gy.shape[2] * gy.shape[3]
    gx = np.empty((planes, h * w), dtype=gy.dtype)
    _max_pool_backward(np.ascontiguousarray(gy).reshape(planes, outputs),
                       np.ascontiguousarray(argmax).reshape(planes, outputs), gx)
    return gx.reshape(x_shape)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    y = np.empty(x.shape[:2] + _output_size(x.shape, kernel, stride, padding, ceil_mode), dtype=x.dtype)
    _avg_pool(np.ascontiguousarray(x), *kernel, *stride, *padding, bool(count_include_pad), y)
    return y


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    gx = np.zeros(x_shape, dtype=gy.dtype)
    _avg_pool_backward(np.ascontiguousarray(gy), *kernel, *stride, *padding, bool(count_include_pad), gx)
    return gx

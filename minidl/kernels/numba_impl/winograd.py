"""The Winograd F(2x2, 3x3) transforms compiled with Numba.

Each transform runs in parallel over the (n, c) planes of its image side, so no two threads
write the same element. The 4x4 tile products with B^T and A^T are written out as the adds
and subtracts they are (their entries are 0 and +-1), rows first and then columns, in the
reference's order.

The 16 values of a tile go to 16 planes of the transformed array that lie a multiple of 4 KiB
apart for most layer sizes, so writing them tile by tile makes every store collide in the same
cache sets (10x slower than a copy, measured). The input transform and the adjoint therefore
work a row of tiles at a time: they combine four (two) image rows into a row buffer, whose
zero columns are the padding, and then write each of the 16 planes as one contiguous run.
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.numba_impl._parallel import parallel


@parallel
@njit(parallel=True, cache=True)
def _input_transform(x, ph, pw, th, tw, v):
    n, c, h, w = x.shape
    tiles = th * tw
    total = n * tiles
    width = 2 * tw + 2  # the padded columns the tiles of one row read
    src, dst = x.reshape(-1), v.reshape(-1)
    q0, q1 = max(0, pw), min(width, w + pw)  # the buffer columns that hold image pixels
    for plane in prange(n * c):
        b, ch = plane // c, plane % c
        d = np.zeros((4, width), dtype=x.dtype)  # four padded input rows; columns outside stay 0
        e = np.empty((4, width), dtype=x.dtype)
        for ty in range(th):
            for r in range(4):
                row = 2 * ty - ph + r
                if 0 <= row < h:
                    start = (plane * h + row) * w - pw
                    for q in range(q0, q1):
                        d[r, q] = src[np.uintp(start + q)]
                else:
                    d[r, q0:q1] = 0
            for q in range(width):  # B^T d: combine rows, for every column at once
                e[0, q] = d[0, q] - d[2, q]
                e[1, q] = d[1, q] + d[2, q]
                e[2, q] = d[2, q] - d[1, q]
                e[3, q] = d[1, q] - d[3, q]
            t0 = b * tiles + ty * tw
            for a in range(4):  # (B^T d) B: combine columns, one output row (a, bcol) at a time
                out = (a * 4 * c + ch) * total + t0
                step = c * total
                for tx in range(tw):
                    dst[np.uintp(out + tx)] = e[a, 2 * tx] - e[a, 2 * tx + 2]
                for tx in range(tw):
                    dst[np.uintp(out + step + tx)] = e[a, 2 * tx + 1] + e[a, 2 * tx + 2]
                for tx in range(tw):
                    dst[np.uintp(out + 2 * step + tx)] = e[a, 2 * tx + 2] - e[a, 2 * tx + 1]
                for tx in range(tw):
                    dst[np.uintp(out + 3 * step + tx)] = e[a, 2 * tx + 1] - e[a, 2 * tx + 3]


@parallel
@njit(parallel=True, cache=True)
def _output_transform(m, n, k, oh, ow, th, tw, y):
    tiles = th * tw
    total = n * tiles
    src, dst = m.reshape(-1), y.reshape(-1)
    for plane in prange(n * k):
        b, ch = plane // k, plane % k
        e = np.empty((2, 4), dtype=m.dtype)
        for ty in range(th):
            for tx in range(tw):
                t = b * tiles + ty * tw + tx
                for s in range(4):  # A^T m: rows
                    m0 = src[np.uintp(((0 * 4 + s) * k + ch) * total + t)]
                    m1 = src[np.uintp(((1 * 4 + s) * k + ch) * total + t)]
                    m2 = src[np.uintp(((2 * 4 + s) * k + ch) * total + t)]
                    m3 = src[np.uintp(((3 * 4 + s) * k + ch) * total + t)]
                    e[0, s] = m0 + m1 + m2
                    e[1, s] = m1 - m2 - m3
                for r in range(2):  # (A^T m) A: columns
                    row = 2 * ty + r
                    if row < oh:
                        out = (plane * oh + row) * ow + 2 * tx
                        dst[np.uintp(out)] = e[r, 0] + e[r, 1] + e[r, 2]
                        if 2 * tx + 1 < ow:
                            dst[np.uintp(out + 1)] = e[r, 1] - e[r, 2] - e[r, 3]


@parallel
@njit(parallel=True, cache=True)
def _output_transform_adjoint(gy, th, tw, gm):
    n, k, oh, ow = gy.shape
    tiles = th * tw
    total = n * tiles
    src, dst = gy.reshape(-1), gm.reshape(-1)
    for plane in prange(n * k):
        b, ch = plane // k, plane % k
        g = np.zeros((2, 2 * tw), dtype=gy.dtype)  # two rows of gy; the column past OW stays 0
        e = np.empty((4, 2 * tw), dtype=gy.dtype)
        for ty in range(th):
            for r in range(2):
                row = 2 * ty + r
                if row < oh:
                    start = (plane * oh + row) * ow
                    for q in range(ow):
                        g[r, q] = src[np.uintp(start + q)]
                else:
                    g[r, :] = 0
            for q in range(2 * tw):  # A g: rows
                e[0, q] = g[0, q]
                e[1, q] = g[0, q] + g[1, q]
                e[2, q] = g[0, q] - g[1, q]
                e[3, q] = -g[1, q]
            t0 = b * tiles + ty * tw
            for a in range(4):  # (A g) A^T: columns, one output row at a time
                out = (a * 4 * k + ch) * total + t0
                step = k * total
                for tx in range(tw):
                    dst[np.uintp(out + tx)] = e[a, 2 * tx]
                for tx in range(tw):
                    dst[np.uintp(out + step + tx)] = e[a, 2 * tx] + e[a, 2 * tx + 1]
                for tx in range(tw):
                    dst[np.uintp(out + 2 * step + tx)] = e[a, 2 * tx] - e[a, 2 * tx + 1]
                for tx in range(tw):
                    dst[np.uintp(out + 3 * step + tx)] = -e[a, 2 * tx + 1]


def _tiles(size):
    return (size + 1) // 2


def winograd_input_transform(x, padding):
    n, c, h, w = x.shape
    th, tw = _tiles(h + 2 * padding[0] - 2), _tiles(w + 2 * padding[1] - 2)
    v = np.empty((16, c, n * th * tw), dtype=x.dtype)
    _input_transform(np.ascontiguousarray(x), padding[0], padding[1], th, tw, v)
    return v


def winograd_output_transform(m, out_shape):
    n, k, oh, ow = out_shape
    y = np.empty(out_shape, dtype=m.dtype)
    _output_transform(np.ascontiguousarray(m), n, k, oh, ow, _tiles(oh), _tiles(ow), y)
    return y


def winograd_output_transform_adjoint(gy):
    n, k, oh, ow = gy.shape
    th, tw = _tiles(oh), _tiles(ow)
    gm = np.empty((16, k, n * th * tw), dtype=gy.dtype)
    _output_transform_adjoint(np.ascontiguousarray(gy), th, tw, gm)
    return gm

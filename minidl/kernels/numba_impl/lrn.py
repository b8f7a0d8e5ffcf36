"""Local response normalisation across channels, with the window sums compiled by Numba.

Inputs are viewed as (N, C, S), S the product of the spatial sizes, and each parallel
iteration owns one (n, c) row of the output. A window sum adds the channels in the
reference's order (lowest first, starting from 0) in the input's dtype, and every other
step is the reference's arithmetic in its order, so the results are bit-identical.

The power ``scale ** -beta`` is left to NumPy: its vectorised ``power`` is several times
faster than the scalar ``pow`` a Numba loop calls for each element.
"""
import math

import numpy as np
from numba import njit, prange

from minidl.kernels.numba_impl._parallel import parallel


@parallel
@njit(parallel=True, cache=True)
def _scale(x, before, after, k, coeff, scale):
    n, c, s = x.shape
    for row in prange(n * c):
        b, ch = row // c, row % c
        acc = scale[b, ch]
        acc[:] = 0
        for j in range(max(0, ch - before), min(c - 1, ch + after) + 1):
            for e in range(s):
                acc[e] += x[b, j, e] * x[b, j, e]
        for e in range(s):
            acc[e] = k + coeff * acc[e]


@parallel
@njit(parallel=True, cache=True)
def _backward(x, y, scale, power, gy, before, after, coeff, gx):
    n, c, s = x.shape
    ratio = np.empty_like(x)  # gy * y / scale, which every window holding a channel sums
    for row in prange(n * c):
        b, ch = row // c, row % c
        for e in range(s):
            ratio[b, ch, e] = gy[b, ch, e] * y[b, ch, e] / scale[b, ch, e]
    for row in prange(n * c):
        b, ch = row // c, row % c
        spread = gx[b, ch]
        spread[:] = 0
        for j in range(max(0, ch - before), min(c - 1, ch + after) + 1):
            for e in range(s):
                spread[e] += ratio[b, j, e]
        for e in range(s):
            spread[e] = gy[b, ch, e] * power[b, ch, e] - coeff * x[b, ch, e] * spread[e]


def _rows(a):
    """``a`` as (N, C, S), a view where it can be (outputs are written through it)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def lrn_forward(x, size, alpha, beta, k):
    t = x.dtype.type
    scale = np.empty(x.shape, dtype=x.dtype)
    _scale(_rows(x), size // 2, (size - 1) // 2, t(k), t(alpha / size), _rows(scale))
    return x * np.power(scale, t(-beta)), scale


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    t = x.dtype.type
    gx = np.empty(x.shape, dtype=x.dtype)
    # Channel j's window holds c when c - (size-1)//2 <= j <= c + size//2: the forward's, mirrored.
    _backward(_rows(x), _rows(y), _rows(scale), _rows(np.power(scale, t(-beta))), _rows(gy), (size - 1) // 2,
              size // 2, t(2 * alpha * beta / size), _rows(gx))
    return gx

"""Training-mode batch normalisation compiled with Numba, in parallel over the channels.

Inputs are viewed as (N, C, S), S the product of the spatial sizes (1 for (N, C)), and
each parallel iteration owns one channel: its statistics and its slice of every
output. Forward reads the channel three times (mean, then the mean of squared
deviations, then y), the numerically safe two-pass variance; backward twice (the two
sums, then gx). The sums are accumulated in float64 scalars whatever the dtype, which is
as accurate as the reference's pairwise sums and costs no memory (the arrays keep their
dtype), so results agree with the reference to rounding.
"""
import math

import numpy as np
from numba import njit, prange

from minidl.kernels.numba_impl._parallel import parallel


@parallel
@njit(parallel=True, cache=True)
def _forward(x, gamma, beta, eps, y, mean, invstd):
    n, c, s = x.shape
    m = n * s
    for ch in prange(c):
        total = 0.0
        for b in range(n):
            for e in range(s):
                total += x[b, ch, e]
        mu = total / m
        squares = 0.0
        for b in range(n):
            for e in range(s):
                d = x[b, ch, e] - mu
                squares += d * d
        mean[ch] = mu
        invstd[ch] = 1 / np.sqrt(squares / m + eps)
        centre, scale, shift = mean[ch], gamma[ch] * invstd[ch], beta[ch]
        for b in range(n):
            for e in range(s):
                y[b, ch, e] = (x[b, ch, e] - centre) * scale + shift


@parallel
@njit(parallel=True, cache=True)
def _backward(gy, x, gamma, mean, invstd, gx, ggamma, gbeta):
    n, c, s = x.shape
    m = x.dtype.type(n * s)
    for ch in prange(c):
        centre, inv = mean[ch], invstd[ch]
        sum_gy, sum_gy_xhat = 0.0, 0.0
        for b in range(n):
            for e in range(s):
                g = gy[b, ch, e]
                sum_gy += g
                sum_gy_xhat += g * ((x[b, ch, e] - centre) * inv)
        gbeta[ch], ggamma[ch] = sum_gy, sum_gy_xhat
        gb, gg, coeff = gbeta[ch], ggamma[ch], gamma[ch] * inv / m
        for b in range(n):
            for e in range(s):
                gx[b, ch, e] = coeff * (m * gy[b, ch, e] - gb - (x[b, ch, e] - centre) * inv * gg)


def _rows(a):
    """``a`` as (N, C, S), a view where it can be (outputs are written through it)."""
    return np.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], math.prod(a.shape[2:]))


def batch_norm_forward(x, gamma, beta, eps):
    c = x.shape[1]
    y = np.empty(x.shape, dtype=x.dtype)
    mean, invstd = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    _forward(_rows(x), np.ascontiguousarray(gamma), np.ascontiguousarray(beta), float(eps), _rows(y), mean, invstd)
    return y, mean, invstd


def batch_norm_backward(gy, x, gamma, mean, invstd):
    c = x.shape[1]
    gx = np.empty(x.shape, dtype=x.dtype)
    ggamma, gbeta = np.empty(c, dtype=x.dtype), np.empty(c, dtype=x.dtype)
    _backward(_rows(gy), _rows(x), np.ascontiguousarray(gamma), np.ascontiguousarray(mean),
              np.ascontiguousarray(invstd), _rows(gx), ggamma, gbeta)
    return gx, ggamma, gbeta

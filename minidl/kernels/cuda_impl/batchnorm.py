"""Training-mode batch normalisation as CUDA kernels (``batchnorm.cu``).

Inputs are viewed as (N, C, S), S the product of the spatial sizes. Each per-channel sum is
taken in two launches without shared memory or atomics: ``parts`` threads per channel sum
strided shares of its m = N*S values in float64, then one thread per channel adds those
partial sums in order; an elementwise kernel then writes y (or gx). Forward is the two-pass
variance of the reference (the mean, then the mean of squared deviations); the float64 sums
agree with the reference's pairwise sums in the input's dtype to rounding.
"""
import math

import numpy as np

from minidl.backend import get_array_module
from minidl.kernels.cuda_impl._module import ints, launch


def _sizes(x):
    """C, S, m and the number of threads that sum each channel: enough for about 2**16 threads
    in all, at most 1024 (the combining thread adds them one by one) and at most m."""
    c, s = x.shape[1], math.prod(x.shape[2:])
    m = x.shape[0] * s
    return c, s, m, max(1, min(m, 1024, max(32, 65536 // c)))


def batch_norm_forward(x, gamma, beta, eps):
    xp = get_array_module(x)
    x, gamma, beta = (xp.ascontiguousarray(a) for a in (x, gamma, beta))
    c, s, m, parts = _sizes(x)
    partial = xp.empty(c * parts, dtype=np.float64)
    mean, invstd = xp.empty(c, dtype=x.dtype), xp.empty(c, dtype=x.dtype)
    y = xp.empty(x.shape, dtype=x.dtype)
    launch("batchnorm", "sum_partials", x.dtype, c * parts, (x, *ints(c, s, m, parts), partial))
    launch("batchnorm", "mean_from_partials", x.dtype, c, (partial, *ints(parts, m), mean))
    launch("batchnorm", "square_partials", x.dtype, c * parts, (x, mean, *ints(c, s, m, parts), partial))
    launch("batchnorm", "invstd_from_partials", x.dtype, c, (partial, *ints(parts, m), np.float64(eps), invstd))
    launch("batchnorm", "normalize", x.dtype, x.size, (x, mean, invstd, gamma, beta, *ints(c, s), y))
    return y, mean, invstd


def batch_norm_backward(gy, x, gamma, mean, invstd):
    xp = get_array_module(x)
    gy, x, gamma, mean, invstd = (xp.ascontiguousarray(a) for a in (gy, x, gamma, mean, invstd))
    c, s, m, parts = _sizes(x)
    partial = xp.empty(2 * c * parts, dtype=np.float64)
    totals = xp.empty((2, c), dtype=x.dtype)  # gbeta, ggamma
    gx = xp.empty(x.shape, dtype=x.dtype)
    launch("batchnorm", "grad_partials", x.dtype, c * parts, (gy, x, mean, invstd, *ints(c, s, m, parts), partial))
    launch("batchnorm", "totals_from_partials", x.dtype, 2 * c, (partial, np.int64(parts), totals))
    gbeta, ggamma = totals
    launch("batchnorm", "grad_input", x.dtype, x.size,
           (gy, x, mean, invstd, gamma, gbeta, ggamma, *ints(c, s), x.dtype.type(m), gx))
    return gx, ggamma, gbeta

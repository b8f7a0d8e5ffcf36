"""Local response normalisation as CUDA kernels (``lrn.cu``), one thread per element.

The window sums add the channels in the reference's order in the input's dtype, so ``scale``
is bit-identical to the reference's; ``y`` and the gradient also take ``scale ** -beta``,
which CUDA's ``pow`` rounds (to within an ulp or two) where NumPy's may round differently.
"""
import math

from minidl.backend import get_array_module
from minidl.kernels.cuda_impl._module import ints, launch


def _rows(x):
    """C and S of ``x`` viewed as (N, C, S)."""
    return ints(x.shape[1], math.prod(x.shape[2:]))


def lrn_forward(x, size, alpha, beta, k):
    xp = get_array_module(x)
    t = x.dtype.type
    y, scale = xp.empty(x.shape, dtype=x.dtype), xp.empty(x.shape, dtype=x.dtype)
    launch("lrn", "lrn_forward", x.dtype, x.size,
           (xp.ascontiguousarray(x), *_rows(x), *ints(size // 2, (size - 1) // 2), t(k), t(alpha / size), t(-beta),
            y, scale))
    return y, scale


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    xp = get_array_module(x)
    t = x.dtype.type
    gx = xp.empty(x.shape, dtype=x.dtype)
    # Channel j's window holds c when c - (size-1)//2 <= j <= c + size//2: the forward's, mirrored.
    launch("lrn", "lrn_backward", x.dtype, x.size,
           (*(xp.ascontiguousarray(a) for a in (x, y, scale, gy)), *_rows(x), *ints((size - 1) // 2, size // 2),
            t(-beta), t(2 * alpha * beta / size), gx))
    return gx

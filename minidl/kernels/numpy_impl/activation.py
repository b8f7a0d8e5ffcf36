"""tanh, erf and the gradients of tanh, sigmoid and ReLU, elementwise.

Each gradient is its formula written once, in the order the interface states, so NumPy (or
CuPy) rounds every operation in the inputs' dtype exactly as the compiled kernels must.
``where`` states ReLU's rule directly; NumPy runs it several times slower than a product with
the mask would, but the product lets an inf or NaN gradient through as NaN where y <= 0.

NumPy has no erf: the reference calls Python's ``math.erf`` (the C library's erf) on each value in
float64 and rounds the result to x's dtype. A Python call per element is slow, but it is the
function itself, with no approximation of minidl's to trust; the Numba kernels compute the same
bits in a compiled loop. On CuPy arrays (a dtype the CUDA kernels do not take) it is CuPy's erf.
"""
import math

import numpy as np

from minidl import backend

_math_erf = np.vectorize(math.erf, otypes=[np.float64])


def tanh_forward(x):
    return backend.get_array_module(x).tanh(x)


def erf_forward(x):
    xp = backend.get_array_module(x)
    if xp is not np:
        from cupyx.scipy import special  # part of every CuPy install

        return special.erf(x).astype(x.dtype, copy=False)
    return _math_erf(x.astype(np.float64, copy=False)).astype(x.dtype, copy=False)


def tanh_backward(gy, y):
    return gy * (1 - y * y)


def sigmoid_backward(gy, y):
    return gy * y * (1 - y)


def relu_backward(gy, y):
    return backend.get_array_module(gy).where(y > 0, gy, gy.dtype.type(0))

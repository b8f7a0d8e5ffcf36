"""Gradient-check cases for pooling (minidl.ops.pooling).

Max pooling uses 'distinct' inputs: no two values within 0.1, so the 1e-6
perturbations of the check never change which pixel a window picks.
"""
import numpy as np

from minidl import kernels
from minidl.ops.pooling import AvgPool2dGrad, MaxPool2dGrad, avg_pool2d, max_pool2d
from gradcases import Inp, cases_for


def _argmax(x_shape, kernel, stride, padding, ceil_mode):
    """The argmax of a max pooling of fixed distinct values, for checking MaxPool2dGrad on its own."""
    x = np.random.default_rng(0).permutation(int(np.prod(x_shape))).reshape(x_shape).astype(np.float64)
    return kernels.max_pool2d_forward(x, kernel, stride, padding, ceil_mode)[1]


# 3x3 windows at stride 1 overlap, so pixels chosen by several windows must receive the sum.
_OVERLAP = _argmax((1, 2, 4, 4), (3, 3), (1, 1), (1, 1), False)

CASES = (
    cases_for("MaxPool2d", lambda x: max_pool2d(x, 2), [[Inp((1, 2, 4, 4), "distinct")]], double=True)
    + cases_for("MaxPool2d", lambda x: max_pool2d(x, 3, 2, 1, ceil_mode=True),
                [[Inp((1, 1, 6, 5), "distinct")]], double=True)
    + cases_for("MaxPool2d", lambda x: max_pool2d(x, (2, 3), (1, 2)), [[Inp((2, 1, 3, 5), "distinct")]], double=True)
    + cases_for("MaxPool2dGrad", lambda g: MaxPool2dGrad(_OVERLAP, (1, 2, 4, 4), (3, 3), (1, 1), (1, 1))(g),
                [[(1, 2, 4, 4)]], double=True)
    + cases_for("AvgPool2d", lambda x: avg_pool2d(x, 2), [[(1, 2, 4, 4)]], double=True)
    + cases_for("AvgPool2d", lambda x: avg_pool2d(x, 3, 2, 1, ceil_mode=True, count_include_pad=False),
                [[(1, 1, 6, 5)]], double=True)
    + cases_for("AvgPool2d", lambda x: avg_pool2d(x, (3, 2), (2, 1), (1, 1), ceil_mode=True),
                [[(2, 1, 4, 3)]], double=True)
    + cases_for("AvgPool2dGrad", lambda g: AvgPool2dGrad((1, 1, 5, 4), (3, 2), (2, 1), (1, 1), True, False)(g),
                [[(1, 1, 3, 5)]], double=True)
)

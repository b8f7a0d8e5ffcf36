"""Gradient-check cases for LRN and batch norm (minidl.ops.normalization).

Both backward passes are closed-form kernels (double_backward = False), so
there are no second-derivative checks here. LRN runs with a large alpha:
at PyTorch's default 1e-4 the window term is too small for a check to see.
"""
from minidl.ops.normalization import batch_norm, local_response_norm
from gradcases import cases_for

CASES = (
    cases_for("LocalResponseNorm", lambda x: local_response_norm(x, 3, alpha=2.0, beta=0.75, k=2.0),
              [[(2, 5, 2, 2)], [(1, 4, 3)]])
    + cases_for("LocalResponseNorm", lambda x: local_response_norm(x, 4, alpha=1.0, beta=1.5, k=1.0), [[(1, 3, 2)]])
    + cases_for("BatchNorm", lambda x, w, b: batch_norm(x, None, None, w, b, training=True),
                [[(4, 3), (3,), (3,)], [(2, 3, 2, 2), (3,), (3,)], [(3, 2, 4), (2,), (2,)]])
)

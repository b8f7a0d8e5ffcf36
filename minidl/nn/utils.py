"""Utilities for training loops: ``clip_grad_norm_`` (PyTorch's ``torch.nn.utils``)."""
import math

import numpy as np

from minidl import backend
from minidl.tensor import Tensor, no_grad


def clip_grad_norm_(parameters, max_norm, norm_type=2.0, error_if_nonfinite=False):
    """Scale the gradients of ``parameters`` in place so that their total norm is at most ``max_norm``.

    The total norm is the ``norm_type``-norm of all gradients together, as if concatenated (``inf``:
    the largest magnitude). Where it exceeds ``max_norm``, every gradient is multiplied by
    ``max_norm / (total + 1e-6)``, which keeps their directions. Parameters without a gradient are
    skipped. Returns the total norm before clipping, as a 0-d tensor. A non-finite total (a NaN or inf
    gradient) is returned as is, and raises instead with ``error_if_nonfinite=True``.
    """
    if isinstance(parameters, Tensor):
        parameters = [parameters]
    grads = [p.grad for p in parameters if p.grad is not None]
    max_norm, norm_type = float(max_norm), float(norm_type)
    if not norm_type > 0:
        raise ValueError(f"clip_grad_norm_: norm_type must be > 0 (or inf); got {norm_type:g}")
    if not grads:
        return Tensor(np.zeros((), np.float32))
    xp = backend.get_array_module(grads[0].data)
    if norm_type == math.inf:
        norms = [xp.abs(g.data).max() for g in grads]
        total = xp.max(xp.stack(norms))
    else:
        norms = [(xp.abs(g.data.astype(np.float64)) ** norm_type).sum() for g in grads]
        total = xp.sum(xp.stack(norms)) ** (1 / norm_type)
    total = float(total)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(f"clip_grad_norm_: the total {norm_type:g}-norm of the gradients is {total}; "
                           "a gradient holds a NaN or inf (pass error_if_nonfinite=False to clip anyway)")
    coefficient = max_norm / (total + 1e-6)
    if coefficient < 1:
        with no_grad():
            for g in grads:
                g.mul_(coefficient)
    return Tensor(xp.asarray(total, dtype=grads[0].dtype))

"""Loss functions: softmax cross-entropy with integer class targets, and mean squared error.

Both are composed of existing differentiable ops, so their gradients (and
second derivatives) come from those ops' backward passes.
"""
import numpy as np

from minidl import backend
from minidl.ops.activation import log_softmax
from minidl.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def _check_reduction(op, reduction):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{op}: reduction must be 'mean', 'sum' or 'none'; got {reduction!r}")


def cross_entropy(logits, target, reduction="mean"):
    """Softmax cross-entropy, loss_n = -log softmax(logits_n)[target_n].

    Computed as -log_softmax(logits)[n, target_n]: log_softmax uses the
    log-sum-exp trick, so large logits neither overflow nor lose the loss
    to log(0). The gradient with respect to the logits is
    softmax(logits) - onehot(target) per sample (divided by N for 'mean'),
    which the composed ops produce.

    ``logits`` is (N, C); ``target`` holds N integer class indices (Tensor or ndarray).
    """
    op = "cross_entropy"
    _check_reduction(op, reduction)
    if logits.ndim != 2:
        raise ValueError(f"{op}: expected logits of shape (N, C); got shape {tuple(logits.shape)}")
    t = target.data if isinstance(target, Tensor) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{op}: target must hold integer class indices; got dtype {t.dtype}")
    n, c = logits.shape
    if t.shape != (n,):
        raise ValueError(f"{op}: target of shape {tuple(t.shape)} does not match a batch of {n} logits "
                         f"(logits shape {tuple(logits.shape)}); expected shape ({n},)")
    bad = (t < 0) | (t >= c)
    if bool(bad.any()):
        raise ValueError(f"{op}: target {int(t[bad][0])} is out of range for {c} classes "
                         f"(expected 0 <= target < {c})")
    xp = backend.get_array_module(logits.data)
    t = backend.to_device(t, logits.device)
    picked = log_softmax(logits, axis=1)[xp.arange(n), t]
    return _reduce(-picked, reduction)


def mse_loss(a, b, reduction="mean"):
    """Mean squared error, loss_i = (a_i - b_i)^2, reduced by ``reduction``.
    dL/da_i = 2 (a_i - b_i) (divided by the element count for 'mean'), and the negative for b."""
    op = "mse_loss"
    _check_reduction(op, reduction)
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{op}: the inputs must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    diff = a - b
    return _reduce(diff * diff, reduction)

"""Loss functions: softmax cross-entropy with integer class targets, and mean squared error.

Both are composed of existing differentiable ops, so their gradients (and
second derivatives) come from those ops' backward passes.
"""
import numpy as np

from minidl import _checks, backend
from minidl.ops._util import FLOAT_ONLY, op_dtype
from minidl.ops.activation import log_softmax
from minidl.tensor import Tensor

_REDUCTIONS = ("mean", "sum", "none")


def _reduce(loss, reduction):
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss


def check_reduction(where, reduction):
    """``reduction`` if it is 'mean', 'sum' or 'none'; a loss layer runs this once, when it is made."""
    _checks.require(reduction in _REDUCTIONS, where, "reduction", reduction, "'mean', 'sum' or 'none'")
    return reduction


def _check_not_empty(where, reduction, shape):
    """A 'mean' over no elements is 0/0: PyTorch returns NaN, minidl refuses (as its ``mean`` does),
    under the loss's own name, rather than let a NaN loss into training."""
    if reduction == "mean" and 0 in shape:
        raise ValueError(f"{where}: cannot average the loss over an empty input of shape {tuple(shape)}; "
                         "use reduction='sum' or 'none' for an empty batch")


def check_cross_entropy_input(where, logits, target, reduction="mean"):
    """The target as an array of class indices, checked against the (N, C) floating-point logits;
    ValueError naming ``where`` and the shapes, the dtype or the bad index otherwise."""
    if logits.ndim != 2:
        raise ValueError(f"{where}: expected logits of shape (N, C); got shape {tuple(logits.shape)}")
    op_dtype(where, FLOAT_ONLY, (logits,), "input (the logits)")
    t = target.data if isinstance(target, Tensor) else target if backend.is_array(target) else np.asarray(target)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{where}: target must hold integer class indices; got dtype {t.dtype}")
    n, c = logits.shape
    if t.shape != (n,):
        raise ValueError(f"{where}: target of shape {tuple(t.shape)} does not match a batch of {n} logits "
                         f"(logits shape {tuple(logits.shape)}); expected shape ({n},)")
    bad = (t < 0) | (t >= c)
    if bool(bad.any()):  # where t lives: free for host targets, a wait for the GPU for device ones
        raise ValueError(f"{where}: target {int(t[bad][0])} is out of range for {c} classes "
                         f"(expected 0 <= target < {c})")
    _check_not_empty(where, reduction, logits.shape)
    return t


def check_label_smoothing(where, label_smoothing):
    """``label_smoothing`` as a float, if it is a number in [0, 1]; a loss layer runs this once."""
    _checks.require(_checks.is_real(label_smoothing) and 0 <= label_smoothing <= 1, where, "label_smoothing",
                    label_smoothing, "a number in [0, 1]")
    return float(label_smoothing)


def _cross_entropy(logits, t, reduction, label_smoothing=0.0):
    """Cross-entropy on checked arguments (``t`` from check_cross_entropy_input, ``label_smoothing``
    from check_label_smoothing): cross_entropy and nn.CrossEntropyLoss both end here."""
    xp = backend.get_array_module(logits.data)
    t = backend.to_device(t, logits.device)
    logp = log_softmax(logits, axis=1)
    picked = logp[xp.arange(logits.shape[0]), t]
    if not label_smoothing:
        return _reduce(-picked, reduction)
    return _reduce(picked * (label_smoothing - 1) - logp.mean(axis=1) * label_smoothing, reduction)


def cross_entropy(logits, target, reduction="mean", label_smoothing=0.0):
    """Softmax cross-entropy, loss_n = -log softmax(logits_n)[target_n].

    Computed as -log_softmax(logits)[n, target_n]: log_softmax uses the
    log-sum-exp trick, so large logits neither overflow nor lose the loss
    to log(0). The gradient with respect to the logits is
    softmax(logits) - onehot(target) per sample (divided by N for 'mean'),
    which the composed ops produce.

    With ``label_smoothing`` eps in [0, 1] the target is the mixture (1 - eps) onehot(target) +
    eps/C of the C classes, as in PyTorch: loss_n = (1 - eps) (-log p_n[target_n]) + eps/C
    sum_c (-log p_n[c]), with p_n = softmax(logits_n). Since d(-log p_c)/d logit_k = p_k - delta_ck
    and the mixture's weights sum to 1, the gradient is p_n minus the smoothed target,
    softmax(logits_n) - (1 - eps) onehot(target_n) - eps/C; composed ops again produce it.

    ``logits`` is (N, C); ``target`` holds N integer class indices (Tensor or ndarray).
    """
    check_reduction("cross_entropy", reduction)
    label_smoothing = check_label_smoothing("cross_entropy", label_smoothing)
    return _cross_entropy(logits, check_cross_entropy_input("cross_entropy", logits, target, reduction), reduction,
                          label_smoothing)


def check_mse_input(where, a, b, reduction="mean"):
    """ValueError naming ``where`` unless a and b have one shape and promote to a floating-point
    dtype (an integer target next to a float prediction is fine, as in PyTorch)."""
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(f"{where}: the inputs must have the same shape; got {tuple(a.shape)} and {tuple(b.shape)}")
    op_dtype(where, FLOAT_ONLY, (a, b))
    _check_not_empty(where, reduction, a.shape)


def _mse_loss(a, b, reduction):
    """Squared error on checked arguments: mse_loss and nn.MSELoss both end here. The subtraction
    promotes the two dtypes (an int64 target with a float32 prediction gives float32)."""
    diff = a - b
    return _reduce(diff * diff, reduction)


def mse_loss(a, b, reduction="mean"):
    """Mean squared error, loss_i = (a_i - b_i)^2, reduced by ``reduction``.
    dL/da_i = 2 (a_i - b_i) (divided by the element count for 'mean'), and the negative for b."""
    check_reduction("mse_loss", reduction)
    check_mse_input("mse_loss", a, b, reduction)
    return _mse_loss(a, b, reduction)

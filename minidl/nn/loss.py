"""Loss layers: ``loss = criterion(prediction, target)``."""
from minidl.nn import functional as F
from minidl.nn.module import Module

_REDUCTIONS = ("mean", "sum", "none")


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}; got {reduction!r}")
        self.reduction = reduction


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,)."""

    def forward(self, logits, target):
        return F.cross_entropy(logits, target, reduction=self.reduction)


class MSELoss(_Loss):
    """Squared error between prediction and target, averaged (or summed, or per element)."""

    def forward(self, prediction, target):
        return F.mse_loss(prediction, target, reduction=self.reduction)

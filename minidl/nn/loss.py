"""Loss layers: ``loss = criterion(prediction, target)``."""
from minidl import _checks
from minidl.nn.module import Module
from minidl.ops import loss


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = loss.check_reduction(type(self).__name__, reduction)  # once, here


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,)."""

    def forward(self, logits, target):
        t = loss.check_cross_entropy_input(_checks.layer_name(self), logits, target, self.reduction)
        return loss._cross_entropy(logits, t, self.reduction)


class MSELoss(_Loss):
    """Squared error between prediction and target, averaged (or summed, or per element)."""

    def forward(self, prediction, target):
        loss.check_mse_input(_checks.layer_name(self), prediction, target, self.reduction)
        return loss._mse_loss(prediction, target, self.reduction)

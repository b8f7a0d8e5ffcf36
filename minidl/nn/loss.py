"""Loss layers: ``loss = criterion(prediction, target)``."""
from minidl import _checks
from minidl.nn.module import Module
from minidl.ops import loss


class _Loss(Module):
    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = loss.check_reduction(type(self).__name__, reduction)  # once, here


class CrossEntropyLoss(_Loss):
    """Softmax cross-entropy of logits (N, C) against integer class targets (N,). With
    ``label_smoothing`` eps the target is (1 - eps) of the true class and eps spread evenly over all
    C classes (see `minidl.ops.loss.cross_entropy`)."""

    def __init__(self, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        self.label_smoothing = loss.check_label_smoothing("CrossEntropyLoss", label_smoothing)

    def forward(self, logits, target):
        t = loss.check_cross_entropy_input(_checks.layer_name(self), logits, target, self.reduction)
        return loss._cross_entropy(logits, t, self.reduction, self.label_smoothing)


class MSELoss(_Loss):
    """Squared error between prediction and target, averaged (or summed, or per element)."""

    def forward(self, prediction, target):
        loss.check_mse_input(_checks.layer_name(self), prediction, target, self.reduction)
        return loss._mse_loss(prediction, target, self.reduction)

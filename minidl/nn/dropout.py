"""Dropout layer."""
from minidl import _checks
from minidl.nn.module import Module
from minidl.ops import dropout


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale survivors by
    1/(1-p)); the identity in eval mode. ``inplace`` is accepted for ported code
    and has no effect on the values."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = _checks.check_probability("Dropout", p)
        self.inplace = inplace

    def forward(self, x):
        return dropout._dropout(x, self.p, self.training)  # p was checked in __init__

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

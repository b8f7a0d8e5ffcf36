"""Dropout layer."""
from minidl.nn import functional as F
from minidl.nn._checks import check_probability
from minidl.nn.module import Module


class Dropout(Module):
    """Inverted dropout while training (zero with probability p, scale survivors by
    1/(1-p)); the identity in eval mode. ``inplace`` is accepted for ported code
    and has no effect on the values."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        self.p = check_probability("Dropout", p)
        self.inplace = inplace

    def forward(self, x):
        return F.dropout(x, self.p, training=self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"

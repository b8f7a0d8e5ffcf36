"""Inverted dropout."""
from minidl import _checks, backend, random
from minidl.ops._util import FLOAT_ONLY, operands
from minidl.ops.arithmetic import mul
from minidl.tensor import Tensor


def dropout(x, p=0.5, training=True):
    """Zero each element with probability ``p`` and scale the survivors by 1/(1-p).

    Scaling at training time ("inverted" dropout) keeps the expected value of
    every element unchanged, E[y] = (1-p) * x/(1-p) = x, so evaluation uses
    the network as it is, with no rescaling. The mask comes from the
    framework's generator (``mdl.manual_seed``). It is a product with a
    constant mask, so dL/dx = gy * mask / (1-p), given by ``mul``.
    """
    return _dropout(x, _checks.check_probability("dropout", p), training)


def _dropout(x, p, training):
    """Dropout with a checked p: dropout and nn.Dropout both end here."""
    if not training or p == 0:
        return x
    x, = operands("dropout", FLOAT_ONLY, x)  # scaling an integer by 1/(1-p) would truncate it
    xp = backend.get_array_module(x.data)
    keep = random.rng(xp).random(x.shape) >= p
    return mul(x, Tensor._wrap(keep.astype(x.dtype) * x.dtype.type(1 / (1 - p))))

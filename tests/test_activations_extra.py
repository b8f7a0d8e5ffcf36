"""LeakyReLU and SiLU, functions and layers, through minidl.testing's checks (forward against NumPy,
gradients, second derivatives, dtypes, a batch of one, and PyTorch's values where installed)."""
import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import nn
from minidl.testing import OpTestCase, torch_function


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


class TestLeakyReLU(OpTestCase):
    kind = "nonzero"  # away from the kink at 0
    cases = [dict(shapes=[(3, 4)], id="default", op=lambda x: F.leaky_relu(x),
                  reference=lambda x: np.where(x > 0, x, 0.01 * x),
                  torch_reference=torch_function("torch.nn.functional.leaky_relu")),
             dict(shapes=[(2, 3, 2)], id="slope-0.2-layer", op=nn.LeakyReLU(0.2),
                  reference=lambda x: np.where(x > 0, x, 0.2 * x),
                  torch_reference=torch_function("torch.nn.functional.leaky_relu", negative_slope=0.2))]


class TestSiLU(OpTestCase):
    cases = [dict(shapes=[(3, 4)], id="function", op=F.silu),
             dict(shapes=[(2, 5)], id="layer", op=nn.SiLU())]
    reference = staticmethod(lambda x: x * _sigmoid(x))
    torch_reference = "torch.nn.functional.silu"


def test_leaky_relu_refuses_a_slope_that_is_not_a_number():
    with pytest.raises(TypeError, match="LeakyReLU: negative_slope must be a number; got '0.1'"):
        nn.LeakyReLU("0.1")
    with pytest.raises(TypeError, match="leaky_relu: negative_slope must be a number"):
        F.leaky_relu(mdl.tensor(np.ones(2)), None)

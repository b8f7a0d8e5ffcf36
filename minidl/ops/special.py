"""Special functions: erf, the error function, which the exact GELU needs and NumPy lacks."""
import math

from minidl import kernels
from minidl.ops._util import FLOAT, compute_dtype, operands
from minidl.tensor import Function

_TWO_OVER_SQRT_PI = 2 / math.sqrt(math.pi)


class Erf(Function):
    """y = erf x = 2/sqrt(pi) * integral from 0 to x of e^(-t^2) dt, elementwise.

    By the fundamental theorem of calculus dy/dx = 2/sqrt(pi) e^(-x^2), so
    dL/dx = gy * 2/sqrt(pi) * exp(-x^2), written with Tensor ops (differentiable again). The values
    come from `kernels.erf_forward`; float16 goes through it in float32, which the compiled kernels
    take.
    """

    keep_inputs, keep_outputs = (0,), ()

    def forward(self, x):
        return kernels.erf_forward(x.astype(compute_dtype(x.dtype), copy=False)).astype(x.dtype, copy=False)

    def backward(self, gy):
        x = self.inputs[0]
        return gy * (-(x * x)).exp() * _TWO_OVER_SQRT_PI


def erf(x):
    """The error function, elementwise, as ``torch.erf``: integer inputs give float32."""
    return Erf()(*operands("erf", FLOAT, x))

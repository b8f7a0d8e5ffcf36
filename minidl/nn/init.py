"""Weight initialisers, with PyTorch's names and formulas (``torch.nn.init``).

Each one fills ``tensor.data`` in place and returns the tensor: the Parameter
object stays the same, keeps its dtype and device, and no graph is recorded
(only the array is written). Random values come from the framework's
generator, so ``mdl.manual_seed`` makes them repeatable.

Why the scales: for y = W x with fan_in independent inputs of variance v and
weights of variance s^2, Var(y) = fan_in s^2 v. Keeping Var(y) = v layer after
layer needs s = 1/sqrt(fan_in) (LeCun). ReLU halves the variance, so He
(kaiming) multiplies by gain sqrt(2); Glorot (xavier) balances the forward and
backward passes with s = gain sqrt(2 / (fan_in + fan_out)). A uniform
distribution U(-b, b) has standard deviation b/sqrt(3), so b = sqrt(3) s.
"""
import math

import numpy as np

from minidl import _checks, backend, random
from minidl.tensor import Tensor

_LINEAR_GAIN = ("linear", "identity", "sigmoid", "conv1d", "conv2d", "conv3d",
                "conv_transpose1d", "conv_transpose2d", "conv_transpose3d")


def calculate_gain(nonlinearity, param=None):
    """The factor by which ``nonlinearity`` is expected to shrink the standard deviation, inverted.

    linear/conv/sigmoid: 1; tanh: 5/3; relu: sqrt(2); leaky_relu: sqrt(2 / (1 + slope^2))
    with slope ``param`` (default 0.01); selu: 3/4.
    """
    if nonlinearity in _LINEAR_GAIN:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif _checks.is_real(param):
            slope = param
        else:
            raise ValueError(f"calculate_gain: negative slope {param!r} is not a number")
        return math.sqrt(2.0 / (1 + slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(
        f"calculate_gain: unsupported nonlinearity {nonlinearity!r}; expected one of "
        f"{', '.join(_LINEAR_GAIN + ('tanh', 'relu', 'leaky_relu', 'selu'))}"
    )


def _check_tensor(fn, tensor):
    if not isinstance(tensor, Tensor):
        raise TypeError(f"init.{fn}: expected a Tensor or Parameter; got {type(tensor).__name__}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = size(1) * receptive field, fan_out = size(0) * receptive field, where the
    receptive field is the product of the dimensions after the first two (1 for a matrix).

    A Linear weight (out, in) gives (in, out); a Conv2d weight (out, in/groups, kh, kw)
    gives (in/groups * kh * kw, out * kh * kw).
    """
    if tensor.ndim < 2:
        raise ValueError(
            f"init: fan in and fan out cannot be computed for a tensor with fewer than 2 dimensions "
            f"(shape {tensor.shape})"
        )
    receptive = int(np.prod(tensor.shape[2:], dtype=np.int64))
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(fn, tensor, mode):
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"init.{fn}: mode must be 'fan_in' or 'fan_out'; got {mode!r}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _is_empty(tensor):
    # A tensor with no elements has nothing to fill (and a zero fan), as for Linear(0, n): a no-op.
    return tensor.data.size == 0


def _fill(tensor, values):
    tensor.data[...] = values.astype(tensor.dtype, copy=False)
    return tensor


def _generator(tensor):
    return random.rng(backend.get_array_module(tensor.data))


def uniform_(tensor, a=0.0, b=1.0):
    """Fill with samples of U(a, b)."""
    _check_tensor("uniform_", tensor)
    if a > b:
        raise ValueError(f"init.uniform_: lower bound a={a} is greater than upper bound b={b}")
    return _fill(tensor, a + (b - a) * _generator(tensor).random(tensor.shape))


def normal_(tensor, mean=0.0, std=1.0):
    """Fill with samples of N(mean, std^2)."""
    _check_tensor("normal_", tensor)
    if std < 0:
        raise ValueError(f"init.normal_: std must be non-negative; got {std}")
    return _fill(tensor, mean + std * _generator(tensor).standard_normal(tensor.shape))


def constant_(tensor, val):
    _check_tensor("constant_", tensor)
    tensor.data[...] = val
    return tensor


def zeros_(tensor):
    return constant_(tensor, 0)


def ones_(tensor):
    return constant_(tensor, 1)


def xavier_uniform_(tensor, gain=1.0):
    """Glorot & Bengio (2010): U(-b, b) with b = gain * sqrt(6 / (fan_in + fan_out))."""
    _check_tensor("xavier_uniform_", tensor)
    if _is_empty(tensor):
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0) * gain * math.sqrt(2.0 / (fan_in + fan_out))
    return uniform_(tensor, -bound, bound)


def xavier_normal_(tensor, gain=1.0):
    """Glorot & Bengio (2010): N(0, std^2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    _check_tensor("xavier_normal_", tensor)
    if _is_empty(tensor):
        return tensor
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / (fan_in + fan_out)))


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): U(-b, b) with b = gain * sqrt(3 / fan), gain = calculate_gain(nonlinearity, a).

    ``a`` is the negative slope of the leaky ReLU that follows (0: plain ReLU).
    ``mode='fan_in'`` preserves the variance of the forward pass, ``'fan_out'`` of the backward pass.
    """
    _check_tensor("kaiming_uniform_", tensor)
    if _is_empty(tensor):
        return tensor
    fan = _calculate_correct_fan("kaiming_uniform_", tensor, mode)
    bound = math.sqrt(3.0) * calculate_gain(nonlinearity, a) / math.sqrt(fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): N(0, std^2) with std = gain / sqrt(fan); arguments as ``kaiming_uniform_``."""
    _check_tensor("kaiming_normal_", tensor)
    if _is_empty(tensor):
        return tensor
    fan = _calculate_correct_fan("kaiming_normal_", tensor, mode)
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def lecun_uniform_(tensor):
    """LeCun et al. (1998): U(-b, b) with b = sqrt(3 / fan_in), i.e. standard deviation 1/sqrt(fan_in)."""
    _check_tensor("lecun_uniform_", tensor)
    if _is_empty(tensor):
        return tensor
    fan_in, _ = _calculate_fan_in_and_fan_out(tensor)
    bound = math.sqrt(3.0 / fan_in)
    return uniform_(tensor, -bound, bound)


def lecun_normal_(tensor):
    """LeCun et al. (1998): N(0, 1/fan_in), not truncated."""
    _check_tensor("lecun_normal_", tensor)
    if _is_empty(tensor):
        return tensor
    fan_in, _ = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, 1.0 / math.sqrt(fan_in))


def default_(weight, bias=None):
    """PyTorch's default initialisation of Linear and Conv2d, in place: the weight from
    kaiming_uniform_ with a=sqrt(5), whose gain sqrt(1/3) makes the bound exactly
    1/sqrt(fan_in), and the bias from U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = _calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        uniform_(bias, -bound, bound)
    return weight

"""minidl: a deep-learning framework written from scratch on NumPy.

    import minidl as mdl
    x = mdl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # 2 * x
"""
import numpy as np

from minidl.backend import DeviceError, get_array_module
from minidl.config import config, using_config
from minidl.random import manual_seed
from minidl.threads import configure_process
from minidl.gradcheck import GradcheckError, NondifferentiableError, gradcheck, gradgradcheck
from minidl.ops import (abs, broadcast_to, cat, clip, concat, exp, flatten, log, log_softmax, matmul, maximum,
                        relu, reshape, sigmoid, softmax, sqrt, stack, tanh, transpose)
from minidl.ops.special import erf
from minidl.tensor import (AnomalyError, Function, Tensor, detect_anomaly, enable_grad, grad, is_grad_enabled,
                           no_grad, registered_ops, set_grad_enabled)
from minidl.serialization import SerializationError, load, save
from minidl import nn, optim, random  # noqa: E402  (they build on everything above)

__version__ = "0.1.0"


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor. An ndarray keeps its dtype; Python floats become float32."""
    t = Tensor(data, dtype=dtype)
    if device is not None:
        t = t.to(device)
    t.requires_grad = requires_grad
    return t


def from_numpy(array):
    """A tensor over ``array`` itself, sharing its memory (no copy), as ``torch.from_numpy``."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor(array)


def argmax(x, dim=None, keepdim=False):
    """``x.argmax(dim, keepdim=keepdim)``: the index of the largest value, int64."""
    return x.argmax(dim, keepdim=keepdim)


def argmin(x, dim=None, keepdim=False):
    return x.argmin(dim, keepdim=keepdim)


def _filled(make, shape, dtype, requires_grad):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = tuple(shape[0])
    return tensor(make(shape).astype(dtype or np.float32, copy=False), requires_grad=requires_grad)


def zeros(*shape, dtype=None, requires_grad=False):
    return _filled(np.zeros, shape, dtype, requires_grad)


def ones(*shape, dtype=None, requires_grad=False):
    return _filled(np.ones, shape, dtype, requires_grad)


def randn(*shape, dtype=None, requires_grad=False):
    """Standard-normal samples from the framework's generator (see manual_seed)."""
    return _filled(random.rng().standard_normal, shape, dtype, requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform [0, 1) samples from the framework's generator (see manual_seed)."""
    return _filled(random.rng().random, shape, dtype, requires_grad)

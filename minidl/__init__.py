"""minidl: a deep-learning framework written from scratch on NumPy.

    import minidl as mdl
    x = mdl.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    x.grad            # 2 * x
"""
import os

# Before NumPy loads OpenBLAS, which reads this once: after each GEMM, OpenBLAS's worker threads
# spin for 2**28 cycles (about 0.1 s) by default, competing with any other thread pool on the
# cores: the Numba kernels' that run between two GEMMs, PyTorch's where it is loaded too. With
# PyTorch in the process (benchmarks/bench_train.py, 2 cores) minidl trained LeNet-5 at 1,300-
# 1,500 img/s with the default and 3,000-3,250 with 2**4 cycles; `minidl train` alone showed no
# difference beyond run-to-run noise. It takes effect only where minidl is imported before NumPy
# (the `minidl` command, the benchmarks); the environment overrides it.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

from minidl.backend import DeviceError, get_array_module, get_kernels, manual_seed, set_kernels, use_kernels
from minidl.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minidl.ops import (abs, broadcast_to, cat, clip, concat, exp, flatten, log, log_softmax, matmul, maximum,
                        relu, reshape, sigmoid, softmax, sqrt, stack, tanh, transpose)
from minidl.tensor import (AnomalyError, Function, Tensor, detect_anomaly, enable_grad, grad, is_grad_enabled,
                           no_grad, registered_ops, set_grad_enabled)
from minidl.serialization import SerializationError, load, save
from minidl import nn, optim  # noqa: E402  (they build on everything above)

__version__ = "0.1.0"


def tensor(data, requires_grad=False, dtype=None, device=None):
    """A new leaf tensor. An ndarray keeps its dtype; Python floats become float32."""
    t = Tensor(data, dtype=dtype)
    if device is not None:
        t = t.to(device)
    t.requires_grad = requires_grad
    return t


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
    from minidl import backend

    return _filled(backend.rng().standard_normal, shape, dtype, requires_grad)


def rand(*shape, dtype=None, requires_grad=False):
    """Uniform [0, 1) samples from the framework's generator (see manual_seed)."""
    from minidl import backend

    return _filled(backend.rng().random, shape, dtype, requires_grad)

"""Argument checks, written once for the ops, the layers and the optimizers.

A bad setting gets a ValueError in one wording, ``{where}: {name} must be {expected}; got {value!r}``:
``where`` is the op (``conv2d``), the layer (``Conv2d``) or the optimizer, ``value`` is what the caller
passed. For example::

    Conv2d: kernel_size must be an int or a pair of ints (h, w); got (3, 3, 3)
    conv2d: stride must be >= 1; got (1, 0)
    MaxPool2d: padding must be at most half of kernel_size=(3, 3); got 2
    StepLR: step_size must be an int >= 1; got 2.5
    dropout: p must be in [0, 1); got 1.0

A bad input, checked on every call since it depends on the tensor, gets ``{where}: expected a {layout}
input; got shape ...`` (or its op's own message naming the shapes), ``where`` being the op or, from a
layer's forward, ``layer_name(layer)``: ``Conv2d(3, 4, kernel_size=(3, 3), stride=(1, 1))``.
"""
import numbers

import numpy as np


def fail(where, name, value, expected):
    """Raise ``{where}: {name} must be {expected}; got {value!r}``. Called after a test rather than
    through ``require`` where ``expected`` must be formatted: the functionals check on every call,
    and formatting costs more than the test."""
    raise ValueError(f"{where}: {name} must be {expected}; got {value!r}")


def require(ok, where, name, value, expected):
    """``fail`` unless ``ok``."""
    if not ok:
        fail(where, name, value, expected)


def is_int(v):
    """An integer, NumPy's included, but not a bool: True is an Integral, and never meant as a size."""
    # type(v) is int first: the common case, and several times faster than the Integral check
    return type(v) is int or (isinstance(v, numbers.Integral) and not isinstance(v, bool))


def is_real(v):
    """A real number, NumPy's included, but not a bool."""
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def check_bool(where, name, value):
    """A bool, NumPy's included: a truthy string ("no") or number must not pass for True."""
    if not isinstance(value, (bool, np.bool_)):
        fail(where, name, value, "True or False")
    return bool(value)


def check_int(where, name, value, minimum):
    """``value`` as a Python int, if it is an int >= ``minimum``."""
    if not (is_int(value) and value >= minimum):
        fail(where, name, value, f"an int >= {minimum}")
    return int(value)


def pair(where, name, value, minimum):
    """An int or a pair of ints, each >= ``minimum``, as an (h, w) tuple of Python ints."""
    if is_int(value):
        h = w = value
    elif isinstance(value, (tuple, list)) and len(value) == 2 and is_int(value[0]) and is_int(value[1]):
        h, w = value
    else:
        fail(where, name, value, "an int or a pair of ints (h, w)")
    if h < minimum or w < minimum:
        fail(where, name, value, f">= {minimum}")
    return int(h), int(w)


def check_probability(where, p):
    """A dropout probability, p in [0, 1), as a float (p = 1 would drop everything and divide by 0)."""
    require(is_real(p) and 0 <= p < 1, where, "p", p, "in [0, 1)")
    return float(p)


def check_ndim(where, x, dims, layout):
    """The input's rank is one of ``dims``; ``layout`` says which, e.g. ``4-D (N, C, H, W)``."""
    if x.ndim not in dims:
        raise ValueError(f"{where}: expected a {layout} input; got shape {tuple(x.shape)}")


def layer_name(module):
    """The layer as ``print(model)`` shows it, e.g. ``Linear(in_features=4, out_features=2, bias=True)``."""
    return f"{type(module).__name__}({module.extra_repr()})"

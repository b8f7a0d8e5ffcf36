"""Argument checks shared by the layers: errors name the layer and the offending value."""
import numbers


def layer_name(module):
    """The layer as ``print(model)`` shows it, e.g. ``Linear(in_features=4, out_features=2, bias=True)``."""
    return f"{type(module).__name__}({module.extra_repr()})"


def check_int(layer, name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{layer}: {name} must be an int >= {minimum}; got {value!r}")
    return int(value)


def check_pair(layer, name, value, minimum):
    """An int or a pair of ints, as an (h, w) tuple of ints."""
    pair = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(pair) != 2:
        raise ValueError(f"{layer}: {name} must be an int or a pair of ints; got {value!r}")
    return tuple(check_int(layer, name, v, minimum) for v in pair)


def check_probability(layer, p):
    if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
        raise ValueError(f"{layer}: p must be a probability in [0, 1); got {p!r}")
    return float(p)

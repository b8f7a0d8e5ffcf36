"""The framework's random generators: initialisers, dropout and shuffling draw from them.

One NumPy generator for the host and one CuPy generator for the GPU (made on first use),
both seeded by `manual_seed`. They live apart from ``minidl.backend`` because a seed and its
generator state are not a device concern: a checkpoint saves and restores them
(`get_rng_state`, `set_rng_state`) whatever device the run is on. Per process, like
PyTorch's default generator: one seed makes the whole program repeat.
"""
import numpy as np

from minidl._checks import check_int

_seed = None
_numpy_rng = np.random.default_rng()
_cupy_rng = None


def manual_seed(seed):
    """Seed every random source minidl uses (initialisers, dropout, shuffling)."""
    global _seed, _numpy_rng, _cupy_rng
    _seed = check_int("manual_seed", "seed", seed, 0)
    _numpy_rng = np.random.default_rng(_seed)
    _cupy_rng = None  # re-created from _seed on next use


def rng(xp=np):
    """The framework's random generator for array module ``xp``."""
    global _cupy_rng
    if xp is np:
        return _numpy_rng
    if _cupy_rng is None:
        _cupy_rng = xp.random.default_rng(_seed)
    return _cupy_rng


def get_rng_state():
    """The state of the framework's NumPy generator, as plain JSON-able values (for checkpoints)."""
    return {"seed": _seed, "bit_generator": _numpy_rng.bit_generator.state}


def check_rng_state(state):
    """Raise ValueError unless ``state`` is one that `set_rng_state` can restore."""
    if not (isinstance(state, dict) and state.keys() == {"seed", "bit_generator"}):
        raise ValueError(f"set_rng_state: expected a dict with 'seed' and 'bit_generator', as get_rng_state "
                         f"returns; got {str(state)[:200]}")
    seed = state["seed"]
    if seed is not None:
        check_int("set_rng_state", "seed", seed, 0)
    try:
        np.random.default_rng().bit_generator.state = state["bit_generator"]  # a spare generator: test only
    except (TypeError, ValueError, KeyError) as e:
        raise ValueError(f"set_rng_state: the generator state is not one of "
                         f"{type(_numpy_rng.bit_generator).__name__} ({type(e).__name__}: {e})") from None


def set_rng_state(state):
    """Restore a state from `get_rng_state`, so a resumed run draws the same numbers."""
    global _seed, _cupy_rng
    check_rng_state(state)
    _seed = state["seed"]
    _numpy_rng.bit_generator.state = state["bit_generator"]
    _cupy_rng = None

"""The framework's random generators: initialisers, dropout and shuffling draw from them.

One NumPy generator for the host and one CuPy generator for the GPU (made on first use),
both seeded by `manual_seed`. They live apart from ``minidl.backend`` because a seed and its
generator state are not a device concern: a checkpoint saves and restores them
(`get_rng_state`, `set_rng_state`) whatever device the run is on. Per process, like
PyTorch's default generator: one seed makes the whole program repeat.
"""
import numpy as np

_seed = None
_numpy_rng = np.random.default_rng()
_cupy_rng = None


def manual_seed(seed):
    """Seed every random source minidl uses (initialisers, dropout, shuffling)."""
    global _seed, _numpy_rng, _cupy_rng
    _seed = int(seed)
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


def set_rng_state(state):
    """Restore a state from `get_rng_state`, so a resumed run draws the same numbers."""
    global _seed, _cupy_rng
    _seed = state["seed"]
    _numpy_rng.bit_generator.state = state["bit_generator"]
    _cupy_rng = None

"""The one seam between the wrappers and the GPU: compiling a kernel source and launching it.

``function(stem, dtype, name)`` returns kernel ``name`` of ``stem``.cu compiled for ``dtype``, a
callable ``f(grid, block, args)`` (CuPy's ``RawKernel``, launched on CuPy's current stream).
Each (file, dtype) is compiled once, on first use, by NVRTC through ``cupy.RawModule``; CuPy is
imported there and nowhere else, through ``minidl.backend.cupy()``. Tests replace `function`
with a launcher that runs the same source on the CPU (``tests/cuda_host.py``).
"""
import functools
from pathlib import Path

import numpy as np

from minidl import backend

_DIR = Path(__file__).parent
_TYPES = {np.dtype(np.float32): "float", np.dtype(np.float64): "double"}

# Without contraction every product is rounded before it is added, as NumPy rounds it, so the
# kernels that follow the reference's arithmetic stay bit-identical to it.
OPTIONS = ("--fmad=false",)

BLOCK = 256  # threads per block
# Enough blocks to fill any current GPU many times over; past that the kernels' grid-stride loops
# give each thread several work items rather than launching more blocks.
MAX_BLOCKS = 65536


def source(stem, dtype):
    """The text handed to the compiler for ``stem``.cu and ``dtype``: the element type ``T``,
    then the file as it is."""
    dtype = np.dtype(dtype)
    if dtype not in _TYPES:
        raise TypeError(f"the CUDA kernels are compiled for float32 and float64, not {dtype}")
    return f"typedef {_TYPES[dtype]} T;\n" + (_DIR / f"{stem}.cu").read_text()


@functools.cache
def _compiled(stem, dtype):
    return backend.cupy().RawModule(code=source(stem, dtype), options=OPTIONS)


@functools.cache
def function(stem, dtype, name):
    """Kernel ``name`` of ``stem``.cu for ``dtype``, launched as ``f(grid, block, args)``."""
    return _compiled(stem, np.dtype(dtype)).get_function(name)


def ints(*values):
    """``values`` as the kernels' ``long long`` arguments."""
    return tuple(np.int64(v) for v in values)


def launch(stem, name, dtype, n, args):
    """Run kernel ``name`` over ``n`` work items, one thread each while MAX_BLOCKS allows.
    Every kernel takes ``n`` as its first argument; ``args`` are the rest."""
    if n > 0:  # a grid of no blocks is not a valid launch
        function(stem, dtype, name)((min(-(-n // BLOCK), MAX_BLOCKS),), (BLOCK,), (np.int64(n), *args))

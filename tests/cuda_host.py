"""Runs minidl's CUDA kernels on the CPU, so that tests check them without a GPU.

`Host.function` stands in for ``minidl.kernels.cuda_impl._module.function``: it compiles
exactly the text that CuPy would hand to NVRTC (``_module.source``) as C++, with g++ and
``cuda_host.h`` mapping the CUDA built-ins, into a shared library (once per (file, dtype)),
and returns a launcher ``f(grid, block, args)`` that runs the kernel for every (blockIdx,
threadIdx) of the launch in turn. Threads run one after another; the kernels are written so
that no thread reads what another writes within a launch, so the order is immaterial.

Arguments are checked against the kernel's C signature as CuPy would need them: arrays
C-contiguous with the pointer's element type (writable where it is not const), scalars numpy
scalars of exactly the parameter's type. A wrapper that passed a Python int, or a float64
array to a float kernel, would compute garbage on a GPU; here it fails with its name.
"""
import ctypes
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np

from minidl.kernels.cuda_impl import _module

HEADER = Path(__file__).with_name("cuda_host.h")
COMPILER = shutil.which("g++")

_KERNEL = re.compile(r'extern "C" __global__ void (\w+)\(([^)]*)\)')
_SCALARS = {np.float32: ctypes.c_float, np.float64: ctypes.c_double, np.int64: ctypes.c_longlong}


def _parameters(text, dtype):
    """Each kernel's parameters in ``text``, as (name, element type, pointer?, const?)."""
    kernels = {}
    for name, params in _KERNEL.findall(text):
        parsed = []
        for param in params.split(","):
            words = param.replace("*", " * ").split()[:-1]  # drop the parameter's name
            base = " ".join(w for w in words if w not in ("const", "__restrict__", "*"))
            element = {"T": dtype, "double": np.float64, "long long": np.int64}[base]
            parsed.append((param.split()[-1], np.dtype(element).type, "*" in words, "const" in words))
        kernels[name] = parsed
    return kernels


class Host:
    """Compiles and runs the kernel sources on the CPU; shared libraries go to ``directory``."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self._libraries = {}

    def _library(self, stem, dtype):
        key = (stem, dtype)
        if key not in self._libraries:
            text = _module.source(stem, dtype)
            path = self.directory / f"{stem}-{dtype.name}.so"
            subprocess.run([COMPILER, "-O1", "-shared", "-fPIC", "-ffp-contract=off", "-x", "c++", "-include",
                            str(HEADER), "-o", str(path), "-"], input=text, text=True, check=True)
            self._libraries[key] = ctypes.CDLL(str(path)), _parameters(text, dtype)
        return self._libraries[key]

    def function(self, stem, dtype, name):
        library, kernels = self._library(stem, np.dtype(dtype))
        kernel, parameters, set_thread = getattr(library, name), kernels[name], library.cuda_host_set_thread

        def launch(grid, block, args):
            (blocks,), (threads,) = grid, block  # the kernels are one-dimensional
            assert len(args) == len(parameters), f"{name}: {len(args)} arguments for {len(parameters)} parameters"
            values = [_convert(name, p, a) for p, a in zip(parameters, args)]
            for b in range(blocks):
                for t in range(threads):
                    set_thread(b, t, threads, blocks)
                    kernel(*values)

        return launch


def _convert(kernel, parameter, arg):
    """``arg`` as ctypes passes it for ``parameter``, after checking that it fits."""
    name, element, pointer, const = parameter
    where = f"{kernel}({name})"
    if pointer:
        assert isinstance(arg, np.ndarray) and arg.dtype == element, f"{where}: wants a {element.__name__} array"
        assert arg.flags.c_contiguous, f"{where}: the array is not C-contiguous"
        assert const or arg.flags.writeable, f"{where}: an output that cannot be written"
        return ctypes.c_void_p(arg.ctypes.data)
    assert type(arg) is element, f"{where}: wants np.{element.__name__}, got {type(arg).__name__}"
    return _SCALARS[element](arg)

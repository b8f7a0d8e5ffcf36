"""``minidl bench``: the benchmarks an installed minidl runs.

    minidl bench im2col [--quick] [--impl my_im2col.py] [--json out.json] [--plot out.png]
    minidl bench conv [--quick] [--device cuda]
    minidl bench train [--batch-sizes 64 256] [--device cuda]
    minidl bench NAME --help                 # every option of one

- ``im2col``: every im2col/col2im implementation (the Python loops, NumPy, Numba, CUDA, yours,
  PyTorch's unfold/fold) in GB/s next to the machine's copy bandwidth (`minidl.bench.im2col`);
- ``conv``: convolution layers, forward and forward + backward, every way minidl runs them, next
  to PyTorch (`minidl.bench.conv`);
- ``train``: LeNet-5 training steps per second, next to PyTorch (`minidl.bench.train`).

Each runs in a process of its own with minidl's thread settings, and PyTorch in processes that
start from the environment as you gave it (see `minidl.bench.common`).
"""
import importlib

from minidl.bench.common import relaunch, started_for_benchmark

BENCHMARKS = ("im2col", "conv", "train")


def run(name, argv):
    """Run benchmark ``name`` with the command-line arguments ``argv``; its exit status."""
    if name not in BENCHMARKS:
        raise ValueError(f"minidl bench: unknown benchmark {name!r}; expected one of {', '.join(BENCHMARKS)}")
    if not started_for_benchmark():
        return relaunch(name, argv)
    return importlib.import_module(f"minidl.bench.{name}").main(argv, prog=f"minidl bench {name}") or 0

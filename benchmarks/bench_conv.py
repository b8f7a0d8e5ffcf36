"""`minidl bench conv`, from a checkout: `python benchmarks/bench_conv.py --help` (see minidl/bench/conv.py)."""
import sys

from minidl.bench import run

if __name__ == "__main__":
    sys.exit(run("conv", sys.argv[1:]))

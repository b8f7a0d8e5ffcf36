"""`minidl bench im2col`, from a checkout: `python benchmarks/bench_im2col.py --help` (see minidl/bench/im2col.py)."""
import sys

from minidl.bench import run

if __name__ == "__main__":
    sys.exit(run("im2col", sys.argv[1:]))

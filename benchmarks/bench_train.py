"""`minidl bench train`, from a checkout: `python benchmarks/bench_train.py --help` (see minidl/bench/train.py)."""
import sys

from minidl.bench import run

if __name__ == "__main__":
    sys.exit(run("train", sys.argv[1:]))

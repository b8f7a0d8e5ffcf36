"""``python -m minidl.bench NAME ...``: what ``minidl bench NAME ...`` runs (see `minidl.bench`)."""
import sys

from minidl.bench import BENCHMARKS, run

if len(sys.argv) < 2 or sys.argv[1] not in BENCHMARKS:
    sys.exit(f"usage: python -m minidl.bench {{{','.join(BENCHMARKS)}}} [options]")
try:
    sys.exit(run(sys.argv[1], sys.argv[2:]))
except KeyboardInterrupt:  # Ctrl-C: the process that started this one says so
    sys.exit(130)

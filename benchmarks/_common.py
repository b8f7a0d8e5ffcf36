"""What every benchmark shares: the process's thread settings, timing by median of repeats, and
a header naming the machine. Every benchmark imports this module first, before NumPy."""
import json
import os
import platform
import statistics
import sys
import time

# A benchmark is a process of its own, so it sets its threads as the `minidl` command does
# (minidl.cli.configure_process), plus OpenBLAS's thread timeout, which OpenBLAS reads once when
# NumPy loads it: by default its worker threads spin for 2**28 cycles (about 0.1 s) after each
# GEMM, competing with any other thread pool on the cores (the Numba kernels' between two GEMMs,
# PyTorch's where it is loaded too). With PyTorch in the same process (bench_train.py, 2 cores)
# minidl trained LeNet-5 at 1,300-1,500 img/s with the default and 3,000-3,250 with 2**4 cycles.
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

from minidl.cli import configure_process  # noqa: E402

configure_process()


def median_time(fn, repeat=7, number=None, min_time=0.2):
    """Median seconds per call of ``fn`` over ``repeat`` rounds of ``number`` calls.

    ``number`` is chosen so one round lasts about ``min_time`` when not given.
    """
    fn()  # warm up: caches, lazy imports, JIT
    if number is None:
        number, elapsed = 1, 0.0
        while True:
            t0 = time.perf_counter()
            for _ in range(number):
                fn()
            elapsed = time.perf_counter() - t0
            if elapsed >= min_time / 4:
                break
            number *= 4
        number = max(1, int(number * min_time / max(elapsed, 1e-9)))
    rounds = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        rounds.append((time.perf_counter() - t0) / number)
    return statistics.median(rounds)


def try_import_torch():
    try:
        import torch
    except ImportError:
        return None
    return torch


def machine_header():
    """Lines naming the machine, versions and thread settings, for the top of every report."""
    import minidl

    lines = [
        f"machine: {platform.machine()} {platform.processor() or ''} {os.cpu_count()} logical CPUs, "
        f"{platform.system()} {platform.release()}",
        f"python {platform.python_version()}, numpy {np.__version__}, minidl {minidl.__version__}, "
        f"minidl kernels: {minidl.config.kernels}",
    ]
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg.get("Build Dependencies", {}).get("blas", {})
        lines.append(f"numpy BLAS: {blas.get('name', '?')} {blas.get('version', '')}")
    except (TypeError, AttributeError):
        pass
    try:
        import numba

        lines.append(f"numba {numba.__version__}, numba threads {numba.get_num_threads()} "
                     f"(threading layer chosen on first parallel call)")
    except ImportError:
        lines.append("numba: not installed")
    torch = try_import_torch()
    if torch is not None:
        lines.append(f"torch {torch.__version__}, torch threads {torch.get_num_threads()}")
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                                      "NUMBA_NUM_THREADS", "OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")
           if k in os.environ}
    lines.append(f"thread settings: {env or 'library defaults'}")
    return lines


def add_kernels_option(parser):
    """``--kernels auto|numpy|numba``; pass the parsed args to :func:`select_kernels`."""
    parser.add_argument("--kernels", choices=["auto", "numpy", "numba"], default=None,
                        help="minidl's CPU kernels (default: $MINIDL_KERNELS, else auto)")


def select_kernels(args):
    import minidl

    if args.kernels:
        minidl.config.kernels = args.kernels


def write_json(path, payload):
    if path is None:
        return
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(payload, f, indent=2)
    os.replace(tmp, path)
    print(f"wrote {path}", file=sys.stderr)

"""The thread settings of a process that trains with minidl. A program asks for them; importing
minidl never sets them.

    import minidl as mdl
    mdl.configure_process()      # first thing in a training script; the minidl command does it

A library must not change its host process's threads on import: they are every other library's
too. The process that trains owns them, though. On 2 cores, minidl's Numba kernels and OpenBLAS's
GEMMs take turns on the cores, and they slow each other badly when the idle threads of either pool
spin instead of sleeping. Measured on 2 cores, a LeNet-5 training step at batch 64 with Adam, in a
script that imports minidl and loops: 47 ms with neither pool told to sleep, 9.5 ms after
`configure_process`, 8.5-9 ms with only ``OPENBLAS_THREAD_TIMEOUT=4`` in the environment.
"""
import os


def configure_process():
    """Choose this process's thread settings for training, keeping any already in the environment.
    Call it before the first Numba kernel runs (the first training step): both are read then.

    - ``OMP_WAIT_POLICY=PASSIVE``: Numba's OpenMP threads sleep between kernels instead of spinning
      on the cores that the next GEMM wants. On a busy 2-core machine a spinning or descheduled
      worker also made a small kernel take about 16 ms instead of 40 us.
    - ``NUMBA_NUM_THREADS`` from ``OMP_NUM_THREADS`` where only the latter is set, so the usual way
      to limit a job's threads limits Numba's too.

    Not here: OpenBLAS's ``OPENBLAS_THREAD_TIMEOUT``, which OpenBLAS reads when NumPy loads it, so
    only a process that sets it before importing NumPy can use it (the benchmarks do, in
    benchmarks/_common.py).
    """
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2" sets nested levels
    if "NUMBA_NUM_THREADS" not in os.environ and first.isdigit() and int(first) > 0:
        os.environ["NUMBA_NUM_THREADS"] = str(min(int(first), os.cpu_count() or 1))

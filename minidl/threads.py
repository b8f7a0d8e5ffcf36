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
import sys


def configure_process():
    """Choose this process's thread settings for training, keeping any already in the environment.
    Call it before the first Numba kernel runs (the first training step): both are read then.

    - ``OMP_WAIT_POLICY=PASSIVE``: Numba's OpenMP threads sleep between kernels instead of spinning
      on the cores that the next GEMM wants. On a busy 2-core machine a spinning or descheduled
      worker also made a small kernel take about 16 ms instead of 40 us.
    - ``NUMBA_NUM_THREADS`` from ``OMP_NUM_THREADS`` where only the latter is set, so the usual way
      to limit a job's threads limits Numba's too.
    - ``OMP_NUM_THREADS``, when an MPI launcher started several ranks on this machine and the
      environment does not say: the cores shared out among them. OpenBLAS and Numba would
      otherwise each start a thread per core in every rank, and on 2 cores two ranks of LeNet-5
      trained at 530 images/s instead of 7,100. OpenBLAS reads it when NumPy loads it, so a process
      that has loaded NumPy must start again for it to count, as the ``minidl`` command does.

    Returns whether it set ``OMP_NUM_THREADS`` while NumPy was loaded already: then only a new
    process (``os.execv``) gets the setting in full.

    Not here: OpenBLAS's ``OPENBLAS_THREAD_TIMEOUT``, which OpenBLAS reads when NumPy loads it, so
    only a process that sets it before importing NumPy can use it (the benchmarks' processes
    start with it, see ``minidl.bench``).
    """
    settings = process_settings(os.environ)
    os.environ.update(settings)
    return "OMP_NUM_THREADS" in settings and "numpy" in sys.modules


def process_settings(environ):
    """The variables `configure_process` adds to the environment ``environ``, as a dict: those it
    chooses and ``environ`` does not set. A process that starts another one with them
    (``minidl bench``) passes them in the new process's environment instead."""
    settings = {} if "OMP_WAIT_POLICY" in environ else {"OMP_WAIT_POLICY": "PASSIVE"}
    share = _threads_per_rank()
    if share is not None and "OMP_NUM_THREADS" not in environ:
        settings["OMP_NUM_THREADS"] = str(share)
    threads = settings.get("OMP_NUM_THREADS", environ.get("OMP_NUM_THREADS", ""))
    first = threads.split(",")[0].strip()  # "4,2" sets nested levels
    if "NUMBA_NUM_THREADS" not in environ and first.isdigit() and int(first) > 0:
        settings["NUMBA_NUM_THREADS"] = str(min(int(first), os.cpu_count() or 1))
    return settings


def _threads_per_rank():
    """The cores of this machine shared out among the MPI ranks that a launcher started on it
    (read from its environment), or None when it started at most one here."""
    from minidl.distributed import launched_local_size

    here = launched_local_size()
    return max(1, (os.cpu_count() or 1) // here) if here > 1 else None


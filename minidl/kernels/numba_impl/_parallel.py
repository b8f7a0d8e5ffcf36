"""Numba's parallel loops, callable from several Python threads at once.

Numba runs ``prange`` loops on a threading layer. The 'omp' and 'tbb' layers take calls from
any number of threads; 'workqueue', which Numba falls back to where neither OpenMP nor TBB is
installed, aborts the whole process when a second thread enters it while the first is inside.
So until the first parallel call has shown which layer Numba chose, and for good if it is
'workqueue', the loops take turns under one lock. With 'omp' or 'tbb' the lock is never taken
again. Which layer runs is Numba's setting (``NUMBA_THREADING_LAYER``), not minidl's to change.
"""
import threading

_lock = threading.Lock()
_thread_safe = False  # until the first call shows the layer


def _layer_is_thread_safe():
    import numba

    try:
        return numba.threading_layer() != "workqueue"
    except ValueError:  # no layer was started: NUMBA_DISABLE_JIT=1 runs the loops as plain Python
        return True


def parallel(loop):
    """``loop`` (an ``@njit(parallel=True)`` function), safe to call from any thread."""

    def call(*args):
        global _thread_safe
        if _thread_safe:
            return loop(*args)
        with _lock:
            result = loop(*args)
            _thread_safe = _layer_is_thread_safe()
        return result

    call.__name__, call.__qualname__, call.__doc__ = loop.__name__, loop.__qualname__, loop.__doc__
    call.__wrapped__ = loop  # the Numba dispatcher, for its signatures and cache stats
    return call

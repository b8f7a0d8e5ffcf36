"""The Numba kernels: the reference's semantics, compiled and run in parallel on the CPU.

Each kernel is a plain loop nest under ``@njit(parallel=True, cache=True)`` whose outer
``prange`` runs over independent pieces (an (n, c) plane or row, a channel), so no two
threads write the same element. A Python wrapper per kernel checks nothing the reference
does not, allocates the output in the input's dtype (float32 stays float32) and calls the
loop nest. Sums that the reference rounds in its own dtype are done in the same order
here, so im2col, col2im, pooling and LRN are bit-identical to the reference; the
batch-norm statistics, which the reference sums with NumPy's pairwise summation, are
accumulated in float64 instead and agree to rounding.

Compilation happens on the first call per dtype and is cached on disk (``cache=True``), so
it is paid once per machine. ``NUMBA_DISABLE_JIT=1`` runs the same loops as plain Python,
which a debugger can step through.

Threads: Numba reads ``NUMBA_NUM_THREADS`` itself (default: every core). When only
``OMP_NUM_THREADS`` is set it is honoured as well, on the thread that first uses these
kernels (Numba's setting is per thread; minidl runs every op on the calling thread).
The kernels never run at the same time as BLAS: an op's GEMM returns before the next op's
kernel starts, so Numba's threads and BLAS's take turns on the cores instead of
oversubscribing them, provided that BLAS's idle threads do not spin (minidl/__init__.py sets
OpenBLAS's thread timeout for that). For the same reason Numba's OpenMP threads wait passively (they
sleep) between kernels unless ``OMP_WAIT_POLICY`` says otherwise: by default they spin for
a while after each kernel, on the cores the next GEMM wants, and on a busy machine a
spinning or descheduled worker made a small kernel take ~16 ms instead of ~40 us.
"""
import os

import numba

from minidl.kernels.numba_impl.batchnorm import batch_norm_backward, batch_norm_forward
from minidl.kernels.numba_impl.im2col import col2im, im2col
from minidl.kernels.numba_impl.lrn import lrn_backward, lrn_forward
from minidl.kernels.numba_impl.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                               max_pool2d_forward)
from minidl.kernels.numba_impl.winograd import (winograd_input_transform, winograd_output_transform,
                                                winograd_output_transform_adjoint)


def _follow_omp_num_threads():
    if "NUMBA_NUM_THREADS" in os.environ:
        return
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()  # "4,2" sets nested levels
    if first.isdigit() and int(first) > 0:
        numba.set_num_threads(min(int(first), numba.config.NUMBA_NUM_THREADS))


# Both before Numba starts its threads (its first parallel call, or set_num_threads), when
# OpenMP reads the wait policy.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
_follow_omp_num_threads()

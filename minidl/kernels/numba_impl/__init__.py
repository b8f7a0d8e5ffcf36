"""The Numba kernels: the reference's semantics, compiled and run in parallel on the CPU.

Each kernel is a plain loop nest under ``@njit(parallel=True, cache=True)`` whose outer
``prange`` runs over independent pieces (an (n, c) plane or row, a channel, an element), so no two
threads write the same element. A Python wrapper per kernel checks nothing the reference
does not, allocates the output in the input's dtype (float32 stays float32) and calls the
loop nest (``adam_update`` has no output: it updates its arrays in place, with the
reference's bits, ``optim``). Sums that the reference rounds in its own dtype are done in the same order
here, so im2col, col2im, pooling, LRN and the activations' gradients are bit-identical to
the reference; the batch-norm statistics, which the reference sums with NumPy's pairwise
summation, are accumulated in float64 instead and agree to rounding, and float32 tanh is a
rational approximation within 6.2 ulp (``activation``).

Compilation happens on the first call per dtype and is cached on disk (``cache=True``), so
it is paid once per machine. ``NUMBA_DISABLE_JIT=1`` runs the same loops as plain Python,
which a debugger can step through.

Threads: Numba reads ``NUMBA_NUM_THREADS`` (default: every core). The kernels never run at
the same time as BLAS: an op's GEMM returns before the next op's kernel starts, so Numba's
threads and BLAS's take turns on the cores. Whether idle threads of either pool spin or sleep
between calls is decided by the process, not by minidl (importing minidl changes no setting
of its host process): the ``minidl`` command and the benchmarks choose sleeping threads at
their start (see ``minidl.threads``), and so can any program, with ``mdl.configure_process()``.
Several Python threads may call the kernels at once; where Numba's threading layer cannot
take that (its 'workqueue' fallback), they take turns (see ``_parallel``).
"""
from minidl.kernels.numba_impl.activation import (erf_forward, relu_backward, sigmoid_backward, tanh_backward,
                                                 tanh_forward)
from minidl.kernels.numba_impl.batchnorm import batch_norm_backward, batch_norm_forward
from minidl.kernels.numba_impl.im2col import col2im, im2col
from minidl.kernels.numba_impl.lrn import lrn_backward, lrn_forward
from minidl.kernels.numba_impl.optim import adam_update
from minidl.kernels.numba_impl.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                               max_pool2d_forward)
from minidl.kernels.numba_impl.winograd import (winograd_input_transform, winograd_output_transform,
                                                winograd_output_transform_adjoint)


"""The CUDA kernels: the reference's semantics as CuPy raw kernels, one thread per output.

The kernels are CUDA C that minidl owns, in the ``.cu`` files beside this one; the element
type is a placeholder ``T``, and the text compiled for a dtype is ``typedef float T;`` (or
``double``) followed by the file, one module per (file, dtype), built by NVRTC on first use
(``_module``). NVRTC has no standard headers, so the sources include nothing: ``long long``
sizes and indices throughout (arrays may pass 2**31 elements), CUDA's math functions, and
typed literals such as ``(T)0`` so that float32 kernels never compute in double, except
where they accumulate in double on purpose. They are compiled without contracting
multiply-adds (``_module.OPTIONS``), so every product is rounded as NumPy rounds it.

Every kernel is a grid-stride loop over its work items in which each thread writes only its
own outputs: no shared memory, no warp intrinsics, no atomics, so results are the same bit
for bit on every run. A gradient that several windows send to one pixel is gathered by the
pixel's thread (col2im, average pooling) rather than scattered. Where the reference adds in
an order of its own the kernels add in the same order in the same dtype, so im2col, col2im,
pooling, the Winograd input transform and output adjoint and the activations' gradients are
bit-identical to it; LRN (CUDA's ``pow``), batch norm (float64 sums against NumPy's pairwise
ones) and the Winograd output transform agree to rounding, and tanh to its documented error
(``activation``).

A Python wrapper per kernel allocates the outputs with the input's array module and dtype
(``adam_update`` updates its arrays in place instead, and hands non-contiguous ones to the
reference), makes the inputs contiguous, computes the launch from the shapes alone and launches; no
wrapper reads a value back from the GPU, so nothing waits for the device. The wrappers are
written against ``xp``, so with NumPy arrays and a CPU launcher in place of
``_module.function`` the whole path runs without a GPU (``tests/cuda_host.py``).
"""
from minidl.kernels.cuda_impl.activation import (erf_forward, relu_backward, sigmoid_backward, tanh_backward,
                                                tanh_forward)
from minidl.kernels.cuda_impl.batchnorm import batch_norm_backward, batch_norm_forward
from minidl.kernels.cuda_impl.im2col import col2im, im2col
from minidl.kernels.cuda_impl.lrn import lrn_backward, lrn_forward
from minidl.kernels.cuda_impl.optim import adam_update
from minidl.kernels.cuda_impl.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                              max_pool2d_forward)
from minidl.kernels.cuda_impl.winograd import (winograd_input_transform, winograd_output_transform,
                                               winograd_output_transform_adjoint)

"""The NumPy reference kernels: always present, vectorised, and the oracle the other
implementations are tested against. No Python loops over batch or spatial positions; at most
a loop over kernel offsets."""
from minidl.kernels.numpy_impl.activation import (erf_forward, relu_backward, sigmoid_backward, tanh_backward,
                                                 tanh_forward)
from minidl.kernels.numpy_impl.batchnorm import batch_norm_backward, batch_norm_forward
from minidl.kernels.numpy_impl.im2col import col2im, im2col
from minidl.kernels.numpy_impl.lrn import lrn_backward, lrn_forward
from minidl.kernels.numpy_impl.optim import adam_update
from minidl.kernels.numpy_impl.pooling import (avg_pool2d_backward, avg_pool2d_forward, max_pool2d_backward,
                                               max_pool2d_forward)
from minidl.kernels.numpy_impl.winograd import (winograd_input_transform, winograd_output_transform,
                                                winograd_output_transform_adjoint)

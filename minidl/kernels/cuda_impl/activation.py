"""tanh, erf and the gradients of tanh, sigmoid and ReLU as CUDA kernels (``activation.cu``), one
thread per element. The gradients are bit-identical to the reference. tanh in float32 is the
Numba kernels' rational approximation, bit for bit (within 6.14 ulp of tanh; see
``numba_impl.activation``), so that the CPU and the GPU compute the same network; in float64 it is
CUDA's ``tanh``, within 1 ulp (CUDA's documented bound). erf is CUDA's ``erff`` and ``erf``, within
2 ulp (CUDA's documented bounds)."""
from minidl.backend import get_array_module
from minidl.kernels.cuda_impl._module import launch


def _elementwise(name, *arrays):
    """Kernel ``name`` over the contiguous ``arrays`` into a new array of the first one's shape and dtype."""
    xp = get_array_module(arrays[0])
    out = xp.empty(arrays[0].shape, dtype=arrays[0].dtype)
    launch("activation", name, out.dtype, out.size, (*(xp.ascontiguousarray(a) for a in arrays), out))
    return out


def tanh_forward(x):
    return _elementwise("tanh_forward", x)


def erf_forward(x):
    return _elementwise("erf_forward", x)


def tanh_backward(gy, y):
    return _elementwise("tanh_backward", gy, y)


def sigmoid_backward(gy, y):
    return _elementwise("sigmoid_backward", gy, y)


def relu_backward(gy, y):
    return _elementwise("relu_backward", gy, y)

"""tanh and the gradients of tanh, sigmoid and ReLU, elementwise.

Each gradient is its formula written once, in the order the interface states, so NumPy (or
CuPy) rounds every operation in the inputs' dtype exactly as the compiled kernels must.
``where`` states ReLU's rule directly; NumPy runs it several times slower than a product with
the mask would, but the product lets an inf or NaN gradient through as NaN where y <= 0.
"""
from minidl import backend


def tanh_forward(x):
    return backend.get_array_module(x).tanh(x)


def tanh_backward(gy, y):
    return gy * (1 - y * y)


def sigmoid_backward(gy, y):
    return gy * y * (1 - y)


def relu_backward(gy, y):
    return backend.get_array_module(gy).where(y > 0, gy, gy.dtype.type(0))

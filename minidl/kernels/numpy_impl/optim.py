"""The optimizers' update rules on arrays, in NumPy: the reference for the fused kernels.

These are the one exception to "inputs are never modified": an update is in place by nature, so
``param`` and the state arrays are changed where they lie, and nothing is returned.
"""
from minidl.backend import get_array_module


def adam_update(param, grad, exp_avg, exp_avg_sq, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay):
    xp = get_array_module(param)
    if weight_decay != 0:
        grad = grad + weight_decay * param
    exp_avg *= beta1
    exp_avg += (1 - beta1) * grad
    exp_avg_sq *= beta2
    exp_avg_sq += (1 - beta2) * grad * grad
    param -= step_size * exp_avg / (xp.sqrt(exp_avg_sq) / bias2_sqrt + eps)

"""The optimizers' update rules compiled with Numba: one pass over each parameter.

The reference makes a pass over memory per term of the rule (Adam: about ten, with four
temporaries the size of the parameter); here each element is read once and its new value, and
its state's, written once, with the reference's roundings in the reference's order, so the
results are the same bits. Small parameters run on one thread: waking the others gains nothing.
"""
import numpy as np
from numba import njit, prange

from minidl.kernels.numba_impl._parallel import parallel
from minidl.kernels.numpy_impl import optim as reference

_PARALLEL_FROM = 1 << 16  # elements: two threads broke even here on 2 cores, and won 10% at 2**20


def _adam_loop(param, grad, exp_avg, exp_avg_sq, beta1, one_minus_beta1, beta2, one_minus_beta2, step_size,
               bias2_sqrt, eps, weight_decay):
    for k in prange(param.size):
        i = np.uintp(k)  # unsigned: no check for negative indices, which keeps LLVM from vectorising
        g = grad[i] + weight_decay * param[i] if weight_decay != 0 else grad[i]
        m = exp_avg[i] * beta1
        m = m + one_minus_beta1 * g
        v = exp_avg_sq[i] * beta2
        v = v + one_minus_beta2 * g * g
        exp_avg[i] = m
        exp_avg_sq[i] = v
        param[i] = param[i] - step_size * m / (np.sqrt(v) / bias2_sqrt + eps)


# error_model="numpy": a division by zero gives inf or NaN, as in NumPy, instead of the check for
# Python's ZeroDivisionError before every division, which keeps the loop from vectorising (7x slower).
_adam_serial = njit(cache=True, error_model="numpy")(_adam_loop)
_adam_parallel = parallel(njit(parallel=True, cache=True, error_model="numpy")(_adam_loop))


def adam_update(param, grad, exp_avg, exp_avg_sq, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay):
    arrays = (param, grad, exp_avg, exp_avg_sq)
    if not all(a.flags.c_contiguous for a in arrays):  # a flat view would be a copy, updated in vain
        return reference.adam_update(*arrays, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay)
    t = param.dtype.type  # the scalars rounded to the arrays' dtype, as NumPy rounds Python floats
    loop = _adam_parallel if param.size >= _PARALLEL_FROM else _adam_serial
    loop(*(a.reshape(-1) for a in arrays), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(step_size),
         t(bias2_sqrt), t(eps), t(weight_decay))

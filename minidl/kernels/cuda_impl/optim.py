"""The optimizers' update rules as CUDA kernels (``optim.cu``), one thread per element, in
place and bit-identical to the reference."""
from minidl.kernels.cuda_impl._module import launch
from minidl.kernels.numpy_impl import optim as reference


def adam_update(param, grad, exp_avg, exp_avg_sq, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay):
    arrays = (param, grad, exp_avg, exp_avg_sq)
    if not all(a.flags.c_contiguous for a in arrays):  # the kernel indexes flat memory
        return reference.adam_update(*arrays, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay)
    t = param.dtype.type
    launch("optim", "adam_update", param.dtype, param.size,
           (*arrays, t(beta1), t(1 - beta1), t(beta2), t(1 - beta2), t(step_size), t(bias2_sqrt), t(eps),
            t(weight_decay)))

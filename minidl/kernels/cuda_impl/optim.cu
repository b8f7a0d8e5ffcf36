// The optimizers' update rules, one thread per element, in place (see numpy_impl/optim.py).
// T, the element type, is defined before this text (minidl/kernels/cuda_impl/_module.py).

// sqrt in T itself: plain sqrt of a float may be the double one (a C library's), rounded twice.
__device__ __forceinline__ float sqrt_of(float x) { return sqrtf(x); }
__device__ __forceinline__ double sqrt_of(double x) { return sqrt(x); }

// Adam: the reference's roundings in its order (compiled without contraction), so the same bits.
extern "C" __global__ void adam_update(long long n, T* __restrict__ param, const T* __restrict__ grad,
                                       T* __restrict__ exp_avg, T* __restrict__ exp_avg_sq, T beta1,
                                       T one_minus_beta1, T beta2, T one_minus_beta2, T step_size,
                                       T bias2_sqrt, T eps, T weight_decay)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        T g = grad[i];
        if (weight_decay != (T)0)
            g = g + weight_decay * param[i];
        T m = exp_avg[i] * beta1;
        m = m + one_minus_beta1 * g;
        T v = exp_avg_sq[i] * beta2;
        v = v + one_minus_beta2 * g * g;
        exp_avg[i] = m;
        exp_avg_sq[i] = v;
        param[i] = param[i] - step_size * m / (sqrt_of(v) / bias2_sqrt + eps);
    }
}

// tanh, erf and the gradients of tanh, sigmoid and ReLU, one thread per element. T, the element type,
// is defined before this text (minidl/kernels/cuda_impl/_module.py). The gradients are the
// reference's arithmetic in its order in T, compiled without contracting multiply-adds, so they
// are bit-identical to it.

// float32 tanh: the Numba kernels' rational approximation (minidl/kernels/numba_impl/activation.py,
// where its error is measured: within 6.14 ulp) in the same operations, so the CPU and the GPU
// agree bit for bit. The input is clamped to +-7.90738964, from where the result is exactly +-1; a
// NaN fails both comparisons and stays NaN.
__device__ __forceinline__ float tanh_of(float x)
{
    const float clamp = 7.90738964080810547f;
    float v = x > clamp ? clamp : x;
    v = v < -clamp ? -clamp : v;
    float v2 = v * v;
    float p = 1.394553628e-8f;
    p = p * v2 + 2.102733560e-5f;
    p = p * v2 + 3.520756727e-3f;
    p = p * v2 + 1.340216100e-1f;
    float q = 8.015776984e-7f;
    q = q * v2 + 3.326951409e-4f;
    q = q * v2 + 2.597254514e-2f;
    q = q * v2 + 4.673548340e-1f;
    q = q * v2 + 1.0f;
    return (v2 * v * p + v) / q;
}

// float64 tanh: CUDA's, within 1 ulp (CUDA's documented bound).
__device__ __forceinline__ double tanh_of(double x) { return tanh(x); }

extern "C" __global__ void tanh_forward(long long n, const T* __restrict__ x, T* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        y[i] = tanh_of(x[i]);
}

// erf: CUDA's, within 2 ulp in float32 and in float64 (CUDA's documented bounds).
__device__ __forceinline__ float erf_of(float x) { return erff(x); }
__device__ __forceinline__ double erf_of(double x) { return erf(x); }

extern "C" __global__ void erf_forward(long long n, const T* __restrict__ x, T* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        y[i] = erf_of(x[i]);
}

// gx = gy * (1 - y*y)
extern "C" __global__ void tanh_backward(long long n, const T* __restrict__ gy, const T* __restrict__ y,
                                         T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        gx[i] = gy[i] * ((T)1 - y[i] * y[i]);
}

// gx = (gy * y) * (1 - y)
extern "C" __global__ void sigmoid_backward(long long n, const T* __restrict__ gy, const T* __restrict__ y,
                                            T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        gx[i] = gy[i] * y[i] * ((T)1 - y[i]);
}

// gx = gy where y > 0, else 0: a NaN y fails the comparison, and gy is not read into a product.
extern "C" __global__ void relu_backward(long long n, const T* __restrict__ gy, const T* __restrict__ y,
                                         T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        gx[i] = y[i] > (T)0 ? gy[i] : (T)0;
}

// Local response normalisation across channels, on arrays viewed as (N, C, S) with S the
// product of the spatial sizes. T, the element type, is defined before this text
// (minidl/kernels/cuda_impl/_module.py). One thread per element: its window of channels is
// summed from 0, lowest channel first, in T, and every other step is the reference's
// arithmetic in its order, so only the power can differ from NumPy's (by rounding).

// pow for T without relying on the C++ overloads of the math library.
__device__ __forceinline__ float power(float a, float b) { return powf(a, b); }
__device__ __forceinline__ double power(double a, double b) { return pow(a, b); }

// scale = k + coeff * (sum of x^2 over channels ch - before .. ch + after), y = x * scale^-beta.
extern "C" __global__ void lrn_forward(long long n, const T* __restrict__ x, long long c, long long s,
                                       long long before, long long after, T k, T coeff, T minus_beta,
                                       T* __restrict__ y, T* __restrict__ scale)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / s % c, first = i - ch * s;  // first: this position in channel 0
        T sum = (T)0;
        for (long long j = ch - before < 0 ? 0 : ch - before; j <= ch + after && j < c; ++j)
            sum += x[first + j * s] * x[first + j * s];
        T sc = k + coeff * sum;
        scale[i] = sc;
        y[i] = x[i] * power(sc, minus_beta);
    }
}

// gx = gy * scale^-beta - coeff * x * (sum of gy_j * y_j / scale_j over the channels j whose
// windows hold ch: ch - before .. ch + after, the forward's window mirrored).
extern "C" __global__ void lrn_backward(long long n, const T* __restrict__ x, const T* __restrict__ y,
                                        const T* __restrict__ scale, const T* __restrict__ gy, long long c,
                                        long long s, long long before, long long after, T minus_beta, T coeff,
                                        T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / s % c, first = i - ch * s;
        T spread = (T)0;
        for (long long j = ch - before < 0 ? 0 : ch - before; j <= ch + after && j < c; ++j) {
            long long e = first + j * s;
            spread += gy[e] * y[e] / scale[e];
        }
        gx[i] = gy[i] * power(scale[i], minus_beta) - coeff * x[i] * spread;
    }
}

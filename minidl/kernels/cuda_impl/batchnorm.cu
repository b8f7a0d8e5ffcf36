// Training-mode batch normalisation on arrays viewed as (N, C, S), S the product of the
// spatial sizes: channel ch has the m = N*S values x[b, ch, e]. T, the element type, is defined
// before this text (minidl/kernels/cuda_impl/_module.py).
//
// A channel's sums are taken without shared memory or atomics, in two steps. First C*parts
// threads each sum every parts-th value of one channel in double (thread p of channel ch takes
// its values p, p + parts, ..., so neighbouring threads read neighbouring addresses) into a
// (C, parts) buffer; then one thread per channel adds its row of that buffer in order. Every
// thread writes only its own outputs, so the results are the same on every run.

// Where value e (0 <= e < m) of channel ch lies in the (N, C, S) array.
__device__ __forceinline__ long long at(long long e, long long ch, long long c, long long s)
{
    return (e / s * c + ch) * s + e % s;
}

__device__ __forceinline__ double row_total(const double* partial, long long row, long long parts)
{
    double total = 0;
    for (long long p = row * parts; p < (row + 1) * parts; ++p)
        total += partial[p];
    return total;
}

// n = C*parts: partial[ch*parts + p] = sum of channel ch's values p, p + parts, ...
extern "C" __global__ void sum_partials(long long n, const T* __restrict__ x, long long c, long long s,
                                        long long m, long long parts, double* __restrict__ partial)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / parts;
        double sum = 0;
        for (long long e = i % parts; e < m; e += parts)
            sum += x[at(e, ch, c, s)];
        partial[i] = sum;
    }
}

// The same for the squared deviations from the channel's mean, the numerically safe second pass
// (E[x^2] - E[x]^2 cancels catastrophically when |mean| >> std). The deviation is taken in T, as
// the reference takes it; its square is exact in double.
extern "C" __global__ void square_partials(long long n, const T* __restrict__ x, const T* __restrict__ mean,
                                           long long c, long long s, long long m, long long parts,
                                           double* __restrict__ partial)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / parts;
        double sum = 0;
        for (long long e = i % parts; e < m; e += parts) {
            T d = x[at(e, ch, c, s)] - mean[ch];
            sum += (double)d * d;
        }
        partial[i] = sum;
    }
}

// n = C: the mean of each channel, from the partial sums of its values.
extern "C" __global__ void mean_from_partials(long long n, const double* __restrict__ partial, long long parts,
                                              long long m, T* __restrict__ mean)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        mean[i] = (T)(row_total(partial, i, parts) / m);
}

// n = C: 1 / sqrt(biased variance + eps), from the partial sums of squared deviations.
extern "C" __global__ void invstd_from_partials(long long n, const double* __restrict__ partial, long long parts,
                                                long long m, double eps, T* __restrict__ invstd)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        invstd[i] = (T)(1 / sqrt(row_total(partial, i, parts) / m + eps));
}

// n = N*C*S: y = (x - mean) * (gamma * invstd) + beta, the reference's arithmetic in T.
extern "C" __global__ void normalize(long long n, const T* __restrict__ x, const T* __restrict__ mean,
                                     const T* __restrict__ invstd, const T* __restrict__ gamma,
                                     const T* __restrict__ beta, long long c, long long s, T* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / s % c;
        y[i] = (x[i] - mean[ch]) * (gamma[ch] * invstd[ch]) + beta[ch];
    }
}

// n = C*parts: the partial sums of gy (row ch of the first (C, parts) half of `partial`) and of
// gy * xhat (the second half), xhat = (x - mean) * invstd taken in T as the reference takes it.
extern "C" __global__ void grad_partials(long long n, const T* __restrict__ gy, const T* __restrict__ x,
                                         const T* __restrict__ mean, const T* __restrict__ invstd, long long c,
                                         long long s, long long m, long long parts, double* __restrict__ partial)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / parts;
        double sum_gy = 0, sum_gy_xhat = 0;
        for (long long e = i % parts; e < m; e += parts) {
            long long k = at(e, ch, c, s);
            T xhat = (x[k] - mean[ch]) * invstd[ch];
            sum_gy += gy[k];
            sum_gy_xhat += (double)gy[k] * xhat;
        }
        partial[i] = sum_gy;
        partial[n + i] = sum_gy_xhat;
    }
}

// n = rows: each row of a (rows, parts) buffer summed, rounded to T.
extern "C" __global__ void totals_from_partials(long long n, const double* __restrict__ partial, long long parts,
                                                T* __restrict__ total)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x)
        total[i] = (T)row_total(partial, i, parts);
}

// n = N*C*S: gx = gamma * invstd / m * (m * gy - gbeta - xhat * ggamma), in T in the reference's order.
extern "C" __global__ void grad_input(long long n, const T* __restrict__ gy, const T* __restrict__ x,
                                      const T* __restrict__ mean, const T* __restrict__ invstd,
                                      const T* __restrict__ gamma, const T* __restrict__ gbeta,
                                      const T* __restrict__ ggamma, long long c, long long s, T m,
                                      T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long ch = i / s % c;
        T xhat = (x[i] - mean[ch]) * invstd[ch];
        gx[i] = gamma[ch] * invstd[ch] / m * (m * gy[i] - gbeta[ch] - xhat * ggamma[ch]);
    }
}

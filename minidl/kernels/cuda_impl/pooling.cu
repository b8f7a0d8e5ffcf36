// Max and average pooling on NCHW images. T, the element type, is defined before this text
// (minidl/kernels/cuda_impl/_module.py). Windows are clipped to the image before they are
// read: the padding (-inf for max, 0 for average) cannot win a max that a real pixel can win
// nor change a sum, so it is never built; the extra windows of ceil_mode are clipped alike.

__device__ __forceinline__ long long lmin(long long a, long long b) { return a < b ? a : b; }
__device__ __forceinline__ long long lmax(long long a, long long b) { return a > b ? a : b; }

// One thread per output. Starting from -inf at the window's first real pixel gives PyTorch's
// answer for a window of -inf values (that pixel). A strictly larger value moves the max, so ties
// keep the first in window order; a NaN always moves it and afterwards only another NaN does, so
// the window's last NaN is named, as in the reference. `lowest` is -inf, passed in because NVRTC
// has no INFINITY.
extern "C" __global__ void max_pool_forward(long long n, const T* __restrict__ x, long long h, long long w,
                                            long long oh, long long ow, long long kh, long long kw,
                                            long long sh, long long sw, long long ph, long long pw, T lowest,
                                            T* __restrict__ y, long long* __restrict__ argmax)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long q = i % ow, p = i / ow % oh, plane = i / (ow * oh);
        long long top = p * sh - ph, left = q * sw - pw;
        long long r0 = lmax(top, 0), r1 = lmin(top + kh, h), c0 = lmax(left, 0), c1 = lmin(left + kw, w);
        const T* image = x + plane * h * w;
        T best = lowest;
        long long where = r0 * w + c0;
        for (long long r = r0; r < r1; ++r)
            for (long long c = c0; c < c1; ++c) {
                T v = image[r * w + c];
                if (v > best || v != v) {  // v != v: NaN
                    best = v;
                    where = r * w + c;
                }
            }
        y[i] = best;
        argmax[i] = where;
    }
}

// One thread per input pixel gathers the gradients of the windows whose max it is. The windows
// that can hold row y are those p with p*sh - ph <= y < p*sh - ph + kh (columns alike); they
// are visited in increasing (p, q) order and summed in double, then rounded once to T: the
// reference's float64 sum in window order, bit for bit, with no two threads writing one pixel.
extern "C" __global__ void max_pool_backward(long long n, const T* __restrict__ gy,
                                             const long long* __restrict__ argmax, long long h, long long w,
                                             long long oh, long long ow, long long kh, long long kw,
                                             long long sh, long long sw, long long ph, long long pw,
                                             T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long x0 = i % w, y = i / w % h, plane = i / (w * h);
        long long top = y + ph - kh + 1, left = x0 + pw - kw + 1;  // the first window may start there
        long long p0 = top > 0 ? (top + sh - 1) / sh : 0, p1 = lmin(oh - 1, (y + ph) / sh);
        long long q0 = left > 0 ? (left + sw - 1) / sw : 0, q1 = lmin(ow - 1, (x0 + pw) / sw);
        const long long* chosen = argmax + plane * oh * ow;
        const T* g = gy + plane * oh * ow;
        long long pixel = y * w + x0;
        double sum = 0.0;
        for (long long p = p0; p <= p1; ++p)
            for (long long q = q0; q <= q1; ++q)
                if (chosen[p * ow + q] == pixel)
                    sum += (double)g[p * ow + q];
        gx[i] = (T)sum;
    }
}

// The pixels of a window starting at `start` along one axis that count towards PyTorch's divisor:
// the window clipped to the padded image, or with include_pad == 0 to the image itself.
__device__ __forceinline__ long long window_count(long long start, long long kernel, long long size,
                                                  long long pad, long long include_pad)
{
    long long end = lmin(start + kernel, size + pad);
    return include_pad ? end - start : lmin(end, size) - lmax(start, 0);
}

// One thread per output: the sum from 0 over the window in row-major order (the reference's
// order of offsets, and adding its padding zeros changes nothing), divided by the divisor.
extern "C" __global__ void avg_pool_forward(long long n, const T* __restrict__ x, long long h, long long w,
                                            long long oh, long long ow, long long kh, long long kw,
                                            long long sh, long long sw, long long ph, long long pw,
                                            long long include_pad, T* __restrict__ y)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long q = i % ow, p = i / ow % oh, plane = i / (ow * oh);
        long long top = p * sh - ph, left = q * sw - pw;
        const T* image = x + plane * h * w;
        T sum = (T)0;
        for (long long r = lmax(top, 0); r < lmin(top + kh, h); ++r)
            for (long long c = lmax(left, 0); c < lmin(left + kw, w); ++c)
                sum += image[r * w + c];
        y[i] = sum / (T)(window_count(top, kh, h, ph, include_pad) * window_count(left, kw, w, pw, include_pad));
    }
}

// A gather per input pixel: window offset (r, c) read pixel (y, x0) from output (p, q) where
// y = p*sh - ph + r. The reference adds gy / divisor into every offset's view of the image in
// turn, so a pixel receives its terms in (r, c) ascending order from 0; so does this sum.
extern "C" __global__ void avg_pool_backward(long long n, const T* __restrict__ gy, long long h, long long w,
                                             long long oh, long long ow, long long kh, long long kw,
                                             long long sh, long long sw, long long ph, long long pw,
                                             long long include_pad, T* __restrict__ gx)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long x0 = i % w, y = i / w % h, plane = i / (w * h);
        T sum = (T)0;
        for (long long r = 0; r < kh; ++r) {
            long long dy = y + ph - r;
            if (dy < 0 || dy % sh != 0 || dy / sh >= oh)
                continue;
            long long height = window_count(dy - ph, kh, h, ph, include_pad);
            for (long long c = 0; c < kw; ++c) {
                long long dx = x0 + pw - c;
                if (dx < 0 || dx % sw != 0 || dx / sw >= ow)
                    continue;
                sum += gy[(plane * oh + dy / sh) * ow + dx / sw] /
                       (T)(height * window_count(dx - pw, kw, w, pw, include_pad));
            }
        }
        gx[i] = sum;
    }
}

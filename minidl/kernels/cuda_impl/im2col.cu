// im2col and col2im on NCHW images (see minidl.kernels.im2col for the layout of the columns).
// T, the element type, is defined before this text (minidl/kernels/cuda_impl/_module.py).

// Both layouts of the columns, (N, C*kh*kw, OH*OW) and the batch-folded (C*kh*kw, N*OH*OW), put
// sample s's run of OH*OW entries of row (c, r, j) at s*ss + ((c*kh + r)*kw + j)*rs.

// One thread per column entry, taken in (sample, row, position) order and written to its place
// in the layout: neighbouring threads write neighbouring addresses of one run. A tap that lands
// in the padding writes 0: the padded image is never built.
extern "C" __global__ void im2col(long long n, const T* __restrict__ x, long long c, long long h, long long w,
                                  long long oh, long long ow, long long kh, long long kw,
                                  long long sh, long long sw, long long ph, long long pw,
                                  long long dh, long long dw, long long ss, long long rs,
                                  T* __restrict__ col)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long q = i % ow, p = i / ow % oh;
        long long j = i / (ow * oh) % kw, r = i / (ow * oh * kw) % kh, plane = i / (ow * oh * kw * kh);
        long long y = p * sh - ph + r * dh, x0 = q * sw - pw + j * dw;
        long long run = plane / c * ss + ((plane % c * kh + r) * kw + j) * rs;
        col[run + p * ow + q] = 0 <= y && y < h && 0 <= x0 && x0 < w ? x[(plane * h + y) * w + x0] : (T)0;
    }
}

// A gather: one thread per image pixel adds the column entries that read it, so no two threads
// write the same address (no atomics). Tap (r, j) read pixel (y, x0) from output position (p, q)
// where y = p*sh - ph + r*dh and x0 = q*sw - pw + j*dw. The sum starts from 0 and adds the taps
// in the reference's order, (r, j) ascending, so it rounds exactly as the reference's does.
extern "C" __global__ void col2im(long long n, const T* __restrict__ col, long long c, long long h, long long w,
                                  long long oh, long long ow, long long kh, long long kw,
                                  long long sh, long long sw, long long ph, long long pw,
                                  long long dh, long long dw, long long ss, long long rs,
                                  T* __restrict__ x)
{
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long x0 = i % w, y = i / w % h, plane = i / (w * h);
        long long sample = plane / c * ss, first = plane % c * kh;
        T sum = (T)0;
        for (long long r = 0; r < kh; ++r) {
            long long dy = y + ph - r * dh;
            if (dy < 0 || dy % sh != 0 || dy / sh >= oh)
                continue;
            for (long long j = 0; j < kw; ++j) {
                long long dx = x0 + pw - j * dw;
                if (dx < 0 || dx % sw != 0 || dx / sw >= ow)
                    continue;
                sum += col[sample + ((first + r) * kw + j) * rs + dy / sh * ow + dx / sw];
            }
        }
        x[i] = sum;
    }
}

// The Winograd F(2x2, 3x3) transforms (see minidl.kernels.winograd_input_transform for the
// layouts). T, the element type, is defined before this text (minidl/kernels/cuda_impl/_module.py).
// One thread per (channel, tile): tiles are numbered t = (n*TH + ty)*TW + tx, and value (a, b) of
// tile t of channel ch lies at [(4a + b)*C*tiles + ch*tiles + t] of the transformed array, so
// neighbouring threads (neighbouring tiles) write neighbouring addresses. The products with B^T
// and A^T, whose entries are 0 and +-1, are written out as the adds and subtracts they are,
// rows first and then columns, in the reference's order.

// v = B^T d B for the 4x4 patch d of the zero-padded input at row 2*ty - ph, column 2*tx - pw.
extern "C" __global__ void input_transform(long long n, const T* __restrict__ x, long long c, long long h,
                                           long long w, long long ph, long long pw, long long th, long long tw,
                                           T* __restrict__ v)
{
    long long tiles = n / c;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long t = i % tiles, ch = i / tiles;
        long long b = t / (th * tw), top = t / tw % th * 2 - ph, left = t % tw * 2 - pw;
        const T* image = x + (b * c + ch) * h * w;
        T d[4][4], e[4][4];
        for (int r = 0; r < 4; ++r)
            for (int q = 0; q < 4; ++q) {
                long long y = top + r, x0 = left + q;
                d[r][q] = 0 <= y && y < h && 0 <= x0 && x0 < w ? image[y * w + x0] : (T)0;
            }
        for (int q = 0; q < 4; ++q) {  // B^T d
            e[0][q] = d[0][q] - d[2][q];
            e[1][q] = d[1][q] + d[2][q];
            e[2][q] = d[2][q] - d[1][q];
            e[3][q] = d[1][q] - d[3][q];
        }
        T* out = v + i;
        for (int a = 0; a < 4; ++a) {  // (B^T d) B
            out[(4 * a + 0) * n] = e[a][0] - e[a][2];
            out[(4 * a + 1) * n] = e[a][1] + e[a][2];
            out[(4 * a + 2) * n] = e[a][2] - e[a][1];
            out[(4 * a + 3) * n] = e[a][1] - e[a][3];
        }
    }
}

// y's 2x2 tile = A^T m A, for m of shape (16, K, tiles); the parts past OH or OW are dropped.
extern "C" __global__ void output_transform(long long n, const T* __restrict__ m, long long k, long long oh,
                                            long long ow, long long th, long long tw, T* __restrict__ y)
{
    long long tiles = n / k;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long t = i % tiles, ch = i / tiles;
        long long b = t / (th * tw), top = t / tw % th * 2, left = t % tw * 2;
        const T* in = m + i;
        T e[2][4];
        for (int s = 0; s < 4; ++s) {  // A^T m
            T m0 = in[(0 + s) * n], m1 = in[(4 + s) * n], m2 = in[(8 + s) * n], m3 = in[(12 + s) * n];
            e[0][s] = m0 + m1 + m2;
            e[1][s] = m1 - m2 - m3;
        }
        for (int r = 0; r < 2 && top + r < oh; ++r) {  // (A^T m) A
            T* out = y + ((b * k + ch) * oh + top + r) * ow + left;
            out[0] = e[r][0] + e[r][1] + e[r][2];
            if (left + 1 < ow)
                out[1] = e[r][1] - e[r][2] - e[r][3];
        }
    }
}

// The adjoint: gm = A g A^T for each 2x2 tile g of gy (zero past OH and OW), laid out as m above.
extern "C" __global__ void output_transform_adjoint(long long n, const T* __restrict__ gy, long long k,
                                                    long long oh, long long ow, long long th, long long tw,
                                                    T* __restrict__ gm)
{
    long long tiles = n / k;
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        long long t = i % tiles, ch = i / tiles;
        long long b = t / (th * tw), top = t / tw % th * 2, left = t % tw * 2;
        const T* image = gy + (b * k + ch) * oh * ow;
        T g[2][2], e[4][2];
        for (int r = 0; r < 2; ++r)
            for (int q = 0; q < 2; ++q)
                g[r][q] = top + r < oh && left + q < ow ? image[(top + r) * ow + left + q] : (T)0;
        for (int q = 0; q < 2; ++q) {  // A g
            e[0][q] = g[0][q];
            e[1][q] = g[0][q] + g[1][q];
            e[2][q] = g[0][q] - g[1][q];
            e[3][q] = -g[1][q];
        }
        T* out = gm + i;
        for (int a = 0; a < 4; ++a) {  // (A g) A^T
            out[(4 * a + 0) * n] = e[a][0];
            out[(4 * a + 1) * n] = e[a][0] + e[a][1];
            out[(4 * a + 2) * n] = e[a][0] - e[a][1];
            out[(4 * a + 3) * n] = -e[a][1];
        }
    }
}

// Lets minidl's CUDA kernels (minidl/kernels/cuda_impl/*.cu) compile as plain C++ for the
// CPU harness in tests/cuda_host.py. Test code, not a product: it maps the CUDA built-ins the
// kernels use onto globals that the harness sets before it calls a kernel once per thread.
#include <cmath>  // powf, pow, sqrtf, sqrt, tanh: the math functions the kernels call

#define __global__
#define __device__
#define __forceinline__ inline
// __restrict__ is a keyword of g++ too.

struct cuda_host_dim3 {
    unsigned int x, y, z;  // unsigned, as CUDA's, so that index arithmetic promotes alike
};

cuda_host_dim3 threadIdx, blockIdx, blockDim, gridDim;

// The harness's launch loop calls this before each thread of a one-dimensional launch.
extern "C" void cuda_host_set_thread(unsigned int block, unsigned int thread, unsigned int block_dim,
                                     unsigned int grid_dim)
{
    blockIdx = {block, 0, 0};
    threadIdx = {thread, 0, 0};
    blockDim = {block_dim, 1, 1};
    gridDim = {grid_dim, 1, 1};
}

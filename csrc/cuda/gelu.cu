// GELU, tanh form, on the GPU, forward and backward. Follows minigpt/kernels/gelu.py.
// Elementwise and memory-bound: a grid-stride loop, one element per thread per iteration.
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr int kThreads = 256;

__global__ void gelu_forward_kernel(float* out, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float xi = x[i];
        const float u = kSqrt2OverPi * (xi + 0.044715f * xi * xi * xi);
        out[i] = 0.5f * xi * (1.0f + tanhf(u));
    }
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx: the tanh is recomputed, not stored.
__global__ void gelu_backward_kernel(float* dx, const float* dout, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float xi = x[i];
        const float t = tanhf(kSqrt2OverPi * (xi + 0.044715f * xi * xi * xi));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * xi * xi);
        dx[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * du);
    }
}

}  // namespace

void gelu_forward_cuda(float* out, const float* x, int64_t n, cudaStream_t stream) {
    if (n == 0) { return; }
    gelu_forward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(out, x, n);
    check_launch("gelu_forward_kernel");
}

void gelu_backward_cuda(float* dx, const float* dout, const float* x, int64_t n, cudaStream_t stream) {
    if (n == 0) { return; }
    gelu_backward_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(dx, dout, x, n);
    check_launch("gelu_backward_kernel");
}

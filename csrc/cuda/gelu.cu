// GELU, tanh form, on the GPU, forward and backward. Follows minigpt/kernels/gelu.py.
// Elementwise and memory-bound: a grid-stride loop, one element per thread per iteration.
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr int kThreads = 256;

// Beyond |x| = 10, tanh(u) is +-1 to float precision (u passes 43), so the formulas take x clamped to
// [-10, 10] there: x^3 would overflow past 7e12 and turn the backward's 0 * inf into NaN (csrc/gelu.cpp
// clamps too, at 9.9, to keep its exp2 in range). NaN compares false and stays NaN.
__device__ __forceinline__ float clamp_to_edge(float x) { return x < -10.0f ? -10.0f : (x > 10.0f ? 10.0f : x); }

__global__ void gelu_forward_kernel(float* out, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float xi = x[i];
        const float xc = clamp_to_edge(xi);
        const float u = kSqrt2OverPi * (xc + 0.044715f * xc * xc * xc);
        // below -10 the factor 1 + tanh u is 0: take x = -10 there, so that -inf gives 0, not -inf * 0
        out[i] = 0.5f * (xi < -10.0f ? xc : xi) * (1.0f + tanhf(u));
    }
}

// gelu'(x) = 0.5 (1 + tanh u) + 0.5 x (1 - tanh^2 u) du/dx: the tanh is recomputed, not stored.
// Beyond the edges the second term is 0 (1 - tanh^2 u is), and gelu' is 0 or 1.
__global__ void gelu_backward_kernel(float* dx, const float* dout, const float* x, int64_t n) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float xc = clamp_to_edge(x[i]);
        const float t = tanhf(kSqrt2OverPi * (xc + 0.044715f * xc * xc * xc));
        const float du = kSqrt2OverPi * (1.0f + 3.0f * 0.044715f * xc * xc);
        dx[i] = dout[i] * (0.5f * (1.0f + t) + 0.5f * xc * (1.0f - t * t) * du);
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

// Softmax over the last axis on the GPU, forward and backward. Follows minigpt/kernels/softmax.py.
// Two versions:
//
//   naive  one thread per row, straight from the formula: a pass for the max, one for the sum of
//          exp, one to write. Neighbouring threads read rows N floats apart, so a warp's 32 loads
//          touch 32 different memory segments, and a GPU needs tens of thousands of rows to be busy.
//   warp   one warp per row: the 32 lanes stride over the row together (each load instruction reads
//          32 consecutive floats), keep per-lane partial results, and combine them with shuffles.
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

__global__ void softmax_forward_naive_kernel(float* y, const float* x, int64_t rows, int64_t N) {
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (row >= rows) { return; }
    const float* xr = x + row * N;  // (N,)
    float* yr = y + row * N;        // (N,)
    float m = -INFINITY;
    for (int64_t i = 0; i < N; i++) { m = fmaxf(m, xr[i]); }
    float s = 0.0f;
    for (int64_t i = 0; i < N; i++) { s += expf(xr[i] - m); }
    for (int64_t i = 0; i < N; i++) { yr[i] = expf(xr[i] - m) / s; }
}

__global__ void softmax_forward_kernel(float* y, const float* x, int64_t rows, int64_t N) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= rows) { return; }
    const float* xr = x + row * N;  // (N,)
    float* yr = y + row * N;        // (N,)
    // One pass for the max m and the sum s of exp(x - m) (the online softmax): when a larger value
    // arrives, the sum so far is rescaled to the new max, so no exp ever overflows.
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = lane; i < N; i += kWarp) { online_add(m, s, xr[i]); }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
        const float s_other = __shfl_xor_sync(0xffffffffu, s, offset);
        online_merge(m, s, m_other, s_other);
    }
    const float inv = 1.0f / s;
    for (int64_t i = lane; i < N; i += kWarp) { yr[i] = expf(xr[i] - m) * inv; }
}

__global__ void softmax_backward_kernel(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= rows) { return; }
    const float *dyr = dy + row * N, *yr = y + row * N;  // (N,) each
    float* dxr = dx + row * N;                           // (N,)
    float dot = 0.0f;
    for (int64_t i = lane; i < N; i += kWarp) { dot += dyr[i] * yr[i]; }
    dot = warp_sum(dot);
    for (int64_t i = lane; i < N; i += kWarp) { dxr[i] = yr[i] * (dyr[i] - dot); }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void softmax_forward_naive_cuda(float* y, const float* x, int64_t rows, int64_t N, cudaStream_t stream) {
    if (rows == 0 || N == 0) { return; }
    softmax_forward_naive_kernel<<<grid_for(rows, 128, INT32_MAX), 128, 0, stream>>>(y, x, rows, N);
    check_launch("softmax_forward_naive_kernel");
}

void softmax_forward_cuda(float* y, const float* x, int64_t rows, int64_t N, cudaStream_t stream) {
    if (rows == 0 || N == 0) { return; }
    softmax_forward_kernel<<<row_blocks(rows), kRowsPerBlock * kWarp, 0, stream>>>(y, x, rows, N);
    check_launch("softmax_forward_kernel");
}

void softmax_backward_cuda(float* dx, const float* dy, const float* y, int64_t rows, int64_t N, cudaStream_t stream) {
    if (rows == 0 || N == 0) { return; }
    softmax_backward_kernel<<<row_blocks(rows), kRowsPerBlock * kWarp, 0, stream>>>(dx, dy, y, rows, N);
    check_launch("softmax_backward_kernel");
}

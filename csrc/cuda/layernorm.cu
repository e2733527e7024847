// LayerNorm over the last axis on the GPU, forward and backward. Follows
// minigpt/kernels/layernorm.py and csrc/layernorm.cpp: the forward saves mean and rstd (one number
// per row) and the backward recomputes xhat = (x - mean) * rstd from x rather than storing it.
//
// The forward and the dx part of the backward give each row to one warp. dw and db are sums over
// rows, so they get their own kernel that runs down columns instead: each thread owns a column and a
// chunk of rows, and adds its partial sums into dw, db with one atomicAdd each. The teaching version
// of the forward gives each row to one thread, as the formula reads (see softmax.cu on its cost).
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

__global__ void layernorm_forward_naive_kernel(float* out, float* mean, float* rstd, const float* x, const float* w,
                                               const float* b, int64_t N, int64_t C, float eps) {
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (row >= N) { return; }
    const float* xr = x + row * C;  // (C,)
    float* outr = out + row * C;    // (C,)
    float sum = 0.0f;
    for (int64_t i = 0; i < C; i++) { sum += xr[i]; }
    const float mu = sum / C;
    float sq = 0.0f;
    for (int64_t i = 0; i < C; i++) { sq += (xr[i] - mu) * (xr[i] - mu); }
    const float rs = 1.0f / sqrtf(sq / C + eps);
    for (int64_t i = 0; i < C; i++) { outr[i] = (xr[i] - mu) * rs * w[i] + b[i]; }
    mean[row] = mu;
    rstd[row] = rs;
}

__global__ void layernorm_forward_kernel(float* out, float* mean, float* rstd, const float* x, const float* w,
                                         const float* b, int64_t N, int64_t C, float eps) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= N) { return; }
    const float* xr = x + row * C;  // (C,)
    float* outr = out + row * C;    // (C,)
    float sum = 0.0f;
    for (int64_t i = lane; i < C; i += kWarp) { sum += xr[i]; }
    const float mu = warp_sum(sum) / C;
    float sq = 0.0f;  // the variance from centred values: no cancellation between E[x^2] and E[x]^2
    for (int64_t i = lane; i < C; i += kWarp) {
        const float d = xr[i] - mu;
        sq += d * d;
    }
    const float rs = 1.0f / sqrtf(warp_sum(sq) / C + eps);
    for (int64_t i = lane; i < C; i += kWarp) { outr[i] = (xr[i] - mu) * rs * w[i] + b[i]; }
    if (lane == 0) {
        mean[row] = mu;
        rstd[row] = rs;
    }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dout * w (see layernorm.py for why).
__global__ void layernorm_backward_dx_kernel(float* dx, const float* dout, const float* x, const float* mean,
                                             const float* rstd, const float* w, int64_t N, int64_t C) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= N) { return; }
    const float *doutr = dout + row * C, *xr = x + row * C;  // (C,) each
    float* dxr = dx + row * C;                               // (C,)
    const float mu = mean[row], rs = rstd[row];
    float sum_g = 0.0f, sum_gx = 0.0f;
    for (int64_t i = lane; i < C; i += kWarp) {
        const float g = doutr[i] * w[i];
        sum_g += g;
        sum_gx += g * (xr[i] - mu) * rs;
    }
    const float mean_g = warp_sum(sum_g) / C, mean_gx = warp_sum(sum_gx) / C;
    for (int64_t i = lane; i < C; i += kWarp) {
        const float xhat = (xr[i] - mu) * rs;
        dxr[i] = rs * (doutr[i] * w[i] - mean_g - xhat * mean_gx);
    }
}

constexpr int kColumnThreads = 128;  // columns per block in the dw/db kernel
constexpr int kRowsPerChunk = 64;    // rows per block: enough blocks to fill the GPU, few atomics

// dw[c] += sum_r dout[r, c] * xhat[r, c],  db[c] += sum_r dout[r, c], over this block's rows.
__global__ void layernorm_backward_dwdb_kernel(float* dw, float* db, const float* dout, const float* x,
                                               const float* mean, const float* rstd, int64_t N, int64_t C) {
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kColumnThreads + threadIdx.x;
    const int64_t r0 = static_cast<int64_t>(blockIdx.y) * kRowsPerChunk;
    const int64_t r1 = min(N, r0 + kRowsPerChunk);
    if (c >= C) { return; }
    float sum_dw = 0.0f, sum_db = 0.0f;
    for (int64_t r = r0; r < r1; r++) {  // a warp reads 32 consecutive columns of a row: coalesced
        const float d = dout[r * C + c];
        sum_dw += d * (x[r * C + c] - mean[r]) * rstd[r];
        sum_db += d;
    }
    atomicAdd(&dw[c], sum_dw);
    atomicAdd(&db[c], sum_db);
}

}  // namespace

void layernorm_forward_naive_cuda(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                  int64_t N, int64_t C, float eps, cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    layernorm_forward_naive_kernel<<<grid_for(N, 128, INT32_MAX), 128, 0, stream>>>(out, mean, rstd, x, w, b, N, C,
                                                                                     eps);
    check_launch("layernorm_forward_naive_kernel");
}

void layernorm_forward_cuda(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                            int64_t N, int64_t C, float eps, cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
    layernorm_forward_kernel<<<blocks, kRowsPerBlock * kWarp, 0, stream>>>(out, mean, rstd, x, w, b, N, C, eps);
    check_launch("layernorm_forward_kernel");
}

void layernorm_backward_cuda(float* dx, float* dw, float* db, const float* dout, const float* x, const float* mean,
                             const float* rstd, const float* w, int64_t N, int64_t C, cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    const int64_t chunks = (N + kRowsPerChunk - 1) / kRowsPerChunk;
    if (chunks > 65535) {  // the chunks are the dw/db grid's y, at most 65535; refused before anything is launched
        throw std::invalid_argument("layernorm_backward: more than 4,194,240 rows in one call");
    }
    const unsigned blocks = static_cast<unsigned>((N + kRowsPerBlock - 1) / kRowsPerBlock);
    layernorm_backward_dx_kernel<<<blocks, kRowsPerBlock * kWarp, 0, stream>>>(dx, dout, x, mean, rstd, w, N, C);
    check_launch("layernorm_backward_dx_kernel");
    const dim3 grid(static_cast<unsigned>((C + kColumnThreads - 1) / kColumnThreads), static_cast<unsigned>(chunks));
    layernorm_backward_dwdb_kernel<<<grid, kColumnThreads, 0, stream>>>(dw, db, dout, x, mean, rstd, N, C);
    check_launch("layernorm_backward_dwdb_kernel");
}

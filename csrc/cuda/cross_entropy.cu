// Softmax cross-entropy, fused, over rows of logits, on the GPU. Follows
// minigpt/kernels/cross_entropy.py and csrc/cross_entropy.cpp.
//
// One warp per row. The forward finds each row's log-sum-exp in one online pass (a running max and
// a running sum rescaled when the max moves) and returns it with the loss; the backward rebuilds the
// softmax from the logits and that lse as it writes the gradient, so the probabilities (as large as
// the logits, B*T*V floats) are never stored. The teaching version of the forward gives each row to
// one thread: two passes, the max and then the sum (see softmax.cu on its cost).
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

__global__ void cross_entropy_forward_naive_kernel(float* losses, float* lse, const float* logits,
                                                   const int64_t* targets, int64_t N, int64_t V) {
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (row >= N) { return; }
    const float* z = logits + row * V;  // (V,)
    float m = -INFINITY;
    for (int64_t i = 0; i < V; i++) { m = fmaxf(m, z[i]); }
    float s = 0.0f;
    for (int64_t i = 0; i < V; i++) { s += expf(z[i] - m); }
    const float l = m + logf(s);
    const int64_t t = targets[row];
    lse[row] = l;
    losses[row] = t < 0 ? 0.0f : (t < V ? l - z[t] : NAN);  // as the warp version below
}

__global__ void cross_entropy_forward_kernel(float* losses, float* lse, const float* logits, const int64_t* targets,
                                             int64_t N, int64_t V) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= N) { return; }
    const float* z = logits + row * V;  // (V,)
    float m = -INFINITY, s = 0.0f;
    for (int64_t i = lane; i < V; i += kWarp) { online_add(m, s, z[i]); }
    for (int offset = kWarp / 2; offset > 0; offset /= 2) {
        const float m_other = __shfl_xor_sync(0xffffffffu, m, offset);
        const float s_other = __shfl_xor_sync(0xffffffffu, s, offset);
        online_merge(m, s, m_other, s_other);
    }
    if (lane == 0) {
        const float l = m + logf(s);
        const int64_t t = targets[row];
        lse[row] = l;
        // a negative target marks a padded position: it counts for nothing (the binding has
        // rejected targets >= V; NaN would mark one that slipped through)
        losses[row] = t < 0 ? 0.0f : (t < V ? l - z[t] : NAN);
    }
}

__global__ void cross_entropy_backward_kernel(float* dlogits, const float* logits, const float* lse,
                                              const int64_t* targets, float dloss, int64_t N, int64_t V) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= N) { return; }
    const int64_t t = targets[row];
    float* dz = dlogits + row * V;  // (V,)
    if (t < 0) {                    // padded: a zero gradient
        for (int64_t i = lane; i < V; i += kWarp) { dz[i] = 0.0f; }
        return;
    }
    const float* z = logits + row * V;  // (V,)
    const float l = lse[row];
    // dloss * (softmax - onehot), the one-hot folded into the same write
    for (int64_t i = lane; i < V; i += kWarp) { dz[i] = dloss * (expf(z[i] - l) - (i == t ? 1.0f : 0.0f)); }
}

unsigned row_blocks(int64_t rows) { return static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock); }

}  // namespace

void cross_entropy_forward_naive_cuda(float* losses, float* lse, const float* logits, const int64_t* targets,
                                      int64_t N, int64_t V, cudaStream_t stream) {
    if (N == 0) { return; }
    cross_entropy_forward_naive_kernel<<<grid_for(N, 128, INT32_MAX), 128, 0, stream>>>(losses, lse, logits, targets,
                                                                                         N, V);
    check_launch("cross_entropy_forward_naive_kernel");
}

void cross_entropy_forward_cuda(float* losses, float* lse, const float* logits, const int64_t* targets, int64_t N,
                                int64_t V, cudaStream_t stream) {
    if (N == 0) { return; }
    cross_entropy_forward_kernel<<<row_blocks(N), kRowsPerBlock * kWarp, 0, stream>>>(losses, lse, logits, targets, N,
                                                                                       V);
    check_launch("cross_entropy_forward_kernel");
}

void cross_entropy_backward_cuda(float* dlogits, const float* logits, const float* lse, const int64_t* targets,
                                 float dloss, int64_t N, int64_t V, cudaStream_t stream) {
    if (N == 0 || V == 0) { return; }
    cross_entropy_backward_kernel<<<row_blocks(N), kRowsPerBlock * kWarp, 0, stream>>>(dlogits, logits, lse, targets,
                                                                                        dloss, N, V);
    check_launch("cross_entropy_backward_kernel");
}

// Embedding lookup and its gradient on the GPU. Follows minigpt/kernels/embedding.py.
//
// A block per id: its threads copy (or add back) the C values of one row, so every access is
// coalesced. The backward adds with atomicAdd because several ids can name the same row (a token
// that occurs twice in a batch; every sequence's position 0): their gradients must all arrive.
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

constexpr int kThreads = 128;

__global__ void embedding_forward_kernel(float* out, const int64_t* idx, const float* w, int64_t V, int64_t C) {
    const int64_t i = blockIdx.x;
    const int64_t row = idx[i];
    const bool valid = row >= 0 && row < V;  // the binding checks the ids; this only keeps reads in bounds
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) { out[i * C + c] = valid ? w[row * C + c] : 0.0f; }
}

__global__ void embedding_backward_kernel(float* dw, const float* dout, const int64_t* idx, int64_t V, int64_t C) {
    const int64_t i = blockIdx.x;
    const int64_t row = idx[i];
    if (row < 0 || row >= V) { return; }
    for (int64_t c = threadIdx.x; c < C; c += blockDim.x) { atomicAdd(&dw[row * C + c], dout[i * C + c]); }
}

void check_rows(int64_t N, const char* op) {
    if (N > 2147483647) { throw std::invalid_argument(std::string(op) + ": more than 2^31 - 1 ids in one call"); }
}

}  // namespace

void embedding_forward_cuda(float* out, const int64_t* idx, const float* w, int64_t N, int64_t V, int64_t C,
                            cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    check_rows(N, "embedding_forward");
    embedding_forward_kernel<<<static_cast<unsigned>(N), kThreads, 0, stream>>>(out, idx, w, V, C);
    check_launch("embedding_forward_kernel");
}

void embedding_backward_cuda(float* dw, const float* dout, const int64_t* idx, int64_t N, int64_t V, int64_t C,
                             cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    check_rows(N, "embedding_backward");
    embedding_backward_kernel<<<static_cast<unsigned>(N), kThreads, 0, stream>>>(dw, dout, idx, V, C);
    check_launch("embedding_backward_kernel");
}

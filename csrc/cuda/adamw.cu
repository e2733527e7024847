// The AdamW update of one parameter array on the GPU, in place: one pass over memory (p, g, m, v
// read once; p, m, v written once), the same arithmetic as csrc/adamw.cpp and torch.optim.AdamW.
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

constexpr int kThreads = 256;

__global__ void adamw_kernel(float* p, float* m, float* v, const float* g, int64_t n, float step, float decay,
                             float beta1, float beta2, float eps, float inv_bias2) {
    for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
         i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
        const float gi = g[i];
        const float m_i = beta1 * m[i] + (1.0f - beta1) * gi;
        const float v_i = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = m_i;
        v[i] = v_i;
        p[i] = p[i] * decay - step * m_i / (sqrtf(v_i * inv_bias2) + eps);
    }
}

}  // namespace

void adamw_update_cuda(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                       float eps, float weight_decay, float bias1, float bias2, cudaStream_t stream) {
    if (n == 0) { return; }
    const float step = lr / bias1, decay = 1.0f - lr * weight_decay, inv_bias2 = 1.0f / bias2;
    adamw_kernel<<<grid_for(n, kThreads), kThreads, 0, stream>>>(p, m, v, g, n, step, decay, beta1, beta2, eps,
                                                                 inv_bias2);
    check_launch("adamw_kernel");
}

// The AdamW update of one parameter array in one pass over memory (p, g, m, v read once, p, m,
// v written once), as in torch.optim.AdamW. Follows minigpt/kernels/adamw.py.
#include <cmath>

#include "fastmath.h"
#include "kernels.h"

void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float bias1, float bias2) {
    const float step = lr / bias1, decay = 1.0f - lr * weight_decay, inv_bias2 = 1.0f / bias2;
    #pragma omp parallel for simd schedule(static) if (n >= MIN_PARALLEL_WORK)
    for (int64_t i = 0; i < n; i++) {
        const float m_i = beta1 * m[i] + (1.0f - beta1) * g[i];
        const float v_i = beta2 * v[i] + (1.0f - beta2) * g[i] * g[i];
        m[i] = m_i;
        v[i] = v_i;
        p[i] = p[i] * decay - step * m_i / (std::sqrt(v_i * inv_bias2) + eps);
    }
}

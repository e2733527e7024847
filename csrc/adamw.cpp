// The AdamW update of one parameter array in one pass over memory (p, g, m, v read once, p, m,
// v written once), as in torch.optim.AdamW. Follows minigpt/kernels/adamw.py. W floats at a time
// (simd.h); threads split the array only above MIN_PARALLEL_WORK elements.
#include <cmath>

#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

struct Step {
    float beta1, beta2, eps, step, decay, inv_bias2;
};

template <typename V>
SIMD_INLINE void update_range(float* p, float* m, float* v, const float* g, int64_t i0, int64_t i1, const Step& k) {
    constexpr int64_t W = Lanes<V>::W;
    int64_t i = i0;
    V pv, mv, vv, gv, denom;
    for (; i + W <= i1; i += W) {
        std::memcpy(&pv, p + i, sizeof(V));
        std::memcpy(&mv, m + i, sizeof(V));
        std::memcpy(&vv, v + i, sizeof(V));
        std::memcpy(&gv, g + i, sizeof(V));
        mv = k.beta1 * mv + (1.0f - k.beta1) * gv;
        vv = k.beta2 * vv + (1.0f - k.beta2) * gv * gv;
        denom = vv * k.inv_bias2;
        for (int64_t l = 0; l < W; l++) { denom[l] = std::sqrt(denom[l]); }  // compiles to one vector sqrt
        pv = pv * k.decay - k.step * mv / (denom + k.eps);
        std::memcpy(m + i, &mv, sizeof(V));
        std::memcpy(v + i, &vv, sizeof(V));
        std::memcpy(p + i, &pv, sizeof(V));
    }
    for (; i < i1; i++) {
        const float m_i = k.beta1 * m[i] + (1.0f - k.beta1) * g[i];
        const float v_i = k.beta2 * v[i] + (1.0f - k.beta2) * g[i] * g[i];
        m[i] = m_i;
        v[i] = v_i;
        p[i] = p[i] * k.decay - k.step * m_i / (std::sqrt(v_i * k.inv_bias2) + k.eps);
    }
}

SIMD_AVX512 void update_avx512(float* p, float* m, float* v, const float* g, int64_t i0, int64_t i1, const Step& k) {
    update_range<vec16>(p, m, v, g, i0, i1, k);
}
SIMD_AVX2 void update_avx2(float* p, float* m, float* v, const float* g, int64_t i0, int64_t i1, const Step& k) {
    update_range<vec8>(p, m, v, g, i0, i1, k);
}
void update_portable(float* p, float* m, float* v, const float* g, int64_t i0, int64_t i1, const Step& k) {
    update_range<vec4>(p, m, v, g, i0, i1, k);
}

}  // namespace

void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float bias1, float bias2) {
    const Step k{beta1, beta2, eps, lr / bias1, 1.0f - lr * weight_decay, 1.0f / bias2};
    const SimdPath path = simd_path();
    #pragma omp parallel if (n >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(n, 64);
        if (path == SimdPath::avx512) {
            update_avx512(p, m, v, g, s.begin, s.end, k);
        } else if (path == SimdPath::avx2) {
            update_avx2(p, m, v, g, s.begin, s.end, k);
        } else {
            update_portable(p, m, v, g, s.begin, s.end, k);
        }
    }
}

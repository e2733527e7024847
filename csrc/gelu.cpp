// GELU, tanh form, forward and backward, elementwise. Follows minigpt/kernels/gelu.py.
// fast_tanh (fastmath.h) lets the loops vectorise; std::tanh would be a scalar libm call.
#include "fastmath.h"
#include "kernels.h"

static const float SQRT_2_OVER_PI = 0.7978845608028654f;

void gelu_forward(float* out, const float* x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n >= MIN_PARALLEL_WORK)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float t = fast_tanh(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
        out[i] = 0.5f * v * (1.0f + t);
    }
}

void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) {
    #pragma omp parallel for simd schedule(static) if (n >= MIN_PARALLEL_WORK)
    for (int64_t i = 0; i < n; i++) {
        const float v = x[i];
        const float t = fast_tanh(SQRT_2_OVER_PI * (v + 0.044715f * v * v * v));
        const float du = SQRT_2_OVER_PI * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] += dout[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

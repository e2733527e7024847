// LayerNorm over the last axis, forward and backward, one row per iteration, rows spread over
// OpenMP threads. Follows layernorm_forward / layernorm_backward in minigpt/kernels/layernorm.py.
//
// Like llm.c, the forward saves only mean and rstd per row (2 floats, not a copy of xhat): the
// backward recomputes xhat = (x - mean) * rstd from x, which the caller keeps anyway.
#include <cmath>
#include <vector>

#include "fastmath.h"
#include "kernels.h"

void layernorm_forward(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                       int64_t N, int64_t C, float eps) {
    #pragma omp parallel for if (N * C >= MIN_PARALLEL_WORK)
    for (int64_t r = 0; r < N; r++) {
        const float* x_r = x + r * C;  // (C,)
        float* out_r = out + r * C;    // (C,)
        float sum = 0.0f;
        #pragma omp simd reduction(+ : sum)
        for (int64_t c = 0; c < C; c++) { sum += x_r[c]; }
        const float m = sum / C;
        // the variance from the centred values (two passes): E[x^2] - m^2 would cancel badly
        float sq = 0.0f;
        #pragma omp simd reduction(+ : sq)
        for (int64_t c = 0; c < C; c++) { sq += (x_r[c] - m) * (x_r[c] - m); }
        const float s = 1.0f / std::sqrt(sq / C + eps);
        #pragma omp simd
        for (int64_t c = 0; c < C; c++) { out_r[c] = (x_r[c] - m) * s * w[c] + b[c]; }
        mean[r] = m;
        rstd[r] = s;
    }
}

void layernorm_backward(float* dx, float* dw, float* db, const float* dout, const float* x, const float* mean,
                        const float* rstd, const float* w, int64_t N, int64_t C) {
    // dw and db sum over all rows: each thread sums its rows into a private buffer and the
    // buffers are added at the end, so no two threads ever write the same float.
    #pragma omp parallel if (N * C >= MIN_PARALLEL_WORK)
    {
        std::vector<float> dw_t(C, 0.0f), db_t(C, 0.0f);
        #pragma omp for
        for (int64_t r = 0; r < N; r++) {
            const float* dout_r = dout + r * C;  // (C,)
            const float* x_r = x + r * C;        // (C,)
            float* dx_r = dx + r * C;            // (C,)
            const float m = mean[r], s = rstd[r];
            // g = dout * w is the gradient reaching xhat; dx needs mean(g) and mean(g * xhat)
            float g_mean = 0.0f, gx_mean = 0.0f;
            #pragma omp simd reduction(+ : g_mean, gx_mean)
            for (int64_t c = 0; c < C; c++) {
                const float xhat = (x_r[c] - m) * s;
                const float g = dout_r[c] * w[c];
                g_mean += g;
                gx_mean += g * xhat;
            }
            g_mean /= C;
            gx_mean /= C;
            #pragma omp simd
            for (int64_t c = 0; c < C; c++) {
                const float xhat = (x_r[c] - m) * s;
                dx_r[c] += s * (dout_r[c] * w[c] - g_mean - xhat * gx_mean);
                dw_t[c] += dout_r[c] * xhat;
                db_t[c] += dout_r[c];
            }
        }
        #pragma omp critical
        for (int64_t c = 0; c < C; c++) {
            dw[c] += dw_t[c];
            db[c] += db_t[c];
        }
    }
}

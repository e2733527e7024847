// Causal scaled-dot-product attention with attention dropout, the teaching version: one row of
// the (T, T) weight matrix at a time, so extra memory is O(T) per thread, never T x T.
//
// Follows attention_forward / attention_backward in minigpt/kernels/attention.py: weights
// P = softmax(mask(q k^T / sqrt(hs))), out = (P * keep / (1 - p)) @ v. The forward saves only the
// log-sum-exp of each row; the backward rebuilds P from it and the dropout mask from (seed,
// position), the idea of FlashAttention (Dao et al. 2022, https://arxiv.org/abs/2205.14135)
// without its tiling. attention.cpp is the tuned version with the same results: tiles of queries
// and keys, an online softmax and SIMD tile products.
#include <algorithm>
#include <cmath>
#include <vector>

#include "attention_ops.h"
#include "kernels.h"

using attention::dropout_keep;
using attention::dropout_threshold;

static inline float dot(const float* a, const float* b, int64_t n) {
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)  // lets the compiler vectorise the sum by reordering it
    for (int64_t c = 0; c < n; c++) { sum += a[c] * b[c]; }
    return sum;
}

// ----------------------------------------------------------------------------- forward

void attention_forward_naive(float* out, float* lse, const float* q, const float* k, const float* v,
                             int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed) {
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs)));
    const bool dropout = dropout_p > 0.0;
    const uint64_t threshold = dropout_threshold(dropout_p);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - dropout_p));  // inverted dropout
    if (B * NH == 0) { return; }  // no rows; and an empty batch's T must not size att (see attention.cpp)
    #pragma omp parallel
    {
        std::vector<float> att(T);  // this thread's row of weights: O(T), never T x T
        // Every (b, h, i) row is independent: spread all B * NH * T of them over the threads.
        #pragma omp for
        for (int64_t row = 0; row < B * NH * T; row++) {
            const int64_t bh = row / T, i = row % T;
            const float* q_i = q + row * hs;     // (hs,)
            const float* k_bh = k + bh * T * hs;  // (T, hs)
            const float* v_bh = v + bh * T * hs;  // (T, hs)
            float* out_i = out + row * hs;        // (hs,)

            // 1. scaled scores of the keys this query may see (causal: j <= i) and their max;
            //    keys j > i get weight exactly 0, so they are never touched.
            float maxval = -INFINITY;
            for (int64_t j = 0; j <= i; j++) {
                att[j] = dot(q_i, k_bh + j * hs, hs) * scale;
                maxval = std::max(maxval, att[j]);
            }
            // 2. stable softmax: exp(s - max) <= 1 cannot overflow; lse = max + log(sum) is the
            //    row's log-normaliser, saved so the backward can rebuild P = exp(s - lse).
            float sum = 0.0f;
            for (int64_t j = 0; j <= i; j++) {
                att[j] = std::exp(att[j] - maxval);
                sum += att[j];
            }
            lse[row] = maxval + std::log(sum);
            const float norm = 1.0f / sum;

            // 3. out_i = sum_j P_ij * keep_ij / (1 - p) * v_j
            for (int64_t c = 0; c < hs; c++) { out_i[c] = 0.0f; }
            for (int64_t j = 0; j <= i; j++) {
                float w = att[j] * norm;
                if (dropout) { w *= dropout_keep(seed, threshold, bh, i, j, T) ? keep_scale : 0.0f; }
                const float* v_j = v_bh + j * hs;  // (hs,)
                for (int64_t c = 0; c < hs; c++) { out_i[c] += w * v_j[c]; }
            }
        }
    }
}

// ----------------------------------------------------------------------------- backward

void attention_backward_naive(float* dq, float* dk, float* dv, const float* dout, const float* q,
                              const float* k, const float* v, const float* out, const float* lse,
                              int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p,
                              uint64_t seed) {
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs)));
    const bool dropout = dropout_p > 0.0;
    const uint64_t threshold = dropout_threshold(dropout_p);
    const float keep_scale = static_cast<float>(1.0 / (1.0 - dropout_p));
    // dk_j and dv_j sum over all queries i >= j, so one thread owns a whole (b, h) slice: the
    // += below then never race, and each sum runs in the same order whatever the thread count.
    #pragma omp parallel for
    for (int64_t bh = 0; bh < B * NH; bh++) {
        const int64_t off = bh * T * hs;
        const float *q_bh = q + off, *k_bh = k + off, *v_bh = v + off;  // (T, hs) each
        const float *dout_bh = dout + off, *out_bh = out + off;         // (T, hs) each
        float *dq_bh = dq + off, *dk_bh = dk + off, *dv_bh = dv + off;  // (T, hs) each
        for (int64_t i = 0; i < T; i++) {
            const float* q_i = q_bh + i * hs;        // (hs,)
            const float* dout_i = dout_bh + i * hs;  // (hs,)
            float* dq_i = dq_bh + i * hs;            // (hs,)
            const float lse_i = lse[bh * T + i];
            // The softmax backward needs D_i = sum_j dP_ij * P_ij, which equals dot(dout_i, out_i):
            // a length-hs dot product instead of a pass over the row.
            const float D_i = dot(dout_i, out_bh + i * hs, hs);
            for (int64_t j = 0; j <= i; j++) {
                const float* k_j = k_bh + j * hs;  // (hs,)
                const float* v_j = v_bh + j * hs;  // (hs,)
                float* dk_j = dk_bh + j * hs;      // (hs,)
                float* dv_j = dv_bh + j * hs;      // (hs,)
                // rebuild the weight from the saved log-sum-exp, and its dropout factor
                const float P_ij = std::exp(dot(q_i, k_j, hs) * scale - lse_i);
                float keep_ij = 1.0f;
                if (dropout) { keep_ij = dropout_keep(seed, threshold, bh, i, j, T) ? keep_scale : 0.0f; }
                // out_i = sum_j P_ij keep_ij v_j, so dv_j gets P_ij keep_ij dout_i and the
                // gradient of the (undropped) weight is dP_ij = keep_ij dot(dout_i, v_j)
                const float dP_ij = keep_ij * dot(dout_i, v_j, hs);
                for (int64_t c = 0; c < hs; c++) { dv_j[c] += P_ij * keep_ij * dout_i[c]; }
                // softmax backward, then the 1/sqrt(hs) of the scores; s_ij = q_i . k_j feeds both
                const float dS_ij = P_ij * (dP_ij - D_i) * scale;
                for (int64_t c = 0; c < hs; c++) {
                    dq_i[c] += dS_ij * k_j[c];
                    dk_j[c] += dS_ij * q_i[c];
                }
            }
        }
    }
}

// Internal to the attention kernels: the tile operations that plain loops do well. Each
// attention_<isa>.cpp includes this file and wraps these functions in its own target attribute, so
// the compiler vectorises the same loops for AVX-512, AVX2 or the baseline instruction set. They are
// always inlined (a function without a target attribute may be inlined into one with it) and static,
// so no copy compiled for one instruction set can be picked up by code compiled for another.
#pragma once

#include <cmath>
#include <cstdint>

#include "attention_ops.h"
#include "fastmath.h"

#define ATTENTION_INLINE static inline __attribute__((always_inline))

namespace attention {
namespace loops {

ATTENTION_INLINE void dscores(float* ds, const float* p, int64_t nk, const float* D, float scale) {
    for (int64_t r = 0; r < nk; r++) {
        float* ds_r = ds + r * kQueryTile;
        const float* p_r = p + r * kQueryTile;
        #pragma omp simd
        for (int64_t c = 0; c < kQueryTile; c++) { ds_r[c] = p_r[c] * (ds_r[c] - D[c]) * scale; }
    }
}

ATTENTION_INLINE void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* s) {
    for (int64_t r = 0; r < rows; r++) {
        const float s_r = s[r];
        #pragma omp simd
        for (int64_t c = 0; c < cols; c++) { x[r * ld + c] *= s_r; }
    }
}

ATTENTION_INLINE void mul(float* dst, const float* a, const float* b, int64_t n) {
    #pragma omp simd
    for (int64_t i = 0; i < n; i++) { dst[i] = a[i] * b[i]; }
}

// Blocks of 16 x 16, so each block's reads and writes stay within 16 cache lines.
ATTENTION_INLINE void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows,
                              int64_t cols) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            const int64_t r1 = std::min(rows, r0 + 16), c1 = std::min(cols, c0 + 16);
            for (int64_t c = c0; c < c1; c++) {
                for (int64_t r = r0; r < r1; r++) { dst[c * ld_dst + r] = src[r * ld_src + c]; }
            }
        }
    }
}

// The hash of dropout_keep for a whole row of queries at once: the counter steps by T from one query
// to the next, and the 64-bit multiplies vectorise where the instruction set has them (AVX-512DQ).
ATTENTION_INLINE void dropout_tile(float* keep, int64_t nk, uint64_t seed, uint64_t threshold, float keep_scale,
                                 int64_t bh, int64_t T, int64_t i0, int64_t j0) {
    const uint64_t golden = 0x9E3779B97F4A7C15ULL;
    for (int64_t r = 0; r < nk; r++) {
        const uint64_t first = (static_cast<uint64_t>(bh * T + i0) * T + (j0 + r)) + 1;  // query i0, key j0 + r
        float* keep_r = keep + r * kQueryTile;
        #pragma omp simd
        for (int64_t c = 0; c < kQueryTile; c++) {
            uint64_t z = seed + (first + static_cast<uint64_t>(c) * static_cast<uint64_t>(T)) * golden;
            z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
            z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
            z = z ^ (z >> 31);
            keep_r[c] = (z >> 40) >= threshold ? keep_scale : 0.0f;
        }
    }
}

// One query over L cached keys, in three passes over short rows: the scores (a dot product per key,
// hs long), their softmax, and the weighted sum of the value rows. A generation step has one query
// per head and L = the positions so far, so the whole row of L weights fits in p; no online softmax
// is needed. The max is subtracted before exp, so exp cannot overflow.
ATTENTION_INLINE void cached_row(float* out, const float* q, const float* K, const float* V, int64_t L, int64_t hs,
                                 float scale, float* p) {
    float max_score = -INFINITY;
    for (int64_t j = 0; j < L; j++) {
        const float* k_j = K + j * hs;  // (hs,)
        float s = 0.0f;
        #pragma omp simd reduction(+ : s)
        for (int64_t d = 0; d < hs; d++) { s += q[d] * k_j[d]; }
        p[j] = s * scale;
        max_score = p[j] > max_score ? p[j] : max_score;
    }
    float sum = 0.0f;
    #pragma omp simd reduction(+ : sum)
    for (int64_t j = 0; j < L; j++) {
        p[j] = fast_exp(p[j] - max_score);
        sum += p[j];
    }
    for (int64_t d = 0; d < hs; d++) { out[d] = 0.0f; }
    for (int64_t j = 0; j < L; j++) {
        const float w = p[j];
        const float* v_j = V + j * hs;  // (hs,)
        #pragma omp simd
        for (int64_t d = 0; d < hs; d++) { out[d] += w * v_j[d]; }
    }
    const float inv_sum = 1.0f / sum;  // >= 1: the max key contributes exp(0)
    #pragma omp simd
    for (int64_t d = 0; d < hs; d++) { out[d] *= inv_sum; }
}

}  // namespace loops
}  // namespace attention

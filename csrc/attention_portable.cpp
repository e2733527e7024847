// The attention tile operations in plain C++: the path for any CPU (ARM, or x86-64 without AVX2), and
// the one to read first. The loops are written so the compiler can vectorise them for the baseline
// instruction set; attention_avx512.cpp and attention_avx2.cpp do the same work with intrinsics.
#include <cmath>

#include "attention_loops.h"
#include "attention_ops.h"

namespace attention {
namespace {

// C (+)= A @ B, four rows of C at a time so each row of B loaded is used four times. The inner loop
// runs along a row of B and C: unit stride, which the compiler vectorises.
void gemm(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb, int64_t M,
          int64_t N, int64_t K, bool accumulate, const float* row_scale, Trim trim, int64_t off) {
    constexpr int64_t kMR = 4;
    for (int64_t m0 = 0; m0 < M; m0 += kMR) {
        const int64_t mr = std::min(kMR, M - m0);
        const TrimRange range = trim_range(trim, off, m0, mr, N, K, 1);
        for (int64_t m = m0; m < m0 + mr; m++) {
            const float scale = !accumulate ? 0.0f : row_scale ? row_scale[m] : 1.0f;
            float* c_m = C + m * ldc;
            if (scale == 0.0f) {  // also when C holds garbage (not yet written): 0 * NaN would be NaN
                std::fill(c_m + range.n_lo, c_m + N, 0.0f);
            } else if (scale != 1.0f) {
                for (int64_t n = range.n_lo; n < N; n++) { c_m[n] *= scale; }
            }
        }
        for (int64_t k = range.k0; k < range.k1; k++) {
            const float* b_k = B + k * ldb;
            for (int64_t m = m0; m < m0 + mr; m++) {
                const float a = A[m * a_rs + k * a_cs];
                float* c_m = C + m * ldc;
                #pragma omp simd
                for (int64_t n = range.n_lo; n < N; n++) { c_m[n] += a * b_k[n]; }
            }
        }
    }
}

void softmax_update(float* s, int64_t nk, float* m2, float* l, float* alpha, float c2) {
    float m_new[kQueryTile], sum[kQueryTile] = {};
    for (int64_t c = 0; c < kQueryTile; c++) { m_new[c] = m2[c]; }
    for (int64_t r = 0; r < nk; r++) {
        for (int64_t c = 0; c < kQueryTile; c++) { m_new[c] = std::max(m_new[c], s[r * kQueryTile + c] * c2); }
    }
    for (int64_t c = 0; c < kQueryTile; c++) {
        alpha[c] = std::exp2(m2[c] - m_new[c]);  // m2 = -inf before the first tile: alpha = 0
        m2[c] = m_new[c];
    }
    for (int64_t r = 0; r < nk; r++) {
        for (int64_t c = 0; c < kQueryTile; c++) {
            float& s_rc = s[r * kQueryTile + c];
            s_rc = std::exp2(s_rc * c2 - m_new[c]);
            sum[c] += s_rc;
        }
    }
    for (int64_t c = 0; c < kQueryTile; c++) { l[c] = l[c] * alpha[c] + sum[c]; }
}

void exp_tile(float* s, int64_t nk, const float* lse2, float c2) {
    for (int64_t r = 0; r < nk; r++) {
        for (int64_t c = 0; c < kQueryTile; c++) { s[r * kQueryTile + c] = std::exp2(s[r * kQueryTile + c] * c2 - lse2[c]); }
    }
}

void dscores(float* ds, const float* p, int64_t nk, const float* D, float scale) { loops::dscores(ds, p, nk, D, scale); }

void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* s) {
    loops::scale_rows(x, ld, rows, cols, s);
}

void mul(float* dst, const float* a, const float* b, int64_t n) { loops::mul(dst, a, b, n); }

void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
    loops::transpose(dst, ld_dst, src, ld_src, rows, cols);
}

void dropout_tile(float* keep, int64_t nk, uint64_t seed, uint64_t threshold, float keep_scale, int64_t bh, int64_t T,
                  int64_t i0, int64_t j0) {
    loops::dropout_tile(keep, nk, seed, threshold, keep_scale, bh, T, i0, j0);
}

void cached_row(float* out, const float* q, const float* K, const float* V, int64_t L, int64_t hs, float scale,
                float* p) {
    loops::cached_row(out, q, K, V, L, hs, scale, p);
}

}  // namespace

const TileOps& tile_ops_portable() {
    static const TileOps ops{"portable", gemm, softmax_update, exp_tile, dscores, scale_rows, mul, transpose,
                             dropout_tile,
                             cached_row};
    return ops;
}

}  // namespace attention

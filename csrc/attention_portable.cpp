// The attention tile operations in plain C++: the path for any CPU (ARM, or x86-64 without AVX2), and
// the one to read first. The multiply and the exponentials use GCC's 4-float vectors (simd.h: SSE2 on
// x86-64, NEON on ARM64), the other loops are left for the compiler to vectorise; attention_avx512.cpp
// and attention_avx2.cpp do the same work with intrinsics.
#include <algorithm>
#include <cmath>

#include "attention_loops.h"
#include "attention_ops.h"
#include "simd.h"

namespace attention {
namespace {

// C (+)= A @ B in 6 x 8 blocks of C, the AVX2 file's micro-kernel in 4-float vectors (GCC and Clang's
// vector extension, as in matmul_portable.cpp): 12 accumulators stay in registers for the whole k
// loop, and each row of B loaded serves 6 rows. Moving vectors one at a time and spelling the
// broadcast {a, a, a, a} keeps GCC from spilling the accumulators (matmul_portable.cpp has why).
constexpr int kMR = 6;
constexpr int kLanes = 4;
constexpr int kMaxNV = 2;

// A row's vector, or with lanes < 4 its last, partial one (zeros after; nothing read or written past
// the row's end): simd.h's load_partial and store_partial, as values.
inline vec4 load_lanes(const float* p, int lanes = kLanes) {
    vec4 v;
    load_partial(v, p, lanes);
    return v;
}

inline void store_lanes(float* p, const vec4& v, int lanes = kLanes) { store_partial(p, v, lanes); }

// FULL: the last vector is whole too (last_lanes == 4), the usual case, compiled without the copies.
template <int MR, int NV, bool FULL>
void micro(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb, int64_t k0,
           int64_t k1, int last_lanes, bool accumulate, const float* row_scale) {
    if (FULL) { last_lanes = kLanes; }
    vec4 acc[MR][NV];
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
        const float s = row_scale ? row_scale[r] : 1.0f;
        const vec4 scale = {s, s, s, s};
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const int lanes = v == NV - 1 ? last_lanes : kLanes;
            // a scale of 0 reads nothing: C may hold garbage then, and 0 * NaN would be NaN
            acc[r][v] = accumulate && s != 0.0f ? scale * load_lanes(C + r * ldc + v * kLanes, lanes) : vec4{};
        }
    }
    for (int64_t k = k0; k < k1; k++) {
        const float* b_k = B + k * ldb;
        vec4 b[NV];
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) { b[v] = load_lanes(b_k + v * kLanes, v == NV - 1 ? last_lanes : kLanes); }
#pragma GCC unroll 6
        for (int r = 0; r < MR; r++) {
            const float a_rk = A[r * a_rs + k * a_cs];
            const vec4 a = {a_rk, a_rk, a_rk, a_rk};
#pragma GCC unroll 2
            for (int v = 0; v < NV; v++) { acc[r][v] += a * b[v]; }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < MR; r++) {
#pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            store_lanes(C + r * ldc + v * kLanes, acc[r][v], v == NV - 1 ? last_lanes : kLanes);
        }
    }
}

using Micro = void (*)(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, int,
                       bool, const float*);

template <int MR, bool FULL>
constexpr Micro micro_for(int nv) { return nv == 1 ? micro<MR, 1, FULL> : micro<MR, 2, FULL>; }

template <bool FULL>
Micro pick_micro(int mr, int nv) {
    switch (mr) {
        case 1: return micro_for<1, FULL>(nv);
        case 2: return micro_for<2, FULL>(nv);
        case 3: return micro_for<3, FULL>(nv);
        case 4: return micro_for<4, FULL>(nv);
        case 5: return micro_for<5, FULL>(nv);
        default: return micro_for<6, FULL>(nv);
    }
}

void gemm(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb, int64_t M,
          int64_t N, int64_t K, bool accumulate, const float* row_scale, Trim trim, int64_t off) {
    for_each_block<kMR, kLanes, kMaxNV>(M, N, K, trim, off, [&](int64_t m0, int mr, int64_t n0, int nv, int last_lanes,
                                                               const TrimRange& range) {
        const Micro micro = last_lanes == kLanes ? pick_micro<true>(mr, nv) : pick_micro<false>(mr, nv);
        micro(C + m0 * ldc + n0, ldc, A + m0 * a_rs, a_rs, a_cs, B + n0, ldb, range.k0, range.k1, last_lanes,
              accumulate, row_scale ? row_scale + m0 : nullptr);
    });
}

// 2^t on 4 lanes, for t <= 0: simd.h's polynomial (about 1 ulp, as the AVX files use), 0 below -125,
// and NaN for NaN, as in the AVX files (bad input must show). std::exp2 is a call into libm per float.
inline vec4 exp2_lanes(vec4 t) {
    const auto underflow = t < -125.0f;  // false for NaN
    vec4 x = underflow ? vec4{} : t;     // keeps exp2_in_range's exponent bits in range
    exp2_in_range(x);
    return t != t ? t : underflow ? vec4{} : x;
}

static_assert(kQueryTile % kLanes == 0, "a tile row is whole vectors");

void softmax_update(float* s, int64_t nk, float* m2, float* l, float* alpha, float c2) {
    float m_new[kQueryTile], sum[kQueryTile] = {};
    for (int64_t c = 0; c < kQueryTile; c++) { m_new[c] = m2[c]; }
    for (int64_t r = 0; r < nk; r++) {
        for (int64_t c = 0; c < kQueryTile; c++) { m_new[c] = std::max(m_new[c], s[r * kQueryTile + c] * c2); }
    }
    for (int64_t c = 0; c < kQueryTile; c += kLanes) {
        // m2 = -inf before the first tile: alpha 0
        store_lanes(alpha + c, exp2_lanes(load_lanes(m2 + c) - load_lanes(m_new + c)));
        store_lanes(m2 + c, load_lanes(m_new + c));
    }
    for (int64_t r = 0; r < nk; r++) {
        float* s_r = s + r * kQueryTile;
        for (int64_t c = 0; c < kQueryTile; c += kLanes) {
            const vec4 p = exp2_lanes(load_lanes(s_r + c) * c2 - load_lanes(m_new + c));
            store_lanes(s_r + c, p);
            store_lanes(sum + c, load_lanes(sum + c) + p);
        }
    }
    for (int64_t c = 0; c < kQueryTile; c++) { l[c] = l[c] * alpha[c] + sum[c]; }
}

void exp_tile(float* s, int64_t nk, const float* lse2, float c2) {
    for (int64_t r = 0; r < nk; r++) {
        float* s_r = s + r * kQueryTile;
        for (int64_t c = 0; c < kQueryTile; c += kLanes) {
            store_lanes(s_r + c, exp2_lanes(load_lanes(s_r + c) * c2 - load_lanes(lse2 + c)));
        }
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

// The attention tile operations in AVX2 + FMA intrinsics: the AVX-512 file's design at half the
// vector width and half the registers. Every function carries the target attribute; runs only where
// select_tile_ops() has checked the CPU (see attention_ops.h for the table and the tile layout).
#if defined(__x86_64__)

#include <immintrin.h>

#include <cmath>

#include "attention_loops.h"
#include "attention_ops.h"

#define AVX2 __attribute__((target("avx2,fma")))

namespace attention {
namespace {

// A 6 x 16 block of C in 12 of the 16 ymm registers, 2 for a row of B and 1 for the broadcast.
constexpr int kMR = 6;
constexpr int kLanes = 8;
constexpr int kMaxNV = 2;

// lanes < n set (sign bit), for maskload / maskstore of a row's last, partial vector
AVX2 inline __m256i lane_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The last vector of a row: through the mask where the row ends inside it (PARTIAL), else a plain
// load or store. AMD's cores run vmaskmovps as a microcoded sequence, several times slower than a
// plain move, and this load sits in the micro-kernel's inner loop.
template <bool PARTIAL>
AVX2 inline __m256 load_last(const float* p, __m256i last) {
    return PARTIAL ? _mm256_maskload_ps(p, last) : _mm256_loadu_ps(p);
}

template <bool PARTIAL>
AVX2 inline void store_last(float* p, __m256i last, __m256 x) {
    if constexpr (PARTIAL) {
        _mm256_maskstore_ps(p, last, x);
    } else {
        _mm256_storeu_ps(p, x);
    }
}

template <int MR, int NV, bool PARTIAL>
AVX2 void micro(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                int64_t k0, int64_t k1, int last_lanes, bool accumulate, const float* row_scale) {
    const __m256i last = lane_mask(last_lanes);
    __m256 acc[MR][NV];
    #pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        const __m256 scale = _mm256_set1_ps(row_scale ? row_scale[r] : 1.0f);
        #pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            const float* c = C + r * ldc + v * kLanes;
            acc[r][v] = !accumulate    ? _mm256_setzero_ps()
                        : v == NV - 1 ? _mm256_mul_ps(scale, load_last<PARTIAL>(c, last))
                                      : _mm256_mul_ps(scale, _mm256_loadu_ps(c));
        }
    }
    for (int64_t k = k0; k < k1; k++) {
        const float* b_k = B + k * ldb;
        __m256 b[NV];
        #pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {  // masked loads never fault past the end of the last row
            b[v] = v == NV - 1 ? load_last<PARTIAL>(b_k + v * kLanes, last) : _mm256_loadu_ps(b_k + v * kLanes);
        }
        #pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m256 a = _mm256_broadcast_ss(A + r * a_rs + k * a_cs);
            #pragma GCC unroll 2
            for (int v = 0; v < NV; v++) { acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]); }
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        #pragma GCC unroll 2
        for (int v = 0; v < NV; v++) {
            float* c = C + r * ldc + v * kLanes;
            if (v == NV - 1) {
                store_last<PARTIAL>(c, last, acc[r][v]);
            } else {
                _mm256_storeu_ps(c, acc[r][v]);
            }
        }
    }
}

using Micro = void (*)(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t, int,
                       bool, const float*);

template <int MR>
constexpr Micro micro_for(int nv, bool partial) {
    return nv == 1 ? (partial ? micro<MR, 1, true> : micro<MR, 1, false>)
                   : (partial ? micro<MR, 2, true> : micro<MR, 2, false>);
}

AVX2 Micro pick_micro(int mr, int nv, bool partial) {
    switch (mr) {
        case 1: return micro_for<1>(nv, partial);
        case 2: return micro_for<2>(nv, partial);
        case 3: return micro_for<3>(nv, partial);
        case 4: return micro_for<4>(nv, partial);
        case 5: return micro_for<5>(nv, partial);
        default: return micro_for<6>(nv, partial);
    }
}

AVX2 void gemm(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
               int64_t M, int64_t N, int64_t K, bool accumulate, const float* row_scale, Trim trim, int64_t off) {
    for_each_block<kMR, kLanes, kMaxNV>(M, N, K, trim, off, [&](int64_t m0, int mr, int64_t n0, int nv, int last_lanes,
                                                               const TrimRange& range) {
        const Micro micro_kernel = pick_micro(mr, nv, last_lanes < kLanes);
        micro_kernel(C + m0 * ldc + n0, ldc, A + m0 * a_rs, a_rs, a_cs, B + n0, ldb, range.k0, range.k1, last_lanes,
                     accumulate, row_scale ? row_scale + m0 : nullptr);
    });
}

// 2^t for t <= 0, as in attention_avx512.cpp (degree-6 polynomial for 2^f, about 1 ulp; results
// below 2^-125 flushed to exactly 0), with 2^n built from its exponent bits.
AVX2 inline __m256 exp2(__m256 t) {
    // not below -125: false for -inf, true for NaN, which then comes out NaN (bad input must show)
    const __m256 normal = _mm256_cmp_ps(t, _mm256_set1_ps(-125.0f), _CMP_NLT_UQ);
    // keeps the exponent bits below in range; max_ps returns its second operand when either is NaN
    t = _mm256_max_ps(_mm256_set1_ps(-125.0f), t);
    const __m256 n = _mm256_round_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 f = _mm256_sub_ps(t, n);
    __m256 p = _mm256_set1_ps(1.5345812e-4f);
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3399931e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(9.6184891e-3f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.5503286e-2f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(2.4022646e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(6.9314718e-1f));
    p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_and_ps(_mm256_mul_ps(p, _mm256_castsi256_ps(bits)), normal);
}

constexpr int kTileVectors = kQueryTile / kLanes;  // one tile row of queries, in vectors
static_assert(kTileVectors % 4 == 0, "softmax_update works in groups of 4 vectors: make kQueryTile a multiple of 32");

// Half a tile row (4 vectors) at a time, so the running values stay in registers.
AVX2 void softmax_update(float* s, int64_t nk, float* m2, float* l, float* alpha, float c2) {
    constexpr int kGroup = 4;
    const __m256 vc2 = _mm256_set1_ps(c2);
    for (int g = 0; g < kTileVectors; g += kGroup) {
        __m256 mx[kGroup], neg_m[kGroup], sum[kGroup];
        for (int v = 0; v < kGroup; v++) { mx[v] = _mm256_set1_ps(-INFINITY); }
        for (int64_t r = 0; r < nk; r++) {
            #pragma GCC unroll 4
            for (int v = 0; v < kGroup; v++) {
                mx[v] = _mm256_max_ps(mx[v], _mm256_loadu_ps(s + r * kQueryTile + (g + v) * kLanes));
            }
        }
        for (int v = 0; v < kGroup; v++) {
            const int64_t c = (g + v) * kLanes;
            const __m256 m_old = _mm256_loadu_ps(m2 + c);
            const __m256 m_new = _mm256_max_ps(m_old, _mm256_mul_ps(mx[v], vc2));
            _mm256_storeu_ps(alpha + c, exp2(_mm256_sub_ps(m_old, m_new)));
            _mm256_storeu_ps(m2 + c, m_new);
            neg_m[v] = _mm256_sub_ps(_mm256_setzero_ps(), m_new);
            sum[v] = _mm256_setzero_ps();
        }
        for (int64_t r = 0; r < nk; r++) {
            #pragma GCC unroll 4
            for (int v = 0; v < kGroup; v++) {
                float* s_rv = s + r * kQueryTile + (g + v) * kLanes;
                const __m256 p = exp2(_mm256_fmadd_ps(_mm256_loadu_ps(s_rv), vc2, neg_m[v]));
                _mm256_storeu_ps(s_rv, p);
                sum[v] = _mm256_add_ps(sum[v], p);
            }
        }
        for (int v = 0; v < kGroup; v++) {
            const int64_t c = (g + v) * kLanes;
            _mm256_storeu_ps(l + c, _mm256_fmadd_ps(_mm256_loadu_ps(l + c), _mm256_loadu_ps(alpha + c), sum[v]));
        }
    }
}

AVX2 void exp_tile(float* s, int64_t nk, const float* lse2, float c2) {
    const __m256 vc2 = _mm256_set1_ps(c2);
    for (int64_t r = 0; r < nk; r++) {
        #pragma GCC unroll 8
        for (int v = 0; v < kTileVectors; v++) {
            float* s_rv = s + r * kQueryTile + v * kLanes;
            const __m256 neg_lse = _mm256_sub_ps(_mm256_setzero_ps(), _mm256_loadu_ps(lse2 + v * kLanes));
            _mm256_storeu_ps(s_rv, exp2(_mm256_fmadd_ps(_mm256_loadu_ps(s_rv), vc2, neg_lse)));
        }
    }
}

AVX2 void dscores(float* ds, const float* p, int64_t nk, const float* D, float scale) {
    loops::dscores(ds, p, nk, D, scale);
}

AVX2 void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* s) {
    loops::scale_rows(x, ld, rows, cols, s);
}

AVX2 void mul(float* dst, const float* a, const float* b, int64_t n) { loops::mul(dst, a, b, n); }

// Whole 8 x 8 blocks through registers (8 row loads, 24 shuffles, 8 column stores); the ragged edge
// by the plain loops.
AVX2 void transpose8(float* dst, int64_t ld_dst, const float* src, int64_t ld_src) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; i++) { r[i] = _mm256_loadu_ps(src + i * ld_src); }
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 8; g += 4) {  // r[g + c]: rows g..g+3 of columns c and c+4 (one per 128-bit lane)
        r[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
        r[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
        r[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
        r[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
    }
    for (int c = 0; c < 4; c++) {
        _mm256_storeu_ps(dst + c * ld_dst, _mm256_permute2f128_ps(r[c], r[4 + c], 0x20));
        _mm256_storeu_ps(dst + (c + 4) * ld_dst, _mm256_permute2f128_ps(r[c], r[4 + c], 0x31));
    }
}

AVX2 void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
    const int64_t rows8 = rows / 8 * 8, cols8 = cols / 8 * 8;
    for (int64_t r0 = 0; r0 < rows8; r0 += 8) {
        for (int64_t c0 = 0; c0 < cols8; c0 += 8) { transpose8(dst + c0 * ld_dst + r0, ld_dst, src + r0 * ld_src + c0, ld_src); }
    }
    loops::transpose(dst + cols8 * ld_dst, ld_dst, src + cols8, ld_src, rows, cols - cols8);  // right edge
    loops::transpose(dst + rows8, ld_dst, src + rows8 * ld_src, ld_src, rows - rows8, cols8);  // bottom edge
}

AVX2 void dropout_tile(float* keep, int64_t nk, uint64_t seed, uint64_t threshold, float keep_scale, int64_t bh,
                       int64_t T, int64_t i0, int64_t j0) {
    loops::dropout_tile(keep, nk, seed, threshold, keep_scale, bh, T, i0, j0);
}

AVX2 void cached_row(float* out, const float* q, const float* K, const float* V, int64_t L, int64_t hs, float scale,
                     float* p) {
    loops::cached_row(out, q, K, V, L, hs, scale, p);
}

}  // namespace

const TileOps& tile_ops_avx2() {
    static const TileOps ops{"avx2", gemm, softmax_update, exp_tile, dscores, scale_rows, mul, transpose, dropout_tile,
                             cached_row};
    return ops;
}

}  // namespace attention

#endif  // __x86_64__

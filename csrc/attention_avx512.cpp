// The attention tile operations in AVX-512 intrinsics: a register-tiled micro-kernel for the tile
// products and a vectorised exp2 for the softmax. Every function carries the target attribute, so
// this file builds with the portable flags of the whole project and runs only where
// select_tile_ops() has checked the CPU (see attention_ops.h for the table and the tile layout).
#if defined(__x86_64__)

#include <immintrin.h>

#include <cmath>

// GCC 12's AVX-512 headers build _mm512_undefined_ps() from a self-initialised variable, which -Wall
// reports at every inlined max/round/scalef (GCC bug 105593); the values are never read.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include "attention_loops.h"
#include "attention_ops.h"

#define AVX512 __attribute__((target("avx512f,avx512dq,fma")))

namespace attention {
namespace {

// A 6 x 64 block of C lives in 24 of the 32 zmm registers while the k loop runs; each k step loads
// one row of B (4 vectors), broadcasts 6 values of A and does 24 FMAs: enough independent FMAs to
// cover their 4-cycle latency on both FMA pipes, and twice as many FMAs as loads.
constexpr int kMR = 6;
constexpr int kLanes = 16;
constexpr int kMaxNV = 4;

template <int MR, int NV>
AVX512 void micro(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                  int64_t k0, int64_t k1, __mmask16 last, bool accumulate, const float* row_scale) {
    __m512 acc[MR][NV];
    #pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        const __m512 scale = _mm512_set1_ps(row_scale ? row_scale[r] : 1.0f);
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 mask = v == NV - 1 ? last : __mmask16(0xFFFF);
            acc[r][v] = accumulate ? _mm512_mul_ps(scale, _mm512_maskz_loadu_ps(mask, C + r * ldc + v * kLanes))
                                   : _mm512_setzero_ps();
        }
    }
    for (int64_t k = k0; k < k1; k++) {
        const float* b_k = B + k * ldb;
        __m512 b[NV];
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {  // masked loads never fault past the end of the last row
            b[v] = v == NV - 1 ? _mm512_maskz_loadu_ps(last, b_k + v * kLanes) : _mm512_loadu_ps(b_k + v * kLanes);
        }
        #pragma GCC unroll 8
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(A[r * a_rs + k * a_cs]);
            #pragma GCC unroll 4
            for (int v = 0; v < NV; v++) { acc[r][v] = _mm512_fmadd_ps(a, b[v], acc[r][v]); }
        }
    }
    #pragma GCC unroll 8
    for (int r = 0; r < MR; r++) {
        #pragma GCC unroll 4
        for (int v = 0; v < NV; v++) {
            const __mmask16 mask = v == NV - 1 ? last : __mmask16(0xFFFF);
            _mm512_mask_storeu_ps(C + r * ldc + v * kLanes, mask, acc[r][v]);
        }
    }
}

using Micro = void (*)(float*, int64_t, const float*, int64_t, int64_t, const float*, int64_t, int64_t, int64_t,
                       __mmask16, bool, const float*);

template <int MR>
constexpr Micro micro_for(int nv) {
    return nv == 1 ? micro<MR, 1> : nv == 2 ? micro<MR, 2> : nv == 3 ? micro<MR, 3> : micro<MR, 4>;
}

AVX512 Micro pick_micro(int mr, int nv) {
    switch (mr) {
        case 1: return micro_for<1>(nv);
        case 2: return micro_for<2>(nv);
        case 3: return micro_for<3>(nv);
        case 4: return micro_for<4>(nv);
        case 5: return micro_for<5>(nv);
        default: return micro_for<6>(nv);
    }
}

AVX512 void gemm(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                 int64_t M, int64_t N, int64_t K, bool accumulate, const float* row_scale, Trim trim, int64_t off) {
    for_each_block<kMR, kLanes, kMaxNV>(M, N, K, trim, off, [&](int64_t m0, int mr, int64_t n0, int nv, int last_lanes,
                                                               const TrimRange& range) {
        const __mmask16 last = static_cast<__mmask16>((1u << last_lanes) - 1u);
        pick_micro(mr, nv)(C + m0 * ldc + n0, ldc, A + m0 * a_rs, a_rs, a_cs, B + n0, ldb, range.k0, range.k1, last,
                           accumulate, row_scale ? row_scale + m0 : nullptr);
    });
}

// 2^t for t <= 0: split t = n + f with n an integer and |f| <= 1/2, then 2^f by a degree-6
// polynomial (fitted for minimum relative error on [-1/2, 1/2]: 2e-9 in exact arithmetic) and 2^n
// exactly by scalef. Measured against double exp2 over [-120, 0]: at most 7.9e-8 relative error,
// about 1 ulp. (The float32 rounding of the argument t = s * log2(e)/sqrt(hs) - m adds up to
// |t| * 6e-8, 1.8e-6 at exp(-30), as it does in any float32 softmax, the NumPy reference's too.)
// Results below 2^-125 are flushed to exactly 0, so t = -inf (a masked score) gives 0: a denormal
// weight would change no sum of weights >= 1, and an FMA reading a denormal takes a microcode
// assist that made the whole kernel several times slower on diagonal tiles.
AVX512 inline __m512 exp2(__m512 t) {
    // not below -125: false for -inf, true for NaN, which then comes out NaN (bad input must show)
    const __mmask16 normal = _mm512_cmp_ps_mask(t, _mm512_set1_ps(-125.0f), _CMP_NLT_UQ);
    const __m512 n = _mm512_roundscale_ps(t, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 f = _mm512_sub_ps(t, n);
    __m512 p = _mm512_set1_ps(1.5345812e-4f);
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.3399931e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(9.6184891e-3f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(5.5503286e-2f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(2.4022646e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(6.9314718e-1f));
    p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps(normal, p, n);
}

constexpr int kTileVectors = kQueryTile / kLanes;  // one tile row of queries, in vectors

AVX512 void softmax_update(float* s, int64_t nk, float* m2, float* l, float* alpha, float c2) {
    const __m512 vc2 = _mm512_set1_ps(c2);
    __m512 mx[kTileVectors], m_new[kTileVectors], sum[kTileVectors];
    for (int v = 0; v < kTileVectors; v++) { mx[v] = _mm512_set1_ps(-INFINITY); }
    for (int64_t r = 0; r < nk; r++) {  // the tile's max per query: a vertical max over the key rows
        #pragma GCC unroll 8
        for (int v = 0; v < kTileVectors; v++) {
            mx[v] = _mm512_max_ps(mx[v], _mm512_loadu_ps(s + r * kQueryTile + v * kLanes));
        }
    }
    for (int v = 0; v < kTileVectors; v++) {
        const __m512 m_old = _mm512_loadu_ps(m2 + v * kLanes);
        m_new[v] = _mm512_max_ps(m_old, _mm512_mul_ps(mx[v], vc2));  // c2 > 0: max(s) * c2 = max(s * c2)
        _mm512_storeu_ps(alpha + v * kLanes, exp2(_mm512_sub_ps(m_old, m_new[v])));  // m_old = -inf: 0
        _mm512_storeu_ps(m2 + v * kLanes, m_new[v]);
        m_new[v] = _mm512_sub_ps(_mm512_setzero_ps(), m_new[v]);  // negated, for the FMAs below
        sum[v] = _mm512_setzero_ps();
    }
    for (int64_t r = 0; r < nk; r++) {
        #pragma GCC unroll 8
        for (int v = 0; v < kTileVectors; v++) {
            float* s_rv = s + r * kQueryTile + v * kLanes;
            const __m512 p = exp2(_mm512_fmadd_ps(_mm512_loadu_ps(s_rv), vc2, m_new[v]));
            _mm512_storeu_ps(s_rv, p);
            sum[v] = _mm512_add_ps(sum[v], p);
        }
    }
    for (int v = 0; v < kTileVectors; v++) {
        const __m512 l_old = _mm512_loadu_ps(l + v * kLanes);
        _mm512_storeu_ps(l + v * kLanes, _mm512_fmadd_ps(l_old, _mm512_loadu_ps(alpha + v * kLanes), sum[v]));
    }
}

AVX512 void exp_tile(float* s, int64_t nk, const float* lse2, float c2) {
    const __m512 vc2 = _mm512_set1_ps(c2);
    __m512 neg_lse[kTileVectors];
    for (int v = 0; v < kTileVectors; v++) {
        neg_lse[v] = _mm512_sub_ps(_mm512_setzero_ps(), _mm512_loadu_ps(lse2 + v * kLanes));
    }
    for (int64_t r = 0; r < nk; r++) {
        #pragma GCC unroll 8
        for (int v = 0; v < kTileVectors; v++) {
            float* s_rv = s + r * kQueryTile + v * kLanes;
            _mm512_storeu_ps(s_rv, exp2(_mm512_fmadd_ps(_mm512_loadu_ps(s_rv), vc2, neg_lse[v])));
        }
    }
}

AVX512 void dscores(float* ds, const float* p, int64_t nk, const float* D, float scale) {
    loops::dscores(ds, p, nk, D, scale);
}

AVX512 void scale_rows(float* x, int64_t ld, int64_t rows, int64_t cols, const float* s) {
    loops::scale_rows(x, ld, rows, cols, s);
}

AVX512 void mul(float* dst, const float* a, const float* b, int64_t n) { loops::mul(dst, a, b, n); }

// A block of up to 16 x 16 through registers: 16 row loads, 64 shuffles in three stages (32-bit,
// 64-bit, then 128-bit lanes), 16 column stores, instead of 256 scalar loads and stores. Rows and
// columns past the edge are masked off.
AVX512 void transpose_block(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows,
                            int64_t cols) {
    const __mmask16 col_mask = static_cast<__mmask16>((1u << cols) - 1u), row_mask = static_cast<__mmask16>((1u << rows) - 1u);
    __m512 r[16], t[16];
    for (int i = 0; i < 16; i++) { r[i] = i < rows ? _mm512_maskz_loadu_ps(col_mask, src + i * ld_src) : _mm512_setzero_ps(); }
    for (int i = 0; i < 16; i += 2) {  // t[i] interleaves rows i, i+1 within each 128-bit lane
        t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int g = 0; g < 16; g += 4) {  // r[g + c]: rows g..g+3 of columns c, c+4, c+8, c+12 (one per lane)
        const __m512d t0 = _mm512_castps_pd(t[g]), t1 = _mm512_castps_pd(t[g + 1]);
        const __m512d t2 = _mm512_castps_pd(t[g + 2]), t3 = _mm512_castps_pd(t[g + 3]);
        r[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(t0, t2));
        r[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(t0, t2));
        r[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(t1, t3));
        r[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(t1, t3));
    }
    for (int c = 0; c < 4; c++) {  // gather lane l of r[c], r[4 + c], r[8 + c], r[12 + c] into column c + 4l
        const __m512 lo01 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), lo23 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
        const __m512 hi01 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE), hi23 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
        const __m512 column[4] = {_mm512_shuffle_f32x4(lo01, lo23, 0x88), _mm512_shuffle_f32x4(lo01, lo23, 0xDD),
                                  _mm512_shuffle_f32x4(hi01, hi23, 0x88), _mm512_shuffle_f32x4(hi01, hi23, 0xDD)};
        for (int l = 0; l < 4; l++) {
            if (c + 4 * l < cols) { _mm512_mask_storeu_ps(dst + (c + 4 * l) * ld_dst, row_mask, column[l]); }
        }
    }
}

AVX512 void transpose(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols) {
    for (int64_t r0 = 0; r0 < rows; r0 += 16) {
        for (int64_t c0 = 0; c0 < cols; c0 += 16) {
            transpose_block(dst + c0 * ld_dst + r0, ld_dst, src + r0 * ld_src + c0, ld_src, std::min<int64_t>(16, rows - r0),
                            std::min<int64_t>(16, cols - c0));
        }
    }
}

AVX512 void dropout_tile(float* keep, int64_t nk, uint64_t seed, uint64_t threshold, float keep_scale, int64_t bh,
                         int64_t T, int64_t i0, int64_t j0) {
    loops::dropout_tile(keep, nk, seed, threshold, keep_scale, bh, T, i0, j0);
}

AVX512 void cached_row(float* out, const float* q, const float* K, const float* V, int64_t L, int64_t hs, float scale,
                       float* p) {
    loops::cached_row(out, q, K, V, L, hs, scale, p);
}

}  // namespace

const TileOps& tile_ops_avx512() {
    static const TileOps ops{"avx512", gemm, softmax_update, exp_tile, dscores, scale_rows, mul, transpose,
                             dropout_tile,
                             cached_row};
    return ops;
}

}  // namespace attention

#endif  // __x86_64__

// The AVX-512 micro-kernel of the matmul: a 14 x 32 tile of out held in 28 zmm registers.
// matmul.cpp picks it at run time when the CPU has AVX-512F; only this file's functions carry the
// target attribute, so the rest of the build stays plain x86-64 (see matmul_kernels.h for the
// packed layouts it reads).
//
// Why 14 x 32 (after BLIS's Skylake-X sgemm kernel, which holds 12 x 32):
//   - 32 columns are 2 zmm vectors of B per step and 14 rows are 14 broadcasts of A, so the tile
//     takes 14 * 2 = 28 accumulators + 2 registers for the B row = 30 of the 32 zmm registers;
//   - each step is 28 FMAs against 2 + 14 loads (each broadcast is one vbroadcastss from memory, a
//     load, shared by its row's two FMAs; in the half-width kernel it folds into the one FMA as a
//     {1to16} operand). With 2 FMA units that is 14 cycles of FMAs per step, while the loads need
//     8 cycles at 2 per cycle, so the FMA units, not the loads, set the pace;
//   - an FMA takes 4 cycles, so 2 units need at least 8 independent accumulators in flight: 28 is
//     ample.
// The half-width kernel (14 x 16, for an edge tile of at most 16 columns) does 14 FMAs (7 cycles)
// against 1 + 14 loads (7.5 cycles) per step: the loads now set the pace, but the tile still takes
// about half the time the full kernel would spend on it.
// Why KC = 384 and NC = 768, for a 48 KiB L1d and a 2 MiB L2 per core:
//   - the A panel (14 x 384 floats = 21 KiB) stays in L1 while the kernel sweeps every B panel of
//     the block, leaving more than half of L1 for the B rows streaming through;
//   - the packed B block (384 x 768 floats = 1.1 MiB) stays in L2, with the rest of L2 for the
//     tiles of out and the next B block being packed;
//   - 768 (GPT-2 small's width) and 384 divide the N and K of a GPT's products (multiples of
//     384 or 768), so their blocks come out whole.
#include <algorithm>

#include "matmul_kernels.h"
#include "matmul_pack.h"
#include "matmul_rows.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace {

constexpr int MR = 14, NR = 32, KC = 384, NC = 768;

// RS, KS: the A panel's strides (matmul_kernels.h); compile-time, so every broadcast is one FMA
// with a constant offset from one pointer. NV: vectors per row of the tile, 2 (all NR = 32 columns)
// or 1 (the first 16 only, for an edge tile of at most 16 columns: half the multiply-adds).
template <int RS, int KS, int NV>
__attribute__((target("avx512f,fma"))) void kernel(int64_t kc, const float* ap, const float* bp, float* c,
                                                   int64_t ldc, const float* bias, bool accumulate, int m, int n) {
    // start fetching the tile of out now: it is read only at the end, after kc steps
    for (int i = 0; i < m; i++) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + 16 * NV - 1), _MM_HINT_T0);
    }
    __m512 acc[MR][NV];  // (MR, 16 * NV) as NV vectors of 16 per row
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        for (int v = 0; v < NV; v++) { acc[i][v] = _mm512_setzero_ps(); }
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m512 b_k[NV];  // row k of the B panel
        for (int v = 0; v < NV; v++) { b_k[v] = _mm512_load_ps(bp + 16 * v); }
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) {
            const __m512 a_ik = _mm512_set1_ps(ap[i * RS]);
            for (int v = 0; v < NV; v++) { acc[i][v] = _mm512_fmadd_ps(a_ik, b_k[v], acc[i][v]); }
        }
        ap += KS;
        bp += NR;
    }
    // Write back the m x n corner: lanes past column n are masked off, rows past m skipped, so an
    // edge tile needs no separate code. The bias is added last, as in the NumPy reference.
    __mmask16 mask[NV];
    for (int v = 0; v < NV; v++) {
        const int lanes = std::min(std::max(n - 16 * v, 0), 16);
        mask[v] = static_cast<__mmask16>((1u << lanes) - 1);
    }
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        if (i >= m) { break; }
        float* c_i = c + i * ldc;  // (n,)
        for (int v = 0; v < NV; v++) {
            __m512 out = acc[i][v];
            if (accumulate) { out = _mm512_add_ps(_mm512_maskz_loadu_ps(mask[v], c_i + 16 * v), out); }
            if (bias != nullptr) { out = _mm512_add_ps(out, _mm512_maskz_loadu_ps(mask[v], bias + 16 * v)); }
            _mm512_mask_storeu_ps(c_i + 16 * v, mask[v], out);
        }
    }
}

// The small-M loops (matmul_rows.h) in 16-float vectors. nt keeps 4 x 4 = 16 accumulators, plus 4 rows
// of b and one of a, in the 32 zmm registers.
typedef float Vec16 __attribute__((vector_size(64)));
constexpr int RM = 4;

__attribute__((target("avx512f,fma"))) void rows_nn(float* out, const float* a, int64_t lda, const float* b, int64_t M,
                                              int64_t N, int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nn<Vec16>(out, a, lda, b, M, N, K, n0, n1);
}

__attribute__((target("avx512f,fma"))) void rows_nt(float* out, const float* a, int64_t lda, const float* b, int64_t M,
                                              int64_t N, int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nt<Vec16, RM>(out, a, lda, b, M, N, K, n0, n1);
}

// The packing loops (matmul_pack.h); the transposing one moves 16 x 16 blocks of Vec16 rows.
__attribute__((target("avx512f,fma"))) void pack_a(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    matmul_pack::pack_a<MR, KC>(ap, src, ld, kc, m);
}

__attribute__((target("avx512f,fma"))) void pack_a_transposed(float* ap, const float* src, int64_t ld, int64_t kc,
                                                              int m) {
    matmul_pack::pack_a_transposed<MR>(ap, src, ld, kc, m);
}

__attribute__((target("avx512f,fma"))) void pack_b(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    matmul_pack::pack_b<NR>(bp, src, ld, kc, n);
}

__attribute__((target("avx512f,fma"))) void pack_b_transposed(float* bp, const float* src, int64_t ld, int64_t kc,
                                                              int n) {
    matmul_pack::pack_b_transposed<Vec16, NR>(bp, src, ld, kc, n);
}

}  // namespace

const MatmulPath& matmul_path_avx512() {
    static const MatmulPath path = {"avx512", MR, NR, KC, NC,
                                    kernel<KC, 1, 2>, kernel<1, MR, 2>, kernel<KC, 1, 1>, kernel<1, MR, 1>,
                                    pack_a, pack_a_transposed, pack_b, pack_b_transposed, rows_nn, rows_nt};
    return path;
}

#endif  // __x86_64__ && __GNUC__

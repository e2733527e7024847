// The AVX-512 micro-kernel of the matmul: a 14 x 32 tile of out held in 28 zmm registers.
// matmul.cpp picks it at run time when the CPU has AVX-512F; only this file's functions carry the
// target attribute, so the rest of the build stays plain x86-64 (see matmul_kernels.h for the
// packed layouts it reads).
//
// Why 14 x 32 (after BLIS's Skylake-X sgemm kernel, which holds 12 x 32):
//   - 32 columns are 2 zmm vectors of B per step and 14 rows are 14 broadcasts of A, so the tile
//     takes 14 * 2 = 28 accumulators + 2 registers for the B row = 30 of the 32 zmm registers;
//   - each step is 28 FMAs against 2 + 14 loads (the broadcasts fold into the FMAs as {1to16}
//     memory operands). With 2 FMA units that is 14 cycles of FMAs per step, while the loads need
//     8 cycles at 2 per cycle, so the FMA units, not the loads, set the pace;
//   - an FMA takes 4 cycles, so 2 units need at least 8 independent accumulators in flight: 28 is
//     ample.
// Why KC = 384 and NC = 768, for a 48 KiB L1d and a 2 MiB L2 per core:
//   - the A panel (14 x 384 floats = 21 KiB) stays in L1 while the kernel sweeps every B panel of
//     the block, leaving more than half of L1 for the B rows streaming through;
//   - the packed B block (384 x 768 floats = 1.1 MiB) stays in L2, with the rest of L2 for the
//     tiles of out and the next B block being packed;
//   - 768 (GPT-2 small's width) and 384 divide the N and K of a GPT's products (multiples of
//     384 or 768), so their blocks come out whole.
#include "matmul_kernels.h"
#include "matmul_rows.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace {

constexpr int MR = 14, NR = 32, KC = 384, NC = 768;

// RS, KS: the A panel's strides (matmul_kernels.h); compile-time, so every broadcast is one FMA
// with a constant offset from one pointer.
template <int RS, int KS>
__attribute__((target("avx512f,fma"))) void kernel(int64_t kc, const float* ap, const float* bp, float* c,
                                                   int64_t ldc, const float* bias, bool accumulate, int m, int n) {
    // start fetching the tile of out now: it is read only at the end, after kc steps
    for (int i = 0; i < m; i++) {
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
        _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc + NR - 1), _MM_HINT_T0);
    }
    __m512 acc[MR][2];  // (MR, NR) as 2 vectors of 16 per row
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        acc[i][0] = _mm512_setzero_ps();
        acc[i][1] = _mm512_setzero_ps();
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(bp), b1 = _mm512_load_ps(bp + 16);  // row k of the B panel
#pragma GCC unroll 14
        for (int i = 0; i < MR; i++) {
            const __m512 a_ik = _mm512_set1_ps(ap[i * RS]);
            acc[i][0] = _mm512_fmadd_ps(a_ik, b0, acc[i][0]);
            acc[i][1] = _mm512_fmadd_ps(a_ik, b1, acc[i][1]);
        }
        ap += KS;
        bp += NR;
    }
    // Write back the m x n corner: lanes past column n are masked off, rows past m skipped, so an
    // edge tile needs no separate code. The bias is added last, as in the NumPy reference.
    const __mmask16 mask0 = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
    const __mmask16 mask1 = n >= 32 ? 0xFFFF : n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
#pragma GCC unroll 14
    for (int i = 0; i < MR; i++) {
        if (i >= m) { break; }
        float* c_i = c + i * ldc;  // (n,)
        __m512 v0 = acc[i][0], v1 = acc[i][1];
        if (accumulate) {
            v0 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask0, c_i), v0);
            v1 = _mm512_add_ps(_mm512_maskz_loadu_ps(mask1, c_i + 16), v1);
        }
        if (bias != nullptr) {
            v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(mask0, bias));
            v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(mask1, bias + 16));
        }
        _mm512_mask_storeu_ps(c_i, mask0, v0);
        _mm512_mask_storeu_ps(c_i + 16, mask1, v1);
    }
}

// The small-M loops (matmul_rows.h) in 16-float vectors. nt keeps 4 x 4 = 16 accumulators, plus 4 rows
// of b and one of a, in the 32 zmm registers.
typedef float Vec16 __attribute__((vector_size(64)));
constexpr int RM = 4;

__attribute__((target("avx512f,fma"))) void rows_nn(float* out, const float* a, const float* b, int64_t M, int64_t N,
                                              int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nn<Vec16>(out, a, b, M, N, K, n0, n1);
}

__attribute__((target("avx512f,fma"))) void rows_nt(float* out, const float* a, const float* b, int64_t M, int64_t N,
                                              int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nt<Vec16, RM>(out, a, b, M, N, K, n0, n1);
}

}  // namespace

const MatmulPath& matmul_path_avx512() {
    static const MatmulPath path = {"avx512", MR, NR, KC, NC, kernel<KC, 1>, kernel<1, MR>,
                                   rows_nn, rows_nt};
    return path;
}

#endif  // __x86_64__ && __GNUC__

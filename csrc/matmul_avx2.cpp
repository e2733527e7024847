// The AVX2 + FMA micro-kernel of the matmul: a 6 x 16 tile of out held in 12 ymm registers, for
// x86-64 CPUs without AVX-512 (or with MINIGPT_SIMD=avx2). Only this file's kernel carries the
// target attribute; matmul_kernels.h describes the packed layouts it reads.
//
// Why 6 x 16 (BLIS's Haswell sgemm tile): 16 columns are 2 ymm vectors of B per step and 6 rows
// are 6 broadcasts of A, so the tile takes 12 accumulators + 2 for the B row + 1 broadcast = 15
// of the 16 ymm registers. Each step is 12 FMAs (6 cycles on 2 FMA units) against 2 + 6 loads
// (4 cycles), and 12 accumulators cover the 2 units x 4 cycles of FMA latency.
// Why KC = 384 and NC = 768: the same budget as the AVX-512 path (L1d 48 KiB, L2 2 MiB here):
// the A panel (6 x 384 floats = 9 KiB) stays in L1, the packed B block (384 x 768 floats =
// 1.1 MiB) in L2.
#include "matmul_kernels.h"
#include "matmul_pack.h"
#include "matmul_rows.h"

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

namespace {

constexpr int MR = 6, NR = 16, KC = 384, NC = 768;

// 8 floats from p; MASKED: only the lanes that mask turns on (the others read as 0 and touch no memory)
template <bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline __m256 load(const float* p, __m256i mask) {
    return MASKED ? _mm256_maskload_ps(p, mask) : _mm256_loadu_ps(p);
}

// out_tile (rows < m) = [out_tile +] acc [+ bias]. MASKED: through the lane masks (an edge tile);
// else with plain loads and stores (a tile as wide as the kernel).
template <int NV, bool MASKED>
__attribute__((target("avx2,fma"), always_inline)) inline void write_back(__m256 (&acc)[MR][NV], float* c, int64_t ldc,
                                                                         const float* bias, bool accumulate, int m,
                                                                         const __m256i (&mask)[NV]) {
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        if (i >= m) { break; }
        float* c_i = c + i * ldc;  // (n,)
        for (int v = 0; v < NV; v++) {
            __m256 out = acc[i][v];
            if (accumulate) { out = _mm256_add_ps(load<MASKED>(c_i + 8 * v, mask[v]), out); }
            if (bias != nullptr) { out = _mm256_add_ps(out, load<MASKED>(bias + 8 * v, mask[v])); }
            if constexpr (MASKED) {
                _mm256_maskstore_ps(c_i + 8 * v, mask[v], out);
            } else {
                _mm256_storeu_ps(c_i + 8 * v, out);
            }
        }
    }
}

// NV: vectors per row of the tile, 2 (all NR = 16 columns) or 1 (the first 8 only, for an edge tile
// of at most 8 columns: half the multiply-adds).
template <int RS, int KS, int NV>
__attribute__((target("avx2,fma"))) void kernel(int64_t kc, const float* ap, const float* bp, float* c,
                                                int64_t ldc, const float* bias, bool accumulate, int m, int n) {
    __m256 acc[MR][NV];  // (MR, 8 * NV) as NV vectors of 8 per row
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        for (int v = 0; v < NV; v++) { acc[i][v] = _mm256_setzero_ps(); }
    }
#pragma GCC unroll 4
    for (int64_t k = 0; k < kc; k++) {
        __m256 b_k[NV];  // row k of the B panel
        for (int v = 0; v < NV; v++) { b_k[v] = _mm256_load_ps(bp + 8 * v); }
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 a_ik = _mm256_broadcast_ss(ap + i * RS);
            for (int v = 0; v < NV; v++) { acc[i][v] = _mm256_fmadd_ps(a_ik, b_k[v], acc[i][v]); }
        }
        ap += KS;
        bp += NR;
    }
    // Write back the m x n corner, rows past m skipped. A tile as wide as the kernel (all but the
    // last of a row of tiles) takes plain loads and stores; only an edge tile goes through lane masks
    // (lane j of vector v is on iff 8 v + j < n). AMD's cores run a masked store (vmaskmovps) as a
    // microcoded sequence many times slower than a plain one: on a Zen 3 VM, masking every tile cost
    // the whole matmul 15% (geometric mean of 18 shapes and transposes, 1 and 2 threads).
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i mask[NV];
    for (int v = 0; v < NV; v++) { mask[v] = _mm256_cmpgt_epi32(_mm256_set1_epi32(n - 8 * v), lane); }
    if (n == 8 * NV) {
        write_back<NV, false>(acc, c, ldc, bias, accumulate, m, mask);
    } else {
        write_back<NV, true>(acc, c, ldc, bias, accumulate, m, mask);
    }
}

// The small-M loops (matmul_rows.h) in 8-float vectors. nt keeps 2 x 4 = 8 accumulators, plus 4 rows
// of b and one of a, in the 16 ymm registers.
typedef float Vec8 __attribute__((vector_size(32)));
constexpr int RM = 2;

__attribute__((target("avx2,fma"))) void rows_nn(float* out, const float* a, int64_t lda, const float* b, int64_t M,
                                              int64_t N, int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nn<Vec8>(out, a, lda, b, M, N, K, n0, n1);
}

__attribute__((target("avx2,fma"))) void rows_nt(float* out, const float* a, int64_t lda, const float* b, int64_t M,
                                              int64_t N, int64_t K, int64_t n0, int64_t n1) {
    matmul_rows::nt<Vec8, RM>(out, a, lda, b, M, N, K, n0, n1);
}

// The packing loops (matmul_pack.h); the transposing one moves 8 x 8 blocks of Vec8 rows.
__attribute__((target("avx2,fma"))) void pack_a(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    matmul_pack::pack_a<MR, KC>(ap, src, ld, kc, m);
}

__attribute__((target("avx2,fma"))) void pack_a_transposed(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    matmul_pack::pack_a_transposed<MR>(ap, src, ld, kc, m);
}

__attribute__((target("avx2,fma"))) void pack_b(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    matmul_pack::pack_b<NR>(bp, src, ld, kc, n);
}

__attribute__((target("avx2,fma"))) void pack_b_transposed(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    matmul_pack::pack_b_transposed<Vec8, NR>(bp, src, ld, kc, n);
}

}  // namespace

const MatmulPath& matmul_path_avx2() {
    static const MatmulPath path = {"avx2", MR, NR, KC, NC,
                                    kernel<KC, 1, 2>, kernel<1, MR, 2>, kernel<KC, 1, 1>, kernel<1, MR, 1>,
                                    pack_a, pack_a_transposed, pack_b, pack_b_transposed, rows_nn, rows_nt};
    return path;
}

#endif  // __x86_64__ && __GNUC__

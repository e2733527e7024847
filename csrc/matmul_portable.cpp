// The portable micro-kernel of the matmul: plain C++ for whatever baseline the compiler targets
// (SSE2 on any x86-64, NEON on ARM64). It runs where neither AVX path can (or with
// MINIGPT_SIMD=portable), and it is the micro-kernel to read first: the AVX files do the same,
// with the registers spelled out.
//
// Why 6 x 8: with 4-float vectors (SSE, NEON) the tile is 12 accumulators, plus 2 for the row of
// the B panel and 1 broadcast, 15 of SSE's 16 registers (NEON has 32). KC = 256 keeps the A panel
// (6 KiB) in any L1; NC = 512 keeps the packed B block (512 KiB) in a typical L2.
#include <cstring>

#include "matmul_kernels.h"
#include "matmul_pack.h"
#include "matmul_rows.h"

namespace {

constexpr int MR = 6, NR = 8, KC = 256, NC = 512;

// tile[:, :COLS] = A panel @ B panel[:, :COLS]: kc steps, each adding one column of the A panel
// times one row of the B panel (MR x COLS multiply-adds). COLS is NR, or NR / 2 for an edge tile of
// at most NR / 2 columns (half the multiply-adds).
#if defined(__GNUC__)
// GCC and Clang's vector extension: 4 floats kept in one SIMD register and operated on lane by
// lane (on a target without SIMD, 4 scalars). Written with plain float arrays, as in the #else
// branch, the same loop gets vectorised along k instead, transposing the A panel on the fly,
// about 4x slower.
//
// Every vector is moved one at a time, and the broadcast is spelled {a, a, a, a}, so that the 12
// accumulators, 2 B vectors, the broadcast and one product fill SSE's 16 registers and nothing else:
// written `vec4{} + a` (an add, and a register kept at zero) and with whole-array memcpy, GCC 12 kept
// one accumulator on the stack and stored all 12 back to it every k step, 4-7x slower (5-9 against
// 35-38 GFLOP/s on one AVX-512 core with MINIGPT_SIMD=portable).
typedef float vec4 __attribute__((vector_size(16)));

template <int RS, int KS, int COLS>
void multiply_panels(int64_t kc, const float* ap, const float* bp, float tile[MR][NR]) {
    constexpr int NV = COLS / 4;  // vectors per row of the tile
    vec4 acc[MR][NV] = {};
    for (int64_t k = 0; k < kc; k++) {
        vec4 b_k[NV];  // row k of the B panel
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) { std::memcpy(&b_k[j], bp + 4 * j, sizeof(vec4)); }
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const float a = ap[i * RS];
            const vec4 a_ik = {a, a, a, a};  // broadcast to all 4 lanes
#pragma GCC unroll 2
            for (int j = 0; j < NV; j++) { acc[i][j] += a_ik * b_k[j]; }
        }
        ap += KS;
        bp += NR;
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 2
        for (int j = 0; j < NV; j++) { std::memcpy(&tile[i][4 * j], &acc[i][j], sizeof(vec4)); }
    }
}
#else
template <int RS, int KS, int COLS>
void multiply_panels(int64_t kc, const float* ap, const float* bp, float tile[MR][NR]) {
    std::memset(tile, 0, sizeof(float) * MR * NR);
    for (int64_t k = 0; k < kc; k++) {
        for (int i = 0; i < MR; i++) {
            for (int j = 0; j < COLS; j++) { tile[i][j] += ap[i * RS] * bp[j]; }  // bp: row k of the B panel
        }
        ap += KS;
        bp += NR;
    }
}
#endif

template <int RS, int KS, int COLS>
void kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, const float* bias,
            bool accumulate, int m, int n) {
    float tile[MR][NR];
    multiply_panels<RS, KS, COLS>(kc, ap, bp, tile);
    // write back only the m x n corner that lies inside out (n <= COLS); the bias is added last
    for (int i = 0; i < m; i++) {
        float* c_i = c + i * ldc;  // (n,)
        for (int j = 0; j < n; j++) {
            const float v = accumulate ? c_i[j] + tile[i][j] : tile[i][j];
            c_i[j] = (bias != nullptr) ? v + bias[j] : v;
        }
    }
}

// The small-M loops (matmul_rows.h) in 4-float vectors (SSE, NEON). nt keeps 2 x 4 = 8 accumulators,
// plus 4 rows of b and one of a: 13 of SSE's 16 registers.
typedef float Vec4 __attribute__((vector_size(16)));

void rows_nn(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N, int64_t K,
             int64_t n0, int64_t n1) {
    matmul_rows::nn<Vec4>(out, a, lda, b, M, N, K, n0, n1);
}

void rows_nt(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N, int64_t K,
             int64_t n0, int64_t n1) {
    matmul_rows::nt<Vec4, 2>(out, a, lda, b, M, N, K, n0, n1);
}

// The packing loops (matmul_pack.h); the transposing one moves 4 x 4 blocks of Vec4 rows.
void pack_a(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    matmul_pack::pack_a<MR, KC>(ap, src, ld, kc, m);
}

void pack_a_transposed(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    matmul_pack::pack_a_transposed<MR>(ap, src, ld, kc, m);
}

void pack_b(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    matmul_pack::pack_b<NR>(bp, src, ld, kc, n);
}

void pack_b_transposed(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    matmul_pack::pack_b_transposed<Vec4, NR>(bp, src, ld, kc, n);
}

}  // namespace

const MatmulPath& matmul_path_portable() {
    static const MatmulPath path = {"portable", MR, NR, KC, NC,
                                    kernel<KC, 1, NR>, kernel<1, MR, NR>, kernel<KC, 1, NR / 2>, kernel<1, MR, NR / 2>,
                                    pack_a, pack_a_transposed, pack_b, pack_b_transposed, rows_nn, rows_nt};
    return path;
}

// The portable micro-kernel of the matmul: plain C++ that the compiler vectorises for whatever
// baseline it targets (SSE2 on any x86-64, NEON on ARM64). It runs where neither AVX path can
// (or with MINIGPT_SIMD=portable), and it is the micro-kernel to read first: the AVX files do
// exactly this, with the registers spelled out.
//
// Why 4 x 8: the 32 accumulators are 8 SSE registers (of 16) or 8 NEON registers (of 32), so the
// tile stays in registers on either. KC = 256 keeps the A panel (4 KiB) and a B panel (8 KiB) in
// any L1; NC = 512 keeps the packed B block (512 KiB) in a typical L2.
#include "matmul_kernels.h"

namespace {

constexpr int MR = 4, NR = 8, KC = 256, NC = 512;

template <int RS, int KS>
void kernel(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc, const float* bias,
            bool accumulate, int m, int n) {
    float acc[MR][NR] = {};  // the tile of out, accumulated over kc steps
    for (int64_t k = 0; k < kc; k++) {
#pragma GCC unroll 4
        for (int i = 0; i < MR; i++) {
            const float a_ik = ap[i * RS];
#pragma GCC unroll 8
            for (int j = 0; j < NR; j++) { acc[i][j] += a_ik * bp[j]; }  // row k of the B panel
        }
        ap += KS;
        bp += NR;
    }
    // write back only the m x n corner that lies inside out; the bias is added last
    for (int i = 0; i < m; i++) {
        float* c_i = c + i * ldc;  // (n,)
        for (int j = 0; j < n; j++) {
            const float v = accumulate ? c_i[j] + acc[i][j] : acc[i][j];
            c_i[j] = (bias != nullptr) ? v + bias[j] : v;
        }
    }
}

}  // namespace

const MatmulPath& matmul_path_portable() {
    static const MatmulPath path = {"portable", MR, NR, KC, NC, kernel<KC, 1>, kernel<1, MR>};
    return path;
}

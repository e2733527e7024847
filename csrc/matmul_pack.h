// The matmul's packing loops: they copy a piece of a or b into the panel order that the micro-kernel
// reads (matmul_kernels.h has the layouts). matmul.cpp decides what to pack and when; these loops do
// the copying, one text for every SIMD path: each matmul_<isa>.cpp includes this file and
// instantiates the loops inside its own target attribute with its own vector type (GCC's vector
// extension: 16, 8 or 4 floats), as it does matmul_rows.h.
//
// Four loops, one per way an operand can be stored. Three are copies of contiguous pieces:
//   pack_a             a (M, K):  row i of the panel is kc consecutive floats of a row of a;
//   pack_a_transposed  a (K, M):  column k of the panel is MR consecutive floats of row k of a;
//   pack_b             b (K, N):  row k of the panel is NR consecutive floats of row k of b.
// MR and NR are compile-time constants here, so each short copy is a few vector moves rather than a
// call to memcpy or a loop over a run-time length.
// The fourth, pack_b_transposed (b (N, K), for dout @ w^T), is a transpose: column j of the panel is
// a row of b. Done one float at a time, each store lands NR floats from the last, and packing a
// 384 x 384 b took 8x as long as copying one (141 us against 17 us, AVX-512, one thread). So it moves
// W x W blocks (W = the vector width): W loads of W floats, a transpose in registers, W stores: 29 us.
//
// The transpose in registers (the recursive block transpose, unrolled): cut a W x W block into four
// W/2 x W/2 blocks; transposing it is swapping the two off-diagonal blocks, then transposing each of
// the four, and so on down to single floats. So there are log2(W) rounds: round h (W/2, ..., 2, 1)
// swaps the off-diagonal h x h blocks inside every 2h x 2h block on the diagonal. For rows, round h
// pairs row i with row i + h (bit h of i clear): row i keeps its columns j with bit h clear and takes
// column j - h of row i + h for the others; row i + h keeps its columns with bit h set and takes
// column j + h of row i for the others. Each new row is one shuffle of two vectors, so a 16 x 16 block
// takes 64 shuffles, a quarter of an instruction per float.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <utility>

#define MATMUL_PACK_INLINE static inline __attribute__((always_inline))

namespace matmul_pack {

// rows i <- x and i + h <- y of round h (see above): both new rows in one go, as two two-vector shuffles
template <typename Vec, int H, int... J>
MATMUL_PACK_INLINE void swap_off_diagonal(Vec& x, Vec& y, std::integer_sequence<int, J...>) {
    constexpr int W = sizeof(Vec) / sizeof(float);
    // Lane j of a shuffle's result is the lane of x (index < W) or y (index - W) that index j names.
    // Clang spells it __builtin_shufflevector with the indices as constants, GCC __builtin_shuffle with
    // a vector of them; with constant indices both compile to one or two permute instructions.
#if defined(__clang__)
    const Vec row_i = __builtin_shufflevector(x, y, ((J & H) ? W + J - H : J)...);
    const Vec row_i_h = __builtin_shufflevector(x, y, ((J & H) ? W + J : J + H)...);
#else
    typedef int32_t Index __attribute__((vector_size(sizeof(Vec))));
    const Vec row_i = __builtin_shuffle(x, y, Index{((J & H) ? W + J - H : J)...});
    const Vec row_i_h = __builtin_shuffle(x, y, Index{((J & H) ? W + J : J + H)...});
#endif
    x = row_i;
    y = row_i_h;
}

// r: W rows of W floats, transposed in place
template <typename Vec, int H = sizeof(Vec) / sizeof(float) / 2>
MATMUL_PACK_INLINE void transpose(Vec* r) {
    constexpr int W = sizeof(Vec) / sizeof(float);
    for (int i = 0; i < W; i++) {
        if ((i & H) == 0) { swap_off_diagonal<Vec, H>(r[i], r[i + H], std::make_integer_sequence<int, W>()); }
    }
    if constexpr (H > 1) { transpose<Vec, H / 2>(r); }
}

// Every loop packs one panel of kc steps from `src`, the panel's first float in a or b, whose rows
// are `ld` floats apart; `edge` (m or n) is how many rows of A or columns of B lie inside the
// operand: the rest of the panel is zero.

// A_ROWS (row stride KC) from a (M, K)
template <int MR, int KC>
MATMUL_PACK_INLINE void pack_a(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    for (int i = 0; i < MR; i++) {
        if (i < m) {
            std::memcpy(ap + i * KC, src + i * ld, kc * sizeof(float));
        } else {
            std::fill_n(ap + i * KC, kc, 0.0f);
        }
    }
}

// kc runs of R floats, run k from row k of the operand, the floats past `edge` zero: A_COLS from
// a (K, M) (R = MR, a run per row of a) and the B panel from b (K, N) (R = NR, a run per row of b)
template <int R>
MATMUL_PACK_INLINE void pack_runs(float* panel, const float* src, int64_t ld, int64_t kc, int edge) {
    for (int64_t k = 0; k < kc; k++) {
        if (edge == R) {
            std::memcpy(panel + k * R, src + k * ld, R * sizeof(float));
        } else {
            for (int j = 0; j < R; j++) { panel[k * R + j] = j < edge ? src[k * ld + j] : 0.0f; }
        }
    }
}

template <int MR>
MATMUL_PACK_INLINE void pack_a_transposed(float* ap, const float* src, int64_t ld, int64_t kc, int m) {
    pack_runs<MR>(ap, src, ld, kc, m);
}

template <int NR>
MATMUL_PACK_INLINE void pack_b(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    pack_runs<NR>(bp, src, ld, kc, n);
}

// B panel (NR = 2W columns) from b (N, K): the panel's columns j0 .. j0+W are rows j0 .. j0+W of b,
// moved W x W at a time
template <typename Vec, int NR>
MATMUL_PACK_INLINE void pack_b_transposed(float* bp, const float* src, int64_t ld, int64_t kc, int n) {
    constexpr int W = sizeof(Vec) / sizeof(float);
    static_assert(NR == 2 * W, "a B panel is two vectors wide");
    for (int j0 = 0; j0 < NR; j0 += W) {
        const int rows = std::clamp(n - j0, 0, W);  // rows of b behind these W columns of the panel
        int64_t k = 0;
        if (rows == W) {
            for (; k + W <= kc; k += W) {
                Vec r[W];  // (W, W): rows j0 .. j0+W of b, columns k .. k+W
                for (int i = 0; i < W; i++) { std::memcpy(&r[i], src + (j0 + i) * ld + k, sizeof(Vec)); }
                transpose(r);  // now rows k .. k+W of the panel, columns j0 .. j0+W
                for (int i = 0; i < W; i++) { std::memcpy(bp + (k + i) * NR + j0, &r[i], sizeof(Vec)); }
            }
        }
        // the last kc % W steps, and the columns at the edge of b (fewer than W rows of b, or none)
        for (; k < kc; k++) {
            for (int i = 0; i < W; i++) { bp[k * NR + j0 + i] = i < rows ? src[(j0 + i) * ld + k] : 0.0f; }
        }
    }
}

}  // namespace matmul_pack

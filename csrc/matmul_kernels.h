// The contract between matmul.cpp (packing, cache blocking, threads) and the register-tiled
// micro-kernels, one per instruction set: matmul_avx512.cpp, matmul_avx2.cpp, matmul_portable.cpp.
// Internal to the matmul; nothing outside csrc/matmul*.cpp includes it. The same files also carry
// the packing loops (matmul_pack.h) and the loops of the small-M path (matmul_rows.h), which needs
// no packing and no micro-kernel.
//
// A micro-kernel computes one MR x NR tile of out from a packed panel of A (MR rows, kc columns)
// and a packed panel of B (kc rows, NR columns), keeping the whole tile in registers for all kc
// steps. Per step k it loads one row of the B panel (NR floats, NR / vector-width vectors),
// broadcasts each of the MR values of column k of the A panel, and does MR x NR multiply-adds.
//
// Each path also has a half-width kernel, which computes only the first NR / 2 columns of the tile
// (same steps, same order, so those columns come out the same): matmul.cpp gives it the edge tiles
// of at most NR / 2 columns, whose other half would be zero padding.
//
// Packed layouts (matmul_pack.h writes them, the kernels read them):
//   B panel: kc rows of NR floats, row k at bp + k * NR, 64-byte aligned; columns past the edge
//            of B are zero.
//   A panel: element (i, k) at ap + i * rs + k * ks, in one of two layouts, whichever makes
//            packing a plain copy of contiguous memory for how A is stored:
//              A_ROWS  (rs = KC, ks = 1):  row i of the panel is row i of op(a), as stored when
//                                          a is (M, K);
//              A_COLS  (rs = 1, ks = MR):  column k of the panel is MR consecutive floats, as
//                                          stored when a is (K, M) (trans_a).
//            Rows past the edge of A are zero.
// Zero padding keeps every edge tile on the fast path, and zeros (not stale data that might be
// denormal, which is slow to multiply) are all the padded lanes ever see. The kernel then writes
// only the m x n corner of the tile that lies inside out.
#pragma once

#include <cstdint>

// out_tile (m x n, row stride ldc) = [out_tile +] A_panel @ B_panel [+ bias]
//   accumulate: add to what out_tile holds (every kc block but the first) or overwrite it;
//   bias: (n,) added after the product, or nullptr (only the last kc block passes it).
using MatmulMicroKernel = void (*)(int64_t kc, const float* ap, const float* bp, float* c, int64_t ldc,
                                   const float* bias, bool accumulate, int m, int n);

// The small-M path (matmul_rows.h): out[:, n0:n1] = a @ op(b)[:, n0:n1] for an (M, K) a whose rows are lda
// floats apart; b is (K, N) for rows_nn, (N, K) for rows_nt. n0 and n1 must be multiples of 64 (or n1 = N)
// for rows_nn, multiples of 4 (or n1 = N) for rows_nt.
using MatmulRowsKernel = void (*)(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N,
                                  int64_t K, int64_t n0, int64_t n1);

// Packs one panel (matmul_pack.h) of kc steps from src, the panel's first float in a or b, whose
// rows are ld floats apart; edge (m or n) rows of A or columns of B lie inside the operand, the rest
// of the panel is zero.
using MatmulPack = void (*)(float* panel, const float* src, int64_t ld, int64_t kc, int edge);

// One SIMD path: its register tile, its cache blocks, its kernels (one per A layout, in two widths),
// its four packing loops (one per way a and b can be stored) and its two small-M loops (one per B
// layout).
struct MatmulPath {
    const char* name;  // "avx512", "avx2" or "portable", as info()["simd"] reports it
    int MR, NR;        // register tile: MR rows of A broadcast against NR columns of B
    int KC;            // most kc steps per block; also the row stride of an A_ROWS panel
    int NC;            // most columns of B packed at once (a multiple of NR)
    MatmulMicroKernel kernel_a_rows;       // A panel in the A_ROWS layout
    MatmulMicroKernel kernel_a_cols;       // A panel in the A_COLS layout
    MatmulMicroKernel kernel_a_rows_half;  // the same two for a tile of at most NR / 2 columns
    MatmulMicroKernel kernel_a_cols_half;
    MatmulPack pack_a;                     // A_ROWS panel from a (M, K)
    MatmulPack pack_a_transposed;          // A_COLS panel from a (K, M)
    MatmulPack pack_b;                     // B panel from b (K, N)
    MatmulPack pack_b_transposed;          // B panel from b (N, K)
    MatmulRowsKernel rows_nn;              // small M, b (K, N)
    MatmulRowsKernel rows_nt;              // small M, b (N, K)
};

// Each returns its path's description; the x86 ones exist only in x86-64 builds.
const MatmulPath& matmul_path_portable();
#if defined(__x86_64__) && defined(__GNUC__)
const MatmulPath& matmul_path_avx2();
const MatmulPath& matmul_path_avx512();
#endif

// The matmul's small-M path: products with only a few rows of op(a), such as the one new token of a
// generation step (M = 1), done straight from the operands, with no packing.
//
// Why a second path: the packed path copies all of op(b) into panels before it multiplies, and its
// micro-kernel computes MR rows at a time. With M = 1 that is a full read and write of the weights
// (for GPT-2's tied head, 154 MB) to do one multiply-add per weight, and 13 of the kernel's 14 rows
// are zero padding. Here every float of b is read from memory once, in the order it is stored, and
// used by all M rows at once while it sits in registers. The work is one multiply-add per float of
// b per row, so for M = 1 the speed is the memory bandwidth, which is as fast as it can be.
//
// Two shapes of loop, one per layout of b (op(a) arrives as an (M, K) array with rows lda floats apart;
// matmul.cpp makes a copy when trans_a, and when its rows would be 4 KiB apart):
//   nn  b is (K, N) (x @ w):    walk b eight rows at a time, each row a contiguous stream, and add
//                               a[m, k] * b[k, :] into out[m, :], which stays in L1 meanwhile;
//   nt  b is (N, K) (x @ w^T):  each out[m, n] is the dot product of two contiguous rows, a[m, :]
//                               and b[n, :]; four rows of b at a time, each used by RM rows of a.
// Both compute each element of out in one fixed order (k ascending, lanes summed in one order),
// whichever columns a thread is given, so the result does not depend on the thread count.
//
// Each matmul_<isa>.cpp includes this file and instantiates the loops inside its own target
// attribute with its own vector type (GCC's vector extension: 16, 8 or 4 floats), so one text
// compiles to AVX-512, AVX2 or baseline code. The helpers are always inlined and static, so no copy
// compiled for one instruction set is used by another.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#define MATMUL_ROWS_INLINE static inline __attribute__((always_inline))

namespace matmul_rows {

// out (M, N) row stride N; only the columns [n0, n1) are written. n0 must be a multiple of the
// vector width; so must n1 unless it is N (the last columns, past the last whole vector, are done
// one float at a time). PAIRS: see nn below.
template <typename Vec, bool PAIRS>
MATMUL_ROWS_INLINE void nn_loops(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N,
                                 int64_t K, int64_t n0, int64_t n1) {
    constexpr int64_t W = sizeof(Vec) / sizeof(float);
    constexpr int64_t R = 8;  // rows of b per pass over out
    // Columns per block: out[:, block] is 8 KiB up to M = 4 and 16 KiB from M = 8 on (512 columns, then
    // fewer), so it stays in L1 while the rows of b stream past it. Longer pieces of each row are easier
    // for the hardware prefetchers to follow: 8 rows of 2,048 columns at M = 1, against 4 rows of 512
    // before, read GPT-2's weights 1.2-1.5x faster (AMD EPYC, one and two threads, weights out of
    // cache). Same sums, same bits.
    const int64_t columns = std::max<int64_t>(2048 / M, std::min<int64_t>(512, 4096 / M));
    const int64_t NB = std::max<int64_t>(W, columns / W * W);
    // The block of out is summed in a buffer whose rows are NB + 16 floats apart, then copied to out.
    // In out itself the rows are N floats apart, and where that is a multiple of 4 KiB (GPT-2's N =
    // 3,072: 12 KiB) the same column of every row falls in one set of the L1 cache, which holds 8
    // lines a set: M rows of out and the 8 rows of b being read evict one another. N = 3,072, M = 8 ran
    // at half the speed of N = 3,056. The buffer's rows start 64 bytes further into the cache each.
    const int64_t ld = NB + 16;
    static thread_local std::vector<float> buffer;
    if (static_cast<int64_t>(buffer.size()) < M * ld) { buffer.resize(M * ld); }
    float* t = buffer.data();
    for (int64_t j0 = n0; j0 < n1; j0 += NB) {
        const int64_t j1 = std::min(j0 + NB, n1), nb = j1 - j0;
        const int64_t jv = nb / W * W;  // [0, jv) of the block in whole vectors, [jv, nb) one by one
        for (int64_t m = 0; m < M; m++) { std::fill(t + m * ld, t + m * ld + nb, 0.0f); }
        const float* bj = b + j0;  // the block's columns of b
        int64_t k = 0;
        // R rows of b per pass over out: R streams for the prefetchers, 1/R of the loads and stores of out
        for (; k + R <= K; k += R) {
            const float* b0 = bj + k * N;  // (R, nb): rows k .. k+R-1
            int64_t j = 0;
            if constexpr (PAIRS) {  // two vectors of columns at a time: two chains per row of a
                for (; j + 2 * W <= jv; j += 2 * W) {
                    for (int64_t m = 0; m < M; m++) {
                        const float* a_m = a + m * lda + k;  // (R,)
                        Vec o0, o1;
                        std::memcpy(&o0, t + m * ld + j, sizeof(Vec));
                        std::memcpy(&o1, t + m * ld + j + W, sizeof(Vec));
                        for (int64_t r = 0; r < R; r++) {  // k ascending, as below
                            Vec v0, v1;
                            std::memcpy(&v0, b0 + r * N + j, sizeof(Vec));
                            std::memcpy(&v1, b0 + r * N + j + W, sizeof(Vec));
                            o0 += a_m[r] * v0;
                            o1 += a_m[r] * v1;
                        }
                        std::memcpy(t + m * ld + j, &o0, sizeof(Vec));
                        std::memcpy(t + m * ld + j + W, &o1, sizeof(Vec));
                    }
                }
            }
            for (; j < jv; j += W) {
                Vec v[R];
                for (int64_t r = 0; r < R; r++) { std::memcpy(&v[r], b0 + r * N + j, sizeof(Vec)); }
                for (int64_t m = 0; m < M; m++) {
                    const float* a_m = a + m * lda + k;  // (R,)
                    Vec o;
                    std::memcpy(&o, t + m * ld + j, sizeof(Vec));
                    for (int64_t r = 0; r < R; r++) { o += a_m[r] * v[r]; }  // k ascending
                    std::memcpy(t + m * ld + j, &o, sizeof(Vec));
                }
            }
            for (int64_t j = jv; j < nb; j++) {
                for (int64_t m = 0; m < M; m++) {
                    const float* a_m = a + m * lda + k;
                    float o = t[m * ld + j];
                    for (int64_t r = 0; r < R; r++) { o += a_m[r] * b0[r * N + j]; }
                    t[m * ld + j] = o;
                }
            }
        }
        for (; k < K; k++) {  // the last K % R rows of b
            const float* b_k = bj + k * N;  // (nb,)
            for (int64_t j = 0; j < jv; j += W) {
                Vec v;
                std::memcpy(&v, b_k + j, sizeof(Vec));
                for (int64_t m = 0; m < M; m++) {
                    Vec o;
                    std::memcpy(&o, t + m * ld + j, sizeof(Vec));
                    o += a[m * lda + k] * v;
                    std::memcpy(t + m * ld + j, &o, sizeof(Vec));
                }
            }
            for (int64_t j = jv; j < nb; j++) {
                for (int64_t m = 0; m < M; m++) { t[m * ld + j] += a[m * lda + k] * b_k[j]; }
            }
        }
        for (int64_t m = 0; m < M; m++) { std::memcpy(out + m * N + j0, t + m * ld, nb * sizeof(float)); }
    }
}

// The loop above keeps each row of a's R multiply-adds per vector of columns in one dependent chain (4 cycles
// a step), which several rows of a hide and one row cannot: on an AMD Zen 3 VM (AVX2, one thread) M = 1 read
// the weights at 13 GB/s so. With PAIRS, two vectors of columns at a time, two chains per row, b read from L1
// by each row of a: M = 1 2.3-3.6x faster, M = 4 1.0-1.6x. From M = 8 on, reading b into registers once for
// all rows wins. Either way each element of out sums k ascending: the same bits.
template <typename Vec>
MATMUL_ROWS_INLINE void nn(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N,
                           int64_t K, int64_t n0, int64_t n1) {
    if (M <= 4) {
        nn_loops<Vec, true>(out, a, lda, b, M, N, K, n0, n1);
    } else {
        nn_loops<Vec, false>(out, a, lda, b, M, N, K, n0, n1);
    }
}

// out[i, j] (row stride ldo) = dot(a[i, :], b[j, :]) for i < MR, j < NBR: MR x NBR accumulators
// of W lanes, summed across the lanes at the end, then the K % W tail one float at a time.
// The loops over i and j are unrolled by force and the lane sums are taken before the tail loop: where
// GCC left one of them rolled, acc[i][j] had a variable index, so it kept acc in memory and stored
// every accumulator back to the stack at each k step (the AVX2 build; the AVX-512 one was spared).
template <typename Vec, int MR, int NBR>
MATMUL_ROWS_INLINE void dot_block(float* out, int64_t ldo, const float* a, int64_t lda, const float* b,
                                  int64_t K) {
    constexpr int64_t W = sizeof(Vec) / sizeof(float);
    Vec acc[MR][NBR];
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NBR; j++) { acc[i][j] = Vec{}; }
    }
    const int64_t kv = K / W * W;
    for (int64_t k = 0; k < kv; k += W) {
        Vec bv[NBR];
#pragma GCC unroll 16
        for (int j = 0; j < NBR; j++) { std::memcpy(&bv[j], b + j * K + k, sizeof(Vec)); }
#pragma GCC unroll 16
        for (int i = 0; i < MR; i++) {
            Vec av;
            std::memcpy(&av, a + i * lda + k, sizeof(Vec));
#pragma GCC unroll 16
            for (int j = 0; j < NBR; j++) { acc[i][j] += av * bv[j]; }
        }
    }
    float sums[MR][NBR];  // lane 0 first, then 1, ...
#pragma GCC unroll 16
    for (int i = 0; i < MR; i++) {
#pragma GCC unroll 16
        for (int j = 0; j < NBR; j++) {
            float lanes[W];
            std::memcpy(lanes, &acc[i][j], sizeof(Vec));
            float s = 0.0f;
            for (int64_t l = 0; l < W; l++) { s += lanes[l]; }
            sums[i][j] = s;
        }
    }
    for (int i = 0; i < MR; i++) {
        for (int j = 0; j < NBR; j++) {
            float s = sums[i][j];
            for (int64_t k = kv; k < K; k++) { s += a[i * lda + k] * b[j * K + k]; }
            out[i * ldo + j] = s;
        }
    }
}

// out (M, N) row stride N; only the columns [n0, n1) are written. b is (N, K).
template <typename Vec, int RM>
MATMUL_ROWS_INLINE void nt(float* out, const float* a, int64_t lda, const float* b, int64_t M, int64_t N,
                           int64_t K, int64_t n0, int64_t n1) {
    int64_t n = n0;
    // One row of a (a generation step): eight rows of b at a time, eight independent chains of multiply-adds
    // and eight streams from memory where four left the FMA latency showing. GPT-2's tied head (154 MB
    // from DRAM), against four rows: 1.1x on the AVX-512 path, 1.3x on AVX2 and 1.1-1.2x portable.
    if (M == 1) {
        for (; n + 8 <= n1; n += 8) { dot_block<Vec, 1, 8>(out + n, N, a, lda, b + n * K, K); }
    }
    // four rows of b at a time: loaded once from memory, then used by every row of a from L1
    for (; n + 4 <= n1; n += 4) {
        int64_t m = 0;
        for (; m + RM <= M; m += RM) { dot_block<Vec, RM, 4>(out + m * N + n, N, a + m * lda, lda, b + n * K, K); }
        for (; m < M; m++) { dot_block<Vec, 1, 4>(out + m * N + n, N, a + m * lda, lda, b + n * K, K); }
    }
    for (; n < n1; n++) {
        int64_t m = 0;
        for (; m + RM <= M; m += RM) { dot_block<Vec, RM, 1>(out + m * N + n, N, a + m * lda, lda, b + n * K, K); }
        for (; m < M; m++) { dot_block<Vec, 1, 1>(out + m * N + n, N, a + m * lda, lda, b + n * K, K); }
    }
}

}  // namespace matmul_rows

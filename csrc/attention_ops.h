// Internal to the attention kernels: the tile sizes, the dropout hash, and the table of tile
// operations that the flash-attention driver (attention.cpp) calls. Each instruction set fills the
// table once: attention_avx512.cpp, attention_avx2.cpp, attention_portable.cpp. Not part of the
// kernels.h interface.
//
// Layout of a tile. The driver works with the TRANSPOSED scores S^T = K_j Q_i^T, one row per key
// and one column per query, because every softmax statistic (running max m, running sum l, the
// saved lse) belongs to a query: with queries along the SIMD lanes, the max and the sum over keys
// are plain vertical vector ops, with no horizontal reductions.
#pragma once

#include <algorithm>
#include <cstdint>

namespace attention {

// Tile sizes. A forward work item holds Q_i^T (hs x Br), S^T (Bc x Br) and reads K_j, V_j (Bc x hs
// each): at hs = 64 that is 4 x 16 KiB, which fits the 2 MiB L2 with room to spare and keeps the
// tiles streamed per key step (S^T and one K or V tile, 32 KiB) inside the 48 KiB L1d. Br is also
// the SIMD width of the softmax: 64 queries = 4 AVX-512 vectors = 8 AVX2 vectors, no tails,
// because Q^T is zero-padded to whole tiles. Smaller tiles waste less on the diagonal (where half a
// tile is masked) but rescale the output and reload the tiles more often: 64 x 64 measured at least as
// fast as 48 x 48, 32 x 32 and 64 x 32 here, on both benchmark shapes.
constexpr int64_t kQueryTile = 64;  // Br: queries per tile (a multiple of 32: whole AVX2 groups of 4 vectors)
constexpr int64_t kKeyTile = 64;    // Bc: keys per tile

// The causal mask, seen by a tile product C (M x N) = A (M x K) . B (K x N): for output row m the
// entries past the diagonal are zero (or masked), so the product may skip them. `off` places the
// diagonal. The skips are rounded to whole micro-tiles; they only save work.
enum class Trim {
    none,
    n_before,  // C[m, n] is not needed for n < m + off (S^T: query n sees key m only if n >= m + off)
    k_after,   // A[m, k] = 0 for k > m + off (P (queries x keys) @ V: query m sees keys k <= m + off)
    k_before,  // A[m, k] = 0 for k < m + off (P^T (keys x queries) @ dO: key m is seen by queries k >= m + off)
};

// The rows [k0, k1) of the inner dimension and the first output column that the trim leaves to rows
// m0 .. m0 + mr - 1. n_lo is rounded down to a multiple of `lanes`, so the micro-kernel's vectors
// stay aligned with the tile's.
struct TrimRange { int64_t k0, k1, n_lo; };
inline TrimRange trim_range(Trim trim, int64_t off, int64_t m0, int64_t mr, int64_t N, int64_t K, int64_t lanes) {
    TrimRange r{0, K, 0};
    if (trim == Trim::k_after) { r.k1 = std::clamp<int64_t>(m0 + mr + off, 0, K); }
    if (trim == Trim::k_before) { r.k0 = std::clamp<int64_t>(m0 + off, 0, K); }
    if (trim == Trim::n_before) { r.n_lo = std::clamp<int64_t>(m0 + off, 0, N) / lanes * lanes; }
    return r;
}

// The gemm of every path walks C in blocks of MR rows by up to MAX_NV vectors of LANES floats, skips
// what the trim allows, and hands each block to its micro-kernel:
//   block(m0, mr, n0, nv, last_lanes, range): rows m0 .. m0 + mr - 1, columns n0 .. in nv vectors, the
//   last of them last_lanes floats wide, over the inner rows [range.k0, range.k1).
template <int MR, int LANES, int MAX_NV, typename Block>
inline void for_each_block(int64_t M, int64_t N, int64_t K, Trim trim, int64_t off, Block block) {
    for (int64_t m0 = 0; m0 < M; m0 += MR) {
        const int mr = static_cast<int>(std::min<int64_t>(MR, M - m0));
        const TrimRange range = trim_range(trim, off, m0, mr, N, K, LANES);
        for (int64_t n0 = range.n_lo; n0 < N; n0 += MAX_NV * LANES) {
            const int64_t nn = std::min<int64_t>(MAX_NV * LANES, N - n0);
            const int nv = static_cast<int>((nn + LANES - 1) / LANES);
            block(m0, mr, n0, nv, static_cast<int>(nn - (nv - 1) * LANES), range);
        }
    }
}

// ----------------------------------------------------------------------------- dropout mask

// The finaliser of splitmix64 (Steele, Lea & Flood 2014): a bijection on uint64 whose output bits
// all depend on all input bits. Unsigned arithmetic wraps modulo 2^64, as in the NumPy version.
inline uint64_t splitmix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Weights are dropped when the top 24 bits of the hash fall below p * 2^24.
inline uint64_t dropout_threshold(double p) {
    return std::min(static_cast<uint64_t>(p * 16777216.0), uint64_t{1} << 24);
}

// Whether weight (bh, i, j) of the (B * NH, T, T) weights survives dropout: a pure function of the
// seed and the weight's flat index (plus one, as in dropout_keep_mask in minigpt/kernels/attention.py), so the
// backward regenerates exactly the forward's mask and both backends drop the same weights.
inline bool dropout_keep(uint64_t seed, uint64_t threshold, int64_t bh, int64_t i, int64_t j, int64_t T) {
    const uint64_t counter = (static_cast<uint64_t>(bh * T + i) * T + j) + 1;
    return (splitmix64(seed + counter * 0x9E3779B97F4A7C15ULL) >> 40) >= threshold;
}

// ----------------------------------------------------------------------------- the table

struct TileOps {
    const char* name;  // "avx512", "avx2" or "portable"

    // C (M x N) = A @ B, or with accumulate C = diag(row_scale) C + A @ B (row_scale (M,), or nullptr
    // for C += A @ B: the forward rescales its output rows as it adds to them, saving a pass).
    // A[m, k] is A[m * a_rs + k * a_cs], so A can be read transposed in place; B (K x N) has row
    // stride ldb. Entries skipped by `trim` are left as they were (with accumulate) or unspecified.
    void (*gemm)(float* C, int64_t ldc, const float* A, int64_t a_rs, int64_t a_cs, const float* B, int64_t ldb,
                 int64_t M, int64_t N, int64_t K, bool accumulate, const float* row_scale, Trim trim, int64_t off);

    // One online-softmax step of the forward over a tile of scores s (nk x Br), in place:
    // m2 (Br,) is the running max in log2 units, l (Br,) the running sum; on return s holds
    // P~ = 2^(s * c2 - m2_new) and alpha (Br,) = 2^(m2_old - m2_new), the factor that rescales
    // what was accumulated before. c2 = log2(e) / sqrt(hs).
    void (*softmax_update)(float* s, int64_t nk, float* m2, float* l, float* alpha, float c2);

    // The backward's weights, in place: s (nk x Br) becomes P = 2^(s * c2 - lse2) with lse2 (Br,)
    // the saved log-sum-exp in log2 units.
    void (*exp_tile)(float* s, int64_t nk, const float* lse2, float c2);

    // ds (nk x Br) = p * (ds - D) * scale, in place, with D (Br,): the softmax backward.
    void (*dscores)(float* ds, const float* p, int64_t nk, const float* D, float scale);

    // x[r, :cols] *= s[r] for r < rows (x has row stride ld).
    void (*scale_rows)(float* x, int64_t ld, int64_t rows, int64_t cols, const float* s);

    // dst[i] = a[i] * b[i] for i < n.
    void (*mul)(float* dst, const float* a, const float* b, int64_t n);

    // dst[c * ld_dst + r] = src[r * ld_src + c] for r < rows, c < cols.
    void (*transpose)(float* dst, int64_t ld_dst, const float* src, int64_t ld_src, int64_t rows, int64_t cols);

    // The dropout factors of a tile, in the S^T layout: keep (nk x Br), keep[r, c] = keep_scale if
    // weight (bh, i0 + c, j0 + r) survives, else 0.
    void (*dropout_tile)(float* keep, int64_t nk, uint64_t seed, uint64_t threshold, float keep_scale,
                         int64_t bh, int64_t T, int64_t i0, int64_t j0);

    // One query of a generation step over L cached keys (attention_cached.cpp): out (hs,) =
    // softmax(K q * scale) V, where K and V are (L, hs) rows of the KV cache; p (L,) is scratch.
    void (*cached_row)(float* out, const float* q, const float* K, const float* V, int64_t L, int64_t hs,
                       float scale, float* p);
};

const TileOps& tile_ops_portable();
#if defined(__x86_64__)
const TileOps& tile_ops_avx2();
const TileOps& tile_ops_avx512();
#endif

// The fastest table this CPU runs, or the one named by the environment variable
// MINIGPT_SIMD (avx512, avx2, portable), read at every call so tests can try each path.
// Throws std::invalid_argument for a name this CPU cannot run.
const TileOps& select_tile_ops();

}  // namespace attention

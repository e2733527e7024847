// Causal scaled-dot-product attention with attention dropout, forward and backward, in the style of
// FlashAttention (Dao et al. 2022, https://arxiv.org/abs/2205.14135) and FlashAttention-2 (Dao 2023,
// https://arxiv.org/abs/2307.08691): the (T, T) weight matrix never exists, not even one row of it.
// attention_naive.cpp computes the same thing one row at a time and is the version to read first.
//
// Forward, for one tile of Br queries: walk the key tiles left of the diagonal, compute the tile of
// scores, and keep per query a running max m and a running sum l of exp(score - m) (the online
// softmax, Milakov & Gimelshein 2018, https://arxiv.org/abs/1805.02867). When a new tile raises the
// max, what was summed so far is rescaled by exp(m_old - m_new). At the end out = acc / l and
// lse = m + log(l), the only statistic saved: O(B * NH * T) floats.
//
// Backward, for one (b, h): walk the key tiles j, and for each the query tiles i at or below the
// diagonal; rebuild P = exp(S - lse) tile by tile, and with D = rowsum(dout * out) (which equals
// rowsum(P * dP)) get dS = P * (dP - D). dk_j and dv_j sum over the query tiles, dq_i over the key
// tiles; one thread owns the whole (b, h), so neither races.
//
// Causality costs nothing where it is not needed: key tiles wholly right of the diagonal are never
// visited, only tiles that cross the diagonal are masked, and the tile products skip the masked
// micro-tiles (see Trim in attention_ops.h). Dropout uses the counter-based mask of
// attention_ops.h, computed only when p > 0.
//
// The heads are read where they are (HeadLayout): (B, NH, T, hs) arrays, or straight out of the fused
// (B, T, 3C) projection, writing a (B, T, C) output, so that the model never copies its heads out
// and back (attention_forward_fused); only the row strides differ, not the arithmetic.
//
// The tile products, exp and softmax steps come from a table of SIMD operations chosen at run time
// (attention_ops.h): AVX-512, AVX2 or portable C++. Results do not depend on the thread count: each
// output is summed by one thread in one order.
#include <cmath>
#include <cstdlib>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>

#include "attention_ops.h"
#include "fastmath.h"
#include "kernels.h"

namespace attention {

const TileOps& select_tile_ops() {
    const char* env = std::getenv("MINIGPT_SIMD");
    const std::string wanted = env ? env : "";
#if defined(__x86_64__)
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if ((wanted.empty() || wanted == "avx512") && avx512) { return tile_ops_avx512(); }
    if ((wanted.empty() || wanted == "avx2") && avx2) { return tile_ops_avx2(); }
#endif
    if (wanted.empty() || wanted == "portable") { return tile_ops_portable(); }
    // the same two messages as the matmul's choice (matmul.cpp)
    if (wanted == "avx512" || wanted == "avx2") {
        throw std::invalid_argument("MINIGPT_SIMD=" + wanted + " asks for a SIMD path this CPU (or this build) "
                                    "lacks: unset MINIGPT_SIMD or pick a lower path");
    }
    throw std::invalid_argument("MINIGPT_SIMD must be avx512, avx2 or portable (or unset, for the best this "
                                "CPU runs), got '" + wanted + "'");
}

}  // namespace attention

using attention::kKeyTile;
using attention::kQueryTile;
using attention::TileOps;
using attention::Trim;

namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// A thread's scratch floats, zero-filled and aligned to 64 bytes (a cache line, an AVX-512 vector).
struct Scratch {
    struct Free { void operator()(float* p) const { ::operator delete[](p, std::align_val_t(64)); } };
    std::unique_ptr<float[], Free> buffer;
    explicit Scratch(int64_t n)
        : buffer(static_cast<float*>(::operator new[](sizeof(float) * std::max<int64_t>(n, 1), std::align_val_t(64)))) {
        std::fill_n(buffer.get(), std::max<int64_t>(n, 1), 0.0f);
    }
    float* get() const { return buffer.get(); }
};

// Everything a tile needs to know about the call. One head's q, k, v (and dq, dk, dv) are T rows
// of hs floats, ld_in floats apart; its out (and dout) rows are ld_out apart: hs and hs for
// (B, NH, T, hs) arrays, 3C and C when the heads stay inside a fused (B, T, 3C) projection and a
// (B, T, C) output (see HeadLayout).
struct Problem {
    int64_t T, hs, ld_in, ld_out;
    float scale, c2;  // 1/sqrt(hs) and log2(e)/sqrt(hs): exp(s * scale) = 2^(s * c2)
    bool dropout;
    uint64_t seed, threshold;
    float keep_scale;  // 1 / (1 - p), inverted dropout
};

Problem make_problem(int64_t T, int64_t hs, int64_t ld_in, int64_t ld_out, double dropout_p, uint64_t seed) {
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs)));
    return {T, hs, ld_in, ld_out, scale, scale * kLog2e, dropout_p > 0.0, seed,
            attention::dropout_threshold(dropout_p), static_cast<float>(1.0 / (1.0 - dropout_p))};
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// In a tile of scores s^T (nk x Br) whose key j0 + r and query i0 + c cross the diagonal, set the
// entries of keys after their query (c < r + diag, diag = j0 - i0) to -inf: exp gives exactly 0.
void mask_future(float* s, int64_t nk, int64_t diag) {
    for (int64_t r = 0; r < nk; r++) {
        std::fill_n(s + r * kQueryTile, std::clamp<int64_t>(r + diag, 0, kQueryTile), -INFINITY);
    }
}

// ----------------------------------------------------------------------------- forward

struct ForwardScratch {
    Scratch qt, s, keep, m2, l, alpha;
    explicit ForwardScratch(int64_t hs)
        : qt(hs * kQueryTile), s(kKeyTile * kQueryTile), keep(kKeyTile * kQueryTile), m2(kQueryTile),
          l(kQueryTile), alpha(kQueryTile) {}
};

// out and lse of queries i0 .. i0 + nq - 1 of one (b, h); q, k, v, out point at its first row.
void forward_query_tile(const TileOps& ops, const Problem& pr, float* out, float* lse, const float* q,
                        const float* k, const float* v, int64_t bh, int64_t i0, ForwardScratch& sc) {
    const int64_t T = pr.T, hs = pr.hs, ld = pr.ld_in, nq = std::min(kQueryTile, T - i0);
    float *qt = sc.qt.get(), *s = sc.s.get(), *m2 = sc.m2.get(), *l = sc.l.get(), *alpha = sc.alpha.get();
    float* o = out + i0 * pr.ld_out;  // (nq, hs): the accumulator is the output itself
    // Q_i^T (hs, Br), zero past the last query: padded queries get finite, unused scores
    if (nq < kQueryTile) { std::fill_n(qt, hs * kQueryTile, 0.0f); }
    ops.transpose(qt, kQueryTile, q + i0 * ld, ld, nq, hs);
    std::fill_n(m2, kQueryTile, -INFINITY);
    std::fill_n(l, kQueryTile, 0.0f);
    for (int64_t j0 = 0; j0 < i0 + nq; j0 += kKeyTile) {  // keys after the last query are never visited
        const int64_t nk = std::min(kKeyTile, T - j0), diag = j0 - i0;
        // s^T (nk, Br) = K_j (nk, hs) @ Q_i^T (hs, Br); keys after every query of a row block are skipped
        ops.gemm(s, kQueryTile, k + j0 * ld, ld, 1, qt, kQueryTile, nk, kQueryTile, hs, false, nullptr, Trim::n_before,
                 diag);
        if (diag + nk - 1 > 0) { mask_future(s, nk, diag); }
        ops.softmax_update(s, nk, m2, l, alpha, pr.c2);  // s^T becomes exp(S - m): P~^T
        if (pr.dropout) {  // l has summed the undropped weights; only out sees the mask
            ops.dropout_tile(sc.keep.get(), nk, pr.seed, pr.threshold, 1.0f, bh, T, i0, j0);
            ops.mul(s, s, sc.keep.get(), nk * kQueryTile);
        }
        // O (nq, hs) = diag(alpha) O + P~ (nq, nk) @ V_j (nk, hs): the old sum rescaled to the new max,
        // plus this tile's, reading P~ from s^T transposed in place. The first tile writes O afresh.
        ops.gemm(o, pr.ld_out, s, 1, kQueryTile, v + j0 * ld, ld, nq, hs, nk, j0 > 0, alpha, Trim::k_after, -diag);
    }
    for (int64_t c = 0; c < nq; c++) {
        alpha[c] = pr.keep_scale / l[c];
        lse[i0 + c] = (m2[c] + std::log2(l[c])) * kLn2;  // back from log2 units
    }
    ops.scale_rows(o, pr.ld_out, nq, hs, alpha);
}

// ----------------------------------------------------------------------------- backward

struct BackwardScratch {
    int64_t Tp;   // T rounded up to whole query tiles
    int64_t ldt;  // row stride of Q^T and dout^T: Tp plus one cache line, because with a stride of a
                  // power of two (T = 1024: 4 KiB) the rows of a tile all fall into the same L1 set
    Scratch qt, dot, D, lse2, s, ds, pd, keep;
    BackwardScratch(int64_t T, int64_t hs)
        : Tp(ceil_div(T, kQueryTile) * kQueryTile), ldt(Tp + 16), qt(hs * ldt), dot(hs * ldt), D(Tp), lse2(Tp),
          s(kKeyTile * kQueryTile), ds(kKeyTile * kQueryTile), pd(kKeyTile * kQueryTile),
          keep(kKeyTile * kQueryTile) {}
};

// Q^T and dout^T (hs, Tp) zero-padded, D = rowsum(dout * out), lse in log2 units (+inf on padding,
// so padded queries get weight 0).
void prepare_backward(const TileOps& ops, const Problem& pr, const float* dout, const float* q, const float* out,
                      const float* lse, BackwardScratch& sc) {
    const int64_t T = pr.T, hs = pr.hs, ld_out = pr.ld_out;
    ops.transpose(sc.qt.get(), sc.ldt, q, pr.ld_in, T, hs);
    ops.transpose(sc.dot.get(), sc.ldt, dout, ld_out, T, hs);
    for (int64_t c = 0; c < hs; c++) {
        std::fill(sc.qt.get() + c * sc.ldt + T, sc.qt.get() + c * sc.ldt + sc.Tp, 0.0f);
        std::fill(sc.dot.get() + c * sc.ldt + T, sc.dot.get() + c * sc.ldt + sc.Tp, 0.0f);
    }
    for (int64_t i = 0; i < T; i++) {
        float D_i = 0.0f;
        #pragma omp simd reduction(+ : D_i)
        for (int64_t c = 0; c < hs; c++) { D_i += dout[i * ld_out + c] * out[i * ld_out + c]; }
        sc.D.get()[i] = D_i;
        sc.lse2.get()[i] = lse[i] * kLog2e;
    }
    std::fill(sc.D.get() + T, sc.D.get() + sc.Tp, 0.0f);
    std::fill(sc.lse2.get() + T, sc.lse2.get() + sc.Tp, INFINITY);
}

// The gradients of one (b, h); every pointer is at its first row, lse at its (T,) slice.
void backward_head(const TileOps& ops, const Problem& pr, float* dq, float* dk, float* dv, const float* dout,
                   const float* q, const float* k, const float* v, const float* out, const float* lse, int64_t bh,
                   BackwardScratch& sc) {
    const int64_t T = pr.T, hs = pr.hs, ld = pr.ld_in, ld_out = pr.ld_out;
    prepare_backward(ops, pr, dout, q, out, lse, sc);
    float *s = sc.s.get(), *ds = sc.ds.get();
    for (int64_t j0 = 0; j0 < T; j0 += kKeyTile) {
        const int64_t nk = std::min(kKeyTile, T - j0);
        const float *k_j = k + j0 * ld, *v_j = v + j0 * ld;  // (nk, hs) each
        for (int64_t i0 = j0 / kQueryTile * kQueryTile; i0 < T; i0 += kQueryTile) {  // queries that see key j0 on
            const int64_t nq = std::min(kQueryTile, T - i0), diag = j0 - i0;
            // P^T (nk, Br) = exp(K_j Q_i^T * scale - lse), masked past the diagonal
            ops.gemm(s, kQueryTile, k_j, ld, 1, sc.qt.get() + i0, sc.ldt, nk, kQueryTile, hs, false, nullptr,
                     Trim::n_before, diag);
            if (diag + nk - 1 > 0) { mask_future(s, nk, diag); }
            ops.exp_tile(s, nk, sc.lse2.get() + i0, pr.c2);
            // dP^T (nk, Br) = V_j dout_i^T; entries the trim skips are finite leftovers, times P = 0 below
            ops.gemm(ds, kQueryTile, v_j, ld, 1, sc.dot.get() + i0, sc.ldt, nk, kQueryTile, hs, false, nullptr,
                     Trim::n_before, diag);
            const float* p_dropped = s;
            if (pr.dropout) {  // out used P * keep: so do dv and the gradient of P
                ops.dropout_tile(sc.keep.get(), nk, pr.seed, pr.threshold, pr.keep_scale, bh, T, i0, j0);
                ops.mul(sc.pd.get(), s, sc.keep.get(), nk * kQueryTile);
                ops.mul(ds, ds, sc.keep.get(), nk * kQueryTile);
                p_dropped = sc.pd.get();
            }
            ops.dscores(ds, s, nk, sc.D.get() + i0, pr.scale);  // dS^T = P^T * (dP^T - D) / sqrt(hs)
            // dv_j (nk, hs) += P^T (nk, nq) @ dout_i (nq, hs);  dk_j += dS^T @ q_i;  dq_i += dS @ k_j
            ops.gemm(dv + j0 * ld, ld, p_dropped, kQueryTile, 1, dout + i0 * ld_out, ld_out, nk, hs, nq, true, nullptr,
                     Trim::k_before, diag);
            ops.gemm(dk + j0 * ld, ld, ds, kQueryTile, 1, q + i0 * ld, ld, nk, hs, nq, true, nullptr, Trim::k_before,
                     diag);
            ops.gemm(dq + i0 * ld, ld, ds, 1, kQueryTile, k_j, ld, nq, hs, nk, true, nullptr, Trim::k_after, -diag);
        }
    }
}

}  // namespace

// ----------------------------------------------------------------------------- entry points

// Below this much work (about twice the multiply-adds of the forward) one thread does it all: waking
// a second costs more (fastmath.h has the measurement behind MIN_PARALLEL_WORK).
[[maybe_unused]] constexpr int64_t kParallelWork = 8 * MIN_PARALLEL_WORK;

namespace {

// Where the heads of a tensor sit: head (b, h) starts at b * batch + h * head, and its T rows are
// `row` floats apart. (B, NH, T, hs) arrays: {hs, NH * T * hs, T * hs}. The q part of a fused
// (B, T, 3C) projection: {3C, T * 3C, hs} (k and v the same, C and 2C further on); a (B, T, C)
// output with the heads side by side: {C, T * C, hs}.
struct HeadLayout {
    int64_t row, batch, head;
    int64_t at(int64_t bh, int64_t NH) const { return bh / NH * batch + bh % NH * head; }
};

HeadLayout heads_apart(int64_t NH, int64_t T, int64_t hs) { return {hs, NH * T * hs, T * hs}; }
HeadLayout heads_side_by_side(int64_t width, int64_t T, int64_t hs) { return {width, T * width, hs}; }

void forward_heads(float* out, float* lse, const float* q, const float* k, const float* v, HeadLayout in,
                   HeadLayout outl, int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed) {
    const TileOps& ops = attention::select_tile_ops();  // may throw, so before the parallel region
    const Problem pr = make_problem(T, hs, in.row, outl.row, dropout_p, seed);
    const int64_t BH = B * NH, n_tiles = ceil_div(T, kQueryTile);
    #pragma omp parallel if (BH * T * T * hs >= kParallelWork)
    {
        ForwardScratch sc(hs);
        // One work item per (b, h, query tile). Tile i costs i + 1 key tiles, so hand them out
        // dynamically, costliest first: the cheap ones at the end even out the threads' finish.
        #pragma omp for schedule(dynamic, 1)
        for (int64_t item = 0; item < BH * n_tiles; item++) {
            const int64_t bh = item % BH, i0 = (n_tiles - 1 - item / BH) * kQueryTile;
            const int64_t at = in.at(bh, NH);
            forward_query_tile(ops, pr, out + outl.at(bh, NH), lse + bh * T, q + at, k + at, v + at, bh, i0, sc);
        }
    }
}

void backward_heads(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                    const float* v, const float* out, const float* lse, HeadLayout in, HeadLayout outl, int64_t B,
                    int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed) {
    const TileOps& ops = attention::select_tile_ops();
    const Problem pr = make_problem(T, hs, in.row, outl.row, dropout_p, seed);
    // No heads, no work. Returning here also keeps an empty batch with a huge T from sizing the scratch
    // below by that T: an allocation that fails inside a parallel region ends the process, not the call.
    if (B * NH == 0) { return; }
    #pragma omp parallel if (B * NH * T * T * hs >= kParallelWork)
    {
        BackwardScratch sc(T, hs);  // O(T * hs) per thread: Q^T and dout^T of one (b, h)
        // One (b, h) per work item: every head costs the same, and dq, dk, dv of a head are summed by
        // one thread in one order, so no atomics and the same bits on any number of threads. (With
        // fewer heads than threads, B * NH < threads, some threads sit idle.)
        #pragma omp for schedule(dynamic, 1)
        for (int64_t bh = 0; bh < B * NH; bh++) {
            const int64_t at = in.at(bh, NH), at_out = outl.at(bh, NH);
            backward_head(ops, pr, dq + at, dk + at, dv + at, dout + at_out, q + at, k + at, v + at, out + at_out,
                          lse + bh * T, bh, sc);
        }
    }
}

}  // namespace

void attention_forward(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B, int64_t NH,
                       int64_t T, int64_t hs, double dropout_p, uint64_t seed) {
    const HeadLayout apart = heads_apart(NH, T, hs);
    forward_heads(out, lse, q, k, v, apart, apart, B, NH, T, hs, dropout_p, seed);
}

void attention_backward(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                        const float* v, const float* out, const float* lse, int64_t B, int64_t NH, int64_t T,
                        int64_t hs, double dropout_p, uint64_t seed) {
    const HeadLayout apart = heads_apart(NH, T, hs);
    backward_heads(dq, dk, dv, dout, q, k, v, out, lse, apart, apart, B, NH, T, hs, dropout_p, seed);
}

void attention_forward_fused(float* y, float* lse, const float* qkv, int64_t B, int64_t NH, int64_t T, int64_t hs,
                             double dropout_p, uint64_t seed) {
    const int64_t C = NH * hs;
    forward_heads(y, lse, qkv, qkv + C, qkv + 2 * C, heads_side_by_side(3 * C, T, hs), heads_side_by_side(C, T, hs),
                  B, NH, T, hs, dropout_p, seed);
}

void attention_backward_fused(float* dqkv, const float* dy, const float* qkv, const float* y, const float* lse,
                              int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed) {
    const int64_t C = NH * hs;
    backward_heads(dqkv, dqkv + C, dqkv + 2 * C, dy, qkv, qkv + C, qkv + 2 * C, y, lse,
                   heads_side_by_side(3 * C, T, hs), heads_side_by_side(C, T, hs), B, NH, T, hs, dropout_p, seed);
}

const char* attention_simd() { return attention::select_tile_ops().name; }

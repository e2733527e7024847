// Causal attention with attention dropout on the GPU, forward and backward. Follows
// minigpt/kernels/attention.py (the math) and csrc/attention.cpp (the same flash-attention plan on
// a CPU). Three versions:
//
//   naive  one thread per query row, straight from the formulas: a pass over the visible keys for
//          the max and the sum of the softmax, a second pass that adds the weighted values. The
//          backward adds into dk and dv with atomicAdd, as many rows share each key.
//   flash  FlashAttention (Dao et al. 2022, arXiv:2205.14135; FlashAttention-2, Dao 2023,
//          arXiv:2307.08691) in float32 on CUDA cores. The forward gives a block to each (head,
//          64 queries): it keeps the query tile in shared memory and streams 64-key tiles of K and V
//          through it, with the online softmax (running max m, running sum l, output rescaled when m
//          moves), so the T x T weights never exist. It saves lse = m + log l per query. The backward
//          gives a block to each (head, 64 keys): it keeps K and V, streams the query tiles that can
//          see them, rebuilds the weights from q, k and lse, accumulates dk and dv in registers, and
//          adds each tile's share of dq into global memory with atomicAdd. Both copy their tiles into
//          shared memory by cp.async (ptx.cuh), started early enough to arrive during the arithmetic
//          that comes before their use.
//   mma    the flash forward with its two products on the tensor cores, float32-accurate (3xTF32):
//          attention_forward_mma_kernel, beside the CUDA-core forward until they are timed.
//
// Tiles. 256 threads as 16 x 16; thread (ty, tx) owns the 4 x 4 patch of a 64 x 64 score tile at
// rows ty*4 .. ty*4+3 and columns tx, tx+16, tx+32, tx+48. A row of scores then lives in the 16
// lanes of one half warp, so its max and sum are 4 shuffles. The same thread owns rows ty*4 .. +3
// of the 64 x hs output (or of dk, dv), D/16 of its columns each, so the softmax statistics of its
// rows are already in its registers. Shared rows are padded by 4 floats, which puts the 16-byte
// reads of neighbouring rows in different banks. The head size is rounded up to D in {16, 32, 64,
// 80, 96, 128} at compile time (zero padding); larger heads are refused by the binding.
//
// The heads are read where they are (HeadLayout): separate (B, NH, T, hs) arrays, or straight out of
// the fused (B, T, 3C) projection with the output written as (B, T, C), heads side by side, so that the
// model never copies its heads out and back (attention_forward_fused_cuda). Only the addresses of the
// rows differ, not the arithmetic: both give the same bits.
//
// The dropout mask is the counter-based hash of common.cuh, identical to the NumPy and C++ ones.
#include <cmath>
#include <string>
#include <type_traits>

#include "common.cuh"
#include "kernels_cuda.h"
#include "ptx.cuh"

namespace {

constexpr int kTile = 64;      // queries per forward block, keys per backward block, and the streamed tile
constexpr int kThreads = 256;  // 16 x 16
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// Where the T rows of head bh lie: row t starts at at(bh) + t * row floats from the array's start.
//   separate heads (B, NH, T, hs):           row = hs,  batch = NH * T * hs, head = T * hs
//   inside the fused projection (B, T, 3C):  row = 3C,  batch = T * 3C,      head = hs  (q, k, v at +0, +C, +2C)
//   an output with the heads side by side:   row = C,   batch = T * C,       head = hs
struct HeadLayout {
    int64_t row, batch, head, NH;
    __host__ __device__ int64_t at(int64_t bh) const { return bh / NH * batch + bh % NH * head; }
};

HeadLayout heads_apart(int64_t NH, int64_t T, int64_t hs) { return {hs, NH * T * hs, T * hs, NH}; }
HeadLayout heads_side_by_side(int64_t NH, int64_t T, int64_t hs, int64_t row) { return {row, T * row, hs, NH}; }

// ----------------------------------------------------------------------------- naive

__global__ void attention_forward_naive_kernel(float* out, float* lse, const float* q, const float* k, const float* v,
                                               int64_t BH, int64_t T, int64_t hs, float scale, Dropout drop) {
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (bh, i)
    if (row >= BH * T) { return; }
    const int64_t bh = row / T, i = row % T;
    const float* qi = q + row * hs;          // (hs,)
    const float* kb = k + bh * T * hs;       // (T, hs)
    const float* vb = v + bh * T * hs;       // (T, hs)
    float* oi = out + row * hs;              // (hs,)
    // 1. the max and the sum of exp over the visible keys j <= i, in one online pass
    float m = -INFINITY, l = 0.0f;
    for (int64_t j = 0; j <= i; j++) {
        float s = 0.0f;
        for (int64_t d = 0; d < hs; d++) { s += qi[d] * kb[j * hs + d]; }
        online_add(m, l, s * scale);
    }
    const float lse_i = m + logf(l);
    lse[row] = lse_i;
    // 2. out_i = sum_j P_ij * keep_ij / (1 - p) * v_j
    for (int64_t d = 0; d < hs; d++) { oi[d] = 0.0f; }
    for (int64_t j = 0; j <= i; j++) {
        float s = 0.0f;
        for (int64_t d = 0; d < hs; d++) { s += qi[d] * kb[j * hs + d]; }
        float w = expf(s * scale - lse_i);
        if (drop.on) { w *= dropout_keep(drop, bh, i, j, T) ? drop.keep_scale : 0.0f; }
        for (int64_t d = 0; d < hs; d++) { oi[d] += w * vb[j * hs + d]; }
    }
}

__global__ void attention_backward_naive_kernel(float* dq, float* dk, float* dv, const float* dout, const float* q,
                                                const float* k, const float* v, const float* out, const float* lse,
                                                int64_t BH, int64_t T, int64_t hs, float scale, Dropout drop) {
    const int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;  // (bh, i)
    if (row >= BH * T) { return; }
    const int64_t bh = row / T, i = row % T;
    const float *qi = q + row * hs, *doi = dout + row * hs, *oi = out + row * hs;  // (hs,) each
    const float *kb = k + bh * T * hs, *vb = v + bh * T * hs;                     // (T, hs) each
    float* dqi = dq + row * hs;                                                    // (hs,), this thread's alone
    float* dkb = dk + bh * T * hs;                                                 // (T, hs), shared: atomics
    float* dvb = dv + bh * T * hs;
    // rowsum(dP * P) = rowsum(dout * out): the softmax backward's row term, without the T x T weights
    float row_term = 0.0f;
    for (int64_t d = 0; d < hs; d++) { row_term += doi[d] * oi[d]; }
    for (int64_t j = 0; j <= i; j++) {
        float s = 0.0f, dpd = 0.0f;
        for (int64_t d = 0; d < hs; d++) {
            s += qi[d] * kb[j * hs + d];
            dpd += doi[d] * vb[j * hs + d];  // gradient w.r.t. the dropped weight
        }
        const float p = expf(s * scale - lse[row]);
        const float keep = drop.on ? (dropout_keep(drop, bh, i, j, T) ? drop.keep_scale : 0.0f) : 1.0f;
        const float ds = p * (dpd * keep - row_term) * scale;
        for (int64_t d = 0; d < hs; d++) {
            atomicAdd(&dvb[j * hs + d], p * keep * doi[d]);
            dqi[d] += ds * kb[j * hs + d];
            atomicAdd(&dkb[j * hs + d], ds * qi[d]);
        }
    }
}

// ----------------------------------------------------------------------------- flash: tile helpers

// Column of a D-wide row held in register j by thread column tx. When D is a multiple of 64 the
// columns come in runs of 4, read with one float4; otherwise one at a time, tx + 16 j.
template <int D>
__device__ __forceinline__ int dcol(int tx, int j) {
    if constexpr (D % 64 == 0) {
        return ((j / 4) * 16 + tx) * 4 + j % 4;
    } else {
        return tx + 16 * j;
    }
}

// This thread's D/16 values of one shared D-wide row.
template <int D>
__device__ __forceinline__ void read_row(float (&r)[D / 16], const float* row, int tx) {
    if constexpr (D % 64 == 0) {
#pragma unroll
        for (int g = 0; g < D / 64; g++) {
            const float4 t = *reinterpret_cast<const float4*>(row + (g * 16 + tx) * 4);
            r[g * 4 + 0] = t.x;
            r[g * 4 + 1] = t.y;
            r[g * 4 + 2] = t.z;
            r[g * 4 + 3] = t.w;
        }
    } else {
#pragma unroll
        for (int j = 0; j < D / 16; j++) { r[j] = row[tx + 16 * j]; }
    }
}

// Start copying rows row0 .. row0+63 of one head's (T, hs) matrix, whose rows start ld floats apart,
// into a shared (64, D) tile with row stride LD (D + 4 unless said), by cp.async (ptx.cuh), the block's
// THREADS threads together: the tile is there after cp_async_wait and a __syncthreads, and the block
// computes meanwhile. Past T and past hs the copies fill in zeros (a copy of nothing still needs a valid
// address: g), so padded rows and columns add nothing to any dot product.
template <int D, int LD = D + 4, int THREADS = kThreads>
__device__ __forceinline__ void copy_tile_async(float* s, const float* g, int64_t ld, int64_t row0, int64_t T, int hs,
                                                bool vec) {
    if (vec) {  // hs, ld % 4 == 0 and 16-byte aligned: whole float4s, each either inside hs or past it
        constexpr int per_row = D / 4;
        for (int e = threadIdx.x; e < kTile * per_row; e += THREADS) {
            const int r = e / per_row, d = (e % per_row) * 4;
            const bool inside = row0 + r < T && d < hs;
            cp_async_16(s + r * LD + d, inside ? g + (row0 + r) * ld + d : g, inside ? 16 : 0);
        }
    } else {
        for (int e = threadIdx.x; e < kTile * D; e += THREADS) {
            const int r = e / D, d = e % D;
            const bool inside = row0 + r < T && d < hs;
            cp_async_4(s + r * LD + d, inside ? g + (row0 + r) * ld + d : g, inside ? 4 : 0);
        }
    }
}

// s[i][j] = A[ty*4 + i] . B[tx + 16 j]: this thread's patch of A B^T for two shared (64, D) tiles.
template <int D>
__device__ __forceinline__ void tile_dot(float (&s)[4][4], const float* A, const float* B, int ty, int tx) {
    constexpr int LD = D + 4;
#pragma unroll
    for (int i = 0; i < 4; i++) {
#pragma unroll
        for (int j = 0; j < 4; j++) { s[i][j] = 0.0f; }
    }
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
        float4 a[4], b[4];
#pragma unroll
        for (int i = 0; i < 4; i++) { a[i] = *reinterpret_cast<const float4*>(A + (ty * 4 + i) * LD + d); }
#pragma unroll
        for (int j = 0; j < 4; j++) { b[j] = *reinterpret_cast<const float4*>(B + (tx + 16 * j) * LD + d); }
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < 4; j++) {
                s[i][j] = fmaf(a[i].x, b[j].x, s[i][j]);
                s[i][j] = fmaf(a[i].y, b[j].y, s[i][j]);
                s[i][j] = fmaf(a[i].z, b[j].z, s[i][j]);
                s[i][j] = fmaf(a[i].w, b[j].w, s[i][j]);
            }
        }
    }
}

// o[i][j] += sum_c P[ty*4 + i][c] X[c][dcol(tx, j)]: a (64, 64) weight tile P times a (64, D) tile X.
template <int D>
__device__ __forceinline__ void add_p_times(float (&o)[4][D / 16], const float* P, const float* X, int ty, int tx) {
    constexpr int LD = D + 4, LDP = kTile + 4, NC = D / 16;
#pragma unroll 2
    for (int c = 0; c < kTile; c += 4) {
        float4 p[4];
#pragma unroll
        for (int i = 0; i < 4; i++) { p[i] = *reinterpret_cast<const float4*>(P + (ty * 4 + i) * LDP + c); }
        float x[NC];
        read_row<D>(x, X + (c + 0) * LD, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < NC; j++) { o[i][j] = fmaf(p[i].x, x[j], o[i][j]); }
        }
        read_row<D>(x, X + (c + 1) * LD, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < NC; j++) { o[i][j] = fmaf(p[i].y, x[j], o[i][j]); }
        }
        read_row<D>(x, X + (c + 2) * LD, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < NC; j++) { o[i][j] = fmaf(p[i].z, x[j], o[i][j]); }
        }
        read_row<D>(x, X + (c + 3) * LD, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < NC; j++) { o[i][j] = fmaf(p[i].w, x[j], o[i][j]); }
        }
    }
}

// o[i][j] += sum_r P[r][ty*4 + i] X[r][dcol(tx, j)]: the transposed weight tile P^T times X, for
// the gradients of the keys and values (whose rows are P's columns).
template <int D>
__device__ __forceinline__ void add_pt_times(float (&o)[4][D / 16], const float* P, const float* X, int ty, int tx) {
    constexpr int LD = D + 4, LDP = kTile + 4, NC = D / 16;
#pragma unroll 4
    for (int r = 0; r < kTile; r++) {
        const float4 p = *reinterpret_cast<const float4*>(P + r * LDP + ty * 4);
        float x[NC];
        read_row<D>(x, X + r * LD, tx);
#pragma unroll
        for (int j = 0; j < NC; j++) {
            o[0][j] = fmaf(p.x, x[j], o[0][j]);
            o[1][j] = fmaf(p.y, x[j], o[1][j]);
            o[2][j] = fmaf(p.z, x[j], o[2][j]);
            o[3][j] = fmaf(p.w, x[j], o[3][j]);
        }
    }
}

// row[dcol(tx, j)] += x[j] for this thread's columns inside hs, with atomicAdd: every key block adds its
// share of dq. On Hopper, when D is a multiple of 64 the columns come in runs of 4 (see dcol) and one
// float4 atomic adds a run: a quarter of the atomic operations. `vec` (hs % 4 == 0, aligned rows) puts
// each run wholly inside hs or wholly past it.
template <int D>
__device__ __forceinline__ void add_row_part(float* row, const float (&x)[D / 16], int tx, int hs, bool vec) {
#if __CUDA_ARCH__ >= 900
    if constexpr (D % 64 == 0) {
        if (vec) {
#pragma unroll
            for (int j = 0; j < D / 16; j += 4) {
                const int col = dcol<D>(tx, j);
                if (col < hs) {
                    atomicAdd(reinterpret_cast<float4*>(row + col), make_float4(x[j], x[j + 1], x[j + 2], x[j + 3]));
                }
            }
            return;
        }
    }
#endif
#pragma unroll
    for (int j = 0; j < D / 16; j++) {
        const int col = dcol<D>(tx, j);
        if (col < hs) { atomicAdd(row + col, x[j]); }
    }
}

// The max (or sum) of a row of the score tile: over the 16 lanes of a half warp.
__device__ __forceinline__ float row_max(float v) {
    for (int offset = 8; offset > 0; offset /= 2) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset)); }
    return v;
}
__device__ __forceinline__ float row_sum(float v) {
    for (int offset = 8; offset > 0; offset /= 2) { v += __shfl_xor_sync(0xffffffffu, v, offset); }
    return v;
}

// ----------------------------------------------------------------------------- flash forward

template <int D>
constexpr size_t forward_smem() {
    return (3 * kTile * (D + 4) + kTile * (kTile + 4)) * sizeof(float);  // Q, K, V tiles and the weights
}

// grid (B * NH, query tiles); the query tiles run last to first, so the longest rows start first.
// Two blocks per SM fit in registers up to D = 96 (at most 128 registers a thread); at D = 128 one,
// which lets the compiler keep the larger output patch without spilling.
template <int D>
__global__ void __launch_bounds__(kThreads, D >= 128 ? 1 : 2)
    attention_forward_kernel(float* out, float* lse, const float* q, const float* k, const float* v, HeadLayout in,
                             HeadLayout out_at, int64_t T, int hs, float scale_log2, Dropout drop, bool vec) {
    constexpr int LD = D + 4, LDP = kTile + 4, NC = D / 16;
    extern __shared__ __align__(16) float smem[];
    float* Qs = smem;              // (64, D): this block's queries
    float* Ks = Qs + kTile * LD;   // (64, D): the current key tile
    float* Vs = Ks + kTile * LD;   // (64, D): the current value tile
    float* Ps = Vs + kTile * LD;   // (64, 64): the current weights, dropout applied
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t bh = blockIdx.x;
    const int q_tile = gridDim.y - 1 - blockIdx.y;
    const int64_t q0 = static_cast<int64_t>(q_tile) * kTile, head = in.at(bh), ld = in.row;

    // The copies overlap the arithmetic: the values of a key tile arrive while its scores are computed,
    // the next tile's keys while the weights multiply the values. Group order: Q and K 0, then per tile
    // V kt and K kt+1 (an empty group after the last tile keeps the count).
    copy_tile_async<D>(Qs, q + head, ld, q0, T, hs, vec);
    copy_tile_async<D>(Ks, k + head, ld, 0, T, hs, vec);
    cp_async_commit();
    float o[4][NC] = {}, m[4], l[4];  // m: running max (log2 units), l: this thread's part of the running sum
#pragma unroll
    for (int i = 0; i < 4; i++) {
        m[i] = -INFINITY;
        l[i] = 0.0f;
    }
    for (int kt = 0; kt <= q_tile; kt++) {  // causal: only key tiles up to the diagonal
        const int64_t k0 = static_cast<int64_t>(kt) * kTile;
        cp_async_wait<0>();  // this thread's copies of key tile kt have landed,
        __syncthreads();     // and everyone's; and the previous tile's values are no longer read ...
        copy_tile_async<D>(Vs, v + head, ld, k0, T, hs, vec);  // ... so this tile's may come in
        cp_async_commit();
        float s[4][4];
        tile_dot<D>(s, Qs, Ks, ty, tx);
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t r = q0 + ty * 4 + i;
            float mx = -INFINITY;
#pragma unroll
            for (int j = 0; j < 4; j++) {  // scale into log2 units and mask the future (key past query)
                s[i][j] = (k0 + tx + 16 * j <= r) ? s[i][j] * scale_log2 : -INFINITY;
                mx = fmaxf(mx, s[i][j]);
            }
            // finite: key tile 0 always holds a visible key for every row, and it comes first
            const float m_new = fmaxf(m[i], row_max(mx));
            const float alpha = exp2f(m[i] - m_new);  // rescales what was summed under the old max
            m[i] = m_new;
            l[i] *= alpha;
#pragma unroll
            for (int j = 0; j < NC; j++) { o[i][j] *= alpha; }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t c = k0 + tx + 16 * j;
                float p = exp2f(s[i][j] - m_new);
                l[i] += p;  // the softmax's sum counts every weight; dropout acts after it
                if (drop.on) { p *= dropout_keep(drop, bh, r, c, T) ? drop.keep_scale : 0.0f; }
                Ps[(ty * 4 + i) * LDP + tx + 16 * j] = p;
            }
        }
        __syncthreads();  // the weights are written, and the keys no longer read: the next ones may come in
        if (kt < q_tile) { copy_tile_async<D>(Ks, k + head, ld, k0 + kTile, T, hs, vec); }
        cp_async_commit();
        cp_async_wait<1>();  // this tile's values have landed (the next keys may still be on their way)
        __syncthreads();
        add_p_times<D>(o, Ps, Vs, ty, tx);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const float li = row_sum(l[i]);
        const int64_t r = q0 + ty * 4 + i;
        if (r >= T) { continue; }
        const float inv = 1.0f / li;
        float* out_row = out + out_at.at(bh) + r * out_at.row;
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const int col = dcol<D>(tx, j);
            if (col < hs) { out_row[col] = o[i][j] * inv; }
        }
        if (tx == 0) { lse[bh * T + r] = (m[i] + log2f(li)) * kLn2; }  // back to natural-log units
    }
}

// ----------------------------------------------------------------------------- flash forward on the tensor cores

// The same forward with both products, Q K^T and P V, on the tensor cores (mma_tf32_16x8x8, ptx.cuh),
// kept float32-accurate by "3xTF32" (the way PyTorch's float32 attention on these GPUs uses them, after
// CUTLASS's OpMultiplyAddFastF32): every operand x is split into two TF32 numbers, x = hi + lo (lo holds
// the 11 bits after hi's), and a b = a_hi b_hi + a_hi b_lo + a_lo b_hi to about float32 precision (the
// dropped a_lo b_lo is at most 2^-22 |a b|, about float32's rounding). Three tensor-core products and
// the splits for one product: whether that beats the CUDA cores is for a GPU to say. Compute capability
// 8.0 and newer; attention_forward_mma_cuda.

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800  // as ptx.cuh's TF32 instructions

// x = hi + lo, both TF32. hi is x rounded by hand as cvt rounds (add half a unit of the last TF32 bit),
// with the 13 bits below cleared, so that x - hi is exact: two integer instructions, where cvt and a mask
// take four. lo is left to cvt (to_tf32), which keeps a NaN a NaN: whatever a NaN x makes of hi, lo is
// NaN and so are the products. (A finite x within 2^-11 of float's largest rounds hi to inf and the
// products to NaN; scores, weights and activations never come near.)
__device__ __forceinline__ void split_tf32(float x, uint32_t& hi, uint32_t& lo) {
    hi = (__float_as_uint(x) + 0x1000u) & 0xFFFFE000u;
    lo = to_tf32(x - __uint_as_float(hi));
}

// d += a b, to float32 accuracy, from split operands; the small products first.
__device__ __forceinline__ void mma_3xtf32(float (&d)[4], const uint32_t (&a_hi)[4], const uint32_t (&a_lo)[4],
                                           const uint32_t (&b_hi)[2], const uint32_t (&b_lo)[2]) {
    mma_tf32_16x8x8(d, a_lo, b_hi);
    mma_tf32_16x8x8(d, a_hi, b_lo);
    mma_tf32_16x8x8(d, a_hi, b_hi);
}

#endif

constexpr int kMmaThreads = 128;  // 4 warps, 16 query rows each

template <int D>
constexpr size_t forward_mma_smem() {
    return (2 * kTile * (D + 8) + kTile * (D + 4)) * sizeof(float);  // Q, K tiles (rows of D + 8), V (D + 4)
}

// grid (B * NH, query tiles) as attention_forward_kernel, 4 warps a block; warp w owns the tile's query
// rows 16 w .. 16 w + 15, lane (g, t) = (lane / 4, lane % 4) rows 16 w + g and + 8 (ptx.cuh's layouts).
// Per key tile a warp computes its 16 x 64 scores as 8 products of 16 x 8, keeps them in registers (lane:
// keys 8 n + 2t, 2t + 1 of each), takes the online softmax there (a row lives in the 4 lanes of a quad:
// 2 shuffles), and multiplies them into its 16 x D output, also in registers. No weights in shared memory.
//
// The sums over d (for Q K^T) and over keys (for P V) do not care in which order a lane's k values come,
// so a lane's mma registers "k = t" and "k = t + 4" carry d (or key) 2t and 2t + 1 instead, in both
// operands: the scores' registers (keys 2t, 2t + 1 of rows g, g + 8) are then P's operand registers,
// taken in the order 0, 2, 1, 3, with no data moved between lanes; and Q's and K's pairs are one 8-byte
// read each. Row strides (D + 8 for Q and K, D + 4 for V) put those reads on 32 different banks.
// Registers (sm_90): 168 a thread up to D = 96, 188 at D = 128 (the output tile, the scores, the split
// operands), so 3 blocks (12 warps) an SM up to D = 96 and 2 at D = 128, which their shared memory
// (53-101 KiB) allows too.
template <int D>
__global__ void __launch_bounds__(kMmaThreads)
    attention_forward_mma_kernel(float* out, float* lse, const float* q, const float* k, const float* v, HeadLayout in,
                                 HeadLayout out_at, int64_t T, int hs, float scale_log2, Dropout drop, bool vec) {
#if __CUDA_ARCH__ >= 800  // tensor cores with TF32; the launcher refuses older GPUs
    constexpr int LQK = D + 8, LV = D + 4, NT = D / 8;  // NT: the output's 8-column tiles
    extern __shared__ __align__(16) float smem[];
    float* Qs = smem;              // (64, D) in rows of LQK: this block's queries
    float* Ks = Qs + kTile * LQK;  // (64, D) in rows of LQK: the current key tile
    float* Vs = Ks + kTile * LQK;  // (64, D) in rows of LV: the current value tile
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int qr = warp * 16 + g;  // this lane's rows of the query tile: qr and qr + 8
    const int64_t bh = blockIdx.x;
    const int q_tile = gridDim.y - 1 - blockIdx.y;
    const int64_t q0 = static_cast<int64_t>(q_tile) * kTile, head = in.at(bh), ld = in.row;

    // Copies overlap the arithmetic as in attention_forward_kernel: V kt during the scores, K kt+1 during P V.
    copy_tile_async<D, LQK, kMmaThreads>(Qs, q + head, ld, q0, T, hs, vec);
    copy_tile_async<D, LQK, kMmaThreads>(Ks, k + head, ld, 0, T, hs, vec);
    cp_async_commit();
    float o[NT][4] = {};  // output tile n: (qr, 8n + 2t), (qr, 8n + 2t + 1), (qr + 8, 8n + 2t), (qr + 8, ...)
    float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};  // rows qr, qr + 8: as in the CUDA-core forward
    for (int kt = 0; kt <= q_tile; kt++) {
        const int64_t k0 = static_cast<int64_t>(kt) * kTile;
        cp_async_wait<0>();  // key tile kt has landed (this thread's copies; the barrier: everyone's),
        __syncthreads();     // and no warp reads the previous values any more ...
        copy_tile_async<D, LV, kMmaThreads>(Vs, v + head, ld, k0, T, hs, vec);  // ... so these may come in
        cp_async_commit();

        float s[8][4] = {};  // scores, laid out as o: keys 8n + 2t, 8n + 2t + 1 of rows qr, qr + 8
#pragma unroll 2
        for (int d = 0; d < D; d += 8) {
            const float2 qa = *reinterpret_cast<const float2*>(Qs + qr * LQK + d + 2 * t);
            const float2 qb = *reinterpret_cast<const float2*>(Qs + (qr + 8) * LQK + d + 2 * t);
            uint32_t a_hi[4], a_lo[4];  // a: (g, "t") = Q[qr][d + 2t], (g + 8, "t"), (g, "t + 4") = Q[qr][d + 2t + 1], ...
            split_tf32(qa.x, a_hi[0], a_lo[0]);
            split_tf32(qb.x, a_hi[1], a_lo[1]);
            split_tf32(qa.y, a_hi[2], a_lo[2]);
            split_tf32(qb.y, a_hi[3], a_lo[3]);
#pragma unroll
            for (int n = 0; n < 8; n++) {  // b: ("t", g) = K[8n + g][d + 2t], ("t + 4", g) = K[8n + g][d + 2t + 1]
                const float2 kb = *reinterpret_cast<const float2*>(Ks + (8 * n + g) * LQK + d + 2 * t);
                uint32_t b_hi[2], b_lo[2];
                split_tf32(kb.x, b_hi[0], b_lo[0]);
                split_tf32(kb.y, b_hi[1], b_lo[1]);
                mma_3xtf32(s[n], a_hi, a_lo, b_hi, b_lo);
            }
        }

#pragma unroll
        for (int h = 0; h < 2; h++) {  // row qr + 8h: registers 2h and 2h + 1 of each score tile
            const int64_t r = q0 + qr + 8 * h;
            float mx = -INFINITY;
#pragma unroll
            for (int n = 0; n < 8; n++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {  // scale into log2 units and mask the future (key past query)
                    float& x = s[n][2 * h + e];
                    x = (k0 + 8 * n + 2 * t + e <= r) ? x * scale_log2 : -INFINITY;
                    mx = fmaxf(mx, x);
                }
            }
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));  // the row's other three lanes
            mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
            const float m_new = fmaxf(m[h], mx);  // finite: key tile 0 comes first and holds key 0
            const float alpha = exp2f(m[h] - m_new);
            m[h] = m_new;
            l[h] *= alpha;
#pragma unroll
            for (int n = 0; n < NT; n++) {
                o[n][2 * h] *= alpha;
                o[n][2 * h + 1] *= alpha;
            }
#pragma unroll
            for (int n = 0; n < 8; n++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    float p = exp2f(s[n][2 * h + e] - m_new);
                    l[h] += p;  // the softmax's sum counts every weight; dropout acts after it
                    if (drop.on) { p *= dropout_keep(drop, bh, r, k0 + 8 * n + 2 * t + e, T) ? drop.keep_scale : 0.0f; }
                    s[n][2 * h + e] = p;
                }
            }
        }

        __syncthreads();  // every warp is done with the keys: the next ones may come in
        if (kt < q_tile) { copy_tile_async<D, LQK, kMmaThreads>(Ks, k + head, ld, k0 + kTile, T, hs, vec); }
        cp_async_commit();
        cp_async_wait<1>();  // this tile's values have landed (the next keys may still be on their way)
        __syncthreads();
#pragma unroll  // wholly: s[n] must be a register, not an indexed array in local memory
        for (int n = 0; n < 8; n++) {  // keys 8n .. 8n + 7: score tile n is P's operand, "t" = key 2t
            uint32_t a_hi[4], a_lo[4];
            split_tf32(s[n][0], a_hi[0], a_lo[0]);  // (qr, 8n + 2t)
            split_tf32(s[n][2], a_hi[1], a_lo[1]);  // (qr + 8, 8n + 2t)
            split_tf32(s[n][1], a_hi[2], a_lo[2]);  // (qr, 8n + 2t + 1)
            split_tf32(s[n][3], a_hi[3], a_lo[3]);  // (qr + 8, 8n + 2t + 1)
            const float* vr = Vs + (8 * n + 2 * t) * LV + g;  // b: V[8n + 2t][8j + g], V[8n + 2t + 1][8j + g]
#pragma unroll
            for (int j = 0; j < NT; j++) {
                uint32_t b_hi[2], b_lo[2];
                split_tf32(vr[8 * j], b_hi[0], b_lo[0]);
                split_tf32(vr[8 * j + LV], b_hi[1], b_lo[1]);
                mma_3xtf32(o[j], a_hi, a_lo, b_hi, b_lo);
            }
        }
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float lh = l[h];  // the row's sum: its four lanes' parts
        lh += __shfl_xor_sync(0xffffffffu, lh, 1);
        lh += __shfl_xor_sync(0xffffffffu, lh, 2);
        const int64_t r = q0 + qr + 8 * h;
        if (r >= T) { continue; }
        const float inv = 1.0f / lh;
        float* out_row = out + out_at.at(bh) + r * out_at.row;
#pragma unroll
        for (int j = 0; j < NT; j++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                const int col = 8 * j + 2 * t + e;
                if (col < hs) { out_row[col] = o[j][2 * h + e] * inv; }
            }
        }
        if (t == 0) { lse[bh * T + r] = (m[h] + log2f(lh)) * kLn2; }  // back to natural-log units
    }
#endif
}

// ----------------------------------------------------------------------------- flash backward

// rowsum(dout * out) per query row: the softmax backward's row term (it equals rowsum(dP * P)). Row
// bh * T + t of row_term is row t of head bh of dout and out, which are laid out as `at` says.
__global__ void attention_row_term_kernel(float* row_term, const float* dout, const float* out, HeadLayout at,
                                          int64_t T, int64_t rows, int64_t hs) {
    const int64_t row = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kWarp;
    const int lane = threadIdx.x % kWarp;
    if (row >= rows) { return; }
    const int64_t start = at.at(row / T) + row % T * at.row;
    float sum = 0.0f;
    for (int64_t d = lane; d < hs; d += kWarp) { sum += dout[start + d] * out[start + d]; }
    sum = warp_sum(sum);
    if (lane == 0) { row_term[row] = sum; }
}

template <int D>
constexpr size_t backward_smem() {
    return (4 * kTile * (D + 4) + kTile * (kTile + 4) + 2 * kTile) * sizeof(float);  // K, V, Q, dO; P or dS; lse, D
}

// grid (B * NH, key tiles); key tile 0 is seen by every query tile, so it has the most work and the
// lowest block index.
// dk, dv and a tile of dq live in registers. Up to D = 64 they fit in 128 a thread (a few values
// spill to the L1 cache, a handful of loads per tile against thousands of multiply-adds), so two
// blocks share an SM and one block's loads and barriers overlap the other's arithmetic; larger
// heads need 200 or more registers a thread: one block per SM.
template <int D>
__global__ void __launch_bounds__(kThreads, D <= 64 ? 2 : 1)
    attention_backward_kernel(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                              const float* v, const float* lse, const float* row_term, HeadLayout in,
                              HeadLayout out_at, int64_t T, int hs, float scale, Dropout drop, bool vec) {
    constexpr int LD = D + 4, LDP = kTile + 4, NC = D / 16;
    extern __shared__ __align__(16) float smem[];
    float* Ks = smem;                // (64, D): this block's keys
    float* Vs = Ks + kTile * LD;     // (64, D): this block's values
    float* Qs = Vs + kTile * LD;     // (64, D): the current query tile
    float* dOs = Qs + kTile * LD;    // (64, D): its output gradient
    float* Ps = dOs + kTile * LD;    // (64, 64): the dropped weights, then dS
    float* lse_s = Ps + kTile * LDP; // (64,): lse of the query tile (natural-log units)
    float* rt_s = lse_s + kTile;     // (64,): its row terms
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t bh = blockIdx.x, head = in.at(bh), ld = in.row;  // q, k, v and dq, dk, dv
    const int64_t head_out = out_at.at(bh), ld_out = out_at.row;     // dout
    const int kv_tile = blockIdx.y;
    const int64_t k0 = static_cast<int64_t>(kv_tile) * kTile;
    const int n_tiles = static_cast<int>((T + kTile - 1) / kTile);
    const float scale_log2 = scale * kLog2e;

    // The copies overlap the arithmetic, with no more shared memory than the tiles themselves: the next
    // output gradient arrives while dS, dk and dq are computed (dO is done with once dv has it), the next
    // query tile (with its lse and row terms) while dq is (Q is done with once dk has it). Group order:
    // K, V and the first query tile's inputs; then per tile the next dO and the next Q (empty groups
    // after the last tile keep the count).
    auto copy_query_side = [&](int64_t q0) {  // Q, lse and row terms of the query tile starting at q0
        copy_tile_async<D>(Qs, q + head, ld, q0, T, hs, vec);
        if (tid < kTile) {
            const bool inside = q0 + tid < T;
            cp_async_4(lse_s + tid, inside ? lse + bh * T + q0 + tid : lse, inside ? 4 : 0);
            cp_async_4(rt_s + tid, inside ? row_term + bh * T + q0 + tid : row_term, inside ? 4 : 0);
        }
    };
    copy_tile_async<D>(Ks, k + head, ld, k0, T, hs, vec);
    copy_tile_async<D>(Vs, v + head, ld, k0, T, hs, vec);
    copy_query_side(k0);  // the first query tile is the block's own, kv_tile
    copy_tile_async<D>(dOs, dout + head_out, ld_out, k0, T, hs, vec);
    cp_async_commit();
    float dK[4][NC] = {}, dV[4][NC] = {};  // rows ty*4 .. +3 of this block's keys
    for (int qt = kv_tile; qt < n_tiles; qt++) {  // causal: only query tiles at or after the keys
        const int64_t q0 = static_cast<int64_t>(qt) * kTile;
        const bool more = qt + 1 < n_tiles;
        cp_async_wait<0>();  // this thread's copies of query tile qt and its dO have landed,
        __syncthreads();     // and everyone's; and the previous tile's dq no longer reads dS
        float s[4][4], dp[4][4];
        tile_dot<D>(s, Qs, Ks, ty, tx);    // scores: rows are queries, columns keys
        tile_dot<D>(dp, dOs, Vs, ty, tx);  // gradient w.r.t. the dropped weights
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t r = q0 + ty * 4 + i;
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int64_t c = k0 + tx + 16 * j;
                const bool visible = c <= r && r < T;
                const float p = visible ? exp2f(s[i][j] * scale_log2 - lse_s[ty * 4 + i] * kLog2e) : 0.0f;  // weight
                const float keep = drop.on ? (dropout_keep(drop, bh, r, c, T) ? drop.keep_scale : 0.0f) : 1.0f;
                Ps[(ty * 4 + i) * LDP + tx + 16 * j] = p * keep;                    // for dv
                dp[i][j] = p * (dp[i][j] * keep - rt_s[ty * 4 + i]) * scale;          // dS, kept for below
            }
        }
        __syncthreads();
        add_pt_times<D>(dV, Ps, dOs, ty, tx);  // dv += P_dropped^T dO
        __syncthreads();                       // dO and P are no longer read
        if (more) { copy_tile_async<D>(dOs, dout + head_out, ld_out, q0 + kTile, T, hs, vec); }
        cp_async_commit();
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int j = 0; j < 4; j++) { Ps[(ty * 4 + i) * LDP + tx + 16 * j] = dp[i][j]; }
        }
        __syncthreads();
        add_pt_times<D>(dK, Ps, Qs, ty, tx);  // dk += dS^T Q
        __syncthreads();                      // Q, lse and the row terms are no longer read
        if (more) { copy_query_side(q0 + kTile); }
        cp_async_commit();
        float dQ[4][NC] = {};
        add_p_times<D>(dQ, Ps, Ks, ty, tx);   // this key tile's share of dq = dS K
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int64_t r = q0 + ty * 4 + i;
            if (r >= T) { continue; }
            add_row_part<D>(dq + head + r * ld, dQ[i], tx, hs, vec);
        }
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int64_t r = k0 + ty * 4 + i;
        if (r >= T) { continue; }
#pragma unroll
        for (int j = 0; j < NC; j++) {
            const int col = dcol<D>(tx, j);
            if (col < hs) {
                dk[head + r * ld + col] += dK[i][j];
                dv[head + r * ld + col] += dV[i][j];
            }
        }
    }
}

// ----------------------------------------------------------------------------- launch

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

struct Launch {
    int64_t BH, T, hs;
    HeadLayout in, out;  // q, k, v (and dq, dk, dv); out (and dout)
    float scale;
    Dropout drop;
    bool vec;
    cudaStream_t stream;
};

// The two forward kernels take the same arguments; a launch differs in the kernel, its threads, its
// shared memory and the name its errors carry.
using ForwardKernel = void (*)(float*, float*, const float*, const float*, const float*, HeadLayout, HeadLayout,
                               int64_t, int, float, Dropout, bool);

void launch_forward(ForwardKernel kernel, int threads, size_t smem, const char* name, float* out, float* lse,
                    const float* q, const float* k, const float* v, const Launch& L) {
    allow_smem_once(kernel, smem, std::string(name) + ": head size " + std::to_string(L.hs));
    const dim3 grid(static_cast<unsigned>(L.BH), static_cast<unsigned>((L.T + kTile - 1) / kTile));
    kernel<<<grid, threads, smem, L.stream>>>(out, lse, q, k, v, L.in, L.out, L.T, static_cast<int>(L.hs),
                                              L.scale * kLog2e, L.drop, L.vec);
    check_launch(name);
}

template <int D>
void backward_launch(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                     const float* v, const float* lse, const float* row_term, const Launch& L) {
    constexpr size_t smem = backward_smem<D>();
    allow_smem_once(attention_backward_kernel<D>, smem, "attention: head size " + std::to_string(L.hs));
    const dim3 grid(static_cast<unsigned>(L.BH), static_cast<unsigned>((L.T + kTile - 1) / kTile));
    attention_backward_kernel<D><<<grid, kThreads, smem, L.stream>>>(dq, dk, dv, dout, q, k, v, lse, row_term, L.in,
                                                                     L.out, L.T, static_cast<int>(L.hs), L.scale,
                                                                     L.drop, L.vec);
    check_launch("attention_backward_kernel");
}

// The smallest compiled tile width D >= hs.
int head_width(int64_t hs) {
    for (int D : {16, 32, 64, 80, 96, 128}) {
        if (hs <= D) { return D; }
    }
    throw std::invalid_argument("attention: head size " + std::to_string(hs) + " is larger than " +
                                std::to_string(kAttentionMaxHeadSize) + ", the largest the CUDA kernels take");
}

Launch make_launch(int64_t B, int64_t NH, int64_t T, int64_t hs, HeadLayout in, HeadLayout out, double dropout_p,
                   uint64_t seed, bool vec, cudaStream_t stream) {
    if ((T + kTile - 1) / kTile > 65535) { throw std::invalid_argument("attention: T is too long for one launch"); }
    if (B * NH > 2147483647) { throw std::invalid_argument("attention: B * NH is too large for one launch"); }
    return {B * NH, T, hs, in, out, static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs))),
            make_dropout(dropout_p, seed), vec, stream};
}

// Calls launch(std::integral_constant<int, D>) with the compiled tile width D for head size hs.
template <typename Fn>
void with_head_width(int64_t hs, Fn&& launch) {
    switch (head_width(hs)) {
        case 16: launch(std::integral_constant<int, 16>{}); break;
        case 32: launch(std::integral_constant<int, 32>{}); break;
        case 64: launch(std::integral_constant<int, 64>{}); break;
        case 80: launch(std::integral_constant<int, 80>{}); break;
        case 96: launch(std::integral_constant<int, 96>{}); break;
        default: launch(std::integral_constant<int, 128>{}); break;
    }
}

void forward(float* out, float* lse, const float* q, const float* k, const float* v, const Launch& L) {
    with_head_width(L.hs, [&](auto D) {
        launch_forward(attention_forward_kernel<D>, kThreads, forward_smem<D>(), "attention_forward_kernel", out, lse,
                       q, k, v, L);
    });
}

void forward_mma(float* out, float* lse, const float* q, const float* k, const float* v, const Launch& L) {
    if (!device_is_ampere_or_newer()) {
        throw std::invalid_argument("attention on the tensor cores needs compute capability 8.0 (Ampere) or newer");
    }
    with_head_width(L.hs, [&](auto D) {
        launch_forward(attention_forward_mma_kernel<D>, kMmaThreads, forward_mma_smem<D>(),
                       "attention_forward_mma_kernel", out, lse, q, k, v, L);
    });
}

void backward(float* dq, float* dk, float* dv, float* scratch, const float* dout, const float* q, const float* k,
              const float* v, const float* out, const float* lse, const Launch& L) {
    const int64_t rows = L.BH * L.T;
    attention_row_term_kernel<<<static_cast<unsigned>((rows + kRowsPerBlock - 1) / kRowsPerBlock),
                                kRowsPerBlock * kWarp, 0, L.stream>>>(scratch, dout, out, L.out, L.T, rows, L.hs);
    check_launch("attention_row_term_kernel");
    with_head_width(L.hs, [&](auto D) { backward_launch<D>(dq, dk, dv, dout, q, k, v, lse, scratch, L); });
}

}  // namespace

namespace {

// The launch of a forward over q, k, v and out with their heads apart, (B, NH, T, hs) each.
Launch forward_heads_apart(const float* q, const float* k, const float* v, int64_t B, int64_t NH, int64_t T,
                           int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    const bool vec = hs % 4 == 0 && aligned16(q) && aligned16(k) && aligned16(v);
    const HeadLayout apart = heads_apart(NH, T, hs);
    return make_launch(B, NH, T, hs, apart, apart, dropout_p, seed, vec, stream);
}

}  // namespace

void attention_forward_cuda(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                            int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    if (B * NH * T == 0 || hs == 0) { return; }
    forward(out, lse, q, k, v, forward_heads_apart(q, k, v, B, NH, T, hs, dropout_p, seed, stream));
}

void attention_forward_mma_cuda(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                                int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    if (B * NH * T == 0 || hs == 0) { return; }
    forward_mma(out, lse, q, k, v, forward_heads_apart(q, k, v, B, NH, T, hs, dropout_p, seed, stream));
}

void attention_backward_cuda(float* dq, float* dk, float* dv, float* scratch, const float* dout, const float* q,
                             const float* k, const float* v, const float* out, const float* lse, int64_t B, int64_t NH,
                             int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    if (B * NH * T == 0 || hs == 0) { return; }
    const bool vec = hs % 4 == 0 && aligned16(q) && aligned16(k) && aligned16(v) && aligned16(dout) && aligned16(dq);
    const HeadLayout apart = heads_apart(NH, T, hs);
    backward(dq, dk, dv, scratch, dout, q, k, v, out, lse,
             make_launch(B, NH, T, hs, apart, apart, dropout_p, seed, vec, stream));
}

// q, k, v are the three C-wide thirds of each qkv row; with hs % 4 == 0, C and 3C are multiples of 4 too,
// so every row of every head starts 16-byte aligned when qkv does.
void attention_forward_fused_cuda(float* y, float* lse, const float* qkv, int64_t B, int64_t NH, int64_t T,
                                  int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    if (B * NH * T == 0 || hs == 0) { return; }
    const int64_t C = NH * hs;
    const bool vec = hs % 4 == 0 && aligned16(qkv);  // vec only picks the loads; y is written a float at a time
    const Launch L = make_launch(B, NH, T, hs, heads_side_by_side(NH, T, hs, 3 * C), heads_side_by_side(NH, T, hs, C),
                                 dropout_p, seed, vec, stream);
    forward(y, lse, qkv, qkv + C, qkv + 2 * C, L);
}

void attention_backward_fused_cuda(float* dqkv, float* scratch, const float* dy, const float* qkv, const float* y,
                                   const float* lse, int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p,
                                   uint64_t seed, cudaStream_t stream) {
    if (B * NH * T == 0 || hs == 0) { return; }
    const int64_t C = NH * hs;
    const bool vec = hs % 4 == 0 && aligned16(qkv) && aligned16(dy) && aligned16(dqkv);
    const Launch L = make_launch(B, NH, T, hs, heads_side_by_side(NH, T, hs, 3 * C), heads_side_by_side(NH, T, hs, C),
                                 dropout_p, seed, vec, stream);
    backward(dqkv, dqkv + C, dqkv + 2 * C, scratch, dy, qkv, qkv + C, qkv + 2 * C, y, lse, L);
}

void attention_forward_naive_cuda(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                                  int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                                  cudaStream_t stream) {
    const int64_t rows = B * NH * T;
    if (rows == 0) { return; }
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs)));
    attention_forward_naive_kernel<<<grid_for(rows, 128, INT32_MAX), 128, 0, stream>>>(
        out, lse, q, k, v, B * NH, T, hs, scale, make_dropout(dropout_p, seed));
    check_launch("attention_forward_naive_kernel");
}

void attention_backward_naive_cuda(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                   const float* v, const float* out, const float* lse, int64_t B, int64_t NH,
                                   int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream) {
    const int64_t rows = B * NH * T;
    if (rows == 0) { return; }
    const float scale = static_cast<float>(1.0 / std::sqrt(static_cast<double>(hs)));
    attention_backward_naive_kernel<<<grid_for(rows, 128, INT32_MAX), 128, 0, stream>>>(
        dq, dk, dv, dout, q, k, v, out, lse, B * NH, T, hs, scale, make_dropout(dropout_p, seed));
    check_launch("attention_backward_naive_kernel");
}

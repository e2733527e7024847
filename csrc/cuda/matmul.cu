// matmul on the GPU: out = op(a) @ op(b) (+ bias), op(x) = x or x^T, row-major float32.
// Follows minigpt/kernels/matmul.py. Six kernels, in the order to read them:
//
//   naive   one thread per output element, reading a row of op(a) and a column of op(b) from global
//           memory: every input is read M or N times over, so it runs at memory speed.
//   tiled   a 16 x 16 block of threads stages 16 x 16 tiles of op(a) and op(b) in shared memory; each
//           value loaded from global memory is then used 16 times.
//   staged  128 x 128 output tiles with 8 x 8 outputs per thread held in registers: per step of k a
//           thread reads 8 + 8 values from shared memory and does 64 multiply-adds. Double-buffered
//           through registers, so the next step's global loads overlap this step's math; float4 loads
//           where the layout allows; K split across blocks when the output tiles alone would fill the
//           GPU's waves badly (choose_splits). The tuned kernel of GPUs older than Ampere.
//   tuned   (matmul_forward_cuda) the staged kernel's tiles and arithmetic, fed by asynchronous copies
//           (cp.async) straight into shared memory, three k steps ahead.
//   tf32    the same 128 x 128 tiles on the tensor cores in TF32, fed by asynchronous copies two k
//           steps ahead; an option that is off by default (set_matmul_tf32_cuda): several times
//           faster, but about 1e-3 relative error instead of 1e-6.
//   wgmma   the TF32 option on Hopper (H100, H200): the same tiles, multiplied by Hopper's
//           warpgroup instructions straight from shared memory.
//
// In all of them, op(a)(m, k) = trans_a ? a[k * M + m] : a[m * K + k] (and likewise for b): the
// transpose is a different index, never a copy.
#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common.cuh"
#include "kernels_cuda.h"
#include "ptx.cuh"

// The current device's id, as an index into the per-device caches below (at most 64 devices).
int current_device() {
    int device = 0;
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    return device < 64 ? device : 63;
}

namespace {

// An attribute of the current device, read once per device into `cache` (by device id; 0: not read yet).
int device_attribute(cudaDeviceAttr attr, int (&cache)[64]) {
    const int device = current_device();
    if (cache[device] == 0) { cuda_check(cudaDeviceGetAttribute(&cache[device], attr, device), "cudaDeviceGetAttribute"); }
    return cache[device];
}

}  // namespace

int sm_count() {
    static int counts[64] = {0};
    return device_attribute(cudaDevAttrMultiProcessorCount, counts);
}

namespace {

// The current device's compute capability as 10 major + minor (80 for an A100, 90 for an H100), read
// once per device: a cache of its own, since a minor of 0 would read as "not read yet" in device_attribute's.
int compute_capability() {
    static int capabilities[64] = {0};
    const int device = current_device();
    if (capabilities[device] == 0) {
        int major = 0, minor = 0;
        cuda_check(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device), "cudaDeviceGetAttribute");
        cuda_check(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device), "cudaDeviceGetAttribute");
        capabilities[device] = 10 * major + minor;
    }
    return capabilities[device];
}

// wgmma runs on compute capability 9.0 exactly (H100, H200), from code built for sm_90a: CMake defines
// MINIGPT_WGMMA when CMAKE_CUDA_ARCHITECTURES names 90a. (Without it the kernel traps: never zeros.)
bool wgmma_available() {
#if defined(MINIGPT_WGMMA)
    return compute_capability() == 90;
#else
    return false;
#endif
}

// A kernel choice the environment may override. Unset (or empty), `variable` gives the `preferred` kernel
// where it runs, else the `other`; set to either name, that one (the preferred one only where it runs,
// else it throws, as for anything else): to compare the two, or to go around a kernel that fails on some
// GPU (benchmarks/cuda_check.sh sets these when its first look at each kernel finds one broken). Read at
// every call, like MINIGPT_SIMD in attention.cpp, so a test can switch it.
bool environment_picks_preferred(const char* variable, const std::string& preferred, const std::string& other,
                                 bool preferred_runs, const char* preferred_needs) {
    const char* env = std::getenv(variable);
    const std::string wanted = env != nullptr ? env : "";
    if (wanted.empty()) { return preferred_runs; }
    if (wanted == other) { return false; }
    if (wanted == preferred && !preferred_runs) {
        throw std::invalid_argument(std::string(variable) + "=" + preferred + ", but " + preferred + " needs " +
                                    preferred_needs + ": unset it or pick " + other);
    }
    if (wanted == preferred) { return true; }
    throw std::invalid_argument(std::string(variable) + " must be " + preferred + " or " + other +
                                " (or unset, for the best this GPU runs), got '" + wanted + "'");
}

// The TF32 kernel matmul runs: wgmma where it can run, else mma.sync (MINIGPT_CUDA_TF32_KERNEL).
bool tf32_uses_wgmma() {
    return environment_picks_preferred("MINIGPT_CUDA_TF32_KERNEL", "wgmma", "mma.sync", wgmma_available(),
                                       "compute capability 9.0 (H100, H200) and a build for sm_90a");
}

// The float32 kernel matmul runs: the tuned one, fed by cp.async, from Ampere on; else the staged one
// (MINIGPT_CUDA_FLOAT32_KERNEL).
bool float32_uses_cp_async() {
    return environment_picks_preferred("MINIGPT_CUDA_FLOAT32_KERNEL", "cp.async", "staged",
                                       compute_capability() >= 80, "compute capability 8.0 or newer");
}

}  // namespace

bool device_is_ampere_or_newer() { return compute_capability() >= 80; }

namespace {

// Element (r, c) of a row-major matrix x with leading dimension ld, read transposed when TRANS.
template <bool TRANS>
__device__ __forceinline__ float at(const float* x, int64_t r, int64_t c, int64_t ld) {
    return TRANS ? x[c * ld + r] : x[r * ld + c];
}

// ----------------------------------------------------------------------------- naive

template <bool TA, bool TB>
__global__ void matmul_naive_kernel(float* out, const float* a, const float* b, const float* bias, int64_t M,
                                    int64_t N, int64_t K) {
    // threadIdx.x runs along n, so a warp writes 32 consecutive outputs (a coalesced store)
    const int64_t n = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    const int64_t m = blockIdx.y * static_cast<int64_t>(blockDim.y) + threadIdx.y;
    if (m >= M || n >= N) { return; }
    const int64_t lda = TA ? M : K, ldb = TB ? K : N;
    float acc = 0.0f;
    for (int64_t k = 0; k < K; k++) { acc += at<TA>(a, m, k, lda) * at<TB>(b, k, n, ldb); }
    out[m * N + n] = acc + (bias ? bias[n] : 0.0f);
}

// ----------------------------------------------------------------------------- tiled

constexpr int kTile16 = 16;

template <bool TA, bool TB>
__global__ void matmul_tiled_kernel(float* out, const float* a, const float* b, const float* bias, int64_t M,
                                    int64_t N, int64_t K) {
    __shared__ float As[kTile16][kTile16];      // op(a)[m0 .. m0+15, k0 .. k0+15]
    __shared__ float Bs[kTile16][kTile16];      // op(b)[k0 .., n0 ..]; a warp reads rows of both: no padding
    const int tx = threadIdx.x, ty = threadIdx.y;
    const int64_t m = blockIdx.y * static_cast<int64_t>(kTile16) + ty;
    const int64_t n = blockIdx.x * static_cast<int64_t>(kTile16) + tx;
    const int64_t lda = TA ? M : K, ldb = TB ? K : N;
    float acc = 0.0f;
    for (int64_t k0 = 0; k0 < K; k0 += kTile16) {
        // every thread loads one element of each tile (zero past the edges), then all wait
        As[ty][tx] = (m < M && k0 + tx < K) ? at<TA>(a, m, k0 + tx, lda) : 0.0f;
        Bs[ty][tx] = (k0 + ty < K && n < N) ? at<TB>(b, k0 + ty, n, ldb) : 0.0f;
        __syncthreads();
        for (int kk = 0; kk < kTile16; kk++) { acc += As[ty][kk] * Bs[kk][tx]; }
        __syncthreads();  // before the next iteration overwrites the tiles
    }
    if (m < M && n < N) { out[m * N + n] = acc + (bias ? bias[n] : 0.0f); }
}

// ----------------------------------------------------------------------------- tuned: what both versions share

constexpr int BM = 128, BN = 128, BK = 8;  // output tile and k step
constexpr int kThreads = 256;              // 16 x 16 threads, 8 x 8 outputs each
constexpr int kPad = 4;                    // shared rows of 132 floats: the transposing stores avoid bank conflicts
using KRow = float[BM + kPad];             // a row of a k-major tile S[k][i], for either operand:
static_assert(BM == BN, "one row length serves both operands' tiles");

// One k step of the multiply, from the k-major tiles As[k][m] and Bs[k][n]. Thread (ty, tx) owns rows
// {ty*4 .. ty*4+3, 64+ty*4 .. 64+ty*4+3} and the same pattern of columns with tx: per value of k it
// reads 8 + 8 values (four float4 reads, falling on distinct banks across a quarter warp) and does 64
// multiply-adds into the registers acc.
__device__ __forceinline__ void multiply_k_step(float (&acc)[8][8], const KRow* As, const KRow* Bs, int tx, int ty) {
#pragma unroll
    for (int kk = 0; kk < BK; kk++) {
        const float4 a0 = *reinterpret_cast<const float4*>(&As[kk][ty * 4]);
        const float4 a1 = *reinterpret_cast<const float4*>(&As[kk][64 + ty * 4]);
        const float4 b0 = *reinterpret_cast<const float4*>(&Bs[kk][tx * 4]);
        const float4 b1 = *reinterpret_cast<const float4*>(&Bs[kk][64 + tx * 4]);
        const float av[8] = {a0.x, a0.y, a0.z, a0.w, a1.x, a1.y, a1.z, a1.w};
        const float bv[8] = {b0.x, b0.y, b0.z, b0.w, b1.x, b1.y, b1.z, b1.w};
#pragma unroll
        for (int i = 0; i < 8; i++) {
#pragma unroll
            for (int j = 0; j < 8; j++) { acc[i][j] += av[i] * bv[j]; }
        }
    }
}

// Four consecutive outputs of a row, of which `valid` (at most 4) lie inside it: one float4 store when
// aligned and whole, else one at a time; added with atomicAdd when K is split across blocks.
__device__ __forceinline__ void store_four(float* dst, const float (&v)[4], int64_t valid, bool vec, bool split) {
    if (split) {
#if __CUDA_ARCH__ >= 900  // Hopper adds four floats in one atomic: a quarter of the atomic operations
        if (vec && valid >= 4) {
            atomicAdd(reinterpret_cast<float4*>(dst), make_float4(v[0], v[1], v[2], v[3]));
            return;
        }
#endif
        for (int e = 0; e < 4; e++) {
            if (e < valid) { atomicAdd(dst + e, v[e]); }
        }
    } else if (vec && valid >= 4) {
        *reinterpret_cast<float4*>(dst) = make_float4(v[0], v[1], v[2], v[3]);
    } else {
        for (int e = 0; e < 4; e++) {
            if (e < valid) { dst[e] = v[e]; }
        }
    }
}

// The thread's 8 x 8 outputs (plus the bias, added by the first slice of k) into out.
__device__ __forceinline__ void store_outputs(float* out, const float (&acc)[8][8], const float* bias, int64_t m0,
                                              int64_t n0, int64_t M, int64_t N, int tx, int ty, bool vec_out,
                                              bool split) {
    const bool add_bias = bias != nullptr && blockIdx.z == 0;
#pragma unroll
    for (int i = 0; i < 8; i++) {
        const int64_t m = m0 + (i / 4) * 64 + ty * 4 + i % 4;
        if (m >= M) { continue; }
#pragma unroll
        for (int g = 0; g < 2; g++) {
            const int64_t n = n0 + g * 64 + tx * 4;
            float v[4];
#pragma unroll
            for (int e = 0; e < 4; e++) { v[e] = acc[i][g * 4 + e] + (add_bias && n + e < N ? bias[n + e] : 0.0f); }
            store_four(out + m * N + n, v, N - n, vec_out, split);
        }
    }
}

// ----------------------------------------------------------------------------- tuned, before Ampere: staged

// One k step of a 128-wide operand tile: S[k][i] = x(i0 + i, k0 + k) for i < 128, k < 8, where
// x(i, k) is op(a)(m, k) for a and op(b)(k, n) for b. CONTIG_K says which index is contiguous in
// memory: x(i, k) = x[i * ld + k] (CONTIG_K) or x[k * ld + i]. Each thread moves 4 consecutive
// values along the contiguous index, with one float4 load when `vec` (ld % 4 == 0 and a 16-byte
// aligned base) and the four are in range, else four checked scalar loads.
template <bool CONTIG_K>
__device__ __forceinline__ void load_operand(float (&r)[4], const float* x, int64_t ld, int64_t i0, int64_t k0,
                                             int64_t I, int64_t k_end, bool vec, int tid) {
    if (CONTIG_K) {  // thread: row i = tid / 2, k = 0..3 or 4..7
        const int64_t i = i0 + tid / 2, k = k0 + (tid % 2) * 4;
        if (vec && i < I && k + 3 < k_end) {
            const float4 t = *reinterpret_cast<const float4*>(x + i * ld + k);
            r[0] = t.x; r[1] = t.y; r[2] = t.z; r[3] = t.w;
        } else {
            for (int e = 0; e < 4; e++) { r[e] = (i < I && k + e < k_end) ? x[i * ld + k + e] : 0.0f; }
        }
    } else {  // thread: k = tid / 32, i = 4 consecutive of 128
        const int64_t k = k0 + tid / 32, i = i0 + (tid % 32) * 4;
        if (vec && k < k_end && i + 3 < I) {
            const float4 t = *reinterpret_cast<const float4*>(x + k * ld + i);
            r[0] = t.x; r[1] = t.y; r[2] = t.z; r[3] = t.w;
        } else {
            for (int e = 0; e < 4; e++) { r[e] = (k < k_end && i + e < I) ? x[k * ld + i + e] : 0.0f; }
        }
    }
}

// The matching store into shared memory, k-major: S[k][i], so the compute loop reads a row of 128.
template <bool CONTIG_K>
__device__ __forceinline__ void store_operand(KRow* S, const float (&r)[4], int tid) {
    if (CONTIG_K) {
        const int i = tid / 2, k = (tid % 2) * 4;
        for (int e = 0; e < 4; e++) { S[k + e][i] = r[e]; }
    } else {
        const int k = tid / 32, i = (tid % 32) * 4;
        *reinterpret_cast<float4*>(&S[k][i]) = make_float4(r[0], r[1], r[2], r[3]);
    }
}

// The tuned kernel for GPUs without cp.async (compute capability below 8.0). Double-buffered through
// registers: the loads of the next k step are issued before this step's multiply-adds and stored to
// the other shared buffer after them, so global memory's latency hides behind the arithmetic.
// blockIdx.z picks a slice of k when the launch splits K; the slices are then added with atomicAdd
// into a zeroed output, and the first slice adds the bias. Two blocks share an SM when a thread
// needs at most 128 registers (the 64 accumulators, 16 operands and the 8 values in flight fit).
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads, 2)
    matmul_staged_kernel(float* __restrict__ out, const float* __restrict__ a, const float* __restrict__ b,
                         const float* __restrict__ bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split,
                         bool vec_a, bool vec_b, bool vec_out, bool split) {
    __shared__ __align__(16) float As[2][BK][BM + kPad];  // op(a) tile, k-major, double-buffered
    __shared__ __align__(16) float Bs[2][BK][BN + kPad];  // op(b) tile, k-major
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
    const int64_t k_begin = blockIdx.z * k_per_split, k_end = min(K, k_begin + k_per_split);
    const int64_t lda = TA ? M : K, ldb = TB ? K : N;
    constexpr bool A_CONTIG_K = !TA, B_CONTIG_K = TB;  // op(a)(m, k) runs along k in memory unless transposed

    float acc[8][8] = {};
    float ra[4], rb[4];  // the next k step's values, in flight from global memory
    load_operand<A_CONTIG_K>(ra, a, lda, m0, k_begin, M, k_end, vec_a, tid);
    load_operand<B_CONTIG_K>(rb, b, ldb, n0, k_begin, N, k_end, vec_b, tid);
    store_operand<A_CONTIG_K>(As[0], ra, tid);
    store_operand<B_CONTIG_K>(Bs[0], rb, tid);
    __syncthreads();

    int buf = 0;
    for (int64_t k0 = k_begin; k0 < k_end; k0 += BK) {
        const bool more = k0 + BK < k_end;
        if (more) {  // issue the next step's loads now; they complete while the math below runs
            load_operand<A_CONTIG_K>(ra, a, lda, m0, k0 + BK, M, k_end, vec_a, tid);
            load_operand<B_CONTIG_K>(rb, b, ldb, n0, k0 + BK, N, k_end, vec_b, tid);
        }
        multiply_k_step(acc, As[buf], Bs[buf], tx, ty);
        if (more) {  // the other buffer was last read before the previous barrier: safe to fill
            store_operand<A_CONTIG_K>(As[buf ^ 1], ra, tid);
            store_operand<B_CONTIG_K>(Bs[buf ^ 1], rb, tid);
        }
        __syncthreads();
        buf ^= 1;
    }
    store_outputs(out, acc, bias, m0, n0, M, N, tx, ty, vec_out, split);
}

// ----------------------------------------------------------------------------- tuned: pipelined by cp.async

constexpr int kStages = 4;  // k steps held in shared memory at once: one multiplied, three arriving
constexpr int kStepFloats = BK * (BM + kPad);  // one operand's k step
constexpr size_t kPipelinedSmemBytes = sizeof(float) * kStages * 2 * kStepFloats;  // 33 KiB

// A thread's share of copying one operand's k steps straight from global memory into the k-major tiles
// S[k][i] that multiply_k_step reads, by cp.async (ptx.cuh): no registers in between, and what lies
// past the edges (i >= I or k >= k_end) filled with zeros by the copy itself. x, ld, CONTIG_K and I as
// in load_operand. Each thread has one value of k in a step and copies 4 floats, at i + 32 e, or with
// `vec` the 4 floats i .. i + 3 as one 16-byte copy:
//   memory runs along k (CONTIG_K, x(i, k) = x[i * ld + k]): a row's 8 values of k land in a column of
//     S, so only single floats fit. k = tid % 8, i = tid / 8: a warp's copy reads 4 rows x 32 bytes (4
//     whole sectors) and writes S[k][i] for 8 k x 4 i, banks (4 k + i) % 32, all distinct.
//   memory runs along i (x(i, k) = x[k * ld + i]): S's rows are pieces of x's rows. k = tid / 32, and
//     i = 4 (tid % 32) with `vec`, else i = tid % 32: a warp's copy reads consecutive bytes and writes
//     consecutive banks.
// copy_next copies the next step, from k_begin on: the source just moves on by a step each time.
template <bool CONTIG_K>
struct KStepCopier {
    const float* x;    // the operand; also the (valid) address that a copy of nothing names
    const float* src;  // this thread's first float in the next step
    int64_t ld;
    int64_t k_left;    // values of k from the thread's own in the next step to k_end: > 0 if that is inside
    int dst;           // its first float's place in a tile: S[k][i] = S + dst
    int inside;        // vec: how many of its 4 floats lie inside I; else bit e: float e does
    bool all_inside;   // all 4 do
    bool vec;          // 16-byte copies: memory runs along i, ld % 4 == 0 and x 16-byte aligned

    __device__ __forceinline__ KStepCopier(const float* x_, int64_t ld_, int64_t i0, int64_t I, int64_t k_begin,
                                           int64_t k_end, bool vec_, int tid)
        : x(x_), ld(ld_), vec(vec_ && !CONTIG_K) {
        const int k = CONTIG_K ? tid % BK : tid / 32;
        const int i = CONTIG_K ? tid / BK : (vec ? 4 * (tid % 32) : tid % 32);
        src = CONTIG_K ? x + (i0 + i) * ld + k_begin + k : x + (k_begin + k) * ld + i0 + i;
        k_left = k_end - k_begin - k;
        dst = k * (BM + kPad) + i;
        all_inside = i0 + i + (vec ? 3 : 96) < I;  // its last float
        if (vec) {
            inside = static_cast<int>(min(max(I - (i0 + i), int64_t{0}), int64_t{4}));
        } else {
            inside = 0;
            for (int e = 0; e < 4; e++) { inside |= (i0 + i + 32 * e < I) << e; }
        }
    }

    // The source of float e of the thread's 4 (when not vec).
    __device__ __forceinline__ const float* source(int e) const { return src + e * (CONTIG_K ? 32 * ld : 32); }

    // Copy the next k step into the tile S.
    __device__ __forceinline__ void copy_next(float* S) {
        if (k_left > 0 && all_inside) {  // the usual case: no checks
            if (vec) {
                cp_async_16(S + dst, src, 16);
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) { cp_async_4(S + dst + 32 * e, source(e), 4); }
            }
        } else if (vec) {  // at an edge: what lies outside reads nothing and lands as zeros
            const int valid = k_left > 0 ? inside : 0;
            cp_async_16(S + dst, valid > 0 ? src : x, 4 * valid);
        } else {
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const bool ok = k_left > 0 && (inside >> e & 1);
                cp_async_4(S + dst + 32 * e, ok ? source(e) : x, ok ? 4 : 0);
            }
        }
        src += CONTIG_K ? BK : BK * ld;
        k_left -= BK;
    }
};

// The tuned kernel (compute capability 8.0 and newer): the same tiles, threads and multiply as the
// staged kernel, fed by cp.async kStages deep. While the warps multiply step s, steps s + 1 .. s + 3
// are still arriving, so a slow load stalls nothing unless it is three steps late; one barrier per
// step; no registers hold loads in flight. The float32 cuBLAS kernels that PyTorch ran on our H100
// for the same shapes are built the same way, by their names: 128 x 128 (or 128 x 64) tiles, k steps
// of 8, 3 or 4 stages ("..._tilesize128x128x8_stage3", "cutlass_80_simt_sgemm_128x128_8x4_...").
// Split K and the bias as in the staged kernel.
template <bool TA, bool TB>
__global__ void __launch_bounds__(kThreads, 2)
    matmul_kernel(float* __restrict__ out, const float* __restrict__ a, const float* __restrict__ b,
                  const float* __restrict__ bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split, bool vec_a,
                  bool vec_b, bool vec_out, bool split) {
    extern __shared__ __align__(16) float smem[];  // kStages x (a's step, b's step), each k-major
    const int tid = threadIdx.x, tx = tid % 16, ty = tid / 16;
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
    const int64_t k_begin = blockIdx.z * k_per_split, k_end = min(K, k_begin + k_per_split);
    const int64_t steps = (k_end - k_begin + BK - 1) / BK;
    constexpr bool A_CONTIG_K = !TA, B_CONTIG_K = TB;  // op(a)(m, k) runs along k in memory unless transposed
    // a is (M, K), or (K, M) when TA; b is (K, N), or (N, K) when TB
    KStepCopier<A_CONTIG_K> copy_a(a, TA ? M : K, m0, M, k_begin, k_end, vec_a, tid);
    KStepCopier<B_CONTIG_K> copy_b(b, TB ? K : N, n0, N, k_begin, k_end, vec_b, tid);
    auto a_tile = [&](int stage) { return smem + stage * 2 * kStepFloats; };
    auto b_tile = [&](int stage) { return smem + (stage * 2 + 1) * kStepFloats; };
    auto copy_next_step = [&](int stage) {  // the step after the one copied last, into the given stage
        copy_a.copy_next(a_tile(stage));
        copy_b.copy_next(b_tile(stage));
    };

    float acc[8][8] = {};
    // Group s of cp.async copies carries step s; empty groups past the end keep that count exact.
#pragma unroll
    for (int s = 0; s < kStages - 1; s++) {
        if (s < steps) { copy_next_step(s); }
        cp_async_commit();
    }
    int read = 0, refill = kStages - 1;  // the stage multiplied now, the stage being refilled
    for (int64_t step = 0; step < steps; step++) {
        cp_async_wait<kStages - 2>();  // this thread's copies of `step` have landed,
        __syncthreads();                // and everyone's; and every warp is done with step - 1's stage ...
        if (step + kStages - 1 < steps) { copy_next_step(refill); }  // step + 3, into the stage this frees
        cp_async_commit();
        multiply_k_step(acc, reinterpret_cast<const KRow*>(a_tile(read)), reinterpret_cast<const KRow*>(b_tile(read)),
                        tx, ty);
        read = read + 1 == kStages ? 0 : read + 1;
        refill = refill + 1 == kStages ? 0 : refill + 1;
    }
    store_outputs(out, acc, bias, m0, n0, M, N, tx, ty, vec_out, split);
}

// ----------------------------------------------------------------------------- tf32 (tensor cores, optional)

// The same 128 x 128 output tile, computed by the tensor cores in TF32: inputs rounded to 10 bits of
// mantissa (about 3 decimal digits), products summed in float32. Several times the float32 rate of the
// CUDA cores, at a relative error near 1e-3 instead of 1e-6, so it is off unless asked for
// (set_matmul_tf32_cuda). The tensor cores multiply so fast that keeping them fed is the whole design:
//   - a k step (32 values of k) of both operands travels from global to shared memory by cp.async
//     (ptx.cuh), never stopping in registers, and STAGES steps are held at once: while the warps
//     multiply step s, steps s + 1 and s + 2 are still arriving. One barrier per step. (Three stages
//     take 102-108 KiB of shared memory, which an H100 or A100 gives a block; GPUs that give 99 KiB,
//     compute capability 8.6 and 8.9, run two: tf32_stages.)
//   - a step is kept in shared memory as it lies in global memory (TileLayout), so every copy is 16
//     contiguous bytes whatever the transposes, and its rows are padded so that a warp's fragment loads
//     fall on 32 distinct banks in either layout.
//   - 4 warps stand as 2 x 2; warp (wy, wx) owns rows wy*64 .. +63 and columns wx*64 .. +63 of the tile:
//     4 x 8 tensor-core products of 16 x 8 (mma_tf32_16x8x8) per 8 values of k, for 16 + 16 values read
//     from shared memory: one read per product, where a 64 x 32 warp tile needs 1.5. 128 accumulators a
//     thread, about 200 registers: two blocks an SM.
constexpr int TBK = 32;            // k step
constexpr int kTf32Threads = 128;  // 4 warps
static_assert(BM == BN, "one TileLayout serves both operands");

// One operand's k step in shared memory: 128 values of i (m for a, n for b) by TBK of k. CONTIG_K:
// stored [i][k], as a row-major a or a transposed b lies, in rows of TBK + 4 floats; else [k][i], rows
// of 128 + 8. A fragment load reads, across the warp, 8 values of i (g = lane / 4) by 4 of k
// (t = lane % 4): with these strides, banks 4g + t or 8t + g, all 32 distinct.
template <bool CONTIG_K>
struct TileLayout {
    static constexpr int rows = CONTIG_K ? BM : TBK, cols = CONTIG_K ? TBK : BM;  // as in global memory
    static constexpr int stride = cols + (CONTIG_K ? 4 : 8);
    static constexpr int floats = rows * stride;
    // A thread copies kChunks chunks of 4 floats a step, kRowStep rows apart.
    static constexpr int kChunksPerRow = cols / 4, kRowStep = kTf32Threads / kChunksPerRow;
    static constexpr int kChunks = rows / kRowStep;
    __device__ static int at(int i, int k) { return CONTIG_K ? i * stride + k : k * stride + i; }
};

template <bool TA, bool TB, int STAGES>
constexpr size_t tf32_smem_bytes() {
    return sizeof(float) * STAGES * (TileLayout<!TA>::floats + TileLayout<TB>::floats);
}

// A thread's share of copying one operand's k steps: the row-major matrix x (leading dimension ld) in
// memory's rows and columns, so (i, k) for a CONTIG_K operand and (k, i) otherwise, with the tile's
// 128 values of i starting at i0 and ending (at the latest) at i_end, k at k_end.
template <bool CONTIG_K>
struct StepCopier {
    using L = TileLayout<CONTIG_K>;
    const float* x;
    int64_t ld, i0, i_end, k_end;
    bool vec;      // 16-byte copies allowed: ld % 4 == 0 and x 16-byte aligned
    int row, col;  // this thread's first chunk in the tile

    __device__ StepCopier(const float* x_, int64_t ld_, int64_t i0_, int64_t i_end_, int64_t k_end_, bool vec_, int tid)
        : x(x_), ld(ld_), i0(i0_), i_end(i_end_), k_end(k_end_), vec(vec_), row(tid / L::kChunksPerRow),
          col((tid % L::kChunksPerRow) * 4) {}

    // Start copying the k step that begins at k0 into S.
    __device__ __forceinline__ void start(float* S, int64_t k0) const {
        const int64_t r0 = CONTIG_K ? i0 : k0, c0 = CONTIG_K ? k0 : i0;
        const int64_t row_end = CONTIG_K ? i_end : k_end, col_end = CONTIG_K ? k_end : i_end;
        float* dst = S + row * L::stride + col;
        if (vec && r0 + L::rows <= row_end && c0 + L::cols <= col_end) {  // the whole step inside: no checks
            const float* src = x + (r0 + row) * ld + c0 + col;
            const int64_t down = L::kRowStep * ld;
#pragma unroll
            for (int c = 0; c < L::kChunks; c++) { cp_async_16(dst + c * L::kRowStep * L::stride, src + c * down, 16); }
            return;
        }
        // At an edge: what lies past row_end or col_end is filled with zeros by cp.async itself (src_bytes
        // below the copy's size); a chunk of nothing still needs a valid address, x. Without `vec` every
        // chunk goes as four 4-byte copies.
#pragma unroll
        for (int c = 0; c < L::kChunks; c++) {
            const int64_t r = r0 + row + c * L::kRowStep, cc = c0 + col;
            const int valid = r < row_end ? static_cast<int>(min(max(col_end - cc, int64_t{0}), int64_t{4})) : 0;
            const float* src = valid > 0 ? x + r * ld + cc : x;
            float* to = dst + c * L::kRowStep * L::stride;
            if (vec) {
                cp_async_16(to, src, valid * 4);
            } else {
#pragma unroll
                for (int e = 0; e < 4; e++) { cp_async_4(to + e, e < valid ? src + e : x, e < valid ? 4 : 0); }
            }
        }
    }
};

// Two neighbouring outputs of a row, of which `valid` lie inside it: one 8-byte store when aligned,
// added with atomicAdd when K is split across blocks.
__device__ __forceinline__ void store_two(float* dst, float v0, float v1, int64_t valid, bool vec, bool split) {
    if (split) {
#if __CUDA_ARCH__ >= 900  // Hopper adds two floats in one atomic
        if (vec && valid >= 2) {
            atomicAdd(reinterpret_cast<float2*>(dst), make_float2(v0, v1));
            return;
        }
#endif
        atomicAdd(dst, v0);
        if (valid > 1) { atomicAdd(dst + 1, v1); }
    } else if (vec && valid >= 2) {
        *reinterpret_cast<float2*>(dst) = make_float2(v0, v1);
    } else {
        dst[0] = v0;
        if (valid > 1) { dst[1] = v1; }
    }
}

template <bool TA, bool TB, int STAGES>
__global__ void __launch_bounds__(kTf32Threads, 2)
    matmul_tf32_kernel(float* __restrict__ out, const float* __restrict__ a, const float* __restrict__ b,
                       const float* __restrict__ bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split,
                       bool vec_a, bool vec_b, bool vec_out, bool split) {
#if __CUDA_ARCH__ >= 800  // TF32 tensor cores arrived with Ampere; the launcher refuses older GPUs
    constexpr bool A_CONTIG_K = !TA, B_CONTIG_K = TB;  // op(a)(m, k) runs along k in memory unless transposed
    using LA = TileLayout<A_CONTIG_K>;
    using LB = TileLayout<B_CONTIG_K>;
    extern __shared__ __align__(16) float smem[];  // STAGES x (a's step, b's step)
    const int tid = threadIdx.x, warp = tid / 32, lane = tid % 32, wy = warp / 2, wx = warp % 2;
    const int g = lane / 4, t = lane % 4;  // a lane's place in the fragments (ptx.cuh)
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
    const int64_t k_begin = blockIdx.z * k_per_split, k_end = min(K, k_begin + k_per_split);
    const int64_t steps = (k_end - k_begin + TBK - 1) / TBK;
    // a is (M, K), or (K, M) when TA; b is (K, N), or (N, K) when TB
    const StepCopier<A_CONTIG_K> copy_a(a, TA ? M : K, m0, M, k_end, vec_a, tid);
    const StepCopier<B_CONTIG_K> copy_b(b, TB ? K : N, n0, N, k_end, vec_b, tid);
    auto start_copy = [&](int stage, int64_t step) {
        float* S = smem + stage * (LA::floats + LB::floats);
        copy_a.start(S, k_begin + step * TBK);
        copy_b.start(S + LA::floats, k_begin + step * TBK);
    };

    float acc[4][8][4] = {};  // [16-row fragment][8-column fragment][the lane's 4 values]
    // Group s of cp.async copies carries step s; empty groups past the end keep that count exact.
#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (s < steps) { start_copy(s, s); }
        cp_async_commit();
    }
    int read = 0, refill = STAGES - 1;  // the stage multiplied now, the stage being refilled
    for (int64_t step = 0; step < steps; step++) {
        cp_async_wait<STAGES - 2>();  // this thread's copies of `step` have landed,
        __syncthreads();               // and everyone's; and every warp is done with step - 1's stage ...
        if (step + STAGES - 1 < steps) { start_copy(refill, step + STAGES - 1); }  // ... which this refills
        cp_async_commit();
        const float* As = smem + read * (LA::floats + LB::floats);
        const float* Bs = As + LA::floats;
#pragma unroll
        for (int kk = 0; kk < TBK; kk += 8) {
            uint32_t fa[4][4], fb[8][2];
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int m = wy * 64 + i * 16 + g;
                fa[i][0] = to_tf32(As[LA::at(m, kk + t)]);
                fa[i][1] = to_tf32(As[LA::at(m + 8, kk + t)]);
                fa[i][2] = to_tf32(As[LA::at(m, kk + t + 4)]);
                fa[i][3] = to_tf32(As[LA::at(m + 8, kk + t + 4)]);
            }
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const int n = wx * 64 + j * 8 + g;
                fb[j][0] = to_tf32(Bs[LB::at(n, kk + t)]);
                fb[j][1] = to_tf32(Bs[LB::at(n, kk + t + 4)]);
            }
#pragma unroll
            for (int i = 0; i < 4; i++) {
#pragma unroll
                for (int j = 0; j < 8; j++) { mma_tf32_16x8x8(acc[i][j], fa[i], fb[j]); }
            }
        }
        read = read + 1 == STAGES ? 0 : read + 1;
        refill = refill + 1 == STAGES ? 0 : refill + 1;
    }

    // Lane (g, t) holds outputs (g, 2t), (g, 2t + 1) and (g + 8, ...) of each fragment: written straight
    // from registers, two neighbours at a time (bias added by the first slice, atomicAdd when K is split).
    const bool add_bias = bias != nullptr && blockIdx.z == 0;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        const int64_t n = n0 + wx * 64 + j * 8 + 2 * t;
        if (n >= N) { continue; }
        const float b0 = add_bias ? bias[n] : 0.0f, b1 = add_bias && n + 1 < N ? bias[n + 1] : 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
#pragma unroll
            for (int h = 0; h < 2; h++) {
                const int64_t m = m0 + wy * 64 + i * 16 + g + h * 8;
                if (m < M) {
                    store_two(out + m * N + n, acc[i][j][2 * h] + b0, acc[i][j][2 * h + 1] + b1, N - n, vec_out, split);
                }
            }
        }
    }
#endif
}

// ----------------------------------------------------------------------------- tf32 on Hopper (wgmma)

// Hopper (compute capability 9.0) reaches its tensor cores' full rate through wgmma (ptx.cuh): one
// instruction multiplies 64 x 8 by 8 x 128 for a warpgroup of 4 warps, reading both operands straight
// from shared memory, and runs while the threads go on (mma.sync, above, still runs on Hopper, at a
// lower rate, and ties up the threads with fragment loads). Compiled only for sm_90a (the "a": features
// of this one architecture), so the build must ask for it (CMAKE_CUDA_ARCHITECTURES 90a).
//   - the same 128 x 128 output tile, two warpgroups of 64 rows each, k steps of 32;
//   - a k step of an operand is 128 rows of 32 values of k: 128 bytes a row, the width of the 128-byte
//     swizzle that wgmma reads (swizzled, below). wgmma takes TF32 operands with k along the rows only, so
//     an operand that runs along i in memory (a transposed, b not) is turned around by the copy;
//   - the copies go by cp.async, two k steps ahead of the product, into a ring of STAGES steps; while
//     the tensor cores multiply step s the threads issue the copies of step s + 2, then wait for the
//     product (IN_FLIGHT 0), or for the one before it (IN_FLIGHT 1: the tensor cores never wait for the
//     threads, at the price of a fourth stage of shared memory and so one block an SM instead of two).
//     Which is faster is for a GPU to say: matmul runs WgmmaFed (3 stages, 0 in flight, two blocks an
//     SM, whose warpgroups take turns on the tensor cores), bench_cuda.py times WgmmaOverlapped beside it.
constexpr int kWgmmaThreads = 256;  // 2 warpgroups
constexpr int kSwizzledTileBytes = BM * TBK * sizeof(float);  // 16 KiB

template <int STAGES_, int IN_FLIGHT_>
struct WgmmaPipeline {
    static constexpr int STAGES = STAGES_, IN_FLIGHT = IN_FLIGHT_;
    static constexpr int AHEAD = STAGES - 1 - IN_FLIGHT;  // steps copied ahead: a stage is refilled only
    static_assert(AHEAD == 2, "two k steps ahead");      // after both warpgroups' products of it are done
    static constexpr int kBlocksPerSM = IN_FLIGHT == 0 ? 2 : 1;
    // + 1 KiB: wgmma's swizzle wants each tile at a multiple of 1024 bytes, which the start of the
    // dynamic shared memory need not be; the kernel rounds it up.
    static constexpr size_t kSmemBytes = STAGES * 2 * kSwizzledTileBytes + 1024;  // 97 or 129 KiB
};
using WgmmaFed = WgmmaPipeline<3, 0>;
using WgmmaOverlapped = WgmmaPipeline<4, 1>;

#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // the copies and the kernel's body exist in sm_90a code only

// Where value (i, k) of an operand's k step lies in its tile, in bytes: row i of 128 bytes, in which
// the 16-byte chunk c of 4 values of k is stored at chunk c ^ (i % 8) (ptx.cuh: wgmma_descriptor).
__device__ __forceinline__ int swizzled(int i, int k) { return i * 128 + ((k / 4) ^ (i % 8)) * 16 + (k % 4) * 4; }

// A thread's share of copying one operand's k steps into swizzled tiles. x is the row-major matrix
// (leading dimension ld) and x(i, k) its value for the tile's row i (m for a, n for b):
//   memory runs along k (CONTIG_K, x[i * ld + k]): a tile row is 128 contiguous bytes, 8 chunks of 16;
//     thread tid copies chunk tid % 8 of rows tid / 8 + 32 e, e < 4: a warp reads 4 whole rows. With
//     `vec` (ld % 4 == 0, x 16-byte aligned) as 16-byte copies, else 4 floats each.
//   memory runs along i (x[k * ld + i]): only single floats can be turned around. A warp copies 8 values
//     of i by 4 of k (lane % 8, lane / 8) at a time, 32-byte pieces of 4 memory rows, which land in the
//     swizzled tile on 32 distinct banks; warp w takes k = 4w .. 4w + 3 and all 128 rows, in 16 goes.
// Past i_end or k_end the copy itself fills zeros (src_bytes 0, from the valid address x).
template <bool CONTIG_K>
struct SwizzledTileCopier {
    const float* x;
    int64_t ld, i0, i_end, k_end;
    bool vec;
    int tid;

    __device__ __forceinline__ void start(char* tile, int64_t k0) const {
        const bool inside = i0 + BM <= i_end && k0 + TBK <= k_end;  // the whole step: no checks
        if constexpr (CONTIG_K) {
            start_along_k(tile, k0, inside);
        } else {
            start_along_i(tile, k0, inside);
        }
    }

    // Row i + 32 e of a tile lies 4096 e bytes after row i, with its chunks swizzled the same way.
    __device__ __forceinline__ void start_along_k(char* tile, int64_t k0, bool inside) const {
        const int i = tid / 8, c = tid % 8;  // rows i + 32 e
        char* dst = tile + swizzled(i, 4 * c);
        const float* src = x + (i0 + i) * ld + k0 + 4 * c;
        const int64_t down = 32 * ld;
        if (inside && vec) {
#pragma unroll
            for (int e = 0; e < 4; e++) { cp_async_16(dst + 4096 * e, src + e * down, 16); }
            return;
        }
        const int in_row = static_cast<int>(min(max(k_end - k0 - 4 * c, int64_t{0}), int64_t{4}));
        const int rows_left = static_cast<int>(min(i_end - i0 - i, int64_t{BM}));  // 32-bit compares below
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int valid = 32 * e < rows_left ? in_row : 0;
            if (vec) {
                cp_async_16(dst + 4096 * e, valid > 0 ? src + e * down : x, valid * 4);
            } else {
#pragma unroll
                for (int q = 0; q < 4; q++) {
                    cp_async_4(dst + 4096 * e + 4 * q, q < valid ? src + e * down + q : x, q < valid ? 4 : 0);
                }
            }
        }
    }

    // Row i + 8 e of a tile lies 1024 e bytes after row i, with its chunks swizzled the same way.
    __device__ __forceinline__ void start_along_i(char* tile, int64_t k0, bool inside) const {
        const int lane = tid % 32, i = lane % 8, k = (tid / 32) * 4 + lane / 8;  // rows i + 8 e
        char* dst = tile + swizzled(i, k);
        const float* src = x + (k0 + k) * ld + i0 + i;
        if (inside) {
#pragma unroll
            for (int e = 0; e < 16; e++) { cp_async_4(dst + 1024 * e, src + 8 * e, 4); }
            return;
        }
        const int rows_left = k0 + k < k_end ? static_cast<int>(min(i_end - i0 - i, int64_t{BM})) : 0;
#pragma unroll
        for (int e = 0; e < 16; e++) {
            const bool valid = 8 * e < rows_left;
            cp_async_4(dst + 1024 * e, valid ? src + 8 * e : x, valid ? 4 : 0);
        }
    }
};

#endif

template <bool TA, bool TB, typename P>
__global__ void __launch_bounds__(kWgmmaThreads, P::kBlocksPerSM)
    matmul_wgmma_kernel(float* __restrict__ out, const float* __restrict__ a, const float* __restrict__ b,
                        const float* __restrict__ bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split,
                        bool vec_a, bool vec_b, bool vec_out, bool split) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)  // sm_90a only; the launcher runs it nowhere else
    extern __shared__ __align__(16) char wgmma_smem[];
    const uint32_t given = shared_address(wgmma_smem), base = (given + 1023) & ~1023u;
    char* tiles = wgmma_smem + (base - given);  // stage s: a's tile at 2s, b's at 2s + 1
    const int tid = threadIdx.x, group = tid / 128, warp = tid % 128 / 32, lane = tid % 32;
    const int g = lane / 4, t = lane % 4;  // a lane's place in d (ptx.cuh)
    const int64_t m0 = static_cast<int64_t>(blockIdx.y) * BM, n0 = static_cast<int64_t>(blockIdx.x) * BN;
    const int64_t k_begin = blockIdx.z * k_per_split, k_end = min(K, k_begin + k_per_split);
    const int64_t steps = (k_end - k_begin + TBK - 1) / TBK;
    // a is (M, K), or (K, M) when TA; b is (K, N), or (N, K) when TB
    const SwizzledTileCopier<!TA> copy_a{a, TA ? M : K, m0, M, k_end, vec_a, tid};
    const SwizzledTileCopier<TB> copy_b{b, TB ? K : N, n0, N, k_end, vec_b, tid};
    auto start_copy = [&](int stage, int64_t step) {
        char* tile = tiles + 2 * stage * kSwizzledTileBytes;
        copy_a.start(tile, k_begin + step * TBK);
        copy_b.start(tile + kSwizzledTileBytes, k_begin + step * TBK);
    };

    float d[64] = {};  // this thread's outputs of its warpgroup's 64 x 128
    // Group s of cp.async copies carries step s; empty groups past the end keep that count exact.
#pragma unroll
    for (int s = 0; s < P::AHEAD; s++) {
        if (s < steps) { start_copy(s, s); }
        cp_async_commit();
    }
    int read = 0, refill = P::AHEAD;
    for (int64_t step = 0; step < steps; step++) {
        cp_async_wait<P::AHEAD - 1>();  // this thread's copies of `step` have landed,
        fence_proxy_async();            // are visible to the tensor cores' reads,
        __syncthreads();                // and so are everyone's; both products of step - 1 - IN_FLIGHT are done
        const uint32_t a_tile = base + 2 * read * kSwizzledTileBytes, b_tile = a_tile + kSwizzledTileBytes;
        const uint64_t desc_a = wgmma_descriptor(a_tile + group * 64 * 128), desc_b = wgmma_descriptor(b_tile);
        keep_in_registers(d);
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < TBK / 8; kk++) { wgmma_tf32_m64n128k8(d, desc_a + 2 * kk, desc_b + 2 * kk); }
        wgmma_commit();
        // the stage of step - 1 - IN_FLIGHT is free (the barrier above): refill it while the tensor cores work
        if (step + P::AHEAD < steps) { start_copy(refill, step + P::AHEAD); }
        cp_async_commit();
        wgmma_wait<P::IN_FLIGHT>();
        keep_in_registers(d);
        read = read + 1 == P::STAGES ? 0 : read + 1;
        refill = refill + 1 == P::STAGES ? 0 : refill + 1;
    }
    if constexpr (P::IN_FLIGHT > 0) {
        wgmma_wait<0>();
        keep_in_registers(d);
    }

    // d[4j + 2h + e] is output (16 warp + g + 8h, 8j + 2t + e) of the warpgroup's rows: written two
    // neighbours at a time (bias added by the first slice, atomicAdd when K is split).
    const bool add_bias = bias != nullptr && blockIdx.z == 0;
#pragma unroll
    for (int j = 0; j < 16; j++) {
        const int64_t n = n0 + 8 * j + 2 * t;
        if (n >= N) { continue; }
        const float b0 = add_bias ? bias[n] : 0.0f, b1 = add_bias && n + 1 < N ? bias[n + 1] : 0.0f;
#pragma unroll
        for (int h = 0; h < 2; h++) {
            const int64_t m = m0 + group * 64 + warp * 16 + g + 8 * h;
            if (m < M) {
                store_two(out + m * N + n, d[4 * j + 2 * h] + b0, d[4 * j + 2 * h + 1] + b1, N - n, vec_out, split);
            }
        }
    }
#elif defined(__CUDA_ARCH__)
    __trap();  // launched from code without sm_90a (a build that names 90a and 90 and loads the latter)
#endif
}

bool aligned16(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

// Grid y counts 128-row tiles (at most 65535 of them, the hardware's limit for y).
void check_grid_y(int64_t blocks_y, const char* op) {
    if (blocks_y > 65535) {
        throw std::invalid_argument(std::string(op) + ": M is too large for one launch (" + std::to_string(blocks_y) +
                                    " row blocks, at most 65535)");
    }
}

// ----------------------------------------------------------------------------- split-K planning

// Blocks of a kernel the whole GPU runs at once, as the occupancy calculator says (read once per
// device): 2 per SM for each kernel on an H100 (the float32 one: 256 threads of 128 registers and
// 17 KiB of shared memory; the TF32 mma.sync one: 128 threads of up to 232 registers and 102-108 KiB;
// the wgmma one: 256 threads of up to 128 registers and 97 KiB, or with WgmmaOverlapped, 1 per SM).
template <typename Kernel>
int64_t resident_blocks(Kernel kernel, int threads, size_t smem, int64_t (&per_device)[64]) {
    const int device = current_device();
    if (per_device[device] == 0) {
        int per_sm = 0;
        cuda_check(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, smem),
                   "cudaOccupancyMaxActiveBlocksPerMultiprocessor");
        per_device[device] = std::max(per_sm, 1) * static_cast<int64_t>(sm_count());
    }
    return per_device[device];
}

// The values of k in each of `splits` slices: a multiple of the kernel's k step, so only the last
// slice has a ragged end.
int64_t split_length(int64_t K, int64_t splits, int64_t step) { return ((K + splits - 1) / splits + step - 1) / step * step; }

constexpr int64_t kMinSplitK = 128;  // shorter slices spend more on their fixed costs than they save
constexpr int64_t kBlockCost = 32;   // a block's fixed work in units of k: its first loads and its stores
constexpr int64_t kSplitCost = 32;   // and the extra of a split block: its atomicAdd epilogue

// The modelled time of a launch with K cut into `splits` slices, in units of one value of k. The GPU
// runs the blocks in waves of `resident`, and a wave that is nearly empty takes as long as a full one.
double split_time(int64_t tiles, int64_t K, int64_t splits, int64_t resident, int64_t step) {
    const int64_t length = split_length(K, splits, step);
    const int64_t slices = (K + length - 1) / length;  // rounding the length up can leave fewer slices
    const int64_t waves = (tiles * slices + resident - 1) / resident;
    return static_cast<double>(waves) * static_cast<double>(length + kBlockCost + (slices > 1 ? kSplitCost : 0));
}

// How many slices of K each output tile is cut into (blockIdx.z picks one). Weight gradients have few
// output tiles and a long K: 27 tiles of 128 x 128 (a 384 x 1152 dW) leave 90% of an H100 idle unless K
// is split. But a split must also fill the waves: 20 slices make 540 blocks, three waves on 264 slots
// with the third 2% full, a third of the time spent for 2% of the work; 19 make 513, two full waves.
// So every split count is costed with split_time and the fastest kept, preferring fewer slices (fewer
// atomics) when within 3% of it; a split must beat no split by 10% to pay for zeroing the output.
int64_t choose_splits(int64_t tiles, int64_t K, int64_t resident, int64_t step) {
    // Too short to split at all (this also keeps K = 0, a valid product of bias only, out of split_time).
    if (K < 2 * kMinSplitK) { return 1; }
    const int64_t most = std::min<int64_t>(K / kMinSplitK, 256);
    const double unsplit = split_time(tiles, K, 1, resident, step);
    double best = unsplit;
    for (int64_t s = 2; s <= most; s++) { best = std::min(best, split_time(tiles, K, s, resident, step)); }
    for (int64_t s = 2; s <= most; s++) {
        const double t = split_time(tiles, K, s, resident, step);
        if (t <= 1.03 * best) {
            const int64_t length = split_length(K, s, step);
            return t <= 0.9 * unsplit ? (K + length - 1) / length : 1;
        }
    }
    return 1;
}

// The four (trans_a, trans_b) instantiations of a kernel template, picked at run time.
#define MINIGPT_DISPATCH_TRANS(KERNEL, GRID, BLOCK, SMEM, STREAM, ...)                                           \
    do {                                                                                                         \
        if (trans_a && trans_b) { KERNEL<true, true><<<GRID, BLOCK, SMEM, STREAM>>>(__VA_ARGS__); }               \
        else if (trans_a) { KERNEL<true, false><<<GRID, BLOCK, SMEM, STREAM>>>(__VA_ARGS__); }                    \
        else if (trans_b) { KERNEL<false, true><<<GRID, BLOCK, SMEM, STREAM>>>(__VA_ARGS__); }                    \
        else { KERNEL<false, false><<<GRID, BLOCK, SMEM, STREAM>>>(__VA_ARGS__); }                                \
    } while (0)

}  // namespace

void matmul_forward_naive_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                               int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    if (M == 0 || N == 0) { return; }
    const dim3 block(32, 8), grid((N + 31) / 32, (M + 7) / 8);
    check_grid_y(grid.y, "matmul_naive");
    MINIGPT_DISPATCH_TRANS(matmul_naive_kernel, grid, block, 0, stream, out, a, b, bias, M, N, K);
    check_launch("matmul_naive_kernel");
}

void matmul_forward_tiled_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                               int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    if (M == 0 || N == 0) { return; }
    const dim3 block(kTile16, kTile16), grid((N + kTile16 - 1) / kTile16, (M + kTile16 - 1) / kTile16);
    check_grid_y(grid.y, "matmul_tiled");
    MINIGPT_DISPATCH_TRANS(matmul_tiled_kernel, grid, block, 0, stream, out, a, b, bias, M, N, K);
    check_launch("matmul_tiled_kernel");
}

namespace {

bool tf32_enabled = false;  // set_matmul_tf32_cuda; off: results stay float32-exact

}  // namespace

void set_matmul_tf32_cuda(bool on) {
    if (on && !device_is_ampere_or_newer()) {
        throw std::invalid_argument("matmul: TF32 needs tensor cores of compute capability 8.0 (Ampere) or newer");
    }
    tf32_enabled = on;
}

bool matmul_tf32_cuda() { return tf32_enabled; }

namespace {

// The TF32 kernel's pipeline depth on this GPU: three k steps where a block may have the 108 KiB of
// shared memory that takes (H100: 227 KiB, A100: 163 KiB), else two (72 KiB; compute capability 8.6
// and 8.9 give 99 KiB). Read once per device.
int tf32_stages() {
    static int limits[64] = {0};
    const int limit = device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, limits);
    constexpr size_t deepest = std::max({tf32_smem_bytes<false, false, 3>(), tf32_smem_bytes<false, true, 3>(),
                                         tf32_smem_bytes<true, false, 3>(), tf32_smem_bytes<true, true, 3>()});
    return static_cast<size_t>(limit) >= deepest ? 3 : 2;
}


template <bool TA, bool TB, int STAGES>
void allow_tf32_smem() {
    allow_smem_once(matmul_tf32_kernel<TA, TB, STAGES>, tf32_smem_bytes<TA, TB, STAGES>(), "matmul (TF32)");
}

template <bool TA, bool TB, int STAGES>
void launch_tf32_stages(dim3 grid, cudaStream_t stream, float* out, const float* a, const float* b, const float* bias,
                        int64_t M, int64_t N, int64_t K, int64_t k_per_split, bool vec_a, bool vec_b, bool vec_out,
                        bool split) {
    allow_tf32_smem<TA, TB, STAGES>();
    matmul_tf32_kernel<TA, TB, STAGES><<<grid, kTf32Threads, tf32_smem_bytes<TA, TB, STAGES>(), stream>>>(
        out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out, split);
}

template <bool TA, bool TB>
void launch_tf32(int stages, dim3 grid, cudaStream_t stream, float* out, const float* a, const float* b,
                 const float* bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split, bool vec_a, bool vec_b,
                 bool vec_out, bool split) {
    auto launch = stages == 3 ? launch_tf32_stages<TA, TB, 3> : launch_tf32_stages<TA, TB, 2>;
    launch(grid, stream, out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out, split);
}

// The number of TF32 blocks the GPU runs at once, for the split-K planning.
template <int STAGES>
int64_t resident_tf32_blocks() {
    static int64_t resident[64] = {0};
    allow_tf32_smem<false, false, STAGES>();
    return resident_blocks(matmul_tf32_kernel<false, false, STAGES>, kTf32Threads,
                           tf32_smem_bytes<false, false, STAGES>(), resident);
}

template <bool TA, bool TB, typename P>
void allow_wgmma_smem() {
    allow_smem_once(matmul_wgmma_kernel<TA, TB, P>, P::kSmemBytes, "matmul (TF32, wgmma)");
}

template <bool TA, bool TB, typename P>
void launch_wgmma(dim3 grid, cudaStream_t stream, float* out, const float* a, const float* b, const float* bias,
                  int64_t M, int64_t N, int64_t K, int64_t k_per_split, bool vec_a, bool vec_b, bool vec_out,
                  bool split) {
    allow_wgmma_smem<TA, TB, P>();
    matmul_wgmma_kernel<TA, TB, P><<<grid, kWgmmaThreads, P::kSmemBytes, stream>>>(
        out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out, split);
}

template <typename P>
int64_t resident_wgmma_blocks() {
    static int64_t resident[64] = {0};
    allow_wgmma_smem<false, false, P>();
    return resident_blocks(matmul_wgmma_kernel<false, false, P>, kWgmmaThreads, P::kSmemBytes, resident);
}

template <typename P>
void launch_wgmma_trans(bool trans_a, bool trans_b, dim3 grid, cudaStream_t stream, float* out, const float* a,
                        const float* b, const float* bias, int64_t M, int64_t N, int64_t K, int64_t k_per_split,
                        bool vec_a, bool vec_b, bool vec_out, bool split) {
    auto launch = trans_a ? (trans_b ? launch_wgmma<true, true, P> : launch_wgmma<true, false, P>)
                          : (trans_b ? launch_wgmma<false, true, P> : launch_wgmma<false, false, P>);
    launch(grid, stream, out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out, split);
}

}  // namespace

namespace {

// The float32 launch (pipelined: the tuned kernel; else the staged one), with K cut into `splits`
// slices of k_per_split.
void launch_fp32(bool pipelined, dim3 grid, cudaStream_t stream, float* out, const float* a, const float* b,
                 const float* bias, int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, int64_t k_per_split,
                 bool vec_a, bool vec_b, bool split) {
    const bool vec_out = N % 4 == 0 && aligned16(out);
    if (pipelined) {
        MINIGPT_DISPATCH_TRANS(matmul_kernel, grid, kThreads, kPipelinedSmemBytes, stream, out, a, b, bias, M, N, K,
                               k_per_split, vec_a, vec_b, vec_out, split);
        check_launch("matmul_kernel");
    } else {
        MINIGPT_DISPATCH_TRANS(matmul_staged_kernel, grid, kThreads, 0, stream, out, a, b, bias, M, N, K, k_per_split,
                               vec_a, vec_b, vec_out, split);
        check_launch("matmul_staged_kernel");
    }
}

// Everything about a launch but the kernel: the grid, the split of K (and the zeroed output it adds
// into), the alignment flags. `kind` picks the kernel. best: with TF32 on, the wgmma one on Hopper (when
// built for sm_90a), else the mma.sync one; with TF32 off, the tuned (pipelined) one from Ampere on, the
// staged one before. Or, when asked for, the staged one (float32) or the TF32 mma.sync one on any GPU
// that has it, for comparisons.
enum class KernelChoice { best, staged, tf32_mma, tf32_wgmma_overlapped };

void run_matmul(KernelChoice kind, float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    if (M == 0 || N == 0) { return; }
    const int64_t tiles_n = (N + BN - 1) / BN, tiles_m = (M + BM - 1) / BM;
    check_grid_y(tiles_m, "matmul");
    static int64_t resident_pipelined[64] = {0}, resident_staged[64] = {0};
    const bool overlapped = kind == KernelChoice::tf32_wgmma_overlapped;
    const bool tf32 = (tf32_enabled && kind == KernelChoice::best) || kind == KernelChoice::tf32_mma || overlapped;
    const bool wgmma = overlapped || (tf32 && kind == KernelChoice::best && tf32_uses_wgmma());
    const bool pipelined = !tf32 && kind == KernelChoice::best && float32_uses_cp_async();
    const int stages = tf32 && !wgmma ? tf32_stages() : 0;
    const int64_t step = tf32 ? TBK : BK;
    const int64_t resident =
        overlapped ? resident_wgmma_blocks<WgmmaOverlapped>()
        : wgmma ? resident_wgmma_blocks<WgmmaFed>()
        : tf32 ? (stages == 3 ? resident_tf32_blocks<3>() : resident_tf32_blocks<2>())
        : pipelined ? resident_blocks(matmul_kernel<false, false>, kThreads, kPipelinedSmemBytes, resident_pipelined)
                    : resident_blocks(matmul_staged_kernel<false, false>, kThreads, 0, resident_staged);
    const int64_t splits = choose_splits(tiles_m * tiles_n, K, resident, step);
    const int64_t k_per_split = splits > 1 ? split_length(K, splits, step) : std::max<int64_t>(K, 1);
    if (splits > 1) { cuda_check(cudaMemsetAsync(out, 0, M * N * sizeof(float), stream), "cudaMemsetAsync"); }
    // float4 loads (and 16-byte copies) need a row stride that is a multiple of 4 and a 16-byte aligned base
    const bool vec_a = (trans_a ? M : K) % 4 == 0 && aligned16(a);
    const bool vec_b = (trans_b ? K : N) % 4 == 0 && aligned16(b);
    const dim3 grid(static_cast<unsigned>(tiles_n), static_cast<unsigned>(tiles_m), static_cast<unsigned>(splits));
    if (wgmma) {  // stores two outputs at a time: 8-byte alignment is enough
        const bool vec_out = N % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
        auto launch = overlapped ? launch_wgmma_trans<WgmmaOverlapped> : launch_wgmma_trans<WgmmaFed>;
        launch(trans_a, trans_b, grid, stream, out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out,
               splits > 1);
        check_launch("matmul_wgmma_kernel");
    } else if (tf32) {
        const bool vec_out = N % 2 == 0 && reinterpret_cast<uintptr_t>(out) % 8 == 0;
        auto launch = trans_a ? (trans_b ? launch_tf32<true, true> : launch_tf32<true, false>)
                              : (trans_b ? launch_tf32<false, true> : launch_tf32<false, false>);
        launch(stages, grid, stream, out, a, b, bias, M, N, K, k_per_split, vec_a, vec_b, vec_out, splits > 1);
        check_launch("matmul_tf32_kernel");
    } else {
        launch_fp32(pipelined, grid, stream, out, a, b, bias, M, N, K, trans_a, trans_b, k_per_split, vec_a, vec_b,
                    splits > 1);
    }
}

}  // namespace

void matmul_forward_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                         int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    run_matmul(KernelChoice::best, out, a, b, bias, M, N, K, trans_a, trans_b, stream);
}

void matmul_forward_staged_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                                int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    run_matmul(KernelChoice::staged, out, a, b, bias, M, N, K, trans_a, trans_b, stream);
}

void matmul_forward_tf32_mma_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                                  int64_t K, bool trans_a, bool trans_b, cudaStream_t stream) {
    if (!device_is_ampere_or_newer()) {
        throw std::invalid_argument("matmul_tf32_mma: TF32 needs tensor cores of compute capability 8.0 or newer");
    }
    run_matmul(KernelChoice::tf32_mma, out, a, b, bias, M, N, K, trans_a, trans_b, stream);
}

void matmul_forward_tf32_wgmma_overlapped_cuda(float* out, const float* a, const float* b, const float* bias,
                                               int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                                               cudaStream_t stream) {
    if (!wgmma_available()) {
        throw std::invalid_argument("matmul_tf32_wgmma_overlapped: wgmma needs compute capability 9.0 (H100, H200) "
                                    "and a build for sm_90a (CMAKE_CUDA_ARCHITECTURES 90a)");
    }
    run_matmul(KernelChoice::tf32_wgmma_overlapped, out, a, b, bias, M, N, K, trans_a, trans_b, stream);
}

const char* matmul_tf32_kernel_cuda() { return tf32_uses_wgmma() ? "wgmma" : "mma.sync"; }

const char* matmul_float32_kernel_cuda() { return float32_uses_cp_async() ? "cp.async" : "staged"; }

bool matmul_wgmma_available_cuda() { return wgmma_available(); }

// The CUDA kernels behind minigpt._cuda: the ops of csrc/kernels.h, same names with a _cuda suffix.
//
// Conventions, as on the CPU side: outputs first, then inputs, then sizes; every pointer carries its
// shape in a comment; all buffers are row-major, C-contiguous float32 (int64 for ids) in device
// memory. As in csrc/kernels.h, the elementwise and row-wise backward kernels (softmax, LayerNorm's dx,
// GELU, cross-entropy) WRITE their gradient, every element once, so no zero-filled buffer is written
// first and read back (for cross-entropy on GPT-2, 1.6 GB a step); those that sum over several places
// (attention's dq/dk/dv, LayerNorm's dw/db, embedding and bias gradients) ADD into zeroed buffers, as the
// comment above each says. Each function launches its kernels on `stream` and returns without waiting; a launch
// error throws std::runtime_error. No pybind11 types here: bindings_cuda.cpp checks shapes and
// dtypes and calls these. The NumPy reference of each op is in minigpt/kernels/.
//
// Shape letters: B batch, NH heads, T sequence length, hs head size, M/N/K matmul sizes.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

// ----------------------------------------------------------------------------- matmul (matmul.cu)

// out = op(a) @ op(b) (+ bias), op(x) = x or x^T read in place. 128 x 128 output tiles in shared
// memory, 8 x 8 outputs per thread in registers, k steps copied in by cp.async three ahead (double-
// buffered through registers before Ampere); when the output has too few tiles to fill the GPU (weight
// gradients: small M x N, long K) the K loop is split across blocks.
void matmul_forward_cuda(float* out,         // (M, N)
                         const float* a,     // (M, K), or (K, M) if trans_a
                         const float* b,     // (K, N), or (N, K) if trans_b
                         const float* bias,  // (N,) or nullptr
                         int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b, cudaStream_t stream);

// Optional TF32 tensor cores for matmul_forward_cuda (compute capability >= 8.0; throws otherwise): inputs
// rounded to 10 mantissa bits, float32 sums, several times the speed and a relative error near 1e-3.
// Off by default, so results stay float32-exact. One switch for the process (every device).
void set_matmul_tf32_cuda(bool on);
bool matmul_tf32_cuda();
// Which TF32 kernel matmul_forward_cuda runs on this device: "wgmma" (Hopper's warpgroup tensor-core
// instructions, on compute capability 9.0 when built for sm_90a) or "mma.sync" (Ampere's, everywhere else,
// and wherever the environment says MINIGPT_CUDA_TF32_KERNEL=mma.sync).
const char* matmul_tf32_kernel_cuda();
// And which float32 kernel: "cp.async" (the tuned one, from Ampere on) or "staged" (before Ampere, and
// wherever the environment says MINIGPT_CUDA_FLOAT32_KERNEL=staged).
const char* matmul_float32_kernel_cuda();
// Whether this device and build run Hopper's wgmma at all (compute capability 9.0, a build for sm_90a),
// whatever MINIGPT_CUDA_TF32_KERNEL picks.
bool matmul_wgmma_available_cuda();

// The teaching versions, same arguments: one thread per output reading global memory (naive), 16 x 16
// tiles staged through shared memory (tiled), and the tuned kernel's tiles double-buffered through
// registers instead of cp.async (staged: what matmul_forward_cuda runs before Ampere, on any GPU here).
void matmul_forward_naive_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                               int64_t K, bool trans_a, bool trans_b, cudaStream_t stream);
void matmul_forward_tiled_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                               int64_t K, bool trans_a, bool trans_b, cudaStream_t stream);
void matmul_forward_staged_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                                int64_t K, bool trans_a, bool trans_b, cudaStream_t stream);
// The TF32 mma.sync kernel whatever set_matmul_tf32_cuda says (compute capability >= 8.0): on Hopper,
// beside the wgmma kernel that matmul_forward_cuda runs there, for comparisons.
void matmul_forward_tf32_mma_cuda(float* out, const float* a, const float* b, const float* bias, int64_t M, int64_t N,
                                  int64_t K, bool trans_a, bool trans_b, cudaStream_t stream);
// The wgmma kernel with four stages and one group of products kept in flight (one block an SM), whatever
// set_matmul_tf32_cuda says, beside the three-stage one that matmul_forward_cuda runs with TF32 on:
// which is faster is for a GPU to say (compute capability 9.0, sm_90a build; throws otherwise).
void matmul_forward_tf32_wgmma_overlapped_cuda(float* out, const float* a, const float* b, const float* bias,
                                               int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b,
                                               cudaStream_t stream);

// ----------------------------------------------------------------------------- bias gradient (bias_grad.cu)

// db[c] += sum_r dout[r, c]: the gradient of a bias added to every row (Linear's bias, wpe). Blocks of
// 32 columns x 256 rows sum into partial (one row per chunk of rows); a second pass adds the chunks
// into db in a fixed order, so results do not vary between runs. With one chunk (N <= 256) the first
// pass adds into db directly and partial is not touched (it may then be nullptr).
void bias_grad_cuda(float* db,           // (C,)
                    float* partial,      // (bias_grad_chunks(N), C): scratch
                    const float* dout,   // (N, C)
                    int64_t N, int64_t C, cudaStream_t stream);
int64_t bias_grad_chunks(int64_t N);  // how many rows of scratch bias_grad_cuda needs for N rows

// The teaching version, same result, no scratch: one thread per column down all N rows.
void bias_grad_naive_cuda(float* db, const float* dout, int64_t N, int64_t C, cudaStream_t stream);

// ----------------------------------------------------------------------------- softmax (softmax.cu)

// y = softmax(x) over each row of length N; one warp per row, one online pass for max and sum.
void softmax_forward_cuda(float* y,        // (rows, N)
                          const float* x,  // (rows, N)
                          int64_t rows, int64_t N, cudaStream_t stream);

// The teaching version: one thread per row, three passes (max, sum, write).
void softmax_forward_naive_cuda(float* y, const float* x, int64_t rows, int64_t N, cudaStream_t stream);

// dx = y * (dy - sum(dy * y)) over each row (written).
void softmax_backward_cuda(float* dx,        // (rows, N)
                           const float* dy,  // (rows, N)
                           const float* y,   // (rows, N)
                           int64_t rows, int64_t N, cudaStream_t stream);

// ----------------------------------------------------------------------------- attention (attention.cu)

// The largest head size the flash kernels take (their shared-memory tiles are sized at compile time).
constexpr int64_t kAttentionMaxHeadSize = 128;

// Causal attention with attention dropout, flash-attention style: a block per (head, 64 queries)
// streams 64-key tiles through shared memory with an online softmax; nothing T x T is stored.
void attention_forward_cuda(float* out,      // (B, NH, T, hs)
                            float* lse,      // (B, NH, T)
                            const float* q,  // (B, NH, T, hs)
                            const float* k,  // (B, NH, T, hs)
                            const float* v,  // (B, NH, T, hs)
                            int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                            cudaStream_t stream);

// The same forward on the tensor cores, float32-accurate (3xTF32: every product as three TF32 ones),
// same arguments and results; compute capability 8.0 and newer (throws otherwise). Beside the CUDA-core
// kernel, not instead of it, until the two are timed against each other on a GPU.
void attention_forward_mma_cuda(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                                int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream);

// Gradients of attention_forward_cuda, added into dq, dk, dv. A block per (head, 64 keys) rebuilds
// the weights from q, k and lse tile by tile; dq collects every key block's share with atomicAdd.
void attention_backward_cuda(float* dq,          // (B, NH, T, hs)
                             float* dk,          // (B, NH, T, hs)
                             float* dv,          // (B, NH, T, hs)
                             float* scratch,     // (B, NH, T): rowsum(dout * out), computed here
                             const float* dout,  // (B, NH, T, hs)
                             const float* q,     // (B, NH, T, hs)
                             const float* k,     // (B, NH, T, hs)
                             const float* v,     // (B, NH, T, hs)
                             const float* out,   // (B, NH, T, hs)
                             const float* lse,   // (B, NH, T)
                             int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                             cudaStream_t stream);

// The same two on the heads inside the fused projection, read in place: qkv (B, T, 3C) holds q, k, v
// side by side in each row (C = NH * hs), y (B, T, C) gets the heads side by side, and dqkv (B, T, 3C)
// the gradients in qkv's layout, added into. No copies split or merge the heads; the bits are those of
// attention_forward_cuda / attention_backward_cuda on the split heads.
void attention_forward_fused_cuda(float* y,          // (B, T, C)
                                  float* lse,        // (B, NH, T)
                                  const float* qkv,  // (B, T, 3C)
                                  int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                                  cudaStream_t stream);
void attention_backward_fused_cuda(float* dqkv,       // (B, T, 3C)
                                   float* scratch,    // (B, NH, T): rowsum(dy * y), computed here
                                   const float* dy,   // (B, T, C)
                                   const float* qkv,  // (B, T, 3C)
                                   const float* y,    // (B, T, C)
                                   const float* lse,  // (B, NH, T)
                                   int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                                   cudaStream_t stream);

// The teaching versions: one thread per query row, straight from the formulas. Same arguments and
// results (out is written, dq/dk/dv are added into), any head size, no scratch.
void attention_forward_naive_cuda(float* out, float* lse, const float* q, const float* k, const float* v, int64_t B,
                                  int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed,
                                  cudaStream_t stream);
void attention_backward_naive_cuda(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                                   const float* v, const float* out, const float* lse, int64_t B, int64_t NH,
                                   int64_t T, int64_t hs, double dropout_p, uint64_t seed, cudaStream_t stream);

// ----------------------------------------------------------------------------- layernorm (layernorm.cu)

// out = (x - mean) * rstd * w + b over each row of length C; saves mean and rstd per row.
void layernorm_forward_cuda(float* out,      // (N, C)
                            float* mean,     // (N,)
                            float* rstd,     // (N,)
                            const float* x,  // (N, C)
                            const float* w,  // (C,)
                            const float* b,  // (C,)
                            int64_t N, int64_t C, float eps, cudaStream_t stream);

// The teaching version: one thread per row.
void layernorm_forward_naive_cuda(float* out, float* mean, float* rstd, const float* x, const float* w, const float* b,
                                  int64_t N, int64_t C, float eps, cudaStream_t stream);

// Gradients of layernorm_forward_cuda: dx written, dw and db added into (they sum over rows); xhat is
// recomputed from x, mean, rstd.
void layernorm_backward_cuda(float* dx,          // (N, C)
                             float* dw,          // (C,)
                             float* db,          // (C,)
                             const float* dout,  // (N, C)
                             const float* x,     // (N, C)
                             const float* mean,  // (N,)
                             const float* rstd,  // (N,)
                             const float* w,     // (C,)
                             int64_t N, int64_t C, cudaStream_t stream);

// ----------------------------------------------------------------------------- gelu (gelu.cu)

void gelu_forward_cuda(float* out, const float* x, int64_t n, cudaStream_t stream);              // (n,)
void gelu_backward_cuda(float* dx, const float* dout, const float* x, int64_t n, cudaStream_t stream);  // dx = ...

// ----------------------------------------------------------------------------- cross-entropy (cross_entropy.cu)

// Per-row softmax cross-entropy loss and log-sum-exp; a negative target counts for nothing.
void cross_entropy_forward_cuda(float* losses,           // (N,)
                                float* lse,              // (N,)
                                const float* logits,     // (N, V)
                                const int64_t* targets,  // (N,)
                                int64_t N, int64_t V, cudaStream_t stream);

// The teaching version: one thread per row, a pass for the max and one for the sum.
void cross_entropy_forward_naive_cuda(float* losses, float* lse, const float* logits, const int64_t* targets,
                                      int64_t N, int64_t V, cudaStream_t stream);

// dlogits = dloss * (softmax(logits) - onehot(target)) on counted rows, 0 on padded ones, from the saved lse.
void cross_entropy_backward_cuda(float* dlogits,          // (N, V)
                                 const float* logits,     // (N, V)
                                 const float* lse,        // (N,)
                                 const int64_t* targets,  // (N,)
                                 float dloss, int64_t N, int64_t V, cudaStream_t stream);

// ----------------------------------------------------------------------------- adamw (adamw.cu)

// One AdamW step in place on p, m, v (n,), with gradient g (n,); bias1, bias2 = 1 - beta^t.
void adamw_update_cuda(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                       float eps, float weight_decay, float bias1, float bias2, cudaStream_t stream);

// ----------------------------------------------------------------------------- embedding (embedding.cu)

// out[i] = w[idx[i]]: a row of the table per id.
void embedding_forward_cuda(float* out,          // (N, C)
                            const int64_t* idx,  // (N,), each in [0, V)
                            const float* w,      // (V, C)
                            int64_t N, int64_t V, int64_t C, cudaStream_t stream);

// dw[idx[i]] += dout[i], with atomicAdd: a row used by several ids collects all their gradients.
void embedding_backward_cuda(float* dw,           // (V, C)
                             const float* dout,   // (N, C)
                             const int64_t* idx,  // (N,)
                             int64_t N, int64_t V, int64_t C, cudaStream_t stream);

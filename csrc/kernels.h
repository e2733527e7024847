// The C++ kernels behind minigpt._core: plain functions on raw float32 buffers.
//
// Conventions (after llm.c's train_gpt2.c): outputs first, then inputs, then sizes; every pointer
// carries its shape in a comment; all buffers are row-major and C-contiguous. The elementwise and
// row-wise backward kernels (softmax, LayerNorm's dx, GELU, cross-entropy) WRITE their gradient,
// since every element gets exactly one value: no zero-filled buffer to write first and read back
// (for GELU's backward that was 8 of 24 bytes an element). Those that sum over several places
// (attention's dq/dk/dv over tiles, LayerNorm's dw/db over rows) ADD into zeroed buffers, as the
// comment above each says. No pybind11 types here: bindings.cpp checks shapes and dtypes and calls these.
// The NumPy reference of every op, which these follow line for line, is in minigpt/kernels/ (a module per op).
//
// Parallel loops are plain `#pragma omp` lines: OpenMP is optional (see CMakeLists.txt), and a
// build without it ignores them and runs every kernel on one thread.
//
// Shape letters: B batch, NH heads, T sequence length, hs head size, M/N/K matmul sizes.
#pragma once

#include <cstdint>

// ----------------------------------------------------------------------------- matmul

// out = op(a) @ op(b) (+ bias), where op(x) is x or x^T. The flags read a or b transposed in
// place: no transposed copy is ever made. Packed, cache-blocked, with a SIMD micro-kernel chosen
// at run time (matmul.cpp).
void matmul_forward(float* out,         // (M, N)
                    const float* a,     // (M, K), or (K, M) if trans_a
                    const float* b,     // (K, N), or (N, K) if trans_b
                    const float* bias,  // (N,) or nullptr
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b);

// Products with at most this many rows of op(a) (M <= matmul_small_m(trans_a, trans_b): 8 to 32) take an
// unpacked path that streams b once (matmul_rows.h): generation's one-token steps, prompts, few-shot
// candidates. info()["matmul_small_m"] reports it for each variant.
int64_t matmul_small_m(bool trans_a, bool trans_b);

// The SIMD path matmul_forward runs: "avx512", "avx2" or "portable", the best this CPU supports
// unless the environment variable MINIGPT_SIMD names a lower one (read once, at the first call).
// Throws std::invalid_argument if MINIGPT_SIMD names an unknown path or one the CPU lacks.
const char* matmul_simd_path();

// The same result from the textbook triple loop: the version to read first, and a second
// opinion in tests.
void matmul_forward_naive(float* out,         // (M, N)
                          const float* a,     // (M, K), or (K, M) if trans_a
                          const float* b,     // (K, N), or (N, K) if trans_b
                          const float* bias,  // (N,) or nullptr
                          int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b);

// ----------------------------------------------------------------------------- softmax

// y = softmax(x) over each row of length N, stable (the row max is subtracted first).
void softmax_forward(float* y,        // (rows, N)
                     const float* x,  // (rows, N)
                     int64_t rows, int64_t N);

// dx = y * (dy - sum(dy * y)) over each row: only the forward's output y is needed.
void softmax_backward(float* dx,        // (rows, N)
                      const float* dy,  // (rows, N)
                      const float* y,   // (rows, N)
                      int64_t rows, int64_t N);

// ----------------------------------------------------------------------------- attention

// Causal scaled-dot-product attention with attention dropout, flash-attention style (attention.cpp):
// tiles of queries and keys with an online softmax, so extra memory is O(B * NH * T) plus small
// per-thread tiles, never a T x T matrix. lse, the log-sum-exp of each row of scaled scores, is all
// the backward needs to rebuild the weights. The SIMD path (AVX-512, AVX2, portable) is chosen at
// run time; the environment variable MINIGPT_SIMD can force a slower one (tests do).
void attention_forward(float* out,       // (B, NH, T, hs)
                       float* lse,       // (B, NH, T)
                       const float* q,   // (B, NH, T, hs)
                       const float* k,   // (B, NH, T, hs)
                       const float* v,   // (B, NH, T, hs)
                       int64_t B, int64_t NH, int64_t T, int64_t hs,
                       double dropout_p, uint64_t seed);

// Gradients of attention_forward, added into dq, dk, dv. The weights are recomputed tile by tile
// from q, k and lse, and the dropout mask from (seed, position), so nothing T x T is stored.
void attention_backward(float* dq,          // (B, NH, T, hs)
                        float* dk,          // (B, NH, T, hs)
                        float* dv,          // (B, NH, T, hs)
                        const float* dout,  // (B, NH, T, hs)
                        const float* q,     // (B, NH, T, hs)
                        const float* k,     // (B, NH, T, hs)
                        const float* v,     // (B, NH, T, hs)
                        const float* out,   // (B, NH, T, hs)
                        const float* lse,   // (B, NH, T)
                        int64_t B, int64_t NH, int64_t T, int64_t hs,
                        double dropout_p, uint64_t seed);

// The same two ops on the heads where the model has them: inside the fused projection qkv (B, T, 3C),
// q, k, v side by side in each row (C = NH * hs), and the output y (B, T, C) with the heads side by
// side, ready for the output projection. The kernels read and write the heads in place (rows 3C and
// C floats apart), so no head is copied out and back; the results are those of attention_forward /
// attention_backward on the split heads, bit for bit. dqkv is added into, like dq, dk, dv.
void attention_forward_fused(float* y,           // (B, T, C)
                             float* lse,         // (B, NH, T)
                             const float* qkv,   // (B, T, 3C)
                             int64_t B, int64_t NH, int64_t T, int64_t hs,
                             double dropout_p, uint64_t seed);
void attention_backward_fused(float* dqkv,        // (B, T, 3C)
                              const float* dy,    // (B, T, C)
                              const float* qkv,   // (B, T, 3C)
                              const float* y,     // (B, T, C)
                              const float* lse,   // (B, NH, T)
                              int64_t B, int64_t NH, int64_t T, int64_t hs,
                              double dropout_p, uint64_t seed);

// The same two ops one row of weights at a time (attention_naive.cpp): the version to read first,
// and a second opinion in tests. Same arguments, same results up to float rounding.
void attention_forward_naive(float* out, float* lse, const float* q, const float* k, const float* v,
                             int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed);
void attention_backward_naive(float* dq, float* dk, float* dv, const float* dout, const float* q,
                              const float* k, const float* v, const float* out, const float* lse,
                              int64_t B, int64_t NH, int64_t T, int64_t hs, double dropout_p, uint64_t seed);

// Attention of Tn new positions over a KV cache, for generation (attention_cached.cpp): writes their
// keys and values into the cache at pos .. pos+Tn-1, then query t attends to keys 0 .. pos+t.
// No dropout and no backward: this is inference only.
void attention_cached_forward(float* y,            // (B, Tn, NH * hs), heads side by side
                              float* k_cache,      // (B, NH, Tmax, hs), written at pos .. pos+Tn-1
                              float* v_cache,      // (B, NH, Tmax, hs), written at pos .. pos+Tn-1
                              const float* qkv,    // (B, Tn, 3 * NH * hs): q, k, v of the new positions
                              int64_t B, int64_t Tn, int64_t NH, int64_t hs, int64_t Tmax, int64_t pos);

// The SIMD path attention_forward / attention_backward take now: "avx512", "avx2" or "portable".
// Throws std::invalid_argument if MINIGPT_SIMD names a path this CPU cannot run.
const char* attention_simd();

// ----------------------------------------------------------------------------- layernorm

// out = (x - mean) * rstd * w + b over each row of length C; saves mean and rstd per row.
void layernorm_forward(float* out,        // (N, C)
                       float* mean,       // (N,)
                       float* rstd,       // (N,)
                       const float* x,    // (N, C)
                       const float* w,    // (C,)
                       const float* b,    // (C,)
                       int64_t N, int64_t C, float eps);

// Gradients of layernorm_forward: dx written, dw and db added into (they sum over rows); xhat is
// recomputed from x, mean, rstd.
void layernorm_backward(float* dx,          // (N, C)
                        float* dw,          // (C,)
                        float* db,          // (C,)
                        const float* dout,  // (N, C)
                        const float* x,     // (N, C)
                        const float* mean,  // (N,)
                        const float* rstd,  // (N,)
                        const float* w,     // (C,)
                        int64_t N, int64_t C);

// ----------------------------------------------------------------------------- gelu

// GELU, tanh form, elementwise.
void gelu_forward(float* out,       // (n,)
                  const float* x,   // (n,)
                  int64_t n);

// dx = dout * gelu'(x)
void gelu_backward(float* dx,          // (n,)
                   const float* dout,  // (n,)
                   const float* x,     // (n,)
                   int64_t n);

// ----------------------------------------------------------------------------- cross-entropy

// Per-row softmax cross-entropy loss and log-sum-exp; a negative target counts for nothing.
void cross_entropy_forward(float* losses,           // (N,)
                           float* lse,              // (N,)
                           const float* logits,     // (N, V)
                           const int64_t* targets,  // (N,)
                           int64_t N, int64_t V);

// Gradient of dloss * sum(losses) w.r.t. the logits, written to dlogits; softmax rebuilt from lse.
void cross_entropy_backward(float* dlogits,          // (N, V)
                            const float* logits,     // (N, V)
                            const float* lse,        // (N,)
                            const int64_t* targets,  // (N,)
                            float dloss, int64_t N, int64_t V);

// ----------------------------------------------------------------------------- bias gradient

// db[c] += sum over rows of dout[r, c]: the gradient of a bias added to every row (Linear, wpe).
// Added into db, which a layer passes as its gradient (a view of the flat gradient buffer).
void bias_grad(float* db,           // (C,)
               const float* dout,   // (N, C)
               int64_t N, int64_t C);

// ----------------------------------------------------------------------------- adamw

// One AdamW step in place on p, m, v (n,), with gradient g (n,); bias1, bias2 = 1 - beta^t.
void adamw_update(float* p, float* m, float* v, const float* g, int64_t n, float lr, float beta1, float beta2,
                  float eps, float weight_decay, float bias1, float bias2);

// ----------------------------------------------------------------------------- the FMA peak

// The FP32 multiply-add rate of up to `threads` threads running at once on SIMD path `path` ("avx512",
// "avx2" or "portable"), in GFLOP/s, one figure per round into gflops (rounds,); each round lasts
// about seconds_per_round. Only registers are used: the rate no kernel can exceed (fma_peak.cpp).
// Returns the number of threads that ran (OpenMP may give fewer; without OpenMP, 1).
int fma_peak(double* gflops, const char* path, int threads, double seconds_per_round, int rounds);


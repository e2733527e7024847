// The C++ kernels behind minigpt._core: plain functions on raw float32 buffers.
//
// Conventions (after llm.c's train_gpt2.c): outputs first, then inputs, then sizes; every pointer
// carries its shape in a comment; all buffers are row-major and C-contiguous. Backward kernels ADD
// into their gradient outputs (pass zeroed buffers for a plain gradient), as gradients of shared
// tensors are sums. No pybind11 types here: bindings.cpp checks shapes and dtypes and calls these.
// The NumPy reference of every op, which these follow line for line, is minigpt/kernels.py.
//
// Parallel loops are plain `#pragma omp` lines: OpenMP is optional (see CMakeLists.txt), and a
// build without it ignores them and runs every kernel on one thread.
//
// Shape letters: B batch, NH heads, T sequence length, hs head size, M/N/K matmul sizes.
#pragma once

#include <cstdint>

// ----------------------------------------------------------------------------- matmul

// out = op(a) @ op(b) (+ bias), where op(x) is x or x^T. The flags read a or b transposed in
// place: no transposed copy is ever made.
void matmul_forward(float* out,         // (M, N)
                    const float* a,     // (M, K), or (K, M) if trans_a
                    const float* b,     // (K, N), or (N, K) if trans_b
                    const float* bias,  // (N,) or nullptr
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b);

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

// dx += y * (dy - sum(dy * y)) over each row: only the forward's output y is needed.
void softmax_backward(float* dx,        // (rows, N)
                      const float* dy,  // (rows, N)
                      const float* y,   // (rows, N)
                      int64_t rows, int64_t N);

// ----------------------------------------------------------------------------- attention

// Causal scaled-dot-product attention with attention dropout, one row of weights at a time:
// extra memory is O(T) per thread, never a T x T matrix. lse, the log-sum-exp of each row of
// scaled scores, is all the backward needs to rebuild the weights.
void attention_forward(float* out,       // (B, NH, T, hs)
                       float* lse,       // (B, NH, T)
                       const float* q,   // (B, NH, T, hs)
                       const float* k,   // (B, NH, T, hs)
                       const float* v,   // (B, NH, T, hs)
                       int64_t B, int64_t NH, int64_t T, int64_t hs,
                       double dropout_p, uint64_t seed);

// Gradients of attention_forward, added into dq, dk, dv. The weights are recomputed from q, k
// and lse, and the dropout mask from (seed, position), so nothing T x T is stored.
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

// matmul: out = op(a) @ op(b) (+ bias), op(x) = x or x^T, for the products a Linear layer needs:
//   forward   x @ w + b      (no flags)
//   backward  dout @ w^T     (trans_b)   and   x^T @ dout   (trans_a)
// The flags change how a and b are indexed, never what is in memory: no transposed copies.
//
// Two versions with one signature: matmul_forward_naive, the textbook triple loop, and
// matmul_forward, which picks a loop order per variant so the innermost loop reads memory
// contiguously, and spreads the rows of out over OpenMP threads. Neither is blocked or
// hand-vectorised yet; both accumulate in float, as the NumPy reference does for float32.
#include "kernels.h"

void matmul_forward_naive(float* out, const float* a, const float* b, const float* bias,
                          int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
    // op(a)[m][k] = a[m * a_sm + k * a_sk] and op(b)[k][n] = b[k * b_sk + n * b_sn]: with these
    // strides one loop nest serves all four variants
    const int64_t a_sm = trans_a ? 1 : K, a_sk = trans_a ? M : 1;
    const int64_t b_sk = trans_b ? 1 : N, b_sn = trans_b ? K : 1;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                sum += a[m * a_sm + k * a_sk] * b[k * b_sk + n * b_sn];
            }
            out[m * N + n] = (bias != nullptr) ? sum + bias[n] : sum;
        }
    }
}

void matmul_forward(float* out, const float* a, const float* b, const float* bias,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
    const int64_t a_sm = trans_a ? 1 : K, a_sk = trans_a ? M : 1;  // op(a)[m][k] = a[m * a_sm + k * a_sk]
    // Each thread owns whole rows of out, so no two threads ever write the same element.
    #pragma omp parallel for
    for (int64_t m = 0; m < M; m++) {
        float* out_m = out + m * N;  // (N,)
        if (!trans_b) {
            // b is (K, N): out_m = sum_k op(a)[m][k] * b[k, :]. Scaling whole rows of b ("axpy"
            // order) makes the inner loop stream b and out_m contiguously, which vectorises.
            for (int64_t n = 0; n < N; n++) { out_m[n] = 0.0f; }
            for (int64_t k = 0; k < K; k++) {
                const float a_mk = a[m * a_sm + k * a_sk];
                const float* b_k = b + k * N;  // (N,)
                for (int64_t n = 0; n < N; n++) { out_m[n] += a_mk * b_k[n]; }
            }
        } else {
            // b is (N, K): out[m][n] is the dot product of row m of op(a) with row n of b, which is
            // contiguous. Without trans_a, row m of a is contiguous too (dout @ w^T in a Linear's
            // backward); with both flags it is column m of a, read with stride M (no layer needs it).
            for (int64_t n = 0; n < N; n++) {
                const float* b_n = b + n * K;  // (K,)
                float sum = 0.0f;
                if (!trans_a) {
                    const float* a_m = a + m * K;  // (K,)
                    // a float sum is only vectorised if its additions may be reordered: say they may
                    #pragma omp simd reduction(+ : sum)
                    for (int64_t k = 0; k < K; k++) { sum += a_m[k] * b_n[k]; }
                } else {
                    for (int64_t k = 0; k < K; k++) { sum += a[k * M + m] * b_n[k]; }
                }
                out_m[n] = sum;
            }
        }
        // the bias is added last, after the product, as in the NumPy reference
        if (bias != nullptr) {
            for (int64_t n = 0; n < N; n++) { out_m[n] += bias[n]; }
        }
    }
}

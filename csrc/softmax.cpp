// softmax over the last axis, forward and backward, one row per loop iteration and rows spread
// over OpenMP threads (rows are independent). Follows softmax_forward / softmax_backward in
// minigpt/kernels.py.
#include <cmath>

#include "kernels.h"

void softmax_forward(float* y, const float* x, int64_t rows, int64_t N) {
    #pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) {
        const float* x_r = x + r * N;  // (N,)
        float* y_r = y + r * N;        // (N,)
        // Subtracting the row max leaves softmax unchanged but makes every exponent <= 0, so
        // exp cannot overflow, and the max element gives exp(0) = 1, so the sum is >= 1.
        float maxval = -INFINITY;
        for (int64_t n = 0; n < N; n++) {
            if (x_r[n] > maxval) { maxval = x_r[n]; }
        }
        float sum = 0.0f;
        for (int64_t n = 0; n < N; n++) {
            y_r[n] = std::exp(x_r[n] - maxval);
            sum += y_r[n];
        }
        const float norm = 1.0f / sum;
        for (int64_t n = 0; n < N; n++) { y_r[n] *= norm; }
    }
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
    #pragma omp parallel for
    for (int64_t r = 0; r < rows; r++) {
        const float* dy_r = dy + r * N;  // (N,)
        const float* y_r = y + r * N;    // (N,)
        float* dx_r = dx + r * N;        // (N,)
        // The softmax Jacobian is diag(y) - y y^T, so J^T dy = y * (dy - dot(dy, y)): one dot
        // product per row instead of an N x N matrix.
        float dot = 0.0f;
        for (int64_t n = 0; n < N; n++) { dot += dy_r[n] * y_r[n]; }
        for (int64_t n = 0; n < N; n++) { dx_r[n] += y_r[n] * (dy_r[n] - dot); }
    }
}

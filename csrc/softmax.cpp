// softmax over the last axis, forward and backward, one row at a time, rows split over OpenMP
// threads (rows are independent) when there are enough of them. Follows softmax_forward /
// softmax_backward in minigpt/kernels/softmax.py. Each row is a few passes over the same N floats,
// which stay in L1 or L2 between passes: W floats at a time (simd.h), the last N % W one by one.
#include <cmath>

#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

template <typename V>
SIMD_INLINE void softmax_forward_rows(float* y, const float* x, int64_t r0, int64_t r1, int64_t N) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t nv = N / W * W;
    for (int64_t r = r0; r < r1; r++) {
        const float* x_r = x + r * N;  // (N,)
        float* y_r = y + r * N;        // (N,)
        // Subtracting the row max leaves softmax unchanged but makes every exponent <= 0, so
        // exp cannot overflow, and the max element gives exp(0) = 1, so the sum is >= 1.
        const float norm = 1.0f / sum_of_exp<V>(x_r, N, max_of_row<V>(x_r, N), y_r);  // y = exp(x - max)
        V e;
        for (int64_t n = 0; n < nv; n += W) {
            std::memcpy(&e, y_r + n, sizeof(V));
            e *= norm;
            std::memcpy(y_r + n, &e, sizeof(V));
        }
        for (int64_t n = nv; n < N; n++) { y_r[n] *= norm; }
    }
}

template <typename V>
SIMD_INLINE void softmax_backward_rows(float* dx, const float* dy, const float* y, int64_t r0, int64_t r1,
                                       int64_t N) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t nv = N / W * W;
    for (int64_t r = r0; r < r1; r++) {
        const float* dy_r = dy + r * N;  // (N,)
        const float* y_r = y + r * N;    // (N,)
        float* dx_r = dx + r * N;        // (N,)
        // The softmax Jacobian is diag(y) - y y^T, so J^T dy = y * (dy - dot(dy, y)): one dot
        // product per row instead of an N x N matrix.
        V acc = V{}, a, b, d;
        for (int64_t n = 0; n < nv; n += W) {
            std::memcpy(&a, dy_r + n, sizeof(V));
            std::memcpy(&b, y_r + n, sizeof(V));
            acc += a * b;
        }
        float dot = sum_lanes(acc);
        for (int64_t n = nv; n < N; n++) { dot += dy_r[n] * y_r[n]; }
        for (int64_t n = 0; n < nv; n += W) {
            std::memcpy(&a, dy_r + n, sizeof(V));
            std::memcpy(&b, y_r + n, sizeof(V));
            d = b * (a - dot);
            std::memcpy(dx_r + n, &d, sizeof(V));
        }
        for (int64_t n = nv; n < N; n++) { dx_r[n] = y_r[n] * (dy_r[n] - dot); }
    }
}

SIMD_AVX512 void forward_avx512(float* y, const float* x, int64_t r0, int64_t r1, int64_t N) {
    softmax_forward_rows<vec16>(y, x, r0, r1, N);
}
SIMD_AVX2 void forward_avx2(float* y, const float* x, int64_t r0, int64_t r1, int64_t N) {
    softmax_forward_rows<vec8>(y, x, r0, r1, N);
}
void forward_portable(float* y, const float* x, int64_t r0, int64_t r1, int64_t N) {
    softmax_forward_rows<vec4>(y, x, r0, r1, N);
}

SIMD_AVX512 void backward_avx512(float* dx, const float* dy, const float* y, int64_t r0, int64_t r1, int64_t N) {
    softmax_backward_rows<vec16>(dx, dy, y, r0, r1, N);
}
SIMD_AVX2 void backward_avx2(float* dx, const float* dy, const float* y, int64_t r0, int64_t r1, int64_t N) {
    softmax_backward_rows<vec8>(dx, dy, y, r0, r1, N);
}
void backward_portable(float* dx, const float* dy, const float* y, int64_t r0, int64_t r1, int64_t N) {
    softmax_backward_rows<vec4>(dx, dy, y, r0, r1, N);
}

}  // namespace

void softmax_forward(float* y, const float* x, int64_t rows, int64_t N) {
    if (N == 0) { return; }  // rows of nothing: no need to walk 2^40 of them
    const SimdPath path = simd_path();
    #pragma omp parallel if (rows > 1 && rows * N >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(rows, 1);
        if (path == SimdPath::avx512) {
            forward_avx512(y, x, s.begin, s.end, N);
        } else if (path == SimdPath::avx2) {
            forward_avx2(y, x, s.begin, s.end, N);
        } else {
            forward_portable(y, x, s.begin, s.end, N);
        }
    }
}

void softmax_backward(float* dx, const float* dy, const float* y, int64_t rows, int64_t N) {
    if (N == 0) { return; }  // rows of nothing: no need to walk 2^40 of them
    const SimdPath path = simd_path();
    #pragma omp parallel if (rows > 1 && rows * N >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(rows, 1);
        if (path == SimdPath::avx512) {
            backward_avx512(dx, dy, y, s.begin, s.end, N);
        } else if (path == SimdPath::avx2) {
            backward_avx2(dx, dy, y, s.begin, s.end, N);
        } else {
            backward_portable(dx, dy, y, s.begin, s.end, N);
        }
    }
}

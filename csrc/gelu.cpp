// GELU, tanh form, forward and backward, elementwise. Follows minigpt/kernels/gelu.py.
//
// One pass over memory, W floats at a time (simd.h): the tanh is 1 - 2 / (exp(2u) + 1) with the
// vectorised exp, so the loop runs at the speed of memory rather than of libm. Threads split the
// array only above MIN_PARALLEL_WORK elements (fastmath.h): below it the whole loop takes less time
// than waking the team.
#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float GELU_C = 0.044715f;

template <typename V>
SIMD_INLINE void gelu_forward_vec(V& out, const V& v) {
    V t = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
    tanh_in_place(t);
    out = 0.5f * v * (1.0f + t);
}

// dx += dout * gelu'(x), gelu'(x) = 0.5 (1 + t) + 0.5 x (1 - t^2) du/dx
template <typename V>
SIMD_INLINE void gelu_backward_vec(V& dx, const V& dout, const V& v) {
    V t = SQRT_2_OVER_PI * (v + GELU_C * v * v * v);
    tanh_in_place(t);
    const V du = SQRT_2_OVER_PI * (1.0f + 3.0f * GELU_C * v * v);
    dx += dout * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
}

// Elements [i0, i1) of one thread; whole vectors, then the tail as one zero-padded vector.
template <typename V>
SIMD_INLINE void gelu_forward_range(float* out, const float* x, int64_t i0, int64_t i1) {
    constexpr int64_t W = Lanes<V>::W;
    int64_t i = i0;
    V v, o;
    for (; i + W <= i1; i += W) {
        std::memcpy(&v, x + i, sizeof(V));
        gelu_forward_vec(o, v);
        std::memcpy(out + i, &o, sizeof(V));
    }
    if (i < i1) {
        load_partial(v, x + i, i1 - i);
        gelu_forward_vec(o, v);
        store_partial(out + i, o, i1 - i);
    }
}

template <typename V>
SIMD_INLINE void gelu_backward_range(float* dx, const float* dout, const float* x, int64_t i0, int64_t i1) {
    constexpr int64_t W = Lanes<V>::W;
    int64_t i = i0;
    V g, v, d;
    for (; i + W <= i1; i += W) {
        std::memcpy(&g, dout + i, sizeof(V));
        std::memcpy(&v, x + i, sizeof(V));
        std::memcpy(&d, dx + i, sizeof(V));
        gelu_backward_vec(d, g, v);
        std::memcpy(dx + i, &d, sizeof(V));
    }
    if (i < i1) {
        load_partial(g, dout + i, i1 - i);
        load_partial(v, x + i, i1 - i);
        load_partial(d, dx + i, i1 - i);
        gelu_backward_vec(d, g, v);
        store_partial(dx + i, d, i1 - i);
    }
}

SIMD_AVX512 void gelu_forward_avx512(float* out, const float* x, int64_t i0, int64_t i1) {
    gelu_forward_range<vec16>(out, x, i0, i1);
}
SIMD_AVX2 void gelu_forward_avx2(float* out, const float* x, int64_t i0, int64_t i1) {
    gelu_forward_range<vec8>(out, x, i0, i1);
}
void gelu_forward_portable(float* out, const float* x, int64_t i0, int64_t i1) {
    gelu_forward_range<vec4>(out, x, i0, i1);
}

SIMD_AVX512 void gelu_backward_avx512(float* dx, const float* dout, const float* x, int64_t i0, int64_t i1) {
    gelu_backward_range<vec16>(dx, dout, x, i0, i1);
}
SIMD_AVX2 void gelu_backward_avx2(float* dx, const float* dout, const float* x, int64_t i0, int64_t i1) {
    gelu_backward_range<vec8>(dx, dout, x, i0, i1);
}
void gelu_backward_portable(float* dx, const float* dout, const float* x, int64_t i0, int64_t i1) {
    gelu_backward_range<vec4>(dx, dout, x, i0, i1);
}

}  // namespace

void gelu_forward(float* out, const float* x, int64_t n) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (n >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(n, 64);
        if (path == SimdPath::avx512) {
            gelu_forward_avx512(out, x, s.begin, s.end);
        } else if (path == SimdPath::avx2) {
            gelu_forward_avx2(out, x, s.begin, s.end);
        } else {
            gelu_forward_portable(out, x, s.begin, s.end);
        }
    }
}

void gelu_backward(float* dx, const float* dout, const float* x, int64_t n) {
    const SimdPath path = simd_path();
    #pragma omp parallel if (n >= MIN_PARALLEL_WORK)
    {
        const Share s = thread_share(n, 64);
        if (path == SimdPath::avx512) {
            gelu_backward_avx512(dx, dout, x, s.begin, s.end);
        } else if (path == SimdPath::avx2) {
            gelu_backward_avx2(dx, dout, x, s.begin, s.end);
        } else {
            gelu_backward_portable(dx, dout, x, s.begin, s.end);
        }
    }
}

// GELU, tanh form, forward and backward, elementwise. Follows minigpt/kernels/gelu.py.
//
// The tanh form 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3), is computed as the same
// number written differently: 1 + tanh(u) = 2 / (1 + exp(-2u)), so gelu(x) = x / (1 + exp(-2u)).
// That is x times a sigmoid: no tanh, one exp and one division, about 19 vector instructions for a
// vector of x instead of 27, and no 1 + tanh(u) to lose every digit where tanh(u) is near -1 (for
// x < -3 the tanh form in float32 keeps only a few correct digits, none below -5; this one keeps
// five down to x = -9, where the exponent near 95 magnifies each rounding of it).
//
// One pass over memory, W floats at a time (simd.h), so the loop runs near the speed of memory
// rather than of libm. Threads split the array only above MIN_PARALLEL_WORK elements (fastmath.h):
// below it the whole loop takes less time than waking the team.
#include "fastmath.h"
#include "kernels.h"
#include "simd.h"

namespace {

constexpr float SQRT_2_OVER_PI = 0.7978845608028654f;
constexpr float GELU_C = 0.044715f;

// e = exp(-2u) = 2^(x (a + b x^2)), the constants folded into one multiply-add and a multiply. The
// exponent is clamped to +-100, where 1 + 2^t is 1 or far beyond x: the result is already x or 0
// to float precision, and 2^t stays in exp2_in_range's range.
template <typename V>
SIMD_INLINE void exp_minus_2u(V& e, const V& x) {
    constexpr float a = -2.0f * SQRT_2_OVER_PI * LOG2_E, b = a * GELU_C;
    e = x * (a + b * (x * x));
    e = e < -100.0f ? V{} - 100.0f : e;
    e = e > 100.0f ? V{} + 100.0f : e;
    exp2_in_range(e);
}

template <typename V>
SIMD_INLINE void gelu_forward_vec(V& out, const V& x) {
    V e;
    exp_minus_2u(e, x);
    out = x / (1.0f + e);
}

// dx = dout * gelu'(x). With s = 1 / (1 + exp(-2u)), gelu = x s and s' = 2 s (1 - s) du/dx:
// gelu'(x) = s + x s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2).
template <typename V>
SIMD_INLINE void gelu_backward_vec(V& dx, const V& dout, const V& x) {
    constexpr float c = 2.0f * SQRT_2_OVER_PI, d = c * 3.0f * GELU_C;
    V e;
    exp_minus_2u(e, x);
    const V s = 1.0f / (1.0f + e);
    dx = dout * (s + x * s * (1.0f - s) * (c + d * (x * x)));
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
        gelu_backward_vec(d, g, v);
        std::memcpy(dx + i, &d, sizeof(V));
    }
    if (i < i1) {
        load_partial(g, dout + i, i1 - i);
        load_partial(v, x + i, i1 - i);
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

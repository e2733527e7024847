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

// e = exp(-2u) = 2^t, t = x (a + b x^2), the constants folded into one multiply-add and a multiply.
template <typename V>
SIMD_INLINE V exp_minus_2u(const V& x) {
    constexpr float a = -2.0f * SQRT_2_OVER_PI * LOG2_E, b = a * GELU_C;
    V t = x * (a + b * (x * x));
    exp2_in_range(t);
    return t;
}

// Both kernels compute the sigmoid s = 1 / (1 + 2^t) from x clamped to [-9.9, 9.9], where t stays within
// exp2_in_range's range (|t| <= 122.6). Beyond 9.9, s is 1 to float precision; below -9.9, s < 2^-122 and
// gelu = x s is under 2e-36 in size: the forward writes gelu(-9.9) there, zero at float32's precision for
// an activation. Clamping x, not t, keeps that true for a huge |x|: a clamped t times x = -1e30 gave -0.79.
// (An infinite x gets the limits: gelu(-inf) about -2e-36, slope 0; gelu(inf) = inf, slope 1.)
constexpr float kEdge = 9.9f;

template <typename V>
SIMD_INLINE void gelu_forward_vec(V& out, const V& x) {
    const V above = x < -kEdge ? V{} - kEdge : x;  // NaN compares false and stays NaN
    const V inside = above > kEdge ? V{} + kEdge : above;
    out = above / (1.0f + exp_minus_2u(inside));  // x (or -9.9) times the sigmoid
}

// dx = dout * gelu'(x). With s = 1 / (1 + exp(-2u)), gelu = x s and s' = 2 s (1 - s) du/dx:
// gelu'(x) = s + x s (1 - s) 2 sqrt(2/pi) (1 + 3 * 0.044715 x^2). From the clamped x it is 1 beyond 9.9
// and below 1e-34 under -9.9, and x^2 cannot overflow.
template <typename V>
SIMD_INLINE void gelu_backward_vec(V& dx, const V& dout, const V& x) {
    constexpr float c = 2.0f * SQRT_2_OVER_PI, d = c * 3.0f * GELU_C;
    V inside = x < -kEdge ? V{} - kEdge : x;
    inside = inside > kEdge ? V{} + kEdge : inside;
    const V s = 1.0f / (1.0f + exp_minus_2u(inside));
    dx = dout * (s + inside * s * (1.0f - s) * (c + d * (inside * inside)));
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

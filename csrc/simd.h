// SIMD for the memory-bound kernels (GELU, softmax, cross-entropy, LayerNorm, AdamW): one loop body
// written once on GCC's vector types, compiled three times, for AVX-512 (16 floats), AVX2 (8) and
// the baseline instruction set (4: SSE2 on x86-64, NEON on ARM64), and picked at run time.
//
// Why not leave it to the compiler: without -ffast-math GCC will not vectorise a loop with a
// clamp, a division and integer bit tricks (fast_exp), and the project's portable flags stop at
// SSE2. A scalar GELU measured 10 ns per element here (0.8 GB/s), a twentieth of the memory speed.
//
// How: a kernel file writes its loop as a template on the vector type V and gives it three thin
// wrappers, one with target("avx512f,avx512dq,fma"), one with target("avx2,fma") and one plain,
// then calls the one that simd_path() names. The templates here are always inlined, so each
// wrapper gets its own copy compiled for its own instruction set. Vectors are passed by reference:
// passing them by value between functions compiled for different instruction sets is what GCC's
// -Wpsabi warns about.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels.h"

#define SIMD_INLINE static inline __attribute__((always_inline))
#if defined(__x86_64__)
#define SIMD_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define SIMD_AVX2 __attribute__((target("avx2,fma")))
#else
// Elsewhere (ARM64) the x86 targets do not exist and only the portable path runs: simd_path() names
// no other there (matmul.cpp offers AVX only on x86-64). The wider wrappers still compile, for the
// baseline vector unit, so that the kernel files need no #if of their own; nothing calls them.
#define SIMD_AVX512
#define SIMD_AVX2
#endif

typedef float vec4 __attribute__((vector_size(16)));
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));

constexpr float LOG2_E = 1.4426950408889634f;

// W: the lanes of V; U: the uint32 vector of the same size (for exponent bit tricks: unsigned, so
// that a shift into the sign bit or a carry out of it is defined arithmetic, as it is not for int32).
template <typename V>
struct Lanes {
    static constexpr int64_t W = sizeof(V) / sizeof(float);
    typedef uint32_t U __attribute__((vector_size(sizeof(V))));
};

// The three paths, in the order the matmul chooses them (matmul_simd_path(), which honours
// MINIGPT_SIMD): one choice for every kernel of the process.
enum class SimdPath { portable, avx2, avx512 };

inline SimdPath simd_path() {
    static const SimdPath path = [] {
        const char* name = matmul_simd_path();
        return std::strcmp(name, "avx512") == 0 ? SimdPath::avx512
               : std::strcmp(name, "avx2") == 0 ? SimdPath::avx2 : SimdPath::portable;
    }();
    return path;
}

// v = x[0 .. n), the lanes past n zero (n <= W): the tail of a row as one whole vector.
template <typename V>
SIMD_INLINE void load_partial(V& v, const float* x, int64_t n) {
    v = V{};
    std::memcpy(&v, x, sizeof(float) * n);
}

template <typename V>
SIMD_INLINE void store_partial(float* x, const V& v, int64_t n) {
    std::memcpy(x, &v, sizeof(float) * n);
}

// x = 2^x, lane by lane, for x in [-125, 127] (the callers clamp: outside it the exponent bits below
// would overflow, or make a denormal of the wrong value). x = n + f with n = round(x) and f in
// [-1/2, 1/2]; 2^f from a degree-6 polynomial (fitted for relative error: about 1e-7, 1 ulp), 2^n
// put straight into the exponent bits.
// Working in base 2 saves the range reduction's multiply by ln 2: a caller folds log2(e) into the
// multiply it already does (exp(a x) = 2^(a log2(e) x)).
template <typename V>
SIMD_INLINE void exp2_in_range(V& x) {
    typedef typename Lanes<V>::U U;
    // Adding 1.5 * 2^23 pushes the fraction bits out of the mantissa: the sum is x rounded to an
    // integer n, and n (two's complement) sits in its low mantissa bits.
    const V shifted = x + 12582912.0f;
    const V f = x - (shifted - 12582912.0f);
    V p = 1.5337577e-4f * f + 1.3399860e-3f;
    p = p * f + 9.6185198e-3f;
    p = p * f + 5.5503290e-2f;
    p = p * f + 2.4022646e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    // Shifting the bits of `shifted` left by 23 keeps only n, now in the exponent field: adding them
    // multiplies p by 2^n (for n < 0 the addition wraps modulo 2^32, which is the subtraction from the
    // exponent that is wanted). (U) and (V) reinterpret the bits, as GCC defines a cast between
    // vector types of one size.
    x = (V)((U)p + ((U)shifted << 23));
}

// x = 2^x, lane by lane, for x <= 0, exactly 0 below -125 (2.4e-38, where float runs out), so that
// exp(-inf), a masked entry, is 0 as it should be. The row kernels' exp(z - max) is
// 2^((z - max) log2(e)), never above 0 (fastmath.h's sum_of_exp). Lanes below -125 go through
// exp2_in_range too and come out as junk (NaN for -inf), never trapping (float exceptions are
// masked); the select replaces them. fast_exp of fastmath.h is the same on one float.
template <typename V>
SIMD_INLINE void exp2_nonpositive(V& x) {
    const auto underflow = x < -125.0f;
    exp2_in_range(x);
    x = underflow ? V{} : x;
}

// lo, hi = the two halves of v, as vectors of half the width.
template <typename V> struct Half;
template <> struct Half<vec16> { typedef vec8 T; };
template <> struct Half<vec8> { typedef vec4 T; };

#if defined(__has_builtin)
#if __has_builtin(__builtin_shufflevector)  // GCC 12+, Clang
#define MINIGPT_SHUFFLEVECTOR 1
#endif
#endif

template <typename V, typename H = typename Half<V>::T>
SIMD_INLINE void split_halves(const V& v, H& lo, H& hi) {
#ifdef MINIGPT_SHUFFLEVECTOR  // one shuffle instruction
    if constexpr (Lanes<V>::W == 16) {
        lo = __builtin_shufflevector(v, v, 0, 1, 2, 3, 4, 5, 6, 7);
        hi = __builtin_shufflevector(v, v, 8, 9, 10, 11, 12, 13, 14, 15);
    } else {
        lo = __builtin_shufflevector(v, v, 0, 1, 2, 3);
        hi = __builtin_shufflevector(v, v, 4, 5, 6, 7);
    }
#else  // older GCC: through memory, the same values
    std::memcpy(&lo, &v, sizeof lo);
    std::memcpy(&hi, reinterpret_cast<const char*>(&v) + sizeof lo, sizeof hi);
#endif
}

// The sum of the lanes as a tree (halves added until one vector of 4 is left), a fixed order, so
// results depend on nothing but the data. A tree, not a left-to-right loop, because a row kernel
// waits for this sum: 4 dependent steps instead of 15 (the cross-entropy forward over rows of 65
// logits ran 1.27x faster for it).
template <typename V>
SIMD_INLINE float sum_lanes(const V& v) {
    if constexpr (Lanes<V>::W == 4) {
        return (v[0] + v[2]) + (v[1] + v[3]);
    } else {
        typename Half<V>::T lo, hi;
        split_halves(v, lo, hi);
        return sum_lanes(lo + hi);
    }
}

template <typename V>
SIMD_INLINE float max_lanes(const V& v) {
    if constexpr (Lanes<V>::W == 4) {
        const float a = v[0] > v[2] ? v[0] : v[2], b = v[1] > v[3] ? v[1] : v[3];
        return a > b ? a : b;
    } else {
        typename Half<V>::T lo, hi;
        split_halves(v, lo, hi);
        return max_lanes(lo > hi ? lo : hi);
    }
}

// The largest of x[0 .. n): whole vectors into four running maxima, so that four compares are in
// flight rather than one chain of n / W (each compare waits about 4 cycles for the one before), then
// the last n % W floats.
template <typename V>
SIMD_INLINE float max_of_row(const float* x, int64_t n) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t nv = n / W * W;
    float result = -INFINITY;
    if (nv > 0) {
        V m0, m1, m2, m3, v;
        std::memcpy(&m0, x, sizeof(V));
        m1 = m2 = m3 = m0;
        int64_t i = W;
        for (; i + 4 * W <= nv; i += 4 * W) {
            std::memcpy(&v, x + i, sizeof(V));
            m0 = v > m0 ? v : m0;
            std::memcpy(&v, x + i + W, sizeof(V));
            m1 = v > m1 ? v : m1;
            std::memcpy(&v, x + i + 2 * W, sizeof(V));
            m2 = v > m2 ? v : m2;
            std::memcpy(&v, x + i + 3 * W, sizeof(V));
            m3 = v > m3 ? v : m3;
        }
        for (; i < nv; i += W) {
            std::memcpy(&v, x + i, sizeof(V));
            m0 = v > m0 ? v : m0;
        }
        m0 = m1 > m0 ? m1 : m0;
        m2 = m3 > m2 ? m3 : m2;
        result = max_lanes(m2 > m0 ? m2 : m0);
    }
    for (int64_t i = nv; i < n; i++) { result = x[i] > result ? x[i] : result; }
    return result;
}

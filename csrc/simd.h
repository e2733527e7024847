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

#include <cstdint>
#include <cstring>

#include "kernels.h"

#define SIMD_INLINE static inline __attribute__((always_inline))
#define SIMD_AVX512 __attribute__((target("avx512f,avx512dq,fma")))
#define SIMD_AVX2 __attribute__((target("avx2,fma")))

typedef float vec4 __attribute__((vector_size(16)));
typedef float vec8 __attribute__((vector_size(32)));
typedef float vec16 __attribute__((vector_size(64)));

// W: the lanes of V; I: the int32 vector of the same size (for exponent bit tricks).
template <typename V>
struct Lanes {
    static constexpr int64_t W = sizeof(V) / sizeof(float);
    typedef int32_t I __attribute__((vector_size(sizeof(V))));
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

// x = 2^x, lane by lane, for x in [-126, 127] (the callers clamp: outside it the exponent bits below
// would overflow). x = n + f with n = round(x) and f in [-1/2, 1/2]; 2^f from a degree-6 polynomial
// (fitted for relative error: about 1e-7, 1 ulp), 2^n put straight into the exponent bits.
// Working in base 2 saves the range reduction's multiply by ln 2: a caller folds log2(e) into the
// multiply it already does (exp(a x) = 2^(a log2(e) x)).
template <typename V>
SIMD_INLINE void exp2_in_range(V& x) {
    typedef typename Lanes<V>::I I;
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
    // multiplies p by 2^n. (I) and (V) reinterpret the bits, as GCC defines a cast between vector
    // types of one size.
    x = (V)((I)p + ((I)shifted << 23));
}

// x = exp(x), lane by lane, relative error about 1e-7, except that below -87.3 (where exp is under
// 1.2e-38 and float runs out) the result is exactly 0, so that exp(-inf), a masked entry, is 0 as it
// should be. fast_exp of fastmath.h is the same function on one float.
template <typename V>
SIMD_INLINE void exp_in_place(V& x) {
    const auto underflow = x < -87.3f;
    x *= 1.44269504088896341f;                      // log2(e): exp(x) = 2^(x log2(e))
    x = x > 127.0f ? V{} + 127.0f : x;              // exp(88.03): beyond, float overflows
    x = underflow ? V{} : x;                        // any value in range; the lane is zeroed below
    exp2_in_range(x);
    x = underflow ? V{} : x;
}

// The sum of the lanes, in a fixed order (so results do not depend on anything but the data).
template <typename V>
SIMD_INLINE float sum_lanes(const V& v) {
    float s = 0.0f;
    for (int64_t l = 0; l < Lanes<V>::W; l++) { s += v[l]; }
    return s;
}

template <typename V>
SIMD_INLINE float max_lanes(const V& v) {
    float m = v[0];
    for (int64_t l = 1; l < Lanes<V>::W; l++) { m = v[l] > m ? v[l] : m; }
    return m;
}

// exp and tanh written so that the compiler can vectorise them.
//
// std::exp and std::tanh are calls into libm that GCC will not vectorise without -ffast-math,
// which the build does not use (it would change every other float result too). These are the
// textbook Cephes-style versions: exp(x) = 2^n * e^r with n = round(x / ln 2) and
// r = x - n ln 2 in [-ln2/2, ln2/2], e^r from a degree-6 polynomial, 2^n put straight into the
// exponent bits. Relative error about 2e-7 (2 ulp) over the whole float range; exactly 0 below -87.3.
// simd.h has the same function on vectors.
#pragma once

#include <cstdint>
#include <cstring>

#ifdef MINIGPT_OPENMP
#include <omp.h>
#endif

// Below this much work (elements of a memory-bound kernel, multiply-adds of a matrix-vector product)
// a loop finishes on one thread before a second thread would be awake to help: 131k elements are
// about 40 us of GELU. minigpt's threads sleep while they wait (OMP_WAIT_POLICY=passive, set in
// minigpt/kernels/backend.py), so each parallel region pays a wake-up, measured at 10-30 us on these
// shared 2-core machines; regions this small also meant more barriers for a busy neighbour to stall.
constexpr int64_t MIN_PARALLEL_WORK = 1 << 17;

// The calling thread's share [begin, end) of n items, split evenly over the team in contiguous
// pieces whose ends are multiples of `unit` (except n itself): 64 floats keep two threads off one
// cache line and every share on whole vectors. Outside a parallel region: all of [0, n).
struct Share { int64_t begin, end; };
inline Share thread_share(int64_t n, int64_t unit) {
    int64_t team = 1, rank = 0;
#ifdef MINIGPT_OPENMP
    team = omp_get_num_threads();
    rank = omp_get_thread_num();
#endif
    const int64_t units = (n + unit - 1) / unit;
    const int64_t begin = units * rank / team * unit, end = units * (rank + 1) / team * unit;
    return {begin < n ? begin : n, end < n ? end : n};
}

static inline float fast_exp(float x) {
    const bool underflow = x < -87.3f;  // exp(x) < 1.2e-38: 0, as exp(-inf) (a masked entry) must be
    x = underflow ? -87.3f : (x > 88.3f ? 88.3f : x);  // beyond these exp under/overflows float
    // round(x / ln2) by the 1.5 * 2^23 trick: adding it pushes the fraction bits out
    const float shifted = x * 1.44269504088896341f + 12582912.0f;
    const float n = shifted - 12582912.0f;
    // r = x - n ln2, with ln2 split in two so the product is exact to float precision
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    int32_t bits;
    std::memcpy(&bits, &p, sizeof bits);
    bits += static_cast<int32_t>(n) << 23;  // multiply by 2^n
    std::memcpy(&p, &bits, sizeof bits);
    return underflow ? 0.0f : p;
}

// tanh(u) = 1 - 2 / (exp(2u) + 1): exact limits +-1 for large |u|, absolute error about 1e-7.
static inline float fast_tanh(float u) { return 1.0f - 2.0f / (fast_exp(2.0f * u) + 1.0f); }

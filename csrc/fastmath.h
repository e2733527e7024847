// Helpers shared by the kernels: the split of work over threads, and exp on one float.
//
// std::exp is a call into libm that GCC will not vectorise without -ffast-math, which the build
// does not use (it would change every other float result too); simd.h has exp on vectors, and
// fast_exp below is the same function on one float, for the tail of a row.
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

// exp(x) on one float, for the tail of a row: the polynomial and exponent trick of exp2_in_range in
// simd.h (the roundings may differ, where a vector path fuses a multiply and an add).
// exp(x) = 2^(x log2 e) = 2^n 2^f with n = round(x log2 e) and f in [-1/2, 1/2]; 2^f from a degree-6
// polynomial, 2^n put into the exponent bits. Relative error about 1e-7; exactly 0 below -86.6
// (2^-125), as exp(-inf) (a masked entry) must be.
static inline float fast_exp(float x) {
    x *= 1.44269504088896341f;
    const bool underflow = x < -125.0f;
    x = x > 127.0f ? 127.0f : x;  // exp(88.03): beyond, float overflows
    x = underflow ? 0.0f : x;
    // adding 1.5 * 2^23 rounds to an integer n and leaves n in the low mantissa bits
    const float shifted = x + 12582912.0f;
    const float f = x - (shifted - 12582912.0f);
    float p = 1.5337577e-4f * f + 1.3399860e-3f;
    p = p * f + 9.6185198e-3f;
    p = p * f + 5.5503290e-2f;
    p = p * f + 2.4022646e-1f;
    p = p * f + 6.9314718e-1f;
    p = p * f + 1.0f;
    int32_t p_bits, n_bits;
    std::memcpy(&p_bits, &p, sizeof p_bits);
    std::memcpy(&n_bits, &shifted, sizeof n_bits);
    // n << 23: the shift keeps only n's bits, now in the exponent field; adding multiplies p by 2^n
    p_bits += static_cast<int32_t>(static_cast<uint32_t>(n_bits) << 23);
    std::memcpy(&p, &p_bits, sizeof p);
    return underflow ? 0.0f : p;
}

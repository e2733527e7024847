// Helpers shared by the kernels: the split of work over threads, and exp on one float.
//
// std::exp is a call into libm that GCC will not vectorise without -ffast-math, which the build
// does not use (it would change every other float result too); simd.h has exp on vectors, and
// fast_exp below is the same function on one float, for the tail of a row.
#pragma once

#include <cstdint>
#include <cstring>

#include "simd.h"

#ifdef MINIGPT_OPENMP
#include <omp.h>
#endif

// Below this much work (elements of a memory-bound kernel) a loop finishes on one thread before a
// second thread would be awake to help: 131k elements are about 40 us of GELU. minigpt's threads spin
// only briefly and then sleep while they wait (GOMP_SPINCOUNT=1000, set in minigpt/kernels/backend.py),
// so a region after a pause pays a wake-up, measured at 10-50 us on these shared 2-core machines;
// regions this small also meant more barriers for a busy neighbour to stall. The few-row products of
// generation, which stream their weights at one thread's memory speed, have a larger limit of their
// own (SMALL_M_PARALLEL_WORK, csrc/matmul.cpp).
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

// exp(x) for x <= 0 on one float, for the tail of a row (its callers pass z - max or z - lse): one
// lane of exp2_nonpositive in simd.h, so the tail and the whole vectors share one polynomial.
// Relative error about 1e-7; exactly 0 below -86.6 (2^-125), as exp(-inf) (a masked entry) must be.
static inline float fast_exp(float x) {
    vec4 v = {x * LOG2_E, 0.0f, 0.0f, 0.0f};
    exp2_nonpositive(v);
    return v[0];
}

// sum over i of exp(x[i] - maxval) for one row x (n,), maxval its max; the terms are also written to
// out (n,) unless out is null (softmax keeps them, cross-entropy's forward needs only the sum).
// exp(x - max) = 2^((x - max) log2(e)): the subtraction first, exact for the entries near the max
// that carry the sum. Not x log2(e) - max log2(e), one multiply-add: without FMA (the portable path
// on x86-64) x log2(e) is rounded at the size of x, so logits near 300 moved a probability of 0.24
// by 1.3e-5 of itself; this way the error grows with x - max only, as in NumPy's float32 softmax.
template <typename V>
SIMD_INLINE float sum_of_exp(const float* x, int64_t n, float maxval, float* out) {
    constexpr int64_t W = Lanes<V>::W;
    const int64_t nv = n / W * W;
    V acc = V{}, e;
    for (int64_t i = 0; i < nv; i += W) {
        std::memcpy(&e, x + i, sizeof(V));
        e = (e - maxval) * LOG2_E;
        exp2_nonpositive(e);
        acc += e;
        if (out != nullptr) { std::memcpy(out + i, &e, sizeof(V)); }
    }
    float sum = sum_lanes(acc);
    for (int64_t i = nv; i < n; i++) {
        const float t = fast_exp(x[i] - maxval);
        sum += t;
        if (out != nullptr) { out[i] = t; }
    }
    return sum;
}

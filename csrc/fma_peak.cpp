// fma_peak: the FP32 multiply-add rate this CPU reaches, measured, the yardstick of "fraction of peak".
//
// No matmul can beat the rate at which the cores retire fused multiply-adds: per core, (FMA units) x
// (floats per vector) x 2 FLOPs per cycle, times the clock. The clock under wide-vector load is often
// below the nominal one (AVX-512 especially) and a VM's vCPU may share a core, so the benchmarks
// measure the rate rather than compute it from a data sheet.
//
// How: every thread runs CHAINS independent chains acc = acc * a + b over registers only (no memory
// traffic), and we count FLOPs per second. Independent, because one FMA's result takes ~4 cycles to
// come out: a single chain would wait on itself, while 2 units x 4 cycles = 8 FMAs in flight keep both
// units busy; 12 chains leave a margin and still fit in the 16 registers of AVX2. a = 0.999999 and
// b = 1e-7 keep the values near their start (no overflow, no denormals, which are slow).
//
// Each SIMD path measures its own instructions: AVX-512 (16 floats per FMA), AVX2 + FMA (8), and the
// portable path's 4-float vectors, which on baseline x86-64 (SSE2) have no FMA: a multiply and an add.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#ifdef MINIGPT_OPENMP
#include <omp.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#endif

#include "kernels.h"
#include "simd.h"

namespace {

constexpr int CHAINS = 12;

// `iterations` rounds of CHAINS multiply-adds of `width` floats; returns a sum of the chains, which the
// caller keeps, so that the compiler cannot drop the work.
#if defined(__x86_64__) && defined(__GNUC__)
SIMD_AVX512 __attribute__((noinline)) float chains_avx512(int64_t iterations) {
    const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
    __m512 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) { acc[i] = _mm512_set1_ps(float(i)); }
    for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) { acc[i] = _mm512_fmadd_ps(acc[i], a, b); }
    }
    // two lanes through memory, as below (GCC 12 warns, wrongly, of an uninitialised value inside
    // _mm512_reduce_add_ps)
    float lanes[16];
    for (int i = 1; i < CHAINS; i++) { acc[0] = _mm512_add_ps(acc[0], acc[i]); }
    _mm512_storeu_ps(lanes, acc[0]);
    return lanes[0] + lanes[15];
}

SIMD_AVX2 __attribute__((noinline)) float chains_avx2(int64_t iterations) {
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    __m256 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) { acc[i] = _mm256_set1_ps(float(i)); }
    for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) { acc[i] = _mm256_fmadd_ps(acc[i], a, b); }
    }
    float lanes[8];
    for (int i = 1; i < CHAINS; i++) { acc[0] = _mm256_add_ps(acc[0], acc[i]); }
    _mm256_storeu_ps(lanes, acc[0]);
    return lanes[0] + lanes[7];
}
#endif

__attribute__((noinline)) float chains_portable(int64_t iterations) {
    const vec4 a = vec4{} + 0.999999f, b = vec4{} + 1e-7f;
    vec4 acc[CHAINS];
    for (int i = 0; i < CHAINS; i++) { acc[i] = vec4{} + float(i); }
    for (int64_t it = 0; it < iterations; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) { acc[i] = acc[i] * a + b; }
    }
    for (int i = 1; i < CHAINS; i++) { acc[0] += acc[i]; }
    return acc[0][0] + acc[0][3];
}

struct Path {
    const char* name;
    int width;  // floats per multiply-add
    float (*chains)(int64_t);
};

Path path_named(const std::string& name) {
#if defined(__x86_64__) && defined(__GNUC__)
    // asked for by name, a path this CPU lacks would stop the process at its first instruction (SIGILL)
    __builtin_cpu_init();
    const bool fma = __builtin_cpu_supports("fma");
    if (name == "avx512" && fma && __builtin_cpu_supports("avx512f")) { return {"avx512", 16, chains_avx512}; }
    if (name == "avx2" && fma && __builtin_cpu_supports("avx2")) { return {"avx2", 8, chains_avx2}; }
#endif
    if (name == "portable") { return {"portable", 4, chains_portable}; }
    throw std::invalid_argument("fma_peak: this CPU (or this build) has no SIMD path '" + name + "'; choose one of "
                                "avx512, avx2 or portable that it runs (info()['simd'] names the best)");
}

volatile float sink;  // the chains' sums land here: a volatile write cannot be dropped, so neither can the work

// Seconds for up to `threads` threads to run `iterations` rounds at once; `team` is how many ran (OpenMP
// may give fewer than asked, e.g. under OMP_THREAD_LIMIT, and the FLOPs are counted for those that ran).
double timed_round(const Path& path, int threads, int64_t iterations, int& team) {
    const auto start = std::chrono::steady_clock::now();
    float total = 0.0f;
    int ran = 0;
#pragma omp parallel num_threads(threads) reduction(+ : total, ran)
    {
        total += path.chains(iterations);
        ran += 1;
    }
    sink = total;
    team = ran;
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int fma_peak(double* gflops, const char* path_name, int threads, double seconds_per_round, int rounds) {
    const Path path = path_named(path_name);
    if (threads < 1 || rounds < 1 || !(seconds_per_round > 0.0)) {
        throw std::invalid_argument("fma_peak: threads and rounds must be >= 1 and seconds > 0");
    }
    // calibrate: double the length of a round until it takes a tenth of the time asked for
    int team = 1;
    int64_t iterations = 1 << 14;
    double t = timed_round(path, threads, iterations, team);
    while (t < seconds_per_round / 10) {
        iterations *= 2;
        t = timed_round(path, threads, iterations, team);
    }
    iterations = std::max<int64_t>(1, static_cast<int64_t>(iterations * seconds_per_round / t));
    for (int r = 0; r < rounds; r++) {
        const double seconds = timed_round(path, threads, iterations, team);
        gflops[r] = 2.0 * path.width * CHAINS * static_cast<double>(iterations) * team / seconds / 1e9;
    }
    return team;
}

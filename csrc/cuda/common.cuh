// Shared by the CUDA kernels of minigpt._cuda: error checks, launch sizes, warp reductions and the
// attention-dropout hash. Internal to csrc/cuda/; the interface is kernels_cuda.h.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// A CUDA error becomes a C++ exception, which pybind11 raises in Python as RuntimeError: a bad
// launch never exits the process.
inline void cuda_check(cudaError_t err, const char* what) {
    if (err != cudaSuccess) {
        throw std::runtime_error(std::string("minigpt._cuda: ") + what + ": " + cudaGetErrorString(err));
    }
}

// Called after every launch: a bad configuration (too many threads, too much shared memory) or an
// earlier asynchronous fault is reported here, naming the kernel.
inline void check_launch(const char* kernel) { cuda_check(cudaGetLastError(), kernel); }

// Grid-stride loops need at most enough blocks to fill the GPU a few times over; more only add
// scheduling work.
inline unsigned grid_for(int64_t n, int threads, int64_t max_blocks = 65536) {
    const int64_t blocks = (n + threads - 1) / threads;
    return static_cast<unsigned>(blocks < max_blocks ? blocks : max_blocks);
}

// The number of streaming multiprocessors of the current device (read once per device).
int sm_count();

// Whether the current device has compute capability 8.0 (Ampere) or newer, so cp.async and the TF32
// tensor cores (read once per device).
bool device_is_ampere_or_newer();

// Kernels that need more than 48 KiB of shared memory must say so before their launch; a GPU
// offers a fixed maximum (227 KiB on an H100, 163 KiB on an A100, 99 KiB on most others). `who`
// names the op for the error when `bytes` is more than that.
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes, const std::string& who) {
    int device = 0, limit = 0;
    cuda_check(cudaGetDevice(&device), "cudaGetDevice");
    cuda_check(cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device),
               "cudaDeviceGetAttribute");
    if (bytes > static_cast<size_t>(limit)) {
        throw std::invalid_argument(who + " needs " + std::to_string(bytes) +
                                    " bytes of shared memory per block; this GPU offers " + std::to_string(limit));
    }
    cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)),
               "cudaFuncSetAttribute");
    // An SM splits one pool between L1 cache and shared memory. Ask for the largest shared part, so that
    // two blocks fit on an SM at once rather than whatever split the driver picks.
    cuda_check(cudaFuncSetAttribute(kernel, cudaFuncAttributePreferredSharedMemoryCarveout,
                                    cudaSharedmemCarveoutMaxShared),
               "cudaFuncSetAttribute");
}

// The current device's id, capped at 63 (an index into per-device caches).
int current_device();

// allow_smem, made once per kernel and device rather than before every launch (a device query and two
// attribute calls each time). The lock: kernels are launched without the GIL, so two Python threads may
// get here at once.
template <typename Kernel>
void allow_smem_once(Kernel kernel, size_t bytes, const std::string& who) {
    static std::mutex lock;
    static std::vector<std::pair<const void*, int>> done;  // (kernel, device)
    const std::pair<const void*, int> key{reinterpret_cast<const void*>(kernel), current_device()};
    const std::lock_guard<std::mutex> hold(lock);
    if (std::find(done.begin(), done.end(), key) == done.end()) {
        allow_smem(kernel, bytes, who);
        done.push_back(key);
    }
}

// Row-wise kernels give each row to one warp: 32 lanes stride over the row together (coalesced),
// then combine their partial results with shuffles, without shared memory.
constexpr int kWarp = 32;
constexpr int kRowsPerBlock = 8;  // 8 warps = 256 threads per block

__device__ __forceinline__ float warp_sum(float v) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) { v += __shfl_xor_sync(0xffffffffu, v, offset); }
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int offset = kWarp / 2; offset > 0; offset /= 2) { v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, offset)); }
    return v;
}

// The online softmax's merge of two partial (max, sum of exp(x - max)) pairs; an all -inf part
// (max = -inf, sum = 0) leaves the other unchanged, with no NaN from -inf - -inf. A NaN sum stays NaN
// (fmaxf would drop a NaN max, so NaN travels in the sum: see online_add).
__device__ __forceinline__ void online_merge(float& m, float& s, float m_other, float s_other) {
    const float m_new = fmaxf(m, m_other);
    if (m_new == -INFINITY) {
        s += s_other;  // 0 + 0, or NaN when a part saw a NaN
        return;
    }
    s = s * expf(m - m_new) + s_other * expf(m_other - m_new);
    m = m_new;
}

// online_merge of a single value x (a part whose sum is exp(x - x) = 1), with one exp, not two:
// either x is the new max and the sum so far is rescaled, or it is not and adds exp(x - m).
// A NaN x makes the sum NaN, so a NaN logit gives a NaN loss, as in the NumPy reference.
__device__ __forceinline__ void online_add(float& m, float& s, float x) {
    if (x > m) {
        s = s * expf(m - x) + 1.0f;  // exp(-inf) = 0 while nothing has been seen
        m = x;
    } else if (m > -INFINITY || x != x) {  // skip -inf while the max is -inf: -inf - -inf is NaN
        s += expf(x - m);
    }
}

// ----------------------------------------------------------------------------- dropout hash

// The attention-dropout mask of minigpt/kernels/attention.py (dropout_keep_mask), bit for bit:
// weight (bh, i, j) of the (B * NH, T, T) weights is kept iff
//     splitmix64(seed + ((bh * T + i) * T + j + 1) * golden) >> 40  >=  threshold = p * 2^24
// A pure function of the position, so the backward regenerates the forward's mask without storing it.
struct Dropout {
    bool on;
    uint64_t seed, threshold;
    float keep_scale;  // 1 / (1 - p): inverted dropout
};

inline Dropout make_dropout(double p, uint64_t seed) {
    const uint64_t threshold = static_cast<uint64_t>(p * 16777216.0);  // p < 1, so below 2^24
    return {p > 0.0, seed, threshold, static_cast<float>(1.0 / (1.0 - p))};
}

// Unsigned 64-bit arithmetic wraps modulo 2^64, as in the NumPy and C++ versions.
__device__ __forceinline__ bool dropout_keep(const Dropout& d, int64_t bh, int64_t i, int64_t j, int64_t T) {
    const uint64_t counter = static_cast<uint64_t>((bh * T + i) * T + j) + 1;
    uint64_t z = d.seed + counter * 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z = z ^ (z >> 31);
    return (z >> 40) >= d.threshold;
}

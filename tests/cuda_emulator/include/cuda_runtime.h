// A CUDA runtime and device model on the CPU, for checking the kernels of csrc/cuda/ without a GPU.
//
// This file stands in for <cuda_runtime.h> when tests/cuda_emulator/build.py compiles the .cu files
// with g++. It runs a launch the way the CUDA programming model describes it, not the way a GPU is
// built: the blocks of the grid one after another, and the threads of a block as fibers (each with
// its own stack, on one OS thread). A thread runs the kernel until it reaches __syncthreads, a warp
// shuffle or __syncwarp, where it waits until every live thread of its block (or warp) has arrived.
// Round after round, each thread runs up to its next barrier, in an order drawn anew each round
// (shuffled_order), and between two block barriers either all warps advance together or one warp
// runs ahead of the rest (run_block). So the indexing, the masking, the barriers and the shuffles of a
// kernel are checked; its speed, its memory coalescing and races between blocks are not (that needs a
// GPU).
//
// Checks that a GPU would not make: a barrier that some live threads never reach (divergent
// __syncthreads) is reported as an error instead of hanging, and dynamic shared memory starts as NaN
// so that a read of a value never written shows up in the result.
#pragma once

#include <math.h>
#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

// ----------------------------------------------------------------------------- language keywords

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) __attribute__((aligned(n)))
// The blocks run one at a time, so a function-local static is one block's shared memory.
#define __shared__ static
#ifndef __CUDA_ARCH__
#define __CUDA_ARCH__ 900  // the H100 the kernels are tuned for: its code paths are the ones checked
#define __CUDA_ARCH_FEAT_SM90_ALL 1  // and as built for sm_90a, with Hopper's wgmma
#endif

struct uint3 {
    unsigned x, y, z;
};
struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) float2 {
    float x, y;
};
struct alignas(16) float4 {
    float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

// ----------------------------------------------------------------------------- runtime API

enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorIllegalAddress = 700,
    cudaErrorMisalignedAddress = 716,
    cudaErrorLaunchFailure = 719,
};
typedef cudaError_t cudaError;
typedef struct CUstream_st* cudaStream_t;

enum cudaDeviceAttr {
    cudaDevAttrMultiProcessorCount = 16,
    cudaDevAttrComputeCapabilityMajor = 75,
    cudaDevAttrComputeCapabilityMinor = 76,
    cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute {
    cudaFuncAttributeMaxDynamicSharedMemorySize = 8,
    cudaFuncAttributePreferredSharedMemoryCarveout = 9,
};
constexpr int cudaSharedmemCarveoutMaxShared = 100;

struct cudaDeviceProp {
    char name[256];
    size_t totalGlobalMem;
    int major, minor, multiProcessorCount;
};

namespace emu {

// The device it pretends to be: an H100's limits, so that launch checks see what they would there.
// MINIGPT_CUDA_EMULATOR_SMEM_OPTIN (bytes) pretends a GPU that gives a block less shared memory, such
// as the 101376 (99 KiB) of compute capability 8.6 and 8.9, to run the code paths chosen for it: it
// then reports compute capability 8.9, so that the host code also picks what it would there (the TF32
// matmul by mma.sync, not Hopper's wgmma). The kernels still compile as for sm_90a.
constexpr int kMultiprocessors = 132;
constexpr int kSharedPerBlock = 48 * 1024;  // without an opt-in
constexpr int kHopperSharedPerBlockOptin = 227 * 1024;
inline const int kSharedPerBlockOptin = [] {  // with cudaFuncAttributeMaxDynamicSharedMemorySize
    const char* env = std::getenv("MINIGPT_CUDA_EMULATOR_SMEM_OPTIN");
    return env != nullptr ? std::atoi(env) : kHopperSharedPerBlockOptin;
}();
inline const int kComputeCapability = kSharedPerBlockOptin >= kHopperSharedPerBlockOptin ? 90 : 89;
constexpr int kMaxThreads = 1024;
constexpr int kWarpSize = 32;

inline cudaError_t pending_error = cudaSuccess;  // what cudaGetLastError returns next
inline std::string pending_message;

inline cudaError_t fail(cudaError_t err, const std::string& message) {
    pending_error = err;
    pending_message = message;
    return err;
}

}  // namespace emu

inline cudaError_t cudaGetLastError() {
    const cudaError_t err = emu::pending_error;
    emu::pending_error = cudaSuccess;
    return err;
}
inline const char* cudaGetErrorString(cudaError_t err) {
    static std::string text;
    switch (err) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: text = "invalid argument"; break;
        case cudaErrorInvalidConfiguration: text = "invalid configuration argument"; break;
        case cudaErrorMisalignedAddress: text = "misaligned address"; break;
        case cudaErrorIllegalAddress: text = "an illegal memory access was encountered"; break;
        case cudaErrorLaunchFailure: text = "unspecified launch failure"; break;
        default: text = "unknown error"; break;
    }
    if (!emu::pending_message.empty()) { text += " (emulator: " + emu::pending_message + ")"; }
    return text.c_str();
}
inline cudaError_t cudaGetDevice(int* device) {
    *device = 0;
    return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int) {
    switch (attr) {
        case cudaDevAttrMultiProcessorCount: *value = emu::kMultiprocessors; break;
        case cudaDevAttrComputeCapabilityMajor: *value = emu::kComputeCapability / 10; break;
        case cudaDevAttrComputeCapabilityMinor: *value = emu::kComputeCapability % 10; break;
        case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = emu::kSharedPerBlockOptin; break;
        default: return emu::fail(cudaErrorInvalidValue, "unknown device attribute");
    }
    return cudaSuccess;
}
inline cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int) {
    std::memset(prop, 0, sizeof(*prop));
    std::strcpy(prop->name, "minigpt CUDA emulator (CPU)");
    prop->totalGlobalMem = size_t(80) << 30;
    prop->major = emu::kComputeCapability / 10;
    prop->minor = emu::kComputeCapability % 10;
    prop->multiProcessorCount = emu::kMultiprocessors;
    return cudaSuccess;
}
inline cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 13000;
    return cudaSuccess;
}
inline cudaError_t cudaDriverGetVersion(int* v) {
    *v = 13000;
    return cudaSuccess;
}
inline cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t = nullptr) {
    std::memset(p, value, bytes);
    return cudaSuccess;
}

namespace emu {

// The dynamic shared memory a kernel has been allowed (cudaFuncAttributeMaxDynamicSharedMemorySize),
// by the kernel's address.
inline std::vector<std::pair<const void*, int>>& smem_allowances() {
    static std::vector<std::pair<const void*, int>> table;
    return table;
}

inline int smem_allowed(const void* kernel) {
    for (const auto& [k, bytes] : smem_allowances()) {
        if (k == kernel) { return bytes; }
    }
    return kSharedPerBlock;
}

}  // namespace emu

template <typename Kernel>
cudaError_t cudaFuncSetAttribute(Kernel kernel, cudaFuncAttribute attr, int value) {
    if (attr == cudaFuncAttributeMaxDynamicSharedMemorySize) {
        if (value > emu::kSharedPerBlockOptin) {
            return emu::fail(cudaErrorInvalidValue, "more dynamic shared memory than the device has");
        }
        auto& table = emu::smem_allowances();
        const void* key = reinterpret_cast<const void*>(kernel);
        for (auto& entry : table) {
            if (entry.first == key) {
                entry.second = value;
                return cudaSuccess;
            }
        }
        table.emplace_back(key, value);
    }
    return cudaSuccess;
}

// Two blocks an SM, as the tuned kernels are written for; only split-K planning reads it.
template <typename Kernel>
cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* blocks, Kernel, int, size_t) {
    *blocks = 2;
    return cudaSuccess;
}

// ----------------------------------------------------------------------------- threads as fibers

namespace emu {

// The built-in variables of the thread running now (set by the scheduler before it resumes a fiber).
inline uint3 thread_idx, block_idx;
inline dim3 block_dim, grid_dim;

struct Fiber {
    jmp_buf resume;  // where it waits; the switches are _setjmp/_longjmp, with no system call
    uint3 idx;
    bool started, done;
    const uint64_t* waits_on;  // the generation counter of the barrier it waits at, or nullptr
    uint64_t waits_while;      // ... which opens when the counter moves past this value
};

// A cp.async copy (ptx_emulated.h) in flight: it lands, src_bytes from src and zeros up to `bytes`,
// when its thread waits for its group. Until then a read of dst sees what was there before.
struct AsyncCopy {
    void* dst;
    const void* src;
    int bytes, src_bytes;
    uint64_t group;  // the number of commits its thread had made when it was issued
};
struct AsyncCopies {
    std::vector<AsyncCopy> pending;  // oldest first
    uint64_t commits = 0;
    bool unfenced = false;  // a wait since the last fence_proxy_async: what landed is not yet seen by wgmma
};

// A wgmma (ptx_emulated.h) in flight: this thread's part of the product, computed from shared memory
// when it lands (at its issue, or at the wait for its group), added into the thread's registers d.
struct Wgmma {
    float* d;
    uint64_t desc_a, desc_b;
    uint64_t group;
};
struct Wgmmas {
    std::vector<Wgmma> pending;  // oldest first
    uint64_t commits = 0, issued = 0;
    bool fenced = false;  // a wgmma_fence since the last wait
};

// One block's run: its fibers, and the arrival counts of its barriers. A barrier opens when every
// live thread of the block (of the warp, for warp barriers) has arrived; `generation` counts the
// openings, so a waiting thread knows its barrier has opened when the count moves.
struct Block {
    std::vector<Fiber> fibers;
    int live = 0, arrived = 0;
    uint64_t generation = 0;
    // Whether a thread reached the barrier being filled, or the last one opened, with cp.async writes
    // that it had waited for but not passed to wgmma's proxy (AsyncCopies::unfenced; ptx_emulated.h).
    bool arrivals_unfenced = false, opened_unfenced = false;
    std::vector<int> warp_live, warp_arrived;
    std::vector<uint64_t> warp_generation;
    std::vector<uint64_t> lane_values;  // what each thread offers to a shuffle, as bits
    std::vector<std::vector<float>> warp_scratch;  // per warp, for collective operations (mma)
    std::vector<AsyncCopies> async_copies;         // per thread
    std::vector<Wgmmas> wgmmas;                    // per thread
    std::vector<std::vector<std::pair<uint64_t, uint64_t>>> warpgroup_descriptors;  // per warpgroup, per wgmma
    int current = 0;
    jmp_buf scheduler;
};

inline Block* block = nullptr;  // the block being run (one at a time: its storage is reused)
inline const std::function<void()>* body = nullptr;
inline std::vector<std::unique_ptr<char[]>> stacks;
constexpr size_t kStackBytes = 256 * 1024;

inline int linear_thread() { return block->current; }

// AddressSanitizer (build.py's memcheck build) must be told of every switch of stacks, or it takes a
// fiber's frames for the scheduler's. Without it these are empty.
#if defined(__SANITIZE_ADDRESS__)
}  // namespace emu
#include <sanitizer/common_interface_defs.h>
namespace emu {
inline const void* scheduler_stack = nullptr;  // where the scheduler's stack lies, learnt on the first switch
inline size_t scheduler_stack_size = 0;
inline void* scheduler_fake_stack = nullptr;  // AddressSanitizer's own bookkeeping of each stack
inline std::vector<void*> fiber_fake_stacks;
inline void leave_for_fiber(int t) {
    __sanitizer_start_switch_fiber(&scheduler_fake_stack, stacks[t].get(), kStackBytes);
}
inline void arrived_in_scheduler() { __sanitizer_finish_switch_fiber(scheduler_fake_stack, nullptr, nullptr); }
inline void leave_for_scheduler(bool ending) {
    fiber_fake_stacks.resize(std::max(fiber_fake_stacks.size(), stacks.size()));
    __sanitizer_start_switch_fiber(ending ? nullptr : &fiber_fake_stacks[linear_thread()], scheduler_stack,
                                   scheduler_stack_size);
}
inline void arrived_in_fiber(bool first) {
    fiber_fake_stacks.resize(std::max(fiber_fake_stacks.size(), stacks.size()));
    __sanitizer_finish_switch_fiber(first ? nullptr : fiber_fake_stacks[linear_thread()], &scheduler_stack,
                                    &scheduler_stack_size);
}
#else
inline void leave_for_fiber(int) {}
inline void arrived_in_scheduler() {}
inline void leave_for_scheduler(bool) {}
inline void arrived_in_fiber(bool) {}
#endif

// Park the running thread until `*counter` moves past `value`, and let the scheduler run the others.
inline void wait_for(const uint64_t* counter, uint64_t value) {
    Fiber& f = block->fibers[block->current];
    f.waits_on = counter;
    f.waits_while = value;
    if (!_setjmp(f.resume)) {
        leave_for_scheduler(false);
        _longjmp(block->scheduler, 1);
    }
    arrived_in_fiber(false);
    f.waits_on = nullptr;
}

inline void block_barrier() {
    Block& b = *block;
    const uint64_t gen = b.generation;
    b.arrivals_unfenced = b.arrivals_unfenced || b.async_copies[linear_thread()].unfenced;
    if (++b.arrived == b.live) {
        b.arrived = 0;
        b.generation++;
        b.opened_unfenced = b.arrivals_unfenced;
        b.arrivals_unfenced = false;
        return;
    }
    wait_for(&b.generation, gen);
}

inline void warp_barrier() {
    Block& b = *block;
    const int w = linear_thread() / kWarpSize;
    const uint64_t gen = b.warp_generation[w];
    if (++b.warp_arrived[w] == b.warp_live[w]) {
        b.warp_arrived[w] = 0;
        b.warp_generation[w]++;
        return;
    }
    wait_for(&b.warp_generation[w], gen);
}

// A thread that returns leaves its barriers: the ones it no longer counts for may now be complete.
inline void thread_exit() {
    Block& b = *block;
    const int t = linear_thread(), w = t / kWarpSize;
    if (!b.wgmmas[t].pending.empty()) {  // its results would be lost, or land in registers no longer its
        fail(cudaErrorLaunchFailure, "a thread ended with a wgmma in flight (no wgmma_wait after it)");
    }
    b.fibers[t].done = true;
    b.live--;
    if (b.arrived > 0 && b.arrived == b.live) {
        b.arrived = 0;
        b.generation++;
    }
    b.warp_live[w]--;
    if (b.warp_arrived[w] > 0 && b.warp_arrived[w] == b.warp_live[w]) {
        b.warp_arrived[w] = 0;
        b.warp_generation[w]++;
    }
}

inline void fiber_main() {
    arrived_in_fiber(true);
    (*body)();
    thread_exit();
    leave_for_scheduler(true);
    _longjmp(block->scheduler, 1);  // never returns: its stack is reused by the next block
}

// Enter fiber_main on the stack that ends at `top` (16-byte aligned). On x86-64 that is two
// instructions; elsewhere makecontext/swapcontext, which also save the signal mask (a system call).
[[noreturn]] inline void start_fiber(char* top) {
#if defined(__x86_64__)
    asm volatile("mov %0, %%rsp\n\tcall *%1" : : "r"(top), "r"(&fiber_main) : "memory");
    __builtin_unreachable();
#else
    static ucontext_t fresh, here;
    getcontext(&fresh);
    fresh.uc_stack.ss_sp = top - kStackBytes;
    fresh.uc_stack.ss_size = kStackBytes;
    fresh.uc_link = nullptr;
    makecontext(&fresh, fiber_main, 0);
    swapcontext(&here, &fresh);  // not come back to: the fiber jumps to the scheduler's jmp_buf
    __builtin_unreachable();
#endif
}

// Value `v` of every lane in, lane `src_lane`'s value out; a lane past the block's end, or one that
// has returned, gives the asking lane its own value back.
template <typename T>
T exchange(T v, int src_lane) {
    static_assert(sizeof(T) <= sizeof(uint64_t), "shuffles move at most 8 bytes");
    Block& b = *block;
    const int t = linear_thread(), lane = t % kWarpSize, base = t - lane;
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    b.lane_values[t] = bits;
    warp_barrier();
    T out = v;
    if (src_lane >= 0 && src_lane < kWarpSize && base + src_lane < static_cast<int>(b.fibers.size()) &&
        !b.fibers[base + src_lane].done) {
        std::memcpy(&out, &b.lane_values[base + src_lane], sizeof(T));
    }
    warp_barrier();  // nobody overwrites its offer before every lane has read
    return out;
}

// A scratch area of at least `floats` values shared by the lanes of the running thread's warp.
inline float* warp_scratch(size_t floats) {
    std::vector<float>& s = block->warp_scratch[linear_thread() / kWarpSize];
    if (s.size() < floats) { s.resize(floats); }
    return s.data();
}

// The order in which each round resumes a block's threads. A GPU promises none: threads of a block
// meet only at barriers, and even the lanes of a warp may run apart (independent thread scheduling,
// Volta and later). So by default every round draws a new order (a fixed pseudo-random sequence: runs
// repeat exactly). A read of shared memory that lacks its __syncthreads then sees the value from before
// the write in some rounds, as it could on a GPU, where the order of thread index would hide it when the
// writer has the lower index. MINIGPT_CUDA_EMULATOR_ORDER=index resumes them by index instead.
inline bool shuffled_order() {
    static const bool shuffled = [] {
        const char* order = std::getenv("MINIGPT_CUDA_EMULATOR_ORDER");
        return !(order != nullptr && std::string(order) == "index");
    }();
    return shuffled;
}

inline uint64_t order_state = 0x853c49e6748fea9bULL;

inline uint64_t next_random() {  // splitmix64
    uint64_t z = (order_state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

inline void next_order(std::vector<int>& order) {
    for (size_t i = order.size(); i > 1; i--) { std::swap(order[i - 1], order[next_random() % i]); }  // Fisher-Yates
}

// Runs one block of a launch to completion; false if its threads deadlock on a barrier.
inline bool run_block(const uint3& bidx, const dim3& bdim) {
    const int n = static_cast<int>(bdim.x * bdim.y * bdim.z);
    const int warps = (n + kWarpSize - 1) / kWarpSize;
    static Block b;
    b.fibers.resize(n);
    b.live = n;
    b.arrived = 0;
    b.generation = 0;
    b.warp_live.assign(warps, 0);
    for (int t = 0; t < n; t++) { b.warp_live[t / kWarpSize]++; }
    b.warp_arrived.assign(warps, 0);
    b.warp_generation.assign(warps, 0);
    b.lane_values.assign(n, 0);
    b.warp_scratch.resize(warps);
    b.async_copies.assign(n, {});
    b.wgmmas.assign(n, {});
    b.arrivals_unfenced = b.opened_unfenced = false;
    b.warpgroup_descriptors.assign((n + 127) / 128, {});
    while (static_cast<int>(stacks.size()) < n) { stacks.emplace_back(new char[kStackBytes]); }
    block = &b;
    block_idx = bidx;
    for (int t = 0; t < n; t++) {
        Fiber& f = b.fibers[t];
        f.idx = {t % bdim.x, (t / bdim.x) % bdim.y, t / (bdim.x * bdim.y)};
        f.started = f.done = false;
        f.waits_on = nullptr;
    }
    static std::vector<int> order, warp_order;
    order.resize(n);
    for (int t = 0; t < n; t++) { order[t] = t; }
    warp_order.resize(warps);
    for (int w = 0; w < warps; w++) { warp_order[w] = w; }
    auto runnable = [&](int t) {
        const Fiber& f = b.fibers[t];
        return !f.done && !(f.waits_on != nullptr && *f.waits_on == f.waits_while);
    };
    // A phase, from one opening of the block barrier to the next, runs in one of two ways, drawn anew
    // for each phase when the order is shuffled: every warp a step at a time (each round resumes every
    // thread once), or one warp at a time, in a drawn order, each up to the block barrier before the
    // next one starts. The second is a GPU on which one warp runs ahead of the others: it shows a missing
    // __syncthreads between warps (reading another warp's write of this phase, refilling a buffer that
    // another warp still reads) where the first keeps the warps too close together to.
    static std::vector<int> lanes;  // a warp-serial round's order: the running warp's threads
    uint64_t phase = ~uint64_t{0};
    bool warp_serial = false;
    int unfinished = n;
    while (unfinished > 0) {
        bool resumed = false;
        if (shuffled_order() && b.generation != phase) {
            phase = b.generation;
            warp_serial = next_random() % 2 == 1;
            next_order(warp_order);
        }
        std::vector<int>* round = &order;
        if (warp_serial) {  // the first warp, in this phase's order, with a thread that can run
            lanes.clear();
            for (int i = 0; i < warps && lanes.empty(); i++) {
                for (int t = warp_order[i] * kWarpSize; t < std::min(n, (warp_order[i] + 1) * kWarpSize); t++) {
                    lanes.push_back(t);
                }
                if (std::none_of(lanes.begin(), lanes.end(), runnable)) { lanes.clear(); }
            }
            round = &lanes;
        }
        if (shuffled_order()) { next_order(*round); }
        for (const int t : *round) {
            Fiber& f = b.fibers[t];
            if (!runnable(t)) { continue; }
            resumed = true;
            b.current = t;
            thread_idx = f.idx;
            if (!_setjmp(b.scheduler)) {
                leave_for_fiber(t);
                if (f.started) { _longjmp(f.resume, 1); }
                f.started = true;
                start_fiber(stacks[t].get() + kStackBytes);
            }
            arrived_in_scheduler();
            if (f.done) { unfinished--; }
        }
        if (!resumed) {
            block = nullptr;
            return false;  // every thread left waits at a barrier that the others never reach
        }
    }
    block = nullptr;
    return true;
}

inline std::unique_ptr<float[]> dynamic_smem;  // this launch's extern __shared__ array
inline size_t dynamic_smem_bytes = 0;

// kernel<<<grid, block, smem, stream>>>(args) becomes launch(kernel, grid, block, smem, [&] { kernel(args); }).
template <typename Kernel>
void launch(Kernel kernel, dim3 grid, dim3 block_dims, size_t smem, cudaStream_t, const std::function<void()>& fn) {
    const uint64_t threads = uint64_t(block_dims.x) * block_dims.y * block_dims.z;
    if (threads == 0 || threads > kMaxThreads || block_dims.z > 64) {
        fail(cudaErrorInvalidConfiguration, "block of " + std::to_string(threads) + " threads");
        return;
    }
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.y > 65535 || grid.z > 65535) {
        fail(cudaErrorInvalidConfiguration, "grid " + std::to_string(grid.x) + " x " + std::to_string(grid.y) +
                                                " x " + std::to_string(grid.z));
        return;
    }
    if (smem > static_cast<size_t>(smem_allowed(reinterpret_cast<const void*>(kernel)))) {
        fail(cudaErrorInvalidValue, "dynamic shared memory of " + std::to_string(smem) + " bytes not allowed");
        return;
    }
    dynamic_smem_bytes = smem;
    dynamic_smem.reset(new float[smem / sizeof(float) + 4]);
    block_dim = block_dims;
    grid_dim = grid;
    body = &fn;
    for (unsigned z = 0; z < grid.z; z++) {
        for (unsigned y = 0; y < grid.y; y++) {
            for (unsigned x = 0; x < grid.x; x++) {
                // every block starts from NaN, not from what the block before it left
                std::fill_n(dynamic_smem.get(), smem / sizeof(float) + 4, std::numeric_limits<float>::quiet_NaN());
                if (!run_block({x, y, z}, block_dims)) {
                    fail(cudaErrorLaunchFailure, "threads wait at a barrier that the others never reach");
                    return;
                }
            }
        }
    }
}

template <typename T>
T* dynamic_shared() {
    return reinterpret_cast<T*>(dynamic_smem.get());
}

}  // namespace emu

// ----------------------------------------------------------------------------- device built-ins

#define threadIdx (::emu::thread_idx)
#define blockIdx (::emu::block_idx)
#define blockDim (::emu::block_dim)
#define gridDim (::emu::grid_dim)

inline void __syncthreads() { emu::block_barrier(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::warp_barrier(); }

template <typename T>
T __shfl_xor_sync(unsigned, T v, int lane_mask, int width = 32) {
    const int lane = emu::linear_thread() % 32;
    const int src = lane ^ lane_mask;
    return emu::exchange(v, (src / width == lane / width) ? src : lane);
}
template <typename T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    const int lane = emu::linear_thread() % 32;
    const int src = lane + static_cast<int>(delta);
    return emu::exchange(v, (src / width == lane / width) ? src : lane);
}

// One OS thread runs every fiber, and a fiber only yields at a barrier, so a read-modify-write is atomic.
// (v's type is not deduced, so atomicAdd(float_ptr, 1) converts 1 as CUDA's overloads would.)
template <typename T, typename = std::enable_if_t<std::is_arithmetic_v<T>>>
T atomicAdd(T* p, typename std::common_type<T>::type v) {
    const T old = *p;
    *p = old + v;
    return old;
}
inline float2 atomicAdd(float2* p, float2 v) {
    const float2 old = *p;
    *p = make_float2(old.x + v.x, old.y + v.y);
    return old;
}
inline float4 atomicAdd(float4* p, float4 v) {
    const float4 old = *p;
    *p = make_float4(old.x + v.x, old.y + v.y, old.z + v.z, old.w + v.w);
    return old;
}

// A float's bits as an unsigned int and back.
inline unsigned __float_as_uint(float f) {
    unsigned x;
    std::memcpy(&x, &f, 4);
    return x;
}
inline float __uint_as_float(unsigned x) {
    float f;
    std::memcpy(&f, &x, 4);
    return f;
}

// CUDA's device-side min and max of two numbers (any arithmetic types, compared in their common type).
template <typename A, typename B>
inline std::common_type_t<A, B> min(A a, B b) {
    return a < b ? a : b;
}
template <typename A, typename B>
inline std::common_type_t<A, B> max(A a, B b) {
    return a < b ? b : a;
}

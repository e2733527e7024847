// The PTX wrappers of csrc/cuda/ptx.cuh for the CUDA emulator: the same functions and the same
// per-lane layouts, written in C++ on the emulator's threads.
//
// cp.async: on a GPU a copy lands at some moment between its issue and the wait that covers it. The
// emulator picks one of the two ends for each copy, by a draw from a fixed pseudo-random sequence (so
// runs repeat): a late copy waits, with its group, in its thread's list until that thread's
// cp_async_wait lets it land, so a kernel that reads a stage before waiting for it (or before the
// __syncthreads after the wait) reads the old contents, NaN in fresh dynamic shared memory; an early
// copy lands at once, so a kernel that starts refilling a buffer other threads still read (a missing
// __syncthreads before the copy) hands them the new contents. MINIGPT_CUDA_EMULATOR_COPIES=late or
// =early makes every copy land at that end.
//
// mma: the 32 lanes put their fragments into the warp's scratch area at the places the PTX ISA gives
// them (ptx.cuh), wait for each other, and each computes its own 4 outputs. The operands are read as
// the tensor cores read them: the low 13 bits of each dropped.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

namespace emu {

enum class CopyTiming { late, early, mixed };

inline CopyTiming timing_from_environment() {
    const char* env = std::getenv("MINIGPT_CUDA_EMULATOR_COPIES");
    const std::string v = env ? env : "";
    return v == "late" ? CopyTiming::late : v == "early" ? CopyTiming::early : CopyTiming::mixed;
}

inline CopyTiming copy_timing = timing_from_environment();  // selftest.cu sets it to check both ends

// Mixed: a draw from the scheduler's sequence (next_random), so runs repeat.
inline bool lands_early() {
    switch (copy_timing) {
        case CopyTiming::late: return false;
        case CopyTiming::early: return true;
        default: return next_random() % 2 == 1;
    }
}

inline void land(const AsyncCopy& c) {
    std::memcpy(c.dst, c.src, c.src_bytes);
    std::memset(static_cast<char*>(c.dst) + c.src_bytes, 0, c.bytes - c.src_bytes);
}

// Land a thread's operations in flight (cp.async copies, or wgmmas) of its groups older than the newest
// n, oldest first; operations not yet committed to a group are not waited for.
template <typename InFlight>
void land_groups_before_newest(InFlight& mine, uint64_t n) {
    const uint64_t done_below = mine.commits >= n ? mine.commits - n : 0;
    auto first_left = mine.pending.begin();
    for (; first_left != mine.pending.end() && first_left->group < done_below; ++first_left) { land(*first_left); }
    mine.pending.erase(mine.pending.begin(), first_left);
}

}  // namespace emu

inline void cp_async(void* smem, const void* gmem, int bytes, int src_bytes) {
    // as on a GPU, both addresses aligned to the copy's size; and no more source bytes than that
    if (reinterpret_cast<uintptr_t>(smem) % bytes != 0 || reinterpret_cast<uintptr_t>(gmem) % bytes != 0) {
        emu::fail(cudaErrorMisalignedAddress, "cp.async of " + std::to_string(bytes) + " bytes, misaligned");
        return;
    }
    if (src_bytes < 0 || src_bytes > bytes) {
        emu::fail(cudaErrorInvalidValue, "cp.async with src_bytes " + std::to_string(src_bytes));
        return;
    }
    // A copy of no bytes reads nothing, but its address must still be one the kernel may read (the
    // kernels pass the array's start): touched, so that the --memcheck build checks it.
    static_cast<void>(*static_cast<const volatile char*>(gmem));
    emu::AsyncCopies& mine = emu::block->async_copies[emu::linear_thread()];
    const emu::AsyncCopy copy{smem, gmem, bytes, src_bytes, mine.commits};
    if (emu::lands_early()) {
        emu::land(copy);
    } else {
        mine.pending.push_back(copy);
    }
}

inline void cp_async_16(void* smem, const void* gmem, int src_bytes) { cp_async(smem, gmem, 16, src_bytes); }
inline void cp_async_4(void* smem, const void* gmem, int src_bytes) { cp_async(smem, gmem, 4, src_bytes); }

inline void cp_async_commit() { emu::block->async_copies[emu::linear_thread()].commits++; }

template <int N>
void cp_async_wait() {
    emu::AsyncCopies& mine = emu::block->async_copies[emu::linear_thread()];
    emu::land_groups_before_newest(mine, N);
    mine.unfenced = true;
}

// cvt.rna.tf32.f32 as ptxas builds it: half a TF32 unit added to the bits of a finite float, the 13
// low bits left for the tensor core to drop; inf and NaN unchanged.
inline uint32_t to_tf32(float x) {
    uint32_t bits;
    std::memcpy(&bits, &x, 4);
    return (bits & 0x7f800000u) == 0x7f800000u ? bits : bits + 0x1000u;
}

// An operand register as the tensor core reads it: the TF32 value in its high 19 bits.
inline float tf32_operand(uint32_t bits) {
    bits &= ~0x1fffu;
    float x;
    std::memcpy(&x, &bits, 4);
    return x;
}

// The warp's scratch area has two halves, used by turns: every lane of a warp has passed the same
// number of warp barriers when it enters a call, so the count of barriers opened so far picks the same
// half for all of them, and the next call picks the other. One barrier per call is then enough: a lane
// can only come back to this half after every lane has passed the next barrier, done reading it.
inline void mma_tf32_16x8x8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    constexpr int kOperands = 16 * 8 + 8 * 8;  // A[row * 8 + k], then B[k * 8 + col]
    const int warp = emu::linear_thread() / 32, lane = emu::linear_thread() % 32, g = lane / 4, t = lane % 4;
    float* A = emu::warp_scratch(2 * kOperands) + (emu::block->warp_generation[warp] % 2) * kOperands;
    float* B = A + 16 * 8;
    A[g * 8 + t] = tf32_operand(a[0]);
    A[(g + 8) * 8 + t] = tf32_operand(a[1]);
    A[g * 8 + t + 4] = tf32_operand(a[2]);
    A[(g + 8) * 8 + t + 4] = tf32_operand(a[3]);
    B[t * 8 + g] = tf32_operand(b[0]);
    B[(t + 4) * 8 + g] = tf32_operand(b[1]);
    emu::warp_barrier();
    for (int e = 0; e < 4; e++) {  // d: (g, 2t), (g, 2t + 1), (g + 8, 2t), (g + 8, 2t + 1)
        const int row = g + (e / 2) * 8, col = 2 * t + e % 2;
        for (int k = 0; k < 8; k++) { d[e] += A[row * 8 + k] * B[k * 8 + col]; }
    }
}

// ----------------------------------------------------------------------------- wgmma (Hopper)
//
// Shared-memory addresses: this launch's dynamic shared memory stands at kSharedWindowOffset of the
// block's shared window, as if 48 bytes of static shared memory came first; so a kernel that needs a
// tile at a multiple of 1024 bytes must round the address up, as on a GPU, where nothing promises where
// the dynamic part starts.
//
// wgmma: each thread computes its own 64 outputs (the layout of ptx.cuh) from shared memory, reading
// the operands through their descriptors as the tensor core does: the 128-byte swizzle applied to the
// address bits, the 13 low mantissa bits of each value dropped. Like a cp.async it lands at its issue or
// at the wait for its group (the same draw), so a kernel that refills a tile while a wgmma may still
// read it, or reads d before the wait, gets the wrong numbers. Also checked: every thread of a
// warpgroup issues the same descriptors (the PTX ISA requires it), a wgmma_fence comes before the
// first wgmma after each wait, a fence_proxy_async after every thread's cp_async_wait and before the
// __syncthreads that shares its copies with the wgmma, the layout is the one emulated, and no thread
// ends with a wgmma in flight.
namespace emu {

constexpr uint32_t kSharedWindowOffset = 48;

inline char* shared_window() { return dynamic_shared<char>() - kSharedWindowOffset; }

inline bool in_dynamic_smem(uint32_t address, uint32_t bytes) {
    return address >= kSharedWindowOffset && address + bytes <= kSharedWindowOffset + dynamic_smem_bytes;
}

// Element (row, k) of a wgmma operand tile, k < 8, as the tensor core reads it through descriptor `desc`.
inline float wgmma_operand(uint64_t desc, int row, int k) {
    const uint32_t start = static_cast<uint32_t>(desc & 0x3FFF) << 4;
    const uint32_t group_stride = static_cast<uint32_t>((desc >> 32) & 0x3FFF) << 4;
    uint32_t address = start + (row / 8) * group_stride + (row % 8) * 128 + k * 4;
    address ^= ((address >> 7) & 7) << 4;  // 128-byte swizzle: chunk bits 4-6 ^= row bits 7-9
    if (!in_dynamic_smem(address, 4)) {
        fail(cudaErrorIllegalAddress, "wgmma operand at shared address " + std::to_string(address) +
                                          ", outside the dynamic shared memory");
        return 0.0f;
    }
    uint32_t bits;
    std::memcpy(&bits, shared_window() + address, 4);
    return tf32_operand(bits);
}

inline bool emulated_layout(uint64_t desc) {
    const uint64_t layout = desc >> 62, base_offset = (desc >> 49) & 7;
    return layout == 1 && base_offset == 0;  // 128-byte swizzle, tile at a multiple of 1024 bytes
}

// This thread's part of d += a b^T, m64n128k8: rows 16w + g (+ 8), columns 8j + 2t (+ 1).
inline void land(const Wgmma& op) {
    const int t = linear_thread() % 128, w = t / 32, g = t % 32 / 4, q = t % 4;
    float a[2][8], b[32][8];
    for (int h = 0; h < 2; h++) {
        for (int k = 0; k < 8; k++) { a[h][k] = wgmma_operand(op.desc_a, 16 * w + g + 8 * h, k); }
    }
    for (int c = 0; c < 32; c++) {
        for (int k = 0; k < 8; k++) { b[c][k] = wgmma_operand(op.desc_b, 8 * (c / 2) + 2 * q + c % 2, k); }
    }
    for (int r = 0; r < 64; r++) {
        const int h = (r / 2) % 2, c = 2 * (r / 4) + r % 2;
        float sum = 0.0f;
        for (int k = 0; k < 8; k++) { sum += a[h][k] * b[c][k]; }
        op.d[r] += sum;
    }
}

}  // namespace emu

inline uint32_t shared_address(const void* p) {
    const char* at = static_cast<const char*>(p);
    const char* base = emu::dynamic_shared<char>();
    if (at < base || at > base + emu::dynamic_smem_bytes) {
        emu::fail(cudaErrorInvalidValue, "shared_address of a pointer outside the dynamic shared memory");
        return 0;
    }
    return emu::kSharedWindowOffset + static_cast<uint32_t>(at - base);
}

// The copies land straight in the memory wgmma reads; the fence is still required (a GPU's tensor cores
// may otherwise read what was there before): a wgmma after a cp_async_wait and no fence is an error.
inline void fence_proxy_async() { emu::block->async_copies[emu::linear_thread()].unfenced = false; }

inline void wgmma_fence() { emu::block->wgmmas[emu::linear_thread()].fenced = true; }

inline void wgmma_commit() { emu::block->wgmmas[emu::linear_thread()].commits++; }

inline void keep_in_registers(float (&)[64]) {}

inline void wgmma_tf32_m64n128k8(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
    emu::Block& b = *emu::block;
    const int t = emu::linear_thread();
    if (emu::block_dim.x * emu::block_dim.y * emu::block_dim.z % 128 != 0) {
        emu::fail(cudaErrorLaunchFailure, "wgmma in a block that is not whole warpgroups of 128 threads");
        return;
    }
    emu::Wgmmas& mine = b.wgmmas[t];
    if (!mine.fenced) {
        emu::fail(cudaErrorLaunchFailure, "wgmma without a wgmma_fence before it (since the last wgmma_wait)");
        return;
    }
    if (b.async_copies[t].unfenced || b.opened_unfenced) {  // this thread's copies, or the others' it sees
        emu::fail(cudaErrorLaunchFailure, "wgmma after a cp.async wait without fence_proxy_async between them "
                                          "(each thread's fence must come before the barrier that shares its copies)");
        return;
    }
    if (!emu::emulated_layout(desc_a) || !emu::emulated_layout(desc_b)) {
        emu::fail(cudaErrorInvalidValue, "wgmma descriptor: only the 128-byte swizzle at base offset 0 is emulated");
        return;
    }
    auto& issued = b.warpgroup_descriptors[t / 128];  // the n-th wgmma of every thread of the group must agree
    if (issued.size() <= mine.issued) {
        issued.emplace_back(desc_a, desc_b);
    } else if (issued[mine.issued] != std::make_pair(desc_a, desc_b)) {
        emu::fail(cudaErrorLaunchFailure, "threads of one warpgroup issued a wgmma with different descriptors");
        return;
    }
    mine.issued++;
    const emu::Wgmma op{d, desc_a, desc_b, mine.commits};
    if (emu::lands_early()) {
        emu::land(op);
    } else {
        mine.pending.push_back(op);
    }
}

template <int N>
void wgmma_wait() {
    emu::Wgmmas& mine = emu::block->wgmmas[emu::linear_thread()];
    emu::land_groups_before_newest(mine, N);
    mine.fenced = false;
}

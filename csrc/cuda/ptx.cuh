// The few GPU instructions that CUDA C++ has no plain function for, used by the matmuls and the flash
// attention, each as a one-line PTX wrapper (PTX ISA, "cp.async", "cvt", "mma"):
//
//   cp_async_16 / cp_async_4   copy 16 (or 4) bytes from global to shared memory without passing
//                              through registers; the thread goes on at once. Bytes past `src_bytes`
//                              are filled with zeros, so a tile's edge needs no second code path.
//   cp_async_commit            close the copies issued since the last commit into one group;
//   cp_async_wait<N>           wait until at most N of this thread's groups are still in flight.
//                              (Other threads' copies are seen only after a __syncthreads.)
//   to_tf32                    round a float to TF32 (10 bits of mantissa): to nearest, ties away
//                              from zero; inf and NaN stay what they are.
//   mma_tf32_16x8x8            d += a b for a 16 x 8 tile of a and an 8 x 8 tile of b, on the tensor
//                              cores, by the 32 lanes of a warp together. Lane l holds, with g = l / 4
//                              and t = l % 4:
//                                a: (g, t) (g + 8, t) (g, t + 4) (g + 8, t + 4)
//                                b: (t, g) (t + 4, g)
//                                d: (g, 2t) (g, 2t + 1) (g + 8, 2t) (g + 8, 2t + 1)
//
// cp.async, cvt to TF32 and TF32 mma arrived with Ampere (compute capability 8.0). Compiled for an
// older GPU, the copies are ordinary loads and stores made at once (the kernels stay correct, without
// the overlap), and the TF32 kernel's body is compiled out (its launcher refuses such GPUs).
//
// The CUDA emulator (tests/cuda_emulator/) has no PTX: there the same functions come from its
// include/ptx_emulated.h, which follows these layouts and lands each copy at its issue or at its wait.
#pragma once

#include <cstdint>

#if defined(MINIGPT_CUDA_EMULATOR)
#include <ptx_emulated.h>
#else

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800

// The 32-bit shared-memory address PTX's .shared state space takes.
__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// .cg: cache in L2 only; the tile is read once by this block, from shared memory afterwards.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
                 "r"(src_bytes)
                 : "memory");
}

// .ca is the only form that copies fewer than 16 bytes.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
                 "r"(src_bytes)
                 : "memory");
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// ptxas makes this three instructions on an H100 (is it finite? add half a TF32 unit to the bits;
// keep the sum if so), leaving the 13 low bits for the tensor core to ignore.
__device__ __forceinline__ uint32_t to_tf32(float x) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
    return r;
}

__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#else  // before Ampere: the copies happen at once, through registers

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    if (src_bytes == 16) {
        *static_cast<float4*>(smem) = *static_cast<const float4*>(gmem);
        return;
    }
    const char* src = static_cast<const char*>(gmem);
    char* dst = static_cast<char*>(smem);
    for (int i = 0; i < 16; i++) { dst[i] = i < src_bytes ? src[i] : 0; }
}

__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, int src_bytes) {
    *static_cast<float*>(smem) = src_bytes == 4 ? *static_cast<const float*>(gmem) : 0.0f;
}

__device__ __forceinline__ void cp_async_commit() {}

template <int N>
__device__ __forceinline__ void cp_async_wait() {}

#endif
#endif

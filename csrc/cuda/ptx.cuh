// The few GPU instructions the TF32 matmul needs that CUDA C++ has no plain function for, each as a
// one-line PTX wrapper (PTX ISA, "cp.async", "cvt", "mma"):
//
//   cp_async_16 / cp_async_4   copy 16 (or 4) bytes from global to shared memory without passing
//                              through registers; the thread goes on at once. Bytes past `src_bytes`
//                              are filled with zeros, so a tile's edge needs no second code path.
//   cp_async_commit            close the copies issued since the last commit into one group;
//   cp_async_wait<N>           wait until at most N of this thread's groups are still in flight.
//                              (Other threads' copies are seen only after a __syncthreads.)
//   to_tf32                    a float as a TF32 operand: see below.
//   mma_tf32_16x8x8            d += a b for a 16 x 8 tile of a and an 8 x 8 tile of b, on the tensor
//                              cores, by the 32 lanes of a warp together. Lane l holds, with g = l / 4
//                              and t = l % 4:
//                                a: (g, t) (g + 8, t) (g, t + 4) (g + 8, t + 4)
//                                b: (t, g) (t + 4, g)
//                                d: (g, 2t) (g, 2t + 1) (g + 8, 2t) (g + 8, 2t + 1)
//
// The CUDA emulator (tests/cuda_emulator/) has no PTX: there the same functions come from its
// include/ptx_emulated.h, which follows these layouts and delays each copy until its wait.
#pragma once

#include <cstdint>

#if defined(MINIGPT_CUDA_EMULATOR)
#include <ptx_emulated.h>
#else

// The 32-bit shared-memory address PTX's .shared state space takes.
__device__ __forceinline__ uint32_t shared_address(const void* p) {
    return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// .cg: cache in L2 only; the tile is read once by this block, from shared memory afterwards.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
                 "r"(src_bytes));
}

// .ca is the only form that copies fewer than 16 bytes.
__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem, int src_bytes) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(smem)), "l"(gmem),
                 "r"(src_bytes));
}

__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

template <int N>
__device__ __forceinline__ void cp_async_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

// TF32 keeps 10 of float32's 23 bits of mantissa, and the tensor cores read an operand's register by
// ignoring its low 13 bits (truncation). Adding half a unit of TF32's last place first (0x1000) makes that
// a rounding to nearest, ties away from zero (as CUTLASS does it): one integer add, where cvt.rna.tf32.f32
// takes three instructions on an H100, in the kernel's innermost loop. Inf stays inf (the carry never
// reaches the exponent); the largest floats round up to inf, as cvt.rna rounds them.
__device__ __forceinline__ uint32_t to_tf32(float x) { return __float_as_uint(x) + 0x1000u; }

__device__ __forceinline__ void mma_tf32_16x8x8(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
    asm volatile(
        "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

#endif

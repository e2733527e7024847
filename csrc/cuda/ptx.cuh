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
// Hopper's warpgroup tensor-core product (PTX ISA, "wgmma"), for sm_90a builds only:
//
//   wgmma_tf32_m64n128k8       d += a b^T for a 64 x 8 tile of a and a 128 x 8 tile of b, both read by
//                              the tensor cores straight from shared memory (never through registers),
//                              by the 128 threads of a warpgroup (4 consecutive warps) together. The
//                              operand values are float32 bits, of which the tensor core reads the TF32
//                              part: the 13 low mantissa bits dropped (the PTX ISA leaves this to the
//                              hardware; the emulator and a test assume truncation).
//                              It is asynchronous: the thread goes on at once, and d may be read only
//                              after the wgmma_wait that covers it. Warp w of the group, lane (g, t):
//                                d[r]: row 16w + g + 8 ((r / 2) % 2), column 8 (r / 4) + 2t + r % 2
//   wgmma_descriptor           the 64-bit description of an operand tile that wgmma reads: a tile of
//                              rows of 32 floats (128 bytes, k running along the row), in the 128-byte
//                              swizzle: the 16-byte chunk c of row r stored at chunk c ^ (r % 8), so
//                              the tensor core's reads of 8 rows fall on distinct banks. The tile must
//                              start at a multiple of 1024 bytes in shared memory; 8-row groups 1024
//                              bytes apart. Adding 2 to a descriptor moves it 32 bytes (8 floats) along k.
//   wgmma_fence                order this thread's register accesses to d before the next wgmma;
//   wgmma_commit / wgmma_wait<N>  close the wgmmas issued since the last commit into a group; wait
//                              until at most N groups are in flight;
//   fence_proxy_async          make this thread's writes to shared memory (cp.async's included) visible
//                              to the tensor core's reads, which go through the "async proxy";
//   keep_in_registers          tell the compiler that d changes here, so it moves no read of d across
//                              a wait.
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

#if !defined(__CUDA_ARCH__) || defined(__CUDA_ARCH_FEAT_SM90_ALL)

__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }

template <int N>
__device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void keep_in_registers(float (&d)[64]) {
#pragma unroll
    for (int i = 0; i < 64; i++) { asm volatile("" : "+f"(d[i])::"memory"); }
}

// scale-d = 1 (d += a b^T, never d = a b^T) and no negation of a or b.
__device__ __forceinline__ void wgmma_tf32_m64n128k8(float (&d)[64], uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n128k8.f32.tf32.tf32 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15,"
        " %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31,"
        " %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47,"
        " %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}, %64, %65, p, 1, 1;\n}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
        : "l"(desc_a), "l"(desc_b), "r"(1)
        : "memory");
}

#endif

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

// The descriptor of a tile at this shared-memory address (shared_address; a multiple of 1024), in the
// layout described above: 128-byte swizzle, 8-row groups 1024 bytes apart. (The leading byte offset is
// not read in this layout; 16, as CUTLASS sets it.) Plain arithmetic, the same in the emulator.
__device__ __forceinline__ uint64_t wgmma_descriptor(uint32_t tile_address) {
    constexpr uint64_t kSwizzle128B = 1, kGroupStride = 1024, kUnusedLeading = 16;
    return ((tile_address & 0x3FFFF) >> 4) | (kUnusedLeading >> 4) << 16 | (kGroupStride >> 4) << 32 |
           kSwizzle128B << 62;
}

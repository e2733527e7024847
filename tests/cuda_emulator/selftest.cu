// Checks of the CUDA emulator itself (tests/test_cuda_emulator.py builds and runs this with build.py's
// rewrite): the behaviours of the CUDA model the kernels of csrc/cuda/ rely on, each with a kernel
// whose answer is known. Prints one "name ok" or "name FAILED ..." line per check. With the argument
// --out-of-bounds it instead runs a kernel that reads past its array, which a memcheck build must stop;
// with --misaligned, one that reads a float4 at an address 4 bytes past a multiple of 16, which every
// build must stop, as a GPU would.
#include <cuda_runtime.h>

#include "ptx.cuh"  // csrc/cuda's PTX wrappers, here their emulated versions

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

static int failures = 0;

static void report(const char* name, bool ok, const char* detail = "") {
    std::printf("%s %s%s\n", name, ok ? "ok" : "FAILED ", ok ? "" : detail);
    failures += ok ? 0 : 1;
}

// A block-wide sum in shared memory: only right if __syncthreads makes every write visible first.
__global__ void tree_sum_kernel(float* out, const float* x) {
    __shared__ float s[256];
    s[threadIdx.x] = x[blockIdx.x * 256 + threadIdx.x];
    __syncthreads();
    for (int half = 128; half > 0; half /= 2) {
        if (threadIdx.x < half) { s[threadIdx.x] += s[threadIdx.x + half]; }
        __syncthreads();
    }
    if (threadIdx.x == 0) { out[blockIdx.x] = s[0]; }
}

// Butterfly sum over a warp with __shfl_xor_sync, and a shift with __shfl_down_sync.
__global__ void shuffle_kernel(float* xor_sum, float* down) {
    float v = static_cast<float>(threadIdx.x);
    for (int offset = 16; offset > 0; offset /= 2) { v += __shfl_xor_sync(0xffffffffu, v, offset); }
    xor_sum[threadIdx.x] = v;
    down[threadIdx.x] = __shfl_down_sync(0xffffffffu, static_cast<float>(threadIdx.x), 1);
}

// Threads that return early no longer count at a barrier (as on GPUs since Volta).
__global__ void early_exit_kernel(float* out) {
    __shared__ float s[64];
    if (threadIdx.x >= 32) { return; }
    s[threadIdx.x] = 1.0f;
    __syncthreads();
    out[threadIdx.x] = s[31 - threadIdx.x];
}

// Thread 0 waits at a warp barrier, the others at the block barrier: neither ever opens.
__global__ void divergent_kernel(float* out) {
    if (threadIdx.x == 0) { __syncwarp(); }
    __syncthreads();
    out[threadIdx.x] = 1.0f;
}

__global__ void atomic_kernel(float* out) { atomicAdd(out, 1.0f); }

// A missing __syncthreads: each thread reads its left neighbour's value without waiting for it. By
// index order every neighbour would have written first; in a shuffled order some have not.
__global__ void missing_barrier_kernel(float* out) {
    extern __shared__ __align__(16) float smem[];
    smem[threadIdx.x] = 1.0f;
    out[threadIdx.x] = smem[threadIdx.x == 0 ? 0 : threadIdx.x - 1];
}

// Dynamic shared memory is NaN until written, so a read of an unwritten value shows.
__global__ void dynamic_smem_kernel(float* out) {
    extern __shared__ __align__(16) float smem[];
    if (threadIdx.x == 0) { smem[0] = 2.0f; }
    __syncthreads();
    out[threadIdx.x] = smem[threadIdx.x];
}

// One warp multiplies a 16 x 8 tile a by an 8 x 8 tile b on the tensor cores (mma_tf32_16x8x8), each
// lane loading and storing the elements the PTX ISA gives it (g = lane / 4, t = lane % 4).
__global__ void mma_kernel(float* d, const float* a, const float* b) {
    const int g = threadIdx.x / 4, t = threadIdx.x % 4;
    const uint32_t fa[4] = {to_tf32(a[g * 8 + t]), to_tf32(a[(g + 8) * 8 + t]), to_tf32(a[g * 8 + t + 4]),
                            to_tf32(a[(g + 8) * 8 + t + 4])};
    const uint32_t fb[2] = {to_tf32(b[t * 8 + g]), to_tf32(b[(t + 4) * 8 + g])};
    float acc[4] = {1.0f, 1.0f, 1.0f, 1.0f};
    mma_tf32_16x8x8(acc, fa, fb);
    for (int e = 0; e < 4; e++) { d[(g + (e / 2) * 8) * 8 + 2 * t + e % 2] = acc[e]; }
}

// cp.async: what a thread reads of its copy before and after waiting for it. Two groups in flight, a
// wait that leaves one of them: the older has landed, the newer not. Also a chunk zero-filled past
// src_bytes.
__global__ void async_copy_kernel(float* out, const float* x) {
    extern __shared__ __align__(16) float smem[];
    cp_async_16(smem, x, 16);
    cp_async_commit();
    cp_async_16(smem + 4, x + 4, 8);  // two floats copied, two zeros
    cp_async_commit();
    out[0] = smem[0];  // not waited for: still NaN
    cp_async_wait<1>();
    out[1] = smem[0];  // the first group has landed
    out[2] = smem[4];  // the second has not
    cp_async_wait<0>();
    for (int i = 0; i < 4; i++) { out[3 + i] = smem[4 + i]; }
}

// Reads one float past the end of x: the bug compute-sanitizer's memcheck (and the emulator's) finds.
__global__ void out_of_bounds_kernel(float* out, const float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = x[i + 1]; }
}

// Reads four floats as one float4 from wherever x points: misaligned unless x is a multiple of 16 bytes.
__global__ void misaligned_kernel(float* out, const float* x) {
    const float4 v = *reinterpret_cast<const float4*>(x);
    out[0] = v.x + v.y + v.z + v.w;
}

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--out-of-bounds") {
        std::vector<float> x(100, 1.0f), out(100);
        out_of_bounds_kernel<<<1, 128>>>(out.data(), x.data(), 100);
        std::printf("out_of_bounds_kernel ran to the end\n");
        return 0;
    }
    if (argc > 1 && std::string(argv[1]) == "--misaligned") {
        alignas(16) float x[8] = {1, 2, 3, 4, 5, 6, 7, 8};
        float out[1];
        misaligned_kernel<<<1, 1>>>(out, x + 1);
        std::printf("misaligned_kernel ran to the end\n");
        return 0;
    }
    {
        std::vector<float> x(3 * 256), out(3);
        for (size_t i = 0; i < x.size(); i++) { x[i] = static_cast<float>(i % 7); }
        tree_sum_kernel<<<3, 256>>>(out.data(), x.data());
        bool ok = cudaGetLastError() == cudaSuccess;
        for (int b = 0; b < 3; b++) {
            float ref = 0.0f;
            for (int i = 0; i < 256; i++) { ref += x[b * 256 + i]; }
            ok = ok && out[b] == ref;
        }
        report("syncthreads_tree_sum", ok);
    }
    {
        std::vector<float> xor_sum(64), down(64);
        shuffle_kernel<<<1, 64>>>(xor_sum.data(), down.data());
        bool ok = cudaGetLastError() == cudaSuccess;
        for (int t = 0; t < 64; t++) {
            const int base = t / 32 * 32;
            ok = ok && xor_sum[t] == static_cast<float>(32 * base + 496);  // sum of base .. base + 31
            ok = ok && down[t] == static_cast<float>(t % 32 == 31 ? t : t + 1);  // the last lane keeps its own
        }
        report("warp_shuffles", ok);
    }
    {
        std::vector<float> out(32, 0.0f);
        early_exit_kernel<<<1, 64>>>(out.data());
        bool ok = cudaGetLastError() == cudaSuccess;
        for (float v : out) { ok = ok && v == 1.0f; }
        report("exited_threads_leave_barriers", ok);
    }
    {
        std::vector<float> out(64, 0.0f);
        divergent_kernel<<<1, 64>>>(out.data());
        const cudaError_t err = cudaGetLastError();
        report("divergent_barrier_is_an_error", err == cudaErrorLaunchFailure, cudaGetErrorString(err));
    }
    {
        std::vector<float> out(256, 0.0f);
        missing_barrier_kernel<<<1, 256, 256 * sizeof(float)>>>(out.data());
        int unwritten = 0;
        for (float v : out) { unwritten += std::isnan(v) ? 1 : 0; }
        report("missing_barrier_shows", cudaGetLastError() == cudaSuccess && unwritten > 0);
    }
    {
        std::vector<float> out(1, 0.0f);
        atomic_kernel<<<5, 100>>>(out.data());
        report("atomic_add", cudaGetLastError() == cudaSuccess && out[0] == 500.0f);
    }
    {
        std::vector<float> out(4, 0.0f);
        dynamic_smem_kernel<<<1, 4, 4 * sizeof(float)>>>(out.data());
        const bool ok = cudaGetLastError() == cudaSuccess && out[0] == 2.0f && std::isnan(out[1]) && std::isnan(out[3]);
        report("unwritten_shared_memory_is_nan", ok);
    }
    {
        std::vector<float> out(2048, 0.0f);
        atomic_kernel<<<1, 2048>>>(out.data());
        report("too_many_threads_is_an_error", cudaGetLastError() == cudaErrorInvalidConfiguration && out[0] == 0.0f);
        dynamic_smem_kernel<<<1, 4, 64 * 1024>>>(out.data());  // over 48 KiB without cudaFuncSetAttribute
        report("shared_memory_over_the_limit_is_an_error", cudaGetLastError() == cudaErrorInvalidValue);
    }
    {
        std::vector<float> a(16 * 8), b(8 * 8), d(16 * 8);
        for (int i = 0; i < 128; i++) { a[i] = 0.25f * static_cast<float>(i % 9) - 1.0f; }
        for (int i = 0; i < 64; i++) { b[i] = 0.5f * static_cast<float>(i % 5) - 1.0f; }
        mma_kernel<<<1, 32>>>(d.data(), a.data(), b.data());
        bool ok = cudaGetLastError() == cudaSuccess;
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 8; j++) {
                float ref = 1.0f;  // these inputs are exact in TF32, and so are the sums
                for (int k = 0; k < 8; k++) { ref += a[i * 8 + k] * b[k * 8 + j]; }
                ok = ok && d[i * 8 + j] == ref;
            }
        }
        report("mma_tf32_product", ok);
        // to_tf32 adds half a TF32 unit, the tensor core drops the low 13 bits: rounding to nearest
        auto as_operand = [](float x) { return tf32_operand(to_tf32(x)); };
        report("tf32_rounding", as_operand(1.0f + 3.0f / 4096.0f) == 1.0f + 1.0f / 1024.0f &&
                                    as_operand(1.0f + 1.0f / 4096.0f) == 1.0f &&
                                    as_operand(1.0f + 2.0f / 4096.0f) == 1.0f + 1.0f / 1024.0f &&  // a tie: away from 0
                                    as_operand(-1.0f - 3.0f / 4096.0f) == -1.0f - 1.0f / 1024.0f &&
                                    std::isinf(as_operand(INFINITY)));
    }
    {
        std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8}, out(7, 0.0f);
        emu::copy_timing = emu::CopyTiming::late;  // every copy as late as a GPU may land it
        async_copy_kernel<<<1, 1, 8 * sizeof(float)>>>(out.data(), x.data());
        bool ok = cudaGetLastError() == cudaSuccess && std::isnan(out[0]) && out[1] == 1.0f && std::isnan(out[2]) &&
                  out[3] == 5.0f && out[4] == 6.0f && out[5] == 0.0f && out[6] == 0.0f;
        emu::copy_timing = emu::CopyTiming::early;  // and as early
        async_copy_kernel<<<1, 1, 8 * sizeof(float)>>>(out.data(), x.data());
        ok = ok && cudaGetLastError() == cudaSuccess && out[0] == 1.0f && out[2] == 5.0f && out[5] == 0.0f;
        report("async_copies_land_at_either_end", ok);
    }
    return failures == 0 ? 0 : 1;
}

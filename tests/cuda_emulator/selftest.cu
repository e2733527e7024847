// Checks of the CUDA emulator itself (tests/test_cuda_emulator.py builds and runs this with build.py's
// rewrite): the behaviours of the CUDA model the kernels of csrc/cuda/ rely on, each with a kernel
// whose answer is known. Prints one "name ok" or "name FAILED ..." line per check. With the argument
// --out-of-bounds it instead runs a kernel that reads past its array, which a memcheck build must stop.
#include <cuda_runtime.h>
#include <mma.h>

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

// One warp multiplies a 16 x 8 by an 8 x 16 tile with WMMA (TF32 inputs, float32 sums).
__global__ void wmma_kernel(float* c, const float* a, const float* b) {
    using namespace nvcuda;
    wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major> fa;
    wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major> fb;
    wmma::fragment<wmma::accumulator, 16, 16, 8, float> acc;
    wmma::fill_fragment(acc, 1.0f);
    wmma::load_matrix_sync(fa, a, 8);
    wmma::load_matrix_sync(fb, b, 8);  // column-major: element (k, n) at b[n * 8 + k]
    wmma::mma_sync(acc, fa, fb, acc);
    wmma::store_matrix_sync(c, acc, 16, wmma::mem_row_major);
}

// Reads one float past the end of x: the bug compute-sanitizer's memcheck (and the emulator's) finds.
__global__ void out_of_bounds_kernel(float* out, const float* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) { out[i] = x[i + 1]; }
}

int main(int argc, char** argv) {
    if (argc > 1 && std::string(argv[1]) == "--out-of-bounds") {
        std::vector<float> x(100, 1.0f), out(100);
        out_of_bounds_kernel<<<1, 128>>>(out.data(), x.data(), 100);
        std::printf("out_of_bounds_kernel ran to the end\n");
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
        std::vector<float> a(16 * 8), b(16 * 8), c(16 * 16);
        for (int i = 0; i < 128; i++) {
            a[i] = 0.25f * static_cast<float>(i % 9) - 1.0f;
            b[i] = 0.5f * static_cast<float>(i % 5) - 1.0f;
        }
        wmma_kernel<<<1, 32>>>(c.data(), a.data(), b.data());
        bool ok = cudaGetLastError() == cudaSuccess;
        for (int i = 0; i < 16; i++) {
            for (int j = 0; j < 16; j++) {
                float ref = 1.0f;  // these inputs are exact in TF32, and so are the sums
                for (int k = 0; k < 8; k++) { ref += a[i * 8 + k] * b[j * 8 + k]; }
                ok = ok && c[i * 16 + j] == ref;
            }
        }
        report("wmma_tf32_product", ok);
        report("tf32_rounding", nvcuda::wmma::__float_to_tf32(1.0f + 3.0f / 4096.0f) == 1.0f + 1.0f / 1024.0f &&
                                    nvcuda::wmma::__float_to_tf32(1.0f + 1.0f / 4096.0f) == 1.0f &&
                                    nvcuda::wmma::__float_to_tf32(1.0f + 2.0f / 4096.0f) == 1.0f + 1.0f / 1024.0f);  // a tie: away from 0
    }
    return failures == 0 ? 0 : 1;
}

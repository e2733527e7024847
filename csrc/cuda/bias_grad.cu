// The gradient of a bias added to every row, db[c] += sum_r dout[r, c], on the GPU. Follows
// minigpt/kernels/bias_grad.py. Linear uses it for its bias; GPT for wpe, which is added to every
// sequence of the batch the same way.
//
// A column sum of a row-major (N, C) array: the values of one column lie C floats apart, so a
// thread per column (the naive version) makes a warp read 32 neighbouring floats of one row, which is
// coalesced, but a few hundred columns give only a few hundred threads for millions of values. The
// fast version also splits the rows: a block of 32 x 8 threads owns a strip of 32 columns and a chunk
// of rows; each of its 8 warps walks every 8th row of the chunk, keeping its 32 sums in registers,
// and the 8 warps combine in shared memory. The chunks' sums go to a scratch array and a second,
// tiny pass adds them up in a fixed order, so the result is the same on every run (no atomicAdd).
#include "common.cuh"
#include "kernels_cuda.h"

namespace {

constexpr int kStrip = 32;             // columns per block: one warp-wide, coalesced read of a row
constexpr int kRowGroups = 8;          // warps per block, each summing every 8th row
constexpr int64_t kChunkRows = 256;    // rows per block: 32 loads per thread, thousands of blocks at N = 16k
constexpr int64_t kMaxChunks = 1024;   // keeps the scratch at most 1024 x C; longer inputs get longer chunks
constexpr int kFinishThreads = 256;

// Rows per chunk for N rows: kChunkRows, or more when that would make more than kMaxChunks chunks.
int64_t chunk_rows(int64_t N) {
    const int64_t rows = (N + kMaxChunks - 1) / kMaxChunks;
    return rows > kChunkRows ? rows : kChunkRows;
}

// One thread per column, down all N rows: correct, coalesced, and too few threads to fill the GPU.
__global__ void bias_grad_naive_kernel(float* db, const float* dout, int64_t N, int64_t C) {
    const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (c >= C) { return; }
    float sum = 0.0f;
    for (int64_t r = 0; r < N; r++) { sum += dout[r * C + c]; }
    db[c] += sum;
}

// Pass 1: the sum of column c over rows [chunk * rows, (chunk + 1) * rows), written to
// partial[chunk, c], or added straight into db[c] when there is only one chunk (add_into_db).
__global__ void bias_grad_chunk_kernel(float* dst, const float* dout, int64_t N, int64_t C, int64_t rows,
                                       bool add_into_db) {
    __shared__ float sums[kRowGroups][kStrip];
    const int64_t c = static_cast<int64_t>(blockIdx.x) * kStrip + threadIdx.x;
    const int64_t r0 = static_cast<int64_t>(blockIdx.y) * rows;
    const int64_t r1 = min(N, r0 + rows);
    float sum = 0.0f;
    if (c < C) {
#pragma unroll 4
        for (int64_t r = r0 + threadIdx.y; r < r1; r += kRowGroups) { sum += dout[r * C + c]; }
    }
    sums[threadIdx.y][threadIdx.x] = sum;
    __syncthreads();
    if (threadIdx.y != 0 || c >= C) { return; }
    for (int g = 1; g < kRowGroups; g++) { sum += sums[g][threadIdx.x]; }
    if (add_into_db) {
        dst[c] += sum;
    } else {
        dst[blockIdx.y * C + c] = sum;
    }
}

// Pass 2: db[c] += the chunks' sums of column c, in chunk order.
__global__ void bias_grad_finish_kernel(float* db, const float* partial, int64_t chunks, int64_t C) {
    const int64_t c = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
    if (c >= C) { return; }
    float sum = 0.0f;
    for (int64_t k = 0; k < chunks; k++) { sum += partial[k * C + c]; }  // a warp reads 32 neighbours
    db[c] += sum;
}

}  // namespace

int64_t bias_grad_chunks(int64_t N) { return N == 0 ? 0 : (N + chunk_rows(N) - 1) / chunk_rows(N); }

void bias_grad_cuda(float* db, float* partial, const float* dout, int64_t N, int64_t C, cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    const int64_t chunks = bias_grad_chunks(N);
    const dim3 grid(static_cast<unsigned>((C + kStrip - 1) / kStrip), static_cast<unsigned>(chunks));
    const dim3 block(kStrip, kRowGroups);
    bias_grad_chunk_kernel<<<grid, block, 0, stream>>>(chunks == 1 ? db : partial, dout, N, C, chunk_rows(N),
                                                       chunks == 1);
    check_launch("bias_grad_chunk_kernel");
    if (chunks == 1) { return; }
    const unsigned blocks = grid_for(C, kFinishThreads, INT32_MAX);  // a thread per column, no grid-stride loop
    bias_grad_finish_kernel<<<blocks, kFinishThreads, 0, stream>>>(db, partial, chunks, C);
    check_launch("bias_grad_finish_kernel");
}

void bias_grad_naive_cuda(float* db, const float* dout, int64_t N, int64_t C, cudaStream_t stream) {
    if (N == 0 || C == 0) { return; }
    const unsigned blocks = grid_for(C, kFinishThreads, INT32_MAX);
    bias_grad_naive_kernel<<<blocks, kFinishThreads, 0, stream>>>(db, dout, N, C);
    check_launch("bias_grad_naive_kernel");
}

// matmul: out = op(a) @ op(b) (+ bias), op(x) = x or x^T, for the products a Linear layer needs:
//   forward   x @ w + b      (no flags)
//   backward  dout @ w^T     (trans_b)   and   x^T @ dout   (trans_a)
// The flags change how a and b are read, never what is in memory: no transposed copies of them (one
// case, x^T @ dout much wider than tall, computes out transposed and copies it back: see matmul_forward).
//
// Two versions with one signature:
//   matmul_forward_naive  the textbook triple loop, to read first;
//   matmul_forward        the same sums organised the way GotoBLAS and BLIS organise them
//                         (Goto & van de Geijn 2008, https://doi.org/10.1145/1356052.1356053;
//                         Van Zee & van de Geijn 2015, https://doi.org/10.1145/2764454).
//
// Products with only a few rows (M <= 8 to 32, e.g. one token in generation) skip all of this and
// take the small-M path below (matmul_rows.h has why); the rest go through matmul_blocked:
//
// matmul_forward, loop by loop (block sizes of the AVX-512 path; every path has its own):
//
//   for jc in [0, N) step nc <= NC = 768
//     for pc in [0, K) step kc <= KC = 384
//       pack op(b)[pc:pc+kc, jc:jc+nc] into panels of NR = 32 columns      (L2, shared by threads)
//       for ip in [0, M) step MR = 14                                      (spread over threads)
//         pack op(a)[ip:ip+MR, pc:pc+kc] into one panel                    (L1)
//         for jr in [0, nc) step NR
//           micro-kernel: out[ip:ip+MR, jc+jr:+NR] (+)= A panel @ B panel  (registers)
//
// Why each level:
//   - registers: the micro-kernel holds an MR x NR tile of out in registers for all kc steps, so
//     each float it loads feeds MR or NR multiply-adds instead of one, and the FMA units, not the
//     loads, set the pace (matmul_avx512.cpp has the arithmetic);
//   - L1: one A panel is reused against every B panel of the block (nc / NR times);
//   - L2: the packed B block is reused by every A panel (M / MR times), from L2 rather than memory;
//   - packing copies each block into exactly the order the kernel reads it: contiguous, aligned,
//     zero-padded to whole tiles. It is also where the transposes go: packing reads a and b in the
//     order they are stored, whatever the flags, and writes the same panels (matmul_kernels.h has
//     the layouts, matmul_pack.h the loops, with the one real transpose, of b for dout @ w^T,
//     done in vector registers).
// Blocks are split evenly: K = 512 gives two kc blocks of 256, not 384 + 128. An edge tile of at
// most NR / 2 columns (the last one of N = 65) takes a half-width micro-kernel, which skips the
// multiply-adds of the other half; every other edge tile takes the full kernel on zero padding.
//
// Threads: each (jc, pc) block is one list of tasks that the threads take as they free up
// (OpenMP's dynamic schedule): the A panels to multiply by this block and, spread among them, the
// panels of the *next* B block to pack, into a second buffer. So packing overlaps computing, the
// threads meet once per block (at a barrier that yields the core while it waits), and a core
// slowed by another process simply takes fewer tasks. Every tile of out is summed by one thread,
// over the kc blocks in order, so the result does not depend on the thread count (nor on the
// flags: the panels and the kernel's order of multiply-adds are the same). The bias is added in
// the write-back of the last kc block: no second pass over out.
//
// The SIMD path (the micro-kernel and its block sizes) is chosen once, at the first call, from
// what the CPU supports: AVX-512, else AVX2 + FMA, else portable C++. MINIGPT_SIMD=avx2 or
// MINIGPT_SIMD=portable forces a lower path (for tests and the tutorial); info()["simd"] says
// which one runs.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifdef MINIGPT_OPENMP
#include <omp.h>
#endif

#include "fastmath.h"
#include "kernels.h"
#include "matmul_kernels.h"

void matmul_forward_naive(float* out, const float* a, const float* b, const float* bias,
                          int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
    // op(a)[m][k] = a[m * a_sm + k * a_sk] and op(b)[k][n] = b[k * b_sk + n * b_sn]: with these
    // strides one loop nest serves all four variants
    const int64_t a_sm = trans_a ? 1 : K, a_sk = trans_a ? M : 1;
    const int64_t b_sk = trans_b ? 1 : N, b_sn = trans_b ? K : 1;
    for (int64_t m = 0; m < M; m++) {
        for (int64_t n = 0; n < N; n++) {
            float sum = 0.0f;
            for (int64_t k = 0; k < K; k++) {
                sum += a[m * a_sm + k * a_sk] * b[k * b_sk + n * b_sn];
            }
            out[m * N + n] = (bias != nullptr) ? sum + bias[n] : sum;
        }
    }
}

// ----------------------------------------------------------------------------- choosing the path

static const MatmulPath& choose_path() {
    std::vector<const MatmulPath*> supported = {&matmul_path_portable()};  // lowest first
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) { supported.push_back(&matmul_path_avx2()); }
    // avx512dq too: this choice is every kernel's (simd.h), and the memory-bound ones are built with it
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("fma")) {
        supported.push_back(&matmul_path_avx512());
    }
#endif
    const char* env = std::getenv("MINIGPT_SIMD");
    const std::string wanted = env != nullptr ? env : "";
    if (wanted.empty()) { return *supported.back(); }
    for (const MatmulPath* path : supported) {
        if (wanted == path->name) { return *path; }
    }
    if (wanted == "avx512" || wanted == "avx2") {
        throw std::invalid_argument("MINIGPT_SIMD=" + wanted + " asks for a SIMD path this CPU (or this build) "
                                    "lacks; the best it runs is " + supported.back()->name +
                                    ": unset MINIGPT_SIMD or pick a lower path");
    }
    throw std::invalid_argument("MINIGPT_SIMD must be avx512, avx2 or portable (or unset, for the best this "
                                "CPU runs), got '" + wanted + "'");
}

// Chosen once; a bad MINIGPT_SIMD throws here on every call (std::invalid_argument, a ValueError
// in Python), so it cannot go unnoticed.
static const MatmulPath& matmul_path() {
    static const MatmulPath& path = choose_path();
    return path;
}

const char* matmul_simd_path() { return matmul_path().name; }

// ----------------------------------------------------------------------------- packing

static int64_t ceil_div(int64_t x, int64_t y) { return (x + y - 1) / y; }

// A buffer each thread keeps between calls: a fresh large allocation on every call would
// page-fault on first touch (two 1.1 MiB B blocks are 576 pages). get(n) returns n floats, 64-byte
// aligned so that every packed row starts a cache line.
struct ScratchBuffer {
    std::vector<float> storage;
    float* get(size_t n) {
        if (storage.size() < n + 16) { storage.resize(n + 16); }
        const uintptr_t p = reinterpret_cast<uintptr_t>(storage.data());
        return reinterpret_cast<float*>((p + 63) & ~uintptr_t(63));
    }
};
static thread_local ScratchBuffer b_block_buffer;  // the calling thread's, shared by its team
static thread_local ScratchBuffer a_panel_buffer;  // each thread's own
static thread_local ScratchBuffer out_t_buffer;    // out^T, for the swapped x^T @ dout (matmul_forward)

// One call's operands, sizes and SIMD path, passed whole to the helpers below.
struct Problem {
    const MatmulPath& p;
    float* out;         // (M, N)
    const float* a;     // (M, K), or (K, M) if trans_a
    const float* b;     // (K, N), or (N, K) if trans_b
    const float* bias;  // (N,) or nullptr
    int64_t M, N, K;
    bool trans_a, trans_b;
};

// One A panel: rows m0 .. m0+m (m <= MR) and columns k0 .. k0+kc of op(a), zero rows after m. Packing
// reads a in the order it is stored, whatever the flags (matmul_pack.h has the loops).
static void pack_a_panel(float* ap, const Problem& pb, int64_t m0, int m, int64_t k0, int64_t kc) {
    if (!pb.trans_a) {
        pb.p.pack_a(ap, pb.a + m0 * pb.K + k0, pb.K, kc, m);  // a is (M, K): layout A_ROWS
    } else {
        pb.p.pack_a_transposed(ap, pb.a + k0 * pb.M + m0, pb.M, kc, m);  // a is (K, M): layout A_COLS
    }
}

// One B panel: rows k0 .. k0+kc and columns n0 .. n0+n (n <= NR) of op(b), zero columns after n.
// Each element of b is packed once per call and then used by all M rows.
static void pack_b_panel(float* bp, const Problem& pb, int64_t k0, int64_t n0, int n, int64_t kc) {
    if (!pb.trans_b) {
        pb.p.pack_b(bp, pb.b + k0 * pb.N + n0, pb.N, kc, n);  // b is (K, N)
    } else {
        pb.p.pack_b_transposed(bp, pb.b + n0 * pb.K + k0, pb.K, kc, n);  // b is (N, K): a transpose
    }
}

// ----------------------------------------------------------------------------- the blocked product

static int team_size() {
#ifdef MINIGPT_OPENMP
    return omp_get_num_threads();
#else
    return 1;
#endif
}

// The barrier that ends each block. OpenMP's own barrier spins on the core while it waits (by
// default for up to ~300,000 pause instructions, milliseconds), so on a machine shared with other
// processes a waiting thread can hold the very core that the thread it waits for needs. This one
// yields the core between checks, as OpenBLAS's threads do; on an idle machine yield returns at
// once and it is as quick.
class TeamBarrier {
  public:
    void wait(int team) {
        const int generation = generation_.load(std::memory_order_acquire);
        if (arrived_.fetch_add(1, std::memory_order_acq_rel) + 1 == team) {  // the last to arrive
            arrived_.store(0, std::memory_order_relaxed);
            generation_.fetch_add(1, std::memory_order_release);  // lets the others go
        } else {
            while (generation_.load(std::memory_order_acquire) == generation) { std::this_thread::yield(); }
        }
    }

  private:
    std::atomic<int> arrived_{0}, generation_{0};
};

// Split n into equal blocks of at most max_block, each a multiple of unit: K = 512 with kc <= 384
// gives 2 x 256 rather than 384 + 128.
static int64_t even_block(int64_t n, int64_t max_block, int64_t unit) {
    return ceil_div(ceil_div(n, ceil_div(n, max_block)), unit) * unit;
}

// One B block: rows pc .. pc+kc and columns jc .. jc+nc of op(b), packed as `panels` panels of
// (kc, NR) from `packed` on. Block t of a call is the t-th of the two outer loops (jc, then pc).
struct BBlock {
    int64_t jc, nc, pc, kc, panels;
    float* packed;
};

static BBlock b_block_at(const Problem& pb, int64_t t, int64_t nc_step, int64_t kc_step, float* buffers[2]) {
    const int64_t k_blocks = ceil_div(pb.K, kc_step);
    BBlock blk;
    blk.jc = (t / k_blocks) * nc_step;
    blk.pc = (t % k_blocks) * kc_step;
    blk.nc = std::min(nc_step, pb.N - blk.jc);
    blk.kc = std::min(kc_step, pb.K - blk.pc);
    blk.panels = ceil_div(blk.nc, pb.p.NR);
    blk.packed = buffers[t % 2];  // two buffers: the threads compute with one while they pack the next
    return blk;
}

static void pack_b_task(const Problem& pb, const BBlock& blk, int64_t jp) {
    const int NR = pb.p.NR;
    const int n = static_cast<int>(std::min<int64_t>(NR, blk.nc - jp * NR));
    pack_b_panel(blk.packed + jp * blk.kc * NR, pb, blk.pc, blk.jc + jp * NR, n, blk.kc);
}

// out[ip*MR : +MR, panels j0 .. j1 of the block] (+)= A panel ip @ those B panels.
static void multiply_task(const Problem& pb, const BBlock& blk, float* ap, int64_t ip, int64_t j0, int64_t j1) {
    const MatmulPath& p = pb.p;
    const bool last = blk.pc + blk.kc == pb.K;  // the bias goes in with the last kc block
    const int m = static_cast<int>(std::min<int64_t>(p.MR, pb.M - ip * p.MR));
    pack_a_panel(ap, pb, ip * p.MR, m, blk.pc, blk.kc);
    for (int64_t jp = j0; jp < j1; jp++) {
        const int64_t n0 = blk.jc + jp * p.NR;
        const int n = static_cast<int>(std::min<int64_t>(p.NR, pb.N - n0));
        // a tile of at most NR / 2 columns (the last of N = 65 with NR = 32) takes the half-width
        // kernel: the full one would spend half or more of its multiply-adds on the zero columns
        const bool half = 2 * n <= p.NR;
        const MatmulMicroKernel kernel = pb.trans_a ? (half ? p.kernel_a_cols_half : p.kernel_a_cols)
                                                    : (half ? p.kernel_a_rows_half : p.kernel_a_rows);
        kernel(blk.kc, ap, blk.packed + jp * blk.kc * p.NR, pb.out + ip * p.MR * pb.N + n0, pb.N,
               (last && pb.bias != nullptr) ? pb.bias + n0 : nullptr, blk.pc > 0, m, n);
    }
}

static void matmul_blocked(const Problem& pb) {
    const MatmulPath& p = pb.p;
    const int64_t kc_step = even_block(pb.K, p.KC, 1), nc_step = even_block(pb.N, p.NC, p.NR);
    const int64_t blocks = ceil_div(pb.N, nc_step) * ceil_div(pb.K, kc_step);
    const int64_t m_panels = ceil_div(pb.M, p.MR);
    float* buffers[2];
    buffers[0] = b_block_buffer.get(2 * nc_step * kc_step);  // each (nc / NR) panels of (kc, NR)
    buffers[1] = buffers[0] + nc_step * kc_step;
    // fork threads only when there is enough work to repay the wake-up (2M multiply-adds: ~20 us
    // at this path's speed on one core)
    [[maybe_unused]] const bool parallel = pb.M * pb.N * pb.K >= 128 * 128 * 128;

    TeamBarrier barrier;
    std::atomic<int64_t> first_packed{0};  // panels of the first B block packed so far

    #pragma omp parallel if (parallel)
    {
        float* ap = a_panel_buffer.get(p.MR * p.KC);
        // The first B block, which nothing can start without. The other threads were asleep and
        // may take 10-30 us to wake, so whoever is there takes its panels, and then waits only
        // for those being packed, not (at a barrier) for a thread that has not woken up yet.
        const BBlock first = b_block_at(pb, 0, nc_step, kc_step, buffers);
        #pragma omp for schedule(dynamic) nowait
        for (int64_t jp = 0; jp < first.panels; jp++) {
            pack_b_task(pb, first, jp);
            first_packed.fetch_add(1, std::memory_order_release);
        }
        while (first_packed.load(std::memory_order_acquire) < first.panels) { std::this_thread::yield(); }

        for (int64_t t = 0; t < blocks; t++) {
            const BBlock blk = b_block_at(pb, t, nc_step, kc_step, buffers);
            const BBlock next = b_block_at(pb, std::min(t + 1, blocks - 1), nc_step, kc_step, buffers);
            const int64_t pack_tasks = (t + 1 < blocks) ? next.panels : 0;
            // With few A panels, also split the block's columns into groups so that every thread
            // has work; each (A panel, group) task packs its A panel itself, cheap when M is small.
            const int64_t groups = std::min(blk.panels, std::max<int64_t>(1, ceil_div(4 * team_size(), m_panels)));
            // One task list per block: the (A panel, group) products with this one and, spread
            // evenly among them, the panels of the next B block to pack, taken by whichever thread
            // is free. Spread rather than all first: packing waits on memory and multiplying on the
            // FMA units, so while one thread packs the other multiplies, and two threads that share
            // a core (hyperthreads, as the two vCPUs of a small VM may be) overlap the two.
            const int64_t tasks = pack_tasks + m_panels * groups;
            #pragma omp for schedule(dynamic) nowait
            for (int64_t task = 0; task < tasks; task++) {
                const int64_t packs_before = task * pack_tasks / tasks;  // pack tasks among tasks 0 .. task-1
                if ((task + 1) * pack_tasks / tasks > packs_before) {
                    pack_b_task(pb, next, packs_before);
                } else {
                    const int64_t ip = (task - packs_before) / groups, g = (task - packs_before) % groups;
                    multiply_task(pb, blk, ap, ip, g * blk.panels / groups, (g + 1) * blk.panels / groups);
                }
            }
            // the next block is packed, and nobody still reads this one, whose buffer the block
            // after next reuses
            barrier.wait(team_size());
        }
    }
}

// ----------------------------------------------------------------------------- the small-M path

// Products with at most matmul_small_m rows of op(a) take the small-M path (matmul_rows.h): no packing,
// every float of b read once and used by all M rows. Generation feeds M = 1 (one new token) to every
// layer and to the head; a prompt, or the candidates that few-shot evaluation scores, feed a few to a
// few dozen. The packed path pays for packing b (a read and a write of every float of b) before it
// multiplies, which only many rows repay, and its tiles are MR = 14 rows (AVX-512) of which small M
// fills few. Measured on the AVX-512 path, 2 threads (AMD EPYC), GPT-2's K x N = 768 x 3072, 3072 x 768,
// 768 x 2304, 768 x 768 and the default model's 128 x 512, 512 x 128, small-M path against packed:
//   nn  (x @ w)            1.5-3.7x at M = 9-16, 1.1-1.9x at M = 32, 0.75-1.5x at M = 64;
//   nt  (x @ w^T, the head) 1.0-2.2x at M = 9-16, 1.0-1.4x at M = 24, 0.6-1.2x at M = 48;
//   tn  (x^T @ dout)       0.7-1.0x at M = 16 (its K is B * T, and a^T is copied first).
int64_t matmul_small_m(bool trans_a, bool trans_b) {
    if (trans_a) { return 8; }
    return trans_b ? 16 : 32;
}

// Below this many multiply-adds (1M: 4 MiB of b at M = 1) a small-M product runs on one thread. In
// generation the products come tens of microseconds apart, with Python between them, and by then the
// other threads have often gone to sleep (GOMP_SPINCOUNT=1000, kernels/backend.py): waking them costs
// 40-50 us, while one thread streams b at 26-28 GB/s, so a second thread pays only where half of b's
// reading time is longer than that, from about 2.5-4 MB on. Measured on an Intel Xeon 2-core VM,
// greedy decoding, the two builds taking turns five times: "small" (6 x 384, whose products are at most
// 384 x 1536, now all on one thread) 535-541 tokens/s against 398-421 with the general threshold
// (MIN_PARALLEL_WORK, 131k), and 531-539 against 404-444 beside a process that keeps a core busy;
// GPT-2 124M the same within the noise (48.6-50.7 against 49.0-50.9 quiet, 25.9-26.5 against 25.3-26.1).
constexpr int64_t SMALL_M_PARALLEL_WORK = int64_t(1) << 20;

static thread_local ScratchBuffer a_rows_buffer;  // op(a) copied into padded rows (matmul_rows below)

static void matmul_rows(const Problem& pb) {
    const float* a = pb.a;  // (M, K), rows lda floats apart
    int64_t lda = pb.K;
    // Both loops read the M rows of a side by side, k by k. Rows a multiple of 4 KiB apart (K = 1,024, 3,072,
    // 4,096) fall in one L1 set, which holds 8 lines, so that from a few rows on they evict one another: they
    // are copied (M * K floats) with rows 64 bytes more apart. M = 24, K = 3,072, N = 768: 1.5x; M = 8: 1.15x.
    // (K = 768 or 512, 3 or 2 KiB apart, spread over 4 or 2 sets: no gain there that repays the copy.)
    // Transposed, a is copied anyway, so that both loops read rows.
    if (pb.trans_a || (pb.M > 1 && pb.K % 1024 == 0)) {
        lda = pb.K + 16;
        float* copy = a_rows_buffer.get(pb.M * lda);
        if (pb.trans_a) {  // a is (K, M)
            for (int64_t k = 0; k < pb.K; k++) {
                for (int64_t m = 0; m < pb.M; m++) { copy[m * lda + k] = pb.a[k * pb.M + m]; }
            }
        } else {
            for (int64_t m = 0; m < pb.M; m++) { std::copy_n(pb.a + m * pb.K, pb.K, copy + m * lda); }
        }
        a = copy;
    }
    const MatmulRowsKernel kernel = pb.trans_b ? pb.p.rows_nt : pb.p.rows_nn;
    // columns go to threads in contiguous ranges, cut at multiples of `unit` (matmul_kernels.h)
    const int64_t unit = pb.trans_b ? 4 : 64, units = ceil_div(pb.N, unit);
    [[maybe_unused]] const bool parallel = pb.M * pb.N * pb.K >= SMALL_M_PARALLEL_WORK && units > 1;

    #pragma omp parallel if (parallel)
    {
        int team = 1, rank = 0;
#ifdef MINIGPT_OPENMP
        team = omp_get_num_threads();
        rank = omp_get_thread_num();
#endif
        const int64_t n0 = std::min(pb.N, units * rank / team * unit);
        const int64_t n1 = std::min(pb.N, units * (rank + 1) / team * unit);
        if (n0 < n1) {
            kernel(pb.out, a, lda, pb.b, pb.M, pb.N, pb.K, n0, n1);
            if (pb.bias != nullptr) {  // added last, as in the NumPy reference and the packed path
                for (int64_t m = 0; m < pb.M; m++) {
                    float* out_m = pb.out + m * pb.N;  // (N,)
                    for (int64_t n = n0; n < n1; n++) { out_m[n] += pb.bias[n]; }
                }
            }
        }
    }
}

// ----------------------------------------------------------------------------- the entry point

// out (cols, rows) = src (rows, cols)^T, in 32 x 32 tiles so that both sides stay in cache lines.
static void transpose_into(float* out, const float* src, int64_t rows, int64_t cols) {
    constexpr int64_t kTile = 32;
    for (int64_t r0 = 0; r0 < rows; r0 += kTile) {
        for (int64_t c0 = 0; c0 < cols; c0 += kTile) {
            for (int64_t c = c0; c < std::min(cols, c0 + kTile); c++) {
                for (int64_t r = r0; r < std::min(rows, r0 + kTile); r++) { out[c * rows + r] = src[r * cols + c]; }
            }
        }
    }
}

void matmul_forward(float* out, const float* a, const float* b, const float* bias,
                    int64_t M, int64_t N, int64_t K, bool trans_a, bool trans_b) {
    const MatmulPath& path = matmul_path();
    if (M == 0 || N == 0) { return; }
    if (K == 0) {  // an empty sum: only the bias is left
        for (int64_t m = 0; m < M; m++) {
            float* out_m = out + m * N;  // (N,)
            if (bias != nullptr) {
                std::copy_n(bias, N, out_m);
            } else {
                std::fill_n(out_m, N, 0.0f);
            }
        }
        return;
    }
    if (trans_a && !trans_b && bias == nullptr && matmul_small_m(true, false) < M && M % path.NR == 0 &&
        2 * M <= N) {
        // x^T @ dout with a few times fewer rows than columns: the weight gradient of a layer that widens
        // (M = C_in, N = C_out, K = B * T). Computed as its transpose dout^T @ x = (b^T a)^T, then
        // transposed back. Every element of out is still one chain of multiply-adds over k in the same kc
        // blocks (the products are the same pairs, and x y = y x exactly), so the bits are the same.
        // What changes: the operand packed in blocks of kc x nc and reused from L2 by every A panel is
        // then x, the narrower one (kc x 128 rather than kc x 512: 191 KB, not 764), and there are N / MR
        // row panels to spread over the threads instead of M / MR. Measured against the unswapped order:
        // 1.3x for (128 x 512, K = 4096 or 768), 1.1x for 128 x 384, 1.05x for 384 x 1536. Only where M is
        // whole column panels (NR): M = 65 or 84 would become a ragged last panel, and ran 0.9x.
        float* out_t = out_t_buffer.get(static_cast<size_t>(N * M));  // (N, M)
        matmul_blocked({path, out_t, b, a, nullptr, N, M, K, true, false});
        transpose_into(out, out_t, N, M);
        return;
    }
    const Problem pb{path, out, a, b, bias, M, N, K, trans_a, trans_b};
    if (M <= matmul_small_m(trans_a, trans_b)) {
        matmul_rows(pb);
    } else {
        matmul_blocked(pb);
    }
}

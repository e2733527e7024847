# %% [markdown]
# # 13 · CUDA kernels: the same matmul and attention on a GPU
#
# Tutorials 05 and 06 made matmul and causal attention fast on a CPU: blocks that fit the caches,
# SIMD lanes, a few threads. A GPU asks for the same ideas at a different scale. An H100 has 132
# streaming multiprocessors (SMs), each running up to 2048 threads at once, 128 float32
# multiply-adds per clock per SM (about 67 TFLOP/s), 3 TB/s from its memory, and per SM 256 KiB of
# registers and up to 227 KiB of programmer-managed *shared memory*. This tutorial reads the kernels
# of `csrc/cuda/` (`minigpt._cuda`, `backend="cuda"`) in that light:
#
# 1. threads, blocks and warps: how one launch covers a matrix;
# 2. the naive matmul: one thread per output, and why it waits on memory;
# 3. shared-memory tiles: each value loaded once per block, used 16 times;
# 4. register blocking: 8 x 8 outputs per thread, 4 multiply-adds per value read, the next tiles
#    arriving by asynchronous copies; (4b) the tensor cores;
# 5. flash attention as a CUDA kernel: what each block keeps in shared memory;
# 6. measured on the GPU: the four matmuls against cuBLAS, flash attention against the T x T version;
# 7. a whole GPT training step with `backend="cuda"`.
#
# Steps 1-5 are arithmetic and reading, and run anywhere; steps 6 and 7 need an NVIDIA GPU, CuPy and
# the CUDA build (`pip install . -Ccmake.define.MINIGPT_CUDA=ON`, `pip install cupy-cuda13x`), and
# are skipped without them. Run it from the repository root:
#
#     python tutorials/13_cuda_kernels.py
#
# Without a GPU you can still run these kernels, slowly: `python tests/cuda_emulator/run.py` builds
# them for a CPU model of the same rules (blocks one after another, a block's threads as fibers that
# wait for each other at every `__syncthreads()` and warp shuffle) and runs the CUDA tests on it.
# Read `tests/cuda_emulator/include/cuda_runtime.h` to see what a launch promises and what it does not.

# %%
import math
import pathlib
import time

import numpy as np

import minigpt
from minigpt import kernels

# The repository (for its csrc/cuda/): above this file, or, in a notebook (no __file__), above the working folder.
HERE = pathlib.Path(__file__).resolve().parent if "__file__" in globals() else pathlib.Path.cwd()
ROOT = next((folder for folder in [HERE, *HERE.parents] if (folder / "csrc").is_dir()), None)
if ROOT is None:
    raise FileNotFoundError(f"this tutorial reads the kernels' sources in csrc/: run it from a checkout of minigpt "
                            f"(none above {HERE})")
HAVE_GPU = kernels.cuda_problem() is None
if HAVE_GPU:
    import cupy
    print(f"GPU: {kernels.cuda_info()}")
else:
    print(f"no GPU here, skipping the CUDA steps (6 and 7): {kernels.cuda_problem()}")


def kernel_source(file, name):
    """The text of the __global__ function `name` in csrc/cuda/<file>, as the library builds it."""
    lines = (ROOT / "csrc" / "cuda" / file).read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if f"{name}(" in line)  # the definition comes first
    while start > 0 and lines[start - 1].startswith(("template", "__global__")):
        start -= 1
    end = next(i for i in range(start, len(lines)) if lines[i] == "}")
    return "\n".join(lines[start:end + 1])


# %% [markdown]
# ## Step 1 · Threads, blocks, warps
#
# A kernel is one function that every thread runs, each with its own `threadIdx` inside its block
# and `blockIdx` inside the grid. A launch `kernel<<<grid, block>>>(...)` names both shapes. The
# hardware runs a block on one SM, all its threads at once, in *warps* of 32 threads that execute
# each instruction together. Blocks share nothing but global memory, so they may run in any order;
# threads of one block share the SM's shared memory and can wait for each other (`__syncthreads()`).
#
# For an (M, N) output the naive kernel uses 32 x 8 blocks: `threadIdx.x` runs along a row, so the 32
# threads of a warp write 32 neighbouring floats, one 128-byte transaction (a *coalesced* access).

# %%
M = N = K = 4096
naive_blocks = math.ceil(N / 32) * math.ceil(M / 8)
tuned_blocks = math.ceil(N / 128) * math.ceil(M / 128)
print(f"step 1: a {M} x {N} output: naive kernel {naive_blocks:,} blocks of 256 threads (one output each);")
print(f"        tuned kernel {tuned_blocks:,} blocks of 256 threads (64 outputs each); an H100 holds 2 tuned blocks")
print(f"        per SM, so {tuned_blocks / (2 * 132):.1f} waves of its 132 SMs")
print("        you should see 65,536 and 1,024 blocks, and about 3.9 waves")

# %% [markdown]
# ## Step 2 · The naive matmul: one thread per output
#
# Each thread walks a row of op(a) and a column of op(b). The transposes of a Linear layer's backward
# (`trans_a`, `trans_b`) are only a different index into the same buffer, never a copy:

# %%
print(kernel_source("matmul.cu", "matmul_naive_kernel"))

# %% [markdown]
# Every multiply-add reads two floats (8 bytes). Neighbouring threads share their row of a, and the
# caches catch some reuse, but the kernel asks memory for far more than the 2 M N K flops need: at
# 3 TB/s and 8 bytes a multiply-add, the bound is under 1 TFLOP/s if every read went to memory. The
# arithmetic intensity, flops per byte moved, is what a faster kernel has to raise.

# %%
flops = 2 * M * N * K
for name, bytes_per_fma in (("naive, every read from memory", 8), ("16 x 16 tiles", 8 / 16),
                            ("128 x 128 tiles", 8 / 128)):
    bound = 3.0e12 / bytes_per_fma * 2  # flops per second if memory traffic were the only limit
    print(f"step 2: {name:32s} {bytes_per_fma:6.3f} bytes per multiply-add -> memory bound "
          f"{min(bound, 67e12) / 1e12:5.1f} TFLOP/s")
print("        you should see 0.8, 12 and 67 TFLOP/s: only large tiles leave memory speed behind and")
print("        make arithmetic the limit (67 TFLOP/s is the H100's float32 peak)")

# %% [markdown]
# ## Step 3 · Shared-memory tiles
#
# A 16 x 16 block computes a 16 x 16 patch of the output. It walks k in steps of 16: each thread
# loads one element of the a tile and one of the b tile into shared memory, the block waits at a
# barrier, and then every thread reads a row of one tile and a column of the other from shared
# memory, which is on the SM and about as fast as the L1 cache. Each value fetched from global
# memory serves 16 multiply-adds. The second barrier keeps the fast threads from overwriting a tile
# the slow ones still read. Shared memory has 32 banks, each 4 bytes wide, and serves a warp in one
# clock when its threads read distinct banks or the same word. A warp is two rows of the block (ty,
# ty + 1) of 16 threads: in the inner loop it reads two words of `As` (As[ty][kk], each broadcast to
# its 16 threads) and 16 consecutive words of `Bs` (Bs[kk][tx], 16 banks), so neither tile needs
# padding. A warp that wrote or read down a column would hit one bank 16 times: the tuned kernel of
# step 4, whose copies write a's rows down columns of its tiles, pads each row by 4 floats (`kPad`),
# and the TF32 kernel of step 4b pads its rows too.

# %%
print(kernel_source("matmul.cu", "matmul_tiled_kernel"))

# %% [markdown]
# ## Step 4 · Register blocking: the tuned kernel
#
# Shared memory is fast but not free: the tiled kernel reads two floats from it for every
# multiply-add, and the SM can serve 32 of those reads per clock against 128 multiply-adds. So the
# tuned kernel (`matmul_kernel`) gives each of its 256 threads an 8 x 8 patch of a 128 x 128 output
# tile, kept in 64 registers. Per step of k a thread reads 8 values of op(a) and 8 of op(b) from
# shared memory (as four 16-byte loads) and does 8 x 8 = 64 multiply-adds with them: 4 per value
# read, instead of 0.5. The rest of the design:
#
# - the tiles are stored k-major in shared memory, so the 8 values a thread needs are contiguous;
# - thread (ty, tx) owns rows ty*4.. and 64+ty*4.. (and the same for columns with tx), which puts
#   the 16-byte reads of a quarter warp in distinct banks;
# - the next tiles must arrive while the threads multiply, or the SM waits on memory. Before Ampere
#   (`matmul_staged_kernel`) that takes two shared buffers and the registers: the global loads of
#   step k+8 are issued before the math of step k and stored after it, one barrier per step. From
#   Ampere on, `cp.async` copies global to shared memory directly, and the thread goes on without
#   waiting (the instruction is in `csrc/cuda/ptx.cuh`): `matmul_kernel` holds four k steps in 33 KiB
#   of shared memory, three arriving while the warps multiply the fourth, and waits (`cp.async.wait_group`,
#   then one barrier) only for the step it is about to use. No registers hold loads in flight, which
#   matters at 128 registers a thread, the most that lets two blocks share an SM;
# - an operand whose memory runs along m or n (b, or a transposed a) lands as it lies, one 16-byte copy
#   a thread when the row stride is a multiple of 4 floats; one whose memory runs along k (a, or a
#   transposed b) has the 8 values of k of a row land in a column of the k-major tile, so those are
#   copied as single floats, each straight to its transposed place. At the edges the copies fill zeros;
# - split-K: a weight gradient (384 x 1152 outputs, 16,384 values of k) has only 27 output tiles,
#   too few for 132 SMs, so the k loop is split over more blocks that add into the output.

# %%
for name, reads, fmas in (("tiled 16 x 16, 1 output/thread", 2, 1), ("tuned 128 x 128, 8 x 8 outputs/thread", 16, 64)):
    print(f"step 4: {name:40s} {fmas / reads:4.1f} multiply-adds per shared-memory read")
print("        you should see 0.5 and 4.0: the SM's 128 multiply-adds a clock need at least 4 per read")

# %%
print(kernel_source("matmul.cu", "matmul_kernel"))

# %% [markdown]
# ## Step 4b · The tensor cores: the optional TF32 path
#
# An H100 also has *tensor cores*, which multiply small matrices in one instruction: `mma.sync.m16n8k8`
# takes a 16 x 8 tile of a and an 8 x 8 tile of b, spread over the 32 lanes of a warp (four and two
# values a lane), and adds their product into a 16 x 8 tile of float32 sums (four a lane): 1024
# multiply-adds at several times the CUDA cores' rate. Their inputs are TF32, float32 cut to 10 bits of
# mantissa, so the results carry about 1e-3 relative error: `kernels.set_cuda_tf32(True)` (or
# `MINIGPT_TF32=1`) asks for them, and they are off by default. `matmul_tf32_kernel` keeps the
# 128 x 128 tiles of step 4; what changes is how the tiles reach the tensor cores, which would
# otherwise wait on the loads (the instructions are in `csrc/cuda/ptx.cuh`):
#
# - 4 warps, each owning 64 x 64 outputs: per 8 values of k a lane reads 16 + 16 values from shared
#   memory for 4 x 8 = 32 mma instructions;
# - `cp.async` as in step 4, with k steps of 32: three of them share the shared memory, the warps
#   multiplying one while the next two arrive;
# - a step is stored as it lies in memory, its rows padded to 36 or 136 floats, so a warp's fragment
#   loads fall in 32 different banks whatever the transposes;
# - rounding to TF32 is one instruction, `cvt.rna.tf32.f32` (to nearest, ties away from zero, NaN and
#   inf kept): the tensor core then ignores the low 13 bits.

# %%
for warp_m, warp_n in ((64, 32), (64, 64)):
    mmas = (warp_m // 16) * (warp_n // 8)  # mma instructions per 8 values of k
    reads = (warp_m // 16) * 4 + (warp_n // 8) * 2  # a lane's fragment values read from shared memory
    print(f"step 4b: warp tile {warp_m} x {warp_n}: {mmas:2d} mma for {reads} reads a lane ({mmas / reads:.2f} per "
          f"read), {warp_m * warp_n // 32} accumulators a lane")
step_bytes = 4 * (128 * 36 + 32 * 136)  # one k step of a row-major a ([128][36]) and b ([32][136])
print(f"         three k steps in shared memory: {3 * step_bytes / 1024:.0f} KiB a block, two blocks an SM on an H100 "
      f"(GPUs that give a block 99 KiB run two steps: {2 * step_bytes / 1024:.0f} KiB)")
print("         you should see 0.67 and 1.00 mma per read: the wider warp tile reads a third less per product")

# %% [markdown]
# On an H100 or H200 (compute capability 9.0, built for `sm_90a`, the default) the TF32 matmul runs
# another kernel, `matmul_wgmma_kernel`: Hopper's `wgmma` multiplies 64 x 8 by 8 x 128 for a
# *warpgroup* of 4 warps in one instruction, reading both tiles straight from shared memory, and the
# threads go on while it runs (`wgmma_wait` waits for it). No fragment loads are left for the
# threads: they only copy tiles in. wgmma reads a tile through a 64-bit *descriptor* (its address and
# layout), and TF32 tiles must have k along their rows, 32 values (128 bytes) a row, in the "128-byte
# swizzle": chunk c of 16 bytes in row r sits at chunk c ^ (r % 8), so the 8 rows the tensor core reads
# at once fall on different banks. An operand that runs along m or n in memory is turned around by the
# copy, one float at a time. `kernels.cuda_info()["tf32_kernel"]` says which TF32 kernel runs.

# %%
def swizzled(i, k):  # csrc/cuda/matmul.cu: where value (i, k) of a tile lies, in bytes
    return i * 128 + ((k // 4) ^ (i % 8)) * 16 + (k % 4) * 4


banks = sorted({swizzled(i, k) // 4 % 32 for i in range(8) for k in range(4)})  # 8 rows x the first 4 values
print(f"step 4b: wgmma reads 8 rows x 16 bytes at once: banks {banks[0]}..{banks[-1]}, {len(banks)} distinct")
print("         you should see 32 distinct banks: unswizzled, all 8 rows would start on bank 0")

# %% [markdown]
# ## Step 5 · Flash attention as a CUDA kernel
#
# The plan of tutorial 06, mapped onto blocks. The forward gives one block of 256 threads to each
# (head, 64 queries). It copies its Q tile into shared memory once, then for each 64-key tile up to
# the diagonal: load K and V, compute the 64 x 64 scores (each thread a 4 x 4 patch), update the
# running max m of every row (a row's 16 threads combine their maxima with warp shuffles) and each
# thread's part of the running sum l (combined across the row once, at the end), write the weights
# to shared memory, and add P V into the output kept in registers. Only out and
# lse = m + log l leave the block. The backward gives a block to each (head, 64 keys), keeps K and V,
# and streams the query tiles that can see them, rebuilding P from q, k and lse; dk and dv collect in
# registers, and each tile's share of dq is added to memory with atomicAdd (many key blocks add to
# the same rows of dq). Dropout uses the counter-based hash of `kernels.dropout_keep_mask`, so the
# GPU drops exactly the weights NumPy and the C++ kernel drop.
#
# The tiles travel by `cp.async`, as in step 4b, so that loading overlaps arithmetic even with one
# block per SM, and with no more shared memory than the tiles themselves: in the forward a tile's
# values arrive while its scores are computed, and the next tile's keys while the weights multiply the
# values; in the backward the next output gradient arrives once dv is done with the current one, and
# the next query tile once dk is.
#
# `attention_forward_mma_kernel` does the forward's two products on the tensor cores instead, and
# stays float32-accurate by splitting every operand into two TF32 numbers, x = hi + lo, so that
# a b = a_hi b_hi + a_hi b_lo + a_lo b_hi to float32 precision ("3xTF32", as PyTorch's float32
# attention does on these GPUs). A warp owns 16 query rows; its scores stay in the mma's registers,
# where the softmax happens (a row lives in 4 lanes), and become the next mma's operand as they stand:
# the sum over the keys does not care which key a lane's register holds, as long as P and V agree. It
# sits beside the CUDA-core forward (`kernels._cuda.attention_forward_mma`) until the two are timed.
#
# Shared memory per block, and what the T x T version would store instead:

# %%
def smem_bytes(hs):
    D = next(d for d in (16, 32, 64, 80, 96, 128) if d >= hs)  # head sizes are padded to a compiled width
    forward = (3 * 64 * (D + 4) + 64 * 68) * 4  # Q, K, V tiles (rows padded by 4 floats) + the weights
    backward = (4 * 64 * (D + 4) + 64 * 68 + 2 * 64) * 4  # K, V, Q, dO + weights/dS + lse and row terms
    return forward, backward


for hs in (64, 128):
    fwd, bwd = smem_bytes(hs)
    print(f"step 5: hs = {hs:3d}: forward {fwd / 1024:5.1f} KiB, backward {bwd / 1024:5.1f} KiB of shared memory "
          "per block")
B, NH, T = 8, 12, 1024
print(f"        the (B, NH, T, T) weights of B={B}, NH={NH}, T={T}: {B * NH * T * T * 4 / 2**20:,.0f} MiB per "
      "attention layer")
print("        you should see 68 and 85 KiB at hs = 64 (116 and 150 at hs = 128) against 384 MiB")

# %%
print(kernel_source("attention.cu", "attention_forward_kernel"))

# %% [markdown]
# ## Step 6 · Measured: agreement and speed
#
# Each kernel against NumPy in float64 first (‖got − ref‖ / ‖ref‖: float32 lands near 1e-6), then the
# four matmuls against cuBLAS (CuPy's `cupy.matmul`, TF32 off, float32 throughout), and flash
# attention against its teaching version and against the NumPy reference running *on the GPU*: the
# reference code of `minigpt/kernels/attention.py` works unchanged on CuPy arrays, and it builds the
# T x T scores and weights. Times are from CUDA events around repeated calls, after a warm-up.

# %%
def gpu_ms(fn, repeat=10):
    """Milliseconds per call of fn on the GPU, from CUDA events, after a warm-up call."""
    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(repeat):
        fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop) / repeat


def rel(got, ref):
    got = cupy.asnumpy(got).astype(np.float64)
    return float(np.linalg.norm(got - ref) / np.linalg.norm(ref))


rng = np.random.default_rng(0)
if HAVE_GPU:
    a, b = rng.standard_normal((1000, 999)), rng.standard_normal((999, 1001))
    a32, b32 = cupy.asarray(a, dtype=cupy.float32), cupy.asarray(b, dtype=cupy.float32)
    versions = {"naive": kernels._cuda.matmul_naive, "tiled": kernels._cuda.matmul_tiled,
                "staged": kernels._cuda.matmul_staged, "tuned": lambda x, y: kernels.matmul(x, y, backend="cuda")}
    for name, fn in versions.items():
        err = rel(fn(a32, b32), a @ b)
        print(f"step 6: matmul {name:6s} on 1000 x 999 x 1001: error {err:.1e} against NumPy float64")
        assert err < 1e-5

    n = 4096
    x, y = (cupy.asarray(rng.standard_normal((n, n)), dtype=cupy.float32) for _ in range(2))
    versions["cuBLAS"] = cupy.matmul
    rates = {name: 2 * n**3 / (gpu_ms(lambda fn=fn: fn(x, y), 3 if name == "naive" else 10) * 1e-3) / 1e12
             for name, fn in versions.items()}  # TFLOP/s
    for name, rate in rates.items():
        print(f"step 6: matmul {name:6s} {n} x {n} x {n}: {rate:6.2f} TFLOP/s ({rate / rates['cuBLAS']:.2f} of cuBLAS)")
    print("        you should see naive < tiled < staged <= tuned, the tuned kernel within reach of cuBLAS")
    # The optional TF32 path: the same tiles, multiplied by the tensor cores at 10 bits of mantissa
    kernels.set_cuda_tf32(True)
    try:
        tf32_rate = 2 * n**3 / (gpu_ms(lambda: kernels.matmul(x, y, backend="cuda")) * 1e-3) / 1e12
        tf32_err = rel(kernels.matmul(a32, b32, backend="cuda"), a @ b)
    finally:
        kernels.set_cuda_tf32(False)
    print(f"step 6: matmul with TF32 tensor cores ({kernels.cuda_info()['tf32_kernel']}): {tf32_rate:6.2f} TFLOP/s, "
          f"error {tf32_err:.1e}")
    print("        you should see several times the float32 rate, and an error of a few 1e-4 instead of about 1e-6")

# %%
if HAVE_GPU:
    shape = (2, 3, 300, 64)
    q, k, v, dout = (rng.standard_normal(shape) for _ in range(4))
    out_ref, lse_ref = kernels.attention_forward(q, k, v, 0.1, 7)
    dq_ref = kernels.attention_backward(dout, q, k, v, out_ref, lse_ref, 0.1, 7)[0]
    qd, kd, vd, dd = (cupy.asarray(t, dtype=cupy.float32) for t in (q, k, v, dout))
    out, lse = kernels.attention_forward(qd, kd, vd, 0.1, 7, backend="cuda")
    dq = kernels.attention_backward(dd, qd, kd, vd, out, lse, 0.1, 7, backend="cuda")[0]
    print(f"step 6: flash attention with dropout 0.1: out error {rel(out, out_ref):.1e}, "
          f"dq error {rel(dq, dq_ref):.1e}")
    assert rel(out, out_ref) < 1e-5 and rel(dq, dq_ref) < 1e-4

    shape = (8, 12, 1024, 64)
    qd, kd, vd, dd = (cupy.asarray(rng.standard_normal(shape), dtype=cupy.float32) for _ in range(4))

    def fwd_bwd(backend, forward=None, backward=None):
        forward = forward or (lambda *t: kernels.attention_forward(*t, backend=backend))
        backward = backward or (lambda *t: kernels.attention_backward(*t, backend=backend))
        out, lse = forward(qd, kd, vd)
        return backward(dd, qd, kd, vd, out, lse)

    times = {"NumPy reference on CuPy arrays (T x T)": gpu_ms(lambda: fwd_bwd("numpy"), 3),
             "naive kernel (a thread per row)": gpu_ms(lambda: fwd_bwd(None, kernels._cuda.attention_forward_naive,
                                                                       kernels._cuda.attention_backward_naive), 2),
             "flash kernel": gpu_ms(lambda: fwd_bwd("cuda"))}
    for name, ms in times.items():
        print(f"step 6: attention forward + backward B=8 NH=12 T=1024 hs=64, {name:40s} {ms:8.2f} ms")
    print("        you should see the flash kernel many times faster than both: the reference moves several")
    print("        384 MiB arrays through memory, the naive kernel reads K and V from memory once per query")

# %% [markdown]
# ## Step 7 · A training step on the GPU
#
# The same `GPT`, layers and `AdamW` with `backend="cuda"`: the parameters, gradients and optimizer
# moments are CuPy arrays, the layer code creates its arrays where its inputs live
# (`kernels.array_module`), and each op dispatches to `minigpt._cuda`. The batch's ids and targets are
# checked on the host and copied in once (by the embedding and cross-entropy layers); the loss and
# the gradient norm come back as floats, nothing else crosses. Each such read waits for every kernel
# queued before it, and the GPU idles until Python queues the next one, which is why the ids are not
# checked on the GPU. The first step matches the CPU.

# %%
if HAVE_GPU:
    cfg = minigpt.GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384)
    B = 16  # small enough for the CPU run; bench_cuda.py times the GPU at B = 64
    data = rng.integers(0, 65, (4, B, 257))
    step_time, first_loss = {}, {}
    for backend in ("cpu", "cuda"):
        if backend == "cpu" and kernels._core is None:
            continue
        model = minigpt.GPT(cfg, seed=0, backend=backend)
        opt = minigpt.AdamW(model, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
        steps = 1 if backend == "cpu" else 10
        for i in range(steps + 1):
            if i == 1:  # the first step warms up (CuPy compiles its elementwise kernels once)
                cupy.cuda.Device().synchronize()
                t0 = time.perf_counter()
            model.zero_grad()
            _, loss = model.forward(data[i % 4, :, :-1], data[i % 4, :, 1:])
            model.backward()
            opt.step()
            first_loss.setdefault(backend, loss)
        cupy.cuda.Device().synchronize()
        step_time[backend] = (time.perf_counter() - t0) / steps
        print(f"step 7: {backend:4s} 'small' GPT (6 x 384, T=256, B={B}): first loss {first_loss[backend]:.5f}, "
              f"{B * 256 / step_time[backend]:10,.0f} tokens/s")
    if "cpu" in first_loss:
        assert abs(first_loss["cpu"] - first_loss["cuda"]) < 1e-4
        print(f"        you should see the same first loss (about ln 65 = {math.log(65):.3f}) and the GPU "
              f"{step_time['cpu'] / step_time['cuda']:.0f}x faster here")
    print("        benchmarks/bench_cuda.py times this against PyTorch on the same GPU")

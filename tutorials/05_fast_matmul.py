# %% [markdown]
# # 05 · A fast matmul: from the triple loop to a packed SIMD micro-kernel
#
# A GPT spends almost all of its arithmetic in matrix multiplies: `x @ w` in every Linear layer's
# forward, `dout @ w.T` and `x.T @ dout` in its backward (tutorial 01). This tutorial follows one
# matmul from the textbook triple loop to the kernel in `csrc/matmul*.cpp`, built the way GotoBLAS
# and BLIS build theirs (Goto & van de Geijn 2008, https://doi.org/10.1145/1356052.1356053; Van Zee
# & van de Geijn 2015, https://doi.org/10.1145/2764454):
#
# 1. what "fast" means: FLOPs, GFLOP/s, and this CPU's caches;
# 2. the triple loop, timed;
# 3. loop order: the same arithmetic, a different walk through memory;
# 4. blocking: tiles that fit the caches;
# 5. packing: copying each tile into the order the kernel reads it, which is also where the
#    transposes go;
# 6. the micro-kernel: a tile of the output held in SIMD registers;
# 7. everything measured: each SIMD path against NumPy's BLAS and the FMA peak, with a plot.
#
# Steps 4 and 5 are NumPy sketches of the C++ loops, small enough to check by eye; the real thing
# is in `csrc/matmul.cpp` (loops, packing, threads) and `csrc/matmul_avx512.cpp`,
# `csrc/matmul_avx2.cpp`, `csrc/matmul_portable.cpp` (one micro-kernel per instruction set).
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/05_fast_matmul.py

# %%
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

import numpy as np

from minigpt import kernels

rng = np.random.default_rng(0)
# The repository (for its csrc/): above this file, or, in a notebook (no __file__), above the working folder.
HERE = pathlib.Path(__file__).resolve().parent if "__file__" in globals() else pathlib.Path.cwd()
ROOT = next((folder for folder in [HERE, *HERE.parents] if (folder / "csrc").is_dir()), None)
if ROOT is None:
    raise FileNotFoundError(f"this tutorial reads the kernels' sources in csrc/: run it from a checkout of minigpt "
                            f"(none above {HERE})")


def best_seconds(fn, repeat=3, warm_up=0.0):
    """Best time of `repeat` calls after a warm-up of one call or `warm_up` seconds of calls.

    The best, because load from other processes only ever adds time. A fresh process needs the
    longer warm-up: on a busy machine its new threads run slowly for their first ~0.1 s.
    """
    fn()
    end = time.perf_counter() + warm_up
    while time.perf_counter() < end:
        fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def gflops(M, N, K, seconds):
    """A matmul of (M, K) by (K, N) does M*N*K multiplies and as many adds: 2*M*N*K FLOPs."""
    return 2 * M * N * K / seconds / 1e9


try:
    kernels.check_backend("cpu")  # raises, saying why and how to build, if minigpt._core is missing
    HAVE_CORE = True
except RuntimeError as e:
    HAVE_CORE = False
    print(f"skipping the C++ steps: minigpt._core is not built ({e})")

# %% [markdown]
# ## Step 1 · FLOPs, GFLOP/s and the caches
#
# `out = a @ b` with a (M, K) and b (K, N) computes M·N sums of K products: 2·M·N·K floating-point
# operations (FLOPs). Speed is FLOPs per second; a modern core does tens of billions (GFLOP/s).
#
# The ceiling is set by the FMA units. One AVX-512 FMA instruction computes `c + a * b` on 16 floats
# at once (32 FLOPs). An Intel server core has two 512-bit FMA units, so it can finish 64 FLOPs a
# cycle: about 200 GFLOP/s per core at 3 GHz; AMD's Zen 4 runs a 512-bit FMA as two 256-bit halves,
# 32 FLOPs a cycle (step 7 measures this machine's peak). Reaching it needs two things at once: the
# data must arrive fast enough (the caches) and the instructions must be FMAs on full vectors (SIMD).
#
# The caches of this machine, from Linux's sysfs:

# %%
def cache_sizes():
    """{'L1d': bytes, 'L2': bytes, ...} of CPU 0, read from Linux's sysfs; empty elsewhere."""
    sizes = {}
    for index in sorted(pathlib.Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level, kind, size = ((index / name).read_text().strip() for name in ("level", "type", "size"))
        except OSError:
            continue
        if kind != "Instruction":
            scale = {"K": 2**10, "M": 2**20}.get(size[-1], 1)
            sizes[f"L{level}{'d' if kind == 'Data' else ''}"] = int(size.rstrip("KM")) * scale
    return sizes


caches = cache_sizes()
print("step 1: caches: " + (", ".join(f"{name} {size // 2**10} KiB" if size < 2**20 else f"{name} {size // 2**20} MiB"
                                     for name, size in caches.items()) or "unknown"))
print("        you should see about L1d 32-48 KiB and L2 1-2 MiB per core, and a shared L3 of tens to hundreds of MiB")

# %% [markdown]
# ## Step 2 · The triple loop
#
#     for m in range(M):
#         for n in range(N):
#             for k in range(K):
#                 out[m, n] += a[m, k] * b[k, n]
#
# In Python each multiply-add costs an interpreted loop iteration. The same loop compiled,
# `matmul_forward_naive` in `csrc/matmul.cpp` (called as `_core.matmul_naive`), is the version to
# read first; it runs on one thread.

# %%
def matmul_python(a, b):
    M, K, N = len(a), len(b), len(b[0])
    out = [[0.0] * N for _ in range(M)]
    for m in range(M):
        for n in range(N):
            s = 0.0
            for k in range(K):
                s += a[m][k] * b[k][n]
            out[m][n] = s
    return out


n = 48
a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
a_list, b_list = a.tolist(), b.tolist()
t_python = best_seconds(lambda: matmul_python(a_list, b_list), repeat=1)
assert np.allclose(matmul_python(a_list, b_list), a @ b)
print(f"step 2: Python triple loop, n = {n}:  {gflops(n, n, n, t_python):8.4f} GFLOP/s")
if HAVE_CORE:
    n = 256
    a32, b32 = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    t_naive = best_seconds(lambda: kernels._core.matmul_naive(a32, b32))
    print(f"        C++ triple loop,    n = {n}: {gflops(n, n, n, t_naive):8.2f} GFLOP/s")
print("        you should see about 0.01-0.1 GFLOP/s for Python and about 1-3 GFLOP/s for C++: compiling")
print("        buys ~50x, and the compiled loop is still ~40-100x below the peak (step 7 measures it)")

# %% [markdown]
# ## Step 3 · Loop order: the same sums, a different walk through memory
#
# Memory moves in 64-byte cache lines (16 floats). In the loop above the innermost index k walks
# down a column of b: consecutive reads are N floats apart, so each one fetches a whole line and
# uses 4 of its 64 bytes. If b is stored transposed, (N, K), the same loop reads row n of b
# contiguously: every float of every line is used. `matmul_naive` with `trans_b=True` does exactly
# that (it reads b[n, k] for op(b)[k, n]), so the two calls below do the same arithmetic in the same
# order and differ only in how they walk memory.
#
# Whether the column walk costs anything depends on the cache. The next 15 columns read the same K
# lines again, so if those lines are still in the cache by then, each line is fetched from memory
# once after all. They usually are: at N = 1000 a column is 1000 lines, 64 KiB, which stays in L2
# (not in L1, so each of those reads is an L2 hit, on a page of its own: still a cost, but a small one).
# And the triple loop is slow anyway, for another reason: its K adds go into one sum, each waiting
# for the one before (3-4 cycles), and out-of-order execution fetches the next loads meanwhile.
#
# At N = 1024 the column's lines are 4096 bytes apart, a power of two. A cache is divided into sets
# by address bits, a line may only go into its own set, and a set holds 8-16 lines (the "ways").
# Lines 4096 bytes apart all land in the same set of L1 and in 1/64 of the sets of L2, so a
# column's 1024 lines no longer fit there: every read goes further out. Below, the same 256 rows of
# a times b at N = 1000 and at N = 1024, 4.9% more work ((1024/1000)^2).
#
# Reordering the loops avoids the question without transposing anything: with k in the middle and n
# innermost ("ikj" order), each step adds a multiple of a row of b to a row of out,
#
#     for m in range(M):
#         for k in range(K):
#             out[m, :] += a[m, k] * b[k, :]       # contiguous rows, and the compiler vectorises it
#
# which is the order the first version of minigpt's kernel used.

# %%
def timed(fn):
    """(seconds, result) of one call: these calls take about a second, long enough to time once."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


if HAVE_CORE:
    rows = 256
    for n in (1000, 1024):
        a32 = rng.standard_normal((rows, n), dtype=np.float32)
        b32 = rng.standard_normal((n, n), dtype=np.float32)
        b32_t = np.ascontiguousarray(b32.T)  # the same matrix, stored (N, K)
        t_strided, out_strided = timed(lambda: kernels._core.matmul_naive(a32, b32))
        t_contiguous, out_contiguous = timed(lambda: kernels._core.matmul_naive(a32, b32_t, trans_b=True))
        same = np.array_equal(out_strided, out_contiguous)
        print(f"step 3: N = K = {n}: b read down columns {gflops(rows, n, n, t_strided):5.2f} GFLOP/s, along rows "
              f"{gflops(rows, n, n, t_contiguous):5.2f} GFLOP/s ({t_strided / t_contiguous:.1f}x); identical: {same}")
        assert same
    print("        you should see N = 1000 within about 1.5x (the column stays in L2) and N = 1024 several times")
    print("        slower down columns (every line of a column in the same few sets); bit-identical results")

# %% [markdown]
# ## Step 4 · Blocking: tiles that fit the caches
#
# Even walking rows, the triple loop streams all of b through the core once per row of a: K·N
# floats of b read for 2·K·N FLOPs, half a float per FLOP, far more than memory can deliver. The cure is
# reuse: cut the matrices into blocks small enough to stay in a cache, and do all the work that
# involves a block while it is there. This is the loop nest of `csrc/matmul.cpp`, written with NumPy
# products on the blocks:

# %%
def matmul_blocked(a, b, mc=64, kc=96, nc=128):
    """out = a @ b, one (mc, kc) block of a times one (kc, nc) block of b at a time."""
    M, K = a.shape
    N = b.shape[1]
    out = np.zeros((M, N), dtype=a.dtype)
    for jc in range(0, N, nc):  # a block of columns of b ...
        for pc in range(0, K, kc):  # ... cut into (kc, nc) blocks: in the C++ kernel, one stays in L2
            for ic in range(0, M, mc):  # every block of rows of a uses it while it is there
                out[ic:ic + mc, jc:jc + nc] += a[ic:ic + mc, pc:pc + kc] @ b[pc:pc + kc, jc:jc + nc]
    return out


a, b = rng.standard_normal((200, 300)), rng.standard_normal((300, 250))  # no size divides a block
diff = np.abs(matmul_blocked(a, b) - a @ b).max()
print(f"step 4: blocked against a @ b: max |difference| {diff:.1e}")
assert diff < 1e-10
print("        you should see about 1e-13: the same sums, added in a different order")

# %% [markdown]
# The sizes in the C++ kernel are constants, chosen for a core with a 48 KiB L1d and a 2 MiB L2 (an
# Intel server core; the AVX-512 path here, the others have their own, next to their micro-kernels).
# Where step 1 found smaller caches, a B block spills part way out of L2; step 7 shows how close to
# the peak the kernel still gets there:
#
# | block | size | floats | where it stays | used |
# |---|---|---|---|---|
# | A panel | MR x kc = 14 x 384 | 21 KiB | L1 (48 KiB) | against every B panel of the block |
# | B block | kc x nc = 384 x 768 | 1.1 MiB | L2 (2 MiB) | by every A panel, on each core |
# | out tile | MR x NR = 14 x 32 | 28 registers | registers | for all kc steps |
#
# The threads share each B block: for every block, they take tasks from one list (pack a panel of
# the *next* B block, or multiply one A panel by this block) until the list is empty. Each tile of
# out is summed by one thread in one order, so the result is the same on any number of threads.

# %% [markdown]
# ## Step 5 · Packing: the order the kernel reads, and where the transposes go
#
# The innermost code, the micro-kernel, multiplies an A panel (MR rows, kc columns) by a B panel
# (kc rows, NR columns). Before the loops reach it, each panel is copied ("packed") into a small
# contiguous buffer in exactly the order the kernel will read it, padded with zeros to whole tiles.
# The kernel then reads memory strictly in sequence, never crosses a page it does not need, and has
# no edge cases: an edge tile is a full tile whose padding is zero. (The C++ kernel adds two things
# to that: a half-width micro-kernel for an edge tile of at most NR / 2 columns, which skips the
# multiply-adds on padding, and a write-back of only the part of a tile that lies inside out.)
#
# Packing is also where trans_a and trans_b are absorbed. The backward pass needs `dout @ w.T` and
# `x.T @ dout`; packing reads w or x in whatever order they are stored, so no transposed copy of a
# whole matrix is ever made. In NumPy, with the AVX-512 tile sizes:

# %%
MR, NR = 14, 32


def pack_a(a, trans_a, i0, k0, kc):
    """Rows i0 .. i0+MR, columns k0 .. k0+kc of op(a), as an (MR, kc) panel with zero rows past M."""
    block = a[k0:k0 + kc, i0:i0 + MR].T if trans_a else a[i0:i0 + MR, k0:k0 + kc]  # read as stored
    panel = np.zeros((MR, kc), dtype=a.dtype)
    panel[:block.shape[0], :block.shape[1]] = block
    return panel


def pack_b(b, trans_b, k0, j0, kc):
    """Rows k0 .. k0+kc, columns j0 .. j0+NR of op(b), as a (kc, NR) panel with zero columns past N."""
    block = b[j0:j0 + NR, k0:k0 + kc].T if trans_b else b[k0:k0 + kc, j0:j0 + NR]
    panel = np.zeros((kc, NR), dtype=b.dtype)
    panel[:block.shape[0], :block.shape[1]] = block
    return panel


def micro_kernel(a_panel, b_panel):
    """The (MR, NR) tile a_panel @ b_panel as kc rank-1 updates: the C++ kernel's loop over k."""
    tile = np.zeros((MR, NR), dtype=a_panel.dtype)  # in C++: 28 zmm registers
    for k in range(a_panel.shape[1]):
        tile += np.outer(a_panel[:, k], b_panel[k])  # MR broadcasts x one row of NR: MR*NR FMAs
    return tile


def matmul_packed(a, b, trans_a=False, trans_b=False, kc=48):
    M, K = a.shape[::-1] if trans_a else a.shape
    N = b.shape[0] if trans_b else b.shape[1]
    out = np.zeros((M, N), dtype=a.dtype)
    for pc in range(0, K, kc):
        k = min(kc, K - pc)
        for i0 in range(0, M, MR):
            a_panel = pack_a(a, trans_a, i0, pc, k)
            for j0 in range(0, N, NR):
                tile = micro_kernel(a_panel, pack_b(b, trans_b, pc, j0, k))
                m, n = min(MR, M - i0), min(NR, N - j0)
                out[i0:i0 + m, j0:j0 + n] += tile[:m, :n]  # write back only the part inside out
    return out


M, N, K = 30, 70, 100
for trans_a, trans_b in ((False, False), (False, True), (True, False)):
    a = rng.standard_normal((K, M) if trans_a else (M, K))
    b = rng.standard_normal((N, K) if trans_b else (K, N))
    expected = (a.T if trans_a else a) @ (b.T if trans_b else b)
    diff = np.abs(matmul_packed(a, b, trans_a, trans_b) - expected).max()
    print(f"step 5: packed, trans_a={trans_a!s:5} trans_b={trans_b!s:5}: max |difference| {diff:.1e}")
    assert diff < 1e-10
print("        you should see about 1e-14 three times: edge tiles, padding and transposes all handled by packing")

# %% [markdown]
# ## Step 6 · The micro-kernel: a tile of out in SIMD registers
#
# `micro_kernel` above is the whole idea. In C++ (`csrc/matmul_avx512.cpp`) the 14 x 32 tile lives
# in 28 of the CPU's 32 zmm registers (each holds 16 floats) for all kc steps, and each step is:
#
# - load one row of the B panel: 32 floats = 2 zmm registers;
# - for each of the 14 rows: broadcast one float of the A panel to all 16 lanes and do 2 FMAs.
#
# That is 28 FMAs (896 FLOPs) for 2 vector loads and 14 broadcasts: the loads take 8 cycles at 2 per
# cycle, the FMAs 14 cycles on 2 FMA units, so the FMA units are the bottleneck, which is the goal.
# An FMA's result is ready only 4 cycles after it starts, so 2 units need 8 independent sums in
# flight; the 28 accumulators are plenty. The AVX2 kernel does the same with a 6 x 16 tile in 12 of
# 16 ymm registers, and the portable one is plain C++ (6 x 8) on 4-float vectors, which the compiler
# maps to SSE or NEON.
#
# The path is picked once, at run time, from what the CPU supports (the build itself stays portable);
# the environment variable `MINIGPT_SIMD=avx2` or `MINIGPT_SIMD=portable` forces a lower one. The
# bias is added as the tile is written back: no second pass over out. Here is the kernel's inner
# loop, printed from the source when this is a checkout:

# %%
source = ROOT / "csrc" / "matmul_avx512.cpp"
if source.exists():
    lines = source.read_text().splitlines()
    start = lines.index("    for (int64_t k = 0; k < kc; k++) {")
    print("\n".join(lines[start:lines.index("    }", start) + 1]))  # up to the brace that closes the k loop
if HAVE_CORE:
    info = kernels.core_info()
    print(f"step 6: minigpt._core runs the {info['simd']} path on {info['num_threads']} threads")
    M, N, K = 131, 97, 401  # no size divides a tile or a block
    worst = 0.0
    for trans_a, trans_b in ((False, False), (False, True), (True, False)):
        a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
        bias = rng.standard_normal(N, dtype=np.float32)
        out = kernels.matmul(a, b, trans_a, trans_b, bias, backend="cpu")
        ref = kernels.matmul(a.astype(np.float64), b.astype(np.float64), trans_a, trans_b, bias.astype(np.float64))
        worst = max(worst, float(np.abs(out - ref).max() / np.abs(ref).max()))
    print(f"        131 x 401 @ 401 x 97 + bias, three variants: max |C++ - float64| / max |float64| = {worst:.1e}")
    assert worst < 1e-5
    print("        you should see about 1e-7: float32 rounding")

# %% [markdown]
# ## Step 7 · Measured: every SIMD path against NumPy and the peak, on one core
#
# Each SIMD path runs in a fresh process with `MINIGPT_SIMD` set (the path is chosen once per
# process), and NumPy's `@` runs in the first of them; it calls NumPy's BLAS (OpenBLAS in the
# NumPy wheels), itself a GotoBLAS descendant. Everything runs on one thread: the micro-kernel and
# the caches are the story here. The peak is `kernels._core.fma_peak` on one thread: twelve
# independent chains of FMAs on registers alone (`csrc/fma_peak.cpp`), the rate no kernel can beat,
# measured in the same process just before and after the products, in rounds as short as they are
# (a round of a few milliseconds can fall in a quiet moment of a busy machine, a long one cannot).
# Times are the best of five calls after a warm-up. For all
# cores, the GPT shapes and the transposed variants, run `benchmarks/bench_matmul.py`.

# %%
SIZES = [128, 256, 512, 1024]
PATH_SCRIPT = """
import json, sys, time
import numpy as np
from minigpt import kernels


def best_gflops(fn, n):
    end = time.perf_counter() + 0.1  # warm-up
    while time.perf_counter() < end:
        fn()
    best = float("inf")
    for _ in range(5):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def peak_gflops():  # rounds of about 20 ms, as short as the products' calls
    return kernels._core.fma_peak(threads=1, seconds=0.02, rounds=20)["best"]


rng = np.random.default_rng(0)
result = {"minigpt": [], "numpy": [], "peak": peak_gflops()}
for n in json.loads(sys.argv[1]):
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    result["minigpt"].append(best_gflops(lambda: kernels.matmul(a, b, backend="cpu"), n))
    if sys.argv[2] == "with-numpy":
        result["numpy"].append(best_gflops(lambda: a @ b, n))
result["peak"] = max(result["peak"], peak_gflops())
print(json.dumps(result))
"""
ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def path_gflops(path, with_numpy):
    """{'minigpt': GFLOP/s on SIZES with MINIGPT_SIMD=path, 'numpy': ..., 'peak': that path's FMA peak} on one
    thread, or None if this CPU lacks the path."""
    # The child must import the minigpt this tutorial imported: run it outside the repository (whose
    # source tree has no compiled _core when minigpt is installed) with that package on its path.
    package_parent = str(pathlib.Path(kernels.__file__).resolve().parents[2])
    env = dict(os.environ, MINIGPT_SIMD=path, PYTHONPATH=package_parent, **ONE_THREAD)
    result = subprocess.run([sys.executable, "-c", PATH_SCRIPT, json.dumps(SIZES), "with-numpy" if with_numpy else ""],
                            env=env, cwd=tempfile.gettempdir(), capture_output=True, text=True, timeout=120)
    if "lacks" in result.stderr:
        return None
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


if HAVE_CORE:
    curves = {}
    for path in ("avx512", "avx2", "portable"):
        result = path_gflops(path, with_numpy=not curves)
        if result is None:
            print(f"step 7: this CPU has no {path} path")
            continue
        curves[f"minigpt {path}"] = result["minigpt"]
        if "NumPy (BLAS)" not in curves:  # measured beside the widest path (the one the kernels run), with its peak
            curves["NumPy (BLAS)"], peak = result["numpy"], result["peak"]
    curves["C++ triple loop"] = []
    for n in SIZES[:2]:  # beyond 256 the triple loop takes seconds
        a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
        curves["C++ triple loop"].append(gflops(n, n, n, best_seconds(lambda: kernels._core.matmul_naive(a, b), 1)))
    print("step 7: GFLOP/s of n x n @ n x n on one thread" +
          f"; FP32 FMA peak {peak:.0f} GFLOP/s")
    print(f"        {'':18s}" + "".join(f"{n:>9d}" for n in SIZES))
    for name, values in curves.items():
        print(f"        {name:18s}" + "".join(f"{v:9.1f}" for v in values))
    best_path = next(iter(curves))
    mine, theirs = curves[best_path][-1], curves["NumPy (BLAS)"][-1]
    print(f"        at n = {SIZES[-1]}: {best_path} / NumPy = {mine / theirs:.2f}" +
          f", {mine / peak:.0%} of the peak")
    if mine > peak:
        print("        (above the peak, which no kernel can beat: another process slowed the peak's rounds; run again)")
    print("        you should see, with AVX-512, the avx512 path level with NumPy (0.9-1.1x) and at 70-90% of")
    print("        the peak from n = 512; avx2 at half of that on a core with two 512-bit FMA units, nearly level")
    print("        where 512-bit FMAs run as two halves (AMD Zen 4); the portable path (SSE: 4 floats a vector,")
    print("        a multiply and an add for each FMA) 2-4x below avx2; the triple loop at 1-3 GFLOP/s")

# %% [markdown]
# The same numbers as a plot, when matplotlib is installed (`pip install matplotlib`):

# %%
if HAVE_CORE:
    try:
        import matplotlib
        matplotlib.use("Agg")  # draw to a file, no window
        import matplotlib.pyplot as plt
    except ImportError:
        plt = None
        print("step 7: no plot: matplotlib is not installed")
    if plt is not None:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, values in curves.items():
            ax.plot(SIZES[:len(values)], values, marker="o", label=name)
        ax.axhline(peak, color="black", linestyle="--", label="FP32 FMA peak")
        ax.set(xscale="log", yscale="log", xlabel="n (n x n @ n x n)", ylabel="GFLOP/s",
               title="float32 matmul, one thread")
        ax.set_xticks(SIZES, [str(n) for n in SIZES])
        ax.set_xticks([], minor=True)
        ax.legend()
        png = pathlib.Path(tempfile.gettempdir()) / "05_fast_matmul.png"
        png.parent.mkdir(exist_ok=True)
        fig.savefig(png, dpi=120, bbox_inches="tight")
        print(f"step 7: plot saved to {png}")

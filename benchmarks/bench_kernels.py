"""The memory-bound kernels and the small-M matmul: minigpt's C++ against NumPy, side by side; GB/s and
the fraction of the memory bandwidth measured in the same run.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_kernels.py [--quick] [--json FILE]

Memory-bound kernels (GELU, softmax, LayerNorm, cross-entropy, AdamW; forward and backward) on the
shapes of a training step of the "small" and GPT-2 124M configs. Their speed limit is memory, so the
figure that matters is bytes moved per second: each array the op must read or write, counted once
(e.g. GELU forward reads x and writes out: 8 bytes an element; its backward reads dout and x and
writes dx: 12). The bandwidth they are held against is a copy of the same number of bytes measured
in the same rounds as the kernel (they take turns): NumPy's np.copyto on one thread and on two threads
(two halves at once; it releases the GIL), whichever is faster; taking turns puts a slow spell of
this shared machine on both sides of the ratio. On this machine's large L3 a working set of a few
MiB is served from cache, so each kernel is compared with a copy of its own size, not with a DRAM
figure.

The small-M rows are the matrix-vector products of generation (one token: M = 1) and of a short prompt
or a few few-shot candidates (M = 8, 24), weights of GPT-2 124M: their limit is reading the weight once,
so they get GB/s of weight too (the tied head's 154 MB comes from DRAM; the blocks' 7-9 MB may stay in
L3 between calls). NumPy's products run on OpenBLAS's threads, which spin for about 0.1 s after a call,
so a pause of 0.15 s follows each of NumPy's blocks of calls.
Each figure is the median of many calls, the contenders taking turns in rounds. This is a
measurement, not a test.
"""
import argparse
import itertools
import math
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from minigpt import kernels
from report import print_header, row, write_rows


def side_by_side(fns, rounds=7, min_time=0.02, spinning=()):
    """({name: median seconds per call}, {name: fastest call of its warm-up, alone}); the functions take turns,
    one block of calls each per round.
    spinning: the names of functions whose library leaves threads spinning after a call (OpenBLAS's, for
    about 0.1 s), which would take a core from whoever runs next: a pause of 0.15 s follows their blocks.
    The pause goes after them rather than before every block: a team of threads left asleep for long
    on a VM may wake up sharing one vCPU (the other looks preempted to the scheduler) and stay so."""
    inner, alone = {}, {}
    for name, fn in fns.items():
        # warm-up for 50 ms, not one call: page in buffers, start threads, let the allocator settle
        # on reusing its memory for a fresh output (the first case of a run measured up to 2x slower
        # than the same case again after one-call warm-ups)
        warm_until = time.perf_counter() + 0.05
        fn()
        alone[name] = math.inf
        while time.perf_counter() < warm_until:
            t0 = time.perf_counter()
            fn()
            alone[name] = min(alone[name], time.perf_counter() - t0)
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-7)))
    samples = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner[name])
            if name in spinning:
                time.sleep(0.15)
    return {name: statistics.median(s) for name, s in samples.items()}, alone


class Copier:
    """Copies of n float32 (both directions counted): the bandwidth a kernel moving n * 4 bytes is held to."""

    def __init__(self, pool):
        self.pool = pool

    def copies(self, n_bytes):
        """{name: fn}: a copy moving n_bytes on one thread and on two (two halves at once)."""
        n = max(64, n_bytes // 8)  # a copy moves 2 * 4 bytes per float: read and write
        src, dst = np.ones(n, np.float32), np.empty(n, np.float32)
        half = n // 2

        def one():
            np.copyto(dst, src)

        def two():
            jobs = [self.pool.submit(np.copyto, dst[:half], src[:half]),
                    self.pool.submit(np.copyto, dst[half:], src[half:])]
            for job in jobs:
                job.result()
        return {"copy, 1 thread": one, "copy, 2 threads": two}

    def bandwidth(self, n_bytes):
        return 8 * max(64, n_bytes // 8) / min(side_by_side(self.copies(n_bytes))[0].values())

    def timed_with_copy(self, fns, n_bytes, spinning=()):
        """({name: seconds per call}, copy bandwidth, whether a function ran over 3x slower in turns than alone):
        the functions and the copies take turns in the same rounds, so that a slow spell of this shared machine
        falls on both sides of the ratio. The flag marks a row to rerun: one library's threads got in the way
        of the other's (seen once for NumPy's M = 1 product: 4.6 ms in turns, 0.15 ms alone, a whole run long)."""
        copies = self.copies(n_bytes)
        t, alone = side_by_side({**fns, **copies}, spinning=spinning)
        disturbed = any(t[name] > 3 * alone[name] for name in fns)
        return {name: t[name] for name in fns}, 8 * max(64, n_bytes // 8) / min(t[name] for name in copies), disturbed


def memory_bound_cases(quick):
    """(label, bytes moved, {backend: fn}) for each kernel at a training-step shape."""
    rng = np.random.default_rng(0)
    configs = [("small", 2048, 384, 65)] if quick else [("small", 2048, 384, 65), ("gpt2", 1024, 768, 50257)]
    for name, BT, C, V in configs:
        x = rng.standard_normal((BT, C), dtype=np.float32)
        w, b = np.ones(C, np.float32), np.zeros(C, np.float32)
        _, mean, rstd = kernels.layernorm_forward(x, w, b)
        h = rng.standard_normal((BT, 4 * C), dtype=np.float32)  # the MLP's hidden activations
        dh = rng.standard_normal((BT, 4 * C), dtype=np.float32)
        rows = BT if V < 1000 else 128  # GPT-2's logits at 1024 rows would be 206 MB
        logits = rng.standard_normal((rows, V), dtype=np.float32)
        targets = rng.integers(0, V, rows)
        _, lse = kernels.cross_entropy_forward(logits, targets)
        f = 4  # bytes per float
        yield (f"gelu fwd {name} ({BT}x{4 * C})", 2 * f * h.size, lambda be: kernels.gelu_forward(h, backend=be))
        yield (f"gelu bwd {name} ({BT}x{4 * C})", 3 * f * h.size,
               lambda be: kernels.gelu_backward(dh, h, backend=be))
        yield (f"layernorm fwd {name} ({BT}x{C})", 2 * f * x.size,
               lambda be: kernels.layernorm_forward(x, w, b, backend=be))
        yield (f"layernorm bwd {name} ({BT}x{C})", 3 * f * x.size,
               lambda be: kernels.layernorm_backward(x, x, mean, rstd, w, backend=be))
        yield (f"softmax fwd {name} ({BT}x{4 * C})", 2 * f * h.size, lambda be: kernels.softmax_forward(h, backend=be))
        yield (f"softmax bwd {name} ({BT}x{4 * C})", 3 * f * h.size,
               lambda be: kernels.softmax_backward(dh, h, backend=be))
        yield (f"cross-entropy fwd {name} ({rows}x{V})", f * logits.size,
               lambda be: kernels.cross_entropy_forward(logits, targets, backend=be))
        yield (f"cross-entropy bwd {name} ({rows}x{V})", 2 * f * logits.size,
               lambda be: kernels.cross_entropy_backward(logits, lse, targets, 1.0 / rows, backend=be))
    n = 10_700_000  # the parameters of "small"; p, g, m, v: 171 MB in all
    p, g = rng.standard_normal(n, dtype=np.float32), rng.standard_normal(n, dtype=np.float32)
    m, v = np.zeros(n, np.float32), np.ones(n, np.float32)
    yield (f"adamw {n / 1e6:.0f}M parameters", 7 * 4 * n,
           lambda be: kernels.adamw_update(p, m, v, g, 1e-4, 0.9, 0.95, 1e-8, 0.1, 0.5, 0.5, backend=be))


def small_m_cases(quick):
    """(label, bytes of weight, {backend: fn}) for generation's matrix-vector products."""
    rng = np.random.default_rng(0)
    shapes = [(768, 3072, False), (768, 50257, True)] if quick else \
        [(768, 2304, False), (768, 3072, False), (3072, 768, False), (768, 50257, True)]
    for M in (1, 8, 24):
        for K, N, tied in shapes:
            wgt = rng.standard_normal((N, K) if tied else (K, N), dtype=np.float32)
            x = rng.standard_normal((M, K), dtype=np.float32)
            label = f"matmul M={M} ({M}x{K}) @ {'wte^T' if tied else ''}({K}x{N})"
            yield label, wgt.nbytes, lambda be, x=x, w=wgt, t=tied: kernels.matmul(x, w, trans_b=t, backend=be)


def all_cases(quick):
    """((label, bytes, fn), names of functions whose threads spin) for every case, one at a time. NumPy's products
    (the small-M rows) run on OpenBLAS's threads, its elementwise ufuncs on one thread. The cases come from
    generators: each case's functions see the arrays of its own loop pass only while it is current (a list made
    first left every function with the last pass's arrays: the small cross-entropy rows timed GPT-2's logits)."""
    return itertools.chain(((case, set()) for case in memory_bound_cases(quick)),
                           ((case, {"numpy"}) for case in small_m_cases(quick)))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes")
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    args = parser.parse_args()
    print_header()
    rows = []
    with ThreadPoolExecutor(2) as pool:
        copier = Copier(pool)
        dram = copier.bandwidth(1 << 30)
        print(f"memory bandwidth, copy of 1 GiB (DRAM): {dram / 1e9:.1f} GB/s")
        print(f"\n{'case':<44} {'minigpt ms':>10} {'NumPy ms':>9} {'speed-up':>8} {'GB/s':>7} {'copy GB/s':>9} "
              f"{'of copy':>7}")
        any_disturbed = False
        for (label, n_bytes, fn), spinning in all_cases(args.quick):
            t, copy, disturbed = copier.timed_with_copy({"cpu": lambda: fn("cpu"), "numpy": lambda: fn("numpy")},
                                                        n_bytes, spinning=spinning)
            any_disturbed |= disturbed
            ours = n_bytes / t["cpu"]
            print(f"{label:<44} {t['cpu'] * 1e3:>10.3f} {t['numpy'] * 1e3:>9.3f} {t['numpy'] / t['cpu']:>7.2f}x "
                  f"{ours / 1e9:>7.1f} {copy / 1e9:>9.1f} {ours / copy:>7.0%}{' *' if disturbed else ''}", flush=True)
            rows.append(row("kernels", label, "GB/s", ours / 1e9, n_bytes / t["numpy"] / 1e9, of_peak=ours / copy))
    print("\nGB/s: bytes the op must move (each array read or written once) per second; of copy: against a copy of "
          "as many bytes in this run (matmul rows: the bytes of the weight)")
    print(f"threads: minigpt {kernels.core_info()['num_threads']} (OpenMP); NumPy's elementwise operations one, its "
          "products OpenBLAS's (the header): part of a memory-bound speed-up is minigpt's other threads")
    if any_disturbed:
        print("*: in turns more than 3x slower than alone (another library's threads in the way): rerun")
    write_rows(args.json, rows)


if __name__ == "__main__":
    sys.exit(main())

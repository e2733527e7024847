"""matmul GFLOP/s: minigpt's packed SIMD kernel against NumPy's BLAS and torch.mm, side by side in one process.

usage: python benchmarks/bench_matmul.py [--quick] [--peak GFLOPS] [--seconds S]

The targets (issue 3, point 1) are stated against OpenBLAS at its best kernel, so run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_matmul.py
One row per shape and variant (NN = a @ b, NT = a @ b.T, TN = a.T @ b, the three products of a
Linear layer): minigpt's, NumPy's and (when PyTorch is installed) torch.mm's GFLOP/s on the same arrays,
minigpt's ratio to each, and minigpt's fraction of the FP32 FMA peak. The peak is --peak when given,
else measured by the extension's fma_peak (independent multiply-add chains in registers, on the SIMD
path the kernels run, all threads at once); it is the best of its rounds, since load from other
processes can only lower a measurement.

How it measures on a shared, noisy machine: the two libraries take turns, in blocks of calls with
a pause before each block, for several rounds; each figure is the median over all calls. The
pause matters: after a call, a library's idle threads keep spinning for a while (OpenBLAS for
about 0.1 s), and a spinning thread takes a core away from the other library. minigpt follows
OMP_NUM_THREADS and NumPy's BLAS its own setting (OPENBLAS_NUM_THREADS); both default to all
cores, and the header prints both, with the SIMD path (MINIGPT_SIMD forces a lower one). PyTorch is
given minigpt's thread count, and its BLAS (MKL or oneDNN on x86) is printed too.
This is a measurement, not a test.
"""
import argparse
import math
import os
import statistics
import time

import numpy as np

from minigpt import kernels
from report import print_header, row, torch_description, write_rows

# (M, K, N): out (M, N) = (M, K) @ (K, N). The first four are a GPT-2 small MLP at B*T = 2048 rows
# with C = 384 and 768 (the c_fc and c_proj products); then squares.
SHAPES = [(2048, 384, 1536), (2048, 1536, 384), (2048, 768, 3072), (2048, 3072, 768),
          (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)]
QUICK_SHAPES = [(2048, 384, 1536), (1024, 1024, 1024)]
VARIANTS = {"NN": (False, False), "NT": (False, True), "TN": (True, False)}


def torch_mm_factory(threads):
    """(make, description): make(a_op, b_op) gives a function running torch.mm on the same memory (transposed
    views stay views: the BLAS reads them transposed, as NumPy's does); make is None without PyTorch."""
    try:
        import torch
    except ImportError:
        return None, "not installed (pip install torch for the torch.mm column)"
    torch.set_num_threads(threads)

    def make(a_op, b_op):
        ta, tb = torch.from_numpy(a_op), torch.from_numpy(b_op)
        return lambda: torch.mm(ta, tb)
    return make, torch_description(torch)


def measured_peak():
    """(best, median, note): the FP32 FMA GFLOP/s of all threads on the kernels' SIMD path (fma_peak.cpp)."""
    peak = kernels._core.fma_peak(rounds=7)
    return peak["best"], peak["median"], f"{peak['simd']}, {peak['threads']} threads"


def side_by_side(fns, seconds, rounds=5, pause=0.15):
    """Median seconds per call of each function: they take turns in blocks of calls, a pause before each block."""
    per_call = []
    for fn in fns:
        fn()  # warm-up: page in the buffers, start the threads
        t0 = time.perf_counter()
        fn()
        per_call.append(max(time.perf_counter() - t0, 1e-6))
    calls = [max(2, int(seconds / len(fns) / rounds / t)) for t in per_call]
    samples = [[] for _ in fns]
    for _ in range(rounds):
        for fn, n, times in zip(fns, calls, samples):
            time.sleep(pause)
            for _ in range(n):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
    return [statistics.median(times) for times in samples]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two shapes instead of seven")
    parser.add_argument("--peak", type=float, help="FP32 FMA peak in GFLOP/s (default: measured, see fma_peak)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent calling per shape and variant")
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    args = parser.parse_args()

    kernels.core_info()  # without the extension: an error that says how to build it
    print_header()
    if args.peak:
        peak, peak_note = args.peak, "given with --peak"
    else:
        best, median, where = measured_peak()
        peak, peak_note = best, f"measured by fma_peak ({where}): best {best:.0f}, median {median:.0f}"
    print(f"FP32 FMA peak: {f'{peak:.0f} GFLOP/s, ' if peak else ''}{peak_note}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    torch_mm, torch_text = torch_mm_factory(kernels.core_info()["num_threads"])
    print(f"PyTorch: {torch_text}")
    print()
    # on a busy machine a fresh process's threads run slowly for their first ~0.1 s: warm the libraries up
    warm = np.ones((512, 512), dtype=np.float32)
    warm_ups = [lambda: kernels.matmul(warm, warm, backend="cpu"), lambda: warm @ warm]
    side_by_side(warm_ups + ([torch_mm(warm, warm)] if torch_mm else []), 0.5, rounds=1)
    print(f"{'shape (M x K) @ (K x N)':<26} {'variant':<8} {'minigpt':>8} {'NumPy':>8} {'ratio':>6} "
          f"{'torch.mm':>9} {'ratio':>6} {'of peak':>8}")

    rng = np.random.default_rng(0)
    ratios, torch_ratios, fractions, rows = [], [], [], []
    for M, K, N in (QUICK_SHAPES if args.quick else SHAPES):
        for variant, (trans_a, trans_b) in VARIANTS.items():
            a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
            b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
            a_op, b_op = (a.T if trans_a else a), (b.T if trans_b else b)  # views: BLAS reads them transposed
            fns = [lambda: kernels.matmul(a, b, trans_a, trans_b, backend="cpu"), lambda: a_op @ b_op]
            times = side_by_side(fns + ([torch_mm(a_op, b_op)] if torch_mm else []), args.seconds)
            flops = 2.0 * M * N * K
            ours, theirs = flops / times[0] / 1e9, flops / times[1] / 1e9
            torch_gflops = flops / times[2] / 1e9 if torch_mm else None
            ratios.append(ours / theirs)
            fraction = f"{ours / peak:8.0%}" if peak else f"{'n/a':>8}"
            fractions.append(ours / peak if peak else math.nan)
            rows.append(row("matmul", f"matmul ({M}x{K}) @ ({K}x{N}) {variant}", "GFLOP/s", ours, theirs,
                            torch_gflops, of_peak=ours / peak if peak else None))
            if torch_mm:
                torch_ratios.append(ours / torch_gflops)
                versus_torch = f"{torch_gflops:>9.1f} {ours / torch_gflops:>6.2f}"
            else:
                versus_torch = f"{'-':>9} {'-':>6}"
            print(f"({M}x{K}) @ ({K}x{N}){'':<{26 - len(f'({M}x{K}) @ ({K}x{N})')}} {variant:<8} {ours:>8.1f} "
                  f"{theirs:>8.1f} {ours / theirs:>6.2f} {versus_torch} {fraction}", flush=True)

    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"ratio minigpt / NumPy: geometric mean {geomean:.2f}, lowest {min(ratios):.2f}, "
          f"{sum(r >= 0.9 for r in ratios)} of {len(ratios)} at 0.9 or more")
    if torch_ratios:
        geomean = math.exp(sum(math.log(r) for r in torch_ratios) / len(torch_ratios))
        print(f"ratio minigpt / torch.mm: geometric mean {geomean:.2f}, lowest {min(torch_ratios):.2f}, "
              f"highest {max(torch_ratios):.2f}")
    if peak:
        print(f"fraction of peak: highest {max(fractions):.0%}, lowest {min(fractions):.0%}, "
              f"{sum(f >= 0.75 for f in fractions)} of {len(fractions)} at 75% or more")
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()

"""matmul GFLOP/s: minigpt's packed SIMD kernel against NumPy's BLAS, side by side in one process.

usage: python benchmarks/bench_matmul.py [--quick] [--peak GFLOPS] [--seconds S]

The targets (issue 3, point 1) are stated against OpenBLAS at its best kernel, so run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_matmul.py
One row per shape and variant (NN = a @ b, NT = a @ b.T, TN = a.T @ b, the three products of a
Linear layer): minigpt's and NumPy's GFLOP/s, their ratio, and minigpt's fraction of the FP32
FMA peak. The peak is --peak when given, else measured by compiling ../shared/bench/peak_fma.c
with gcc when both are there; it is the best of that program's repetitions, since load from
other processes can only lower a measurement.

How it measures on a shared, noisy machine: the two libraries take turns, in blocks of calls with
a pause before each block, for several rounds; each figure is the median over all calls. The
pause matters: after a call, a library's idle threads keep spinning for a while (OpenBLAS for
about 0.1 s), and a spinning thread takes a core away from the other library. minigpt follows
OMP_NUM_THREADS and NumPy's BLAS its own setting (OPENBLAS_NUM_THREADS); both default to all
cores, and the header prints both, with the SIMD path (MINIGPT_SIMD forces a lower one).
This is a measurement, not a test.
"""
import argparse
import math
import os
import pathlib
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np

from minigpt import kernels
from report import print_header, row, write_rows

# (M, K, N): out (M, N) = (M, K) @ (K, N). The first four are a GPT-2 small MLP at B*T = 2048 rows
# with C = 384 and 768 (the c_fc and c_proj products); then squares.
SHAPES = [(2048, 384, 1536), (2048, 1536, 384), (2048, 768, 3072), (2048, 3072, 768),
          (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048)]
QUICK_SHAPES = [(2048, 384, 1536), (1024, 1024, 1024)]
VARIANTS = {"NN": (False, False), "NT": (False, True), "TN": (True, False)}
PEAK_SOURCE = pathlib.Path(__file__).resolve().parents[2] / "shared" / "bench" / "peak_fma.c"


def measured_peak(threads):
    """(best, median) FP32 FMA GFLOP/s on `threads` threads from peak_fma.c, or None without gcc or the file."""
    gcc = shutil.which("gcc")
    if gcc is None or not PEAK_SOURCE.exists():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        exe = os.path.join(tmp, "peak_fma")
        subprocess.run([gcc, "-O2", "-march=native", "-fopenmp", str(PEAK_SOURCE), "-o", exe], check=True)
        text = subprocess.run([exe], check=True, capture_output=True, text=True).stdout
    # lines like "FP32 FMA AVX-512, 2 thread(s): median 139.1 GFLOP/s  [min 90.6 max 184.8]"
    rows = re.findall(r"FP32 FMA (AVX2|AVX-512)\s*, (\d) thread\(s\): median ([\d.]+) GFLOP/s\s+\[min [\d.]+ "
                      r"max ([\d.]+)\]", text)
    widest = "AVX-512" if any(r[0] == "AVX-512" for r in rows) else "AVX2"  # the machine's peak, whatever path runs
    measured_threads = 1 if threads == 1 else 2  # peak_fma measures 1 and 2 threads; scale beyond that
    for width, n, median, best in rows:
        if width == widest and int(n) == measured_threads:
            scale = threads / measured_threads
            return float(best) * scale, float(median) * scale, f"{widest}, {measured_threads} threads"
    return None


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
    parser.add_argument("--peak", type=float, help="FP32 FMA peak in GFLOP/s (default: measure it with peak_fma.c)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time spent calling per shape and variant")
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    args = parser.parse_args()

    info = kernels.core_info()
    print_header()
    if args.peak:
        peak, peak_note = args.peak, "given with --peak"
    else:
        measured = measured_peak(info["num_threads"])
        peak = measured[0] if measured else None
        peak_note = (f"measured by peak_fma.c ({measured[2]}): best {measured[0]:.0f}, median {measured[1]:.0f}"
                     if measured else "unknown (no gcc or no ../shared/bench/peak_fma.c; pass --peak)")
    print(f"FP32 FMA peak: {f'{peak:.0f} GFLOP/s, ' if peak else ''}{peak_note}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print()
    # on a busy machine a fresh process's threads run slowly for their first ~0.1 s: warm both libraries up
    warm = np.ones((512, 512), dtype=np.float32)
    side_by_side([lambda: kernels.matmul(warm, warm, backend="cpu"), lambda: warm @ warm], 0.5, rounds=1)
    print(f"{'shape (M x K) @ (K x N)':<26} {'variant':<8} {'minigpt':>8} {'NumPy':>8} {'ratio':>6} {'of peak':>8}")

    rng = np.random.default_rng(0)
    ratios, fractions, rows = [], [], []
    for M, K, N in (QUICK_SHAPES if args.quick else SHAPES):
        for variant, (trans_a, trans_b) in VARIANTS.items():
            a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
            b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
            a_op, b_op = (a.T if trans_a else a), (b.T if trans_b else b)  # views: BLAS reads them transposed
            t_ours, t_numpy = side_by_side([lambda: kernels.matmul(a, b, trans_a, trans_b, backend="cpu"),
                                            lambda: a_op @ b_op], args.seconds)
            flops = 2.0 * M * N * K
            ours, theirs = flops / t_ours / 1e9, flops / t_numpy / 1e9
            ratios.append(ours / theirs)
            fraction = f"{ours / peak:8.0%}" if peak else f"{'n/a':>8}"
            fractions.append(ours / peak if peak else math.nan)
            rows.append(row("matmul", f"matmul ({M}x{K}) @ ({K}x{N}) {variant}", "GFLOP/s", ours, theirs,
                            of_peak=ours / peak if peak else None))
            print(f"({M}x{K}) @ ({K}x{N}){'':<{26 - len(f'({M}x{K}) @ ({K}x{N})')}} {variant:<8} {ours:>8.1f} "
                  f"{theirs:>8.1f} {ours / theirs:>6.2f} {fraction}", flush=True)

    print()
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    geomean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"ratio minigpt / NumPy: geometric mean {geomean:.2f}, lowest {min(ratios):.2f}, "
          f"{sum(r >= 0.9 for r in ratios)} of {len(ratios)} at 0.9 or more")
    if peak:
        print(f"fraction of peak: highest {max(fractions):.0%}, lowest {min(fractions):.0%}, "
              f"{sum(f >= 0.75 for f in fractions)} of {len(fractions)} at 75% or more")
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()

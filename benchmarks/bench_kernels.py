"""Time minigpt's C++ kernels against the NumPy reference, side by side in one process; print ratios.

usage: python benchmarks/bench_kernels.py [--quick]

For NumPy's best OpenBLAS kernel on these machines, run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_kernels.py
The BLAS kernel in use is printed (via threadpoolctl, when installed).
Times are medians of repeated calls after a warm-up. This is a measurement, not a test.
"""
import argparse
import statistics
import time

import numpy as np

from minigpt import kernels


def median_seconds(fn, repeats=7, min_time=0.05):
    fn()  # warm-up: page in buffers, spin up threads
    inner, t0 = 1, time.perf_counter()
    fn()
    one = max(time.perf_counter() - t0, 1e-6)
    inner = max(1, int(min_time / one))
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        samples.append((time.perf_counter() - t0) / inner)
    return statistics.median(samples)


def blas_description():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl to see it)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version')} {i.get('architecture')} x{i['num_threads']}"
                     for i in blas)


def matmul_cases(quick):
    sizes = [(512, 512, 512), (2048, 384, 1536)] if quick else \
        [(512, 512, 512), (1024, 1024, 1024), (2048, 384, 1536), (2048, 1536, 384), (2048, 768, 3072)]
    rng = np.random.default_rng(0)
    for M, K, N in sizes:
        for trans_a, trans_b in ((False, False), (False, True), (True, False)):
            a = rng.standard_normal((K, M) if trans_a else (M, K), dtype=np.float32)
            b = rng.standard_normal((N, K) if trans_b else (K, N), dtype=np.float32)
            flops = 2.0 * M * N * K
            label = f"matmul {M}x{K}x{N} {'T' if trans_a else 'N'}{'T' if trans_b else 'N'}"
            yield label, flops, lambda be, a=a, b=b, ta=trans_a, tb=trans_b: kernels.matmul(a, b, ta, tb, backend=be)


def attention_cases(quick):
    rng = np.random.default_rng(0)
    shapes = [(8, 6, 256, 64)] if quick else [(8, 6, 256, 64), (1, 12, 1024, 64)]
    for B, NH, T, hs in shapes:
        q, k, v, dout = (rng.standard_normal((B, NH, T, hs), dtype=np.float32) for _ in range(4))
        flops = 4.0 * B * NH * T * T * hs / 2 * 3.5  # causal: half the T x T; backward ~2.5x the forward

        def step(be, q=q, k=k, v=v, dout=dout):
            out, lse = kernels.attention_forward(q, k, v, backend=be)
            kernels.attention_backward(dout, q, k, v, out, lse, backend=be)
        yield f"attention fwd+bwd B{B} H{NH} T{T} D{hs}", flops, step


def softmax_cases(quick):
    x = np.random.default_rng(0).standard_normal((8 * 6 * 256, 256), dtype=np.float32)
    yield "softmax fwd 12288x256", 5.0 * x.size, lambda be: kernels.softmax_forward(x, backend=be)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes")
    args = parser.parse_args()
    info = kernels.core_info()
    print(f"minigpt._core: {info}")
    print(f"NumPy BLAS: {blas_description()}")
    print(f"{'case':<40} {'minigpt ms':>11} {'numpy ms':>10} {'GFLOP/s':>9} {'speedup':>8}")
    for cases in (matmul_cases, attention_cases, softmax_cases):
        for label, flops, fn in cases(args.quick):
            t_cpu = median_seconds(lambda: fn("cpu"))
            t_np = median_seconds(lambda: fn("numpy"))
            print(f"{label:<40} {t_cpu * 1e3:>11.3f} {t_np * 1e3:>10.3f} {flops / t_cpu / 1e9:>9.1f} "
                  f"{t_np / t_cpu:>7.2f}x")


if __name__ == "__main__":
    main()

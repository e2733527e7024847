"""Causal attention forward+backward: minigpt's flash-style C++ kernel against plain NumPy and
PyTorch's scaled_dot_product_attention, side by side in one process; prints times, ratios and memory.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_attention.py [--threads 2]

Unsetting the two OpenBLAS variables (in this command only) lets NumPy use its best sgemm kernel on
this CPU. All three run float32 with the same thread count (PyTorch via torch.set_num_threads, NumPy's
BLAS via threadpoolctl, ours via OMP_NUM_THREADS, which must match: the script says if it does not).
Every round times each implementation once, in turn, so a noisy neighbour slows all three alike; the
table shows medians over the rounds. The NumPy baseline is NumpyAttention below, the same code as the
project's reference baseline (../shared/bench/attention.py): scores materialised as (B, NH, T, T).
Dropout is off, as in the baselines. Issue 3's target: ratio >= 1.5 on both cases.
"""
import argparse
import math
import statistics
import time
import tracemalloc

import numpy as np

from minigpt import kernels
from report import print_header, row, write_rows

CASES = [(8, 6, 256, 64), (1, 12, 1024, 64)]  # (B, NH, T, hs)


class NumpyAttention:
    """Plain NumPy causal attention: (B, NH, T, T) scores, additive -inf mask, hand-written backward."""

    def __init__(self, T):
        self.neg = np.where(np.triu(np.ones((T, T), dtype=bool), k=1), -np.inf, 0.0).astype(np.float32)

    def forward(self, q, k, v):
        scale = 1.0 / math.sqrt(q.shape[-1])
        s = np.matmul(q, k.swapaxes(-1, -2))  # (B, NH, T, T)
        s *= scale
        s += self.neg
        s -= s.max(axis=-1, keepdims=True)
        np.exp(s, out=s)
        s /= s.sum(axis=-1, keepdims=True)
        self.cache = (q, k, v, s, scale)
        return np.matmul(s, v)

    def backward(self, dy):
        q, k, v, p, scale = self.cache
        dv = np.matmul(p.swapaxes(-1, -2), dy)
        dp = np.matmul(dy, v.swapaxes(-1, -2))
        dp -= np.einsum("bhij,bhij->bhi", dp, p)[..., None]  # softmax backward: p * (dp - rowsum(dp * p))
        dp *= p
        dp *= scale
        return np.matmul(dp, k), np.matmul(dp.swapaxes(-1, -2), q), dv


def minigpt_step(q, k, v, dout):
    out, lse = kernels.attention_forward(q, k, v, backend="cpu")
    return kernels.attention_backward(dout, q, k, v, out, lse, backend="cpu")


def numpy_step(att, q, k, v, dout):
    att.forward(q, k, v)
    return att.backward(dout)


def torch_step_factory(q, k, v, dout):
    """fwd+bwd of F.scaled_dot_product_attention(is_causal=True) under autograd, or None without torch."""
    try:
        import torch
        import torch.nn.functional as F
    except ImportError:
        return None
    tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
    tdout = torch.tensor(dout)

    def step():
        tq.grad = tk.grad = tv.grad = None
        F.scaled_dot_product_attention(tq, tk, tv, is_causal=True).backward(tdout)
    return step


def timed_rounds(steps, rounds, min_time=0.05, spinning=("numpy", "torch")):
    """Median seconds per call of each step; every round runs each step once (repeated to min_time).
    spinning: the steps whose library leaves its threads spinning after a call (OpenBLAS's for about 0.1 s,
    PyTorch's OpenMP team): a pause of 0.15 s follows their blocks, or the next engine runs with a core taken
    (without it SDPA measured 31 ms where it takes 23, which made minigpt's ratio 2.5x where it is 1.8x)."""
    inner = {}
    for name, fn in steps.items():  # warm-up, and how many calls make one sample
        fn()
        t0 = time.perf_counter()
        fn()
        inner[name] = max(1, int(min_time / max(time.perf_counter() - t0, 1e-6)))
    samples = {name: [] for name in steps}
    for _ in range(rounds):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            for _ in range(inner[name]):
                fn()
            samples[name].append((time.perf_counter() - t0) / inner[name])
            if name in spinning:
                time.sleep(0.15)
    return {name: statistics.median(ts) for name, ts in samples.items()}


def numpy_extra_bytes(att, q, k, v, dout):
    """Peak memory NumPy allocates during fwd+bwd beyond its four (B, NH, T, hs) results, by tracemalloc."""
    tracemalloc.start()
    numpy_step(att, q, k, v, dout)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    att.cache = None
    return peak - 4 * q.nbytes


def minigpt_extra_bytes(B, NH, T, hs, threads):
    """What attention.cpp allocates beyond inputs and results (analytic): lse, kept between the passes,
    and each thread's scratch, the larger of the forward's tiles and the backward's Q^T, dout^T (hs, T)."""
    Br = Bc = 64
    Tp = -(-T // Br) * Br
    forward = hs * Br + 2 * Bc * Br + 3 * Br
    backward = 2 * hs * (Tp + 16) + 2 * Tp + 4 * Bc * Br
    return 4 * (B * NH * T + threads * max(forward, backward))


def limit_threads(threads):
    """Set NumPy's BLAS and PyTorch to `threads`; describe the BLAS in use."""
    blas = "unknown (pip install threadpoolctl)"
    try:
        from threadpoolctl import threadpool_info, threadpool_limits
        threadpool_limits(threads)
        blas = ", ".join(f"{i['internal_api']} {i.get('architecture')} x{i['num_threads']}"
                         for i in threadpool_info() if i.get("user_api") == "blas")
    except ImportError:
        pass
    try:
        import torch
        torch.set_num_threads(threads)
        torch_version = f"{torch.__version__}, {torch.get_num_threads()} threads"
    except ImportError:
        torch_version = "not installed (pip install torch for the SDPA column)"
    return blas, torch_version


def mib(n):
    return f"{n / 2**20:.2f} MiB" if n < 2**30 else f"{n / 2**30:.2f} GiB"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="threads for NumPy's BLAS and PyTorch (default 2)")
    parser.add_argument("--rounds", type=int, default=15, help="timing rounds; medians are reported")
    parser.add_argument("--quick", action="store_true", help="the first case only, 5 rounds")
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    args = parser.parse_args()
    info = kernels.core_info()
    blas, torch_version = limit_threads(args.threads)
    print_header()
    print(f"NumPy {np.__version__}, BLAS limited to: {blas}")
    print(f"PyTorch: {torch_version}")
    if info["num_threads"] != args.threads:
        print(f"note: minigpt runs {info['num_threads']} threads, the baselines {args.threads}; "
              f"set OMP_NUM_THREADS={args.threads} for a like-for-like comparison")
    header = (f"{'case':<22}{'minigpt ms':>11}{'NumPy ms':>10}{'SDPA ms':>9}{'speed-up':>10}"
              f"{'minigpt extra':>15}{'NumPy extra':>13}")
    print(header)
    print("-" * len(header))
    rows = []
    for B, NH, T, hs in (CASES[:1] if args.quick else CASES):
        rng = np.random.default_rng(0)
        q, k, v, dout = (rng.standard_normal((B, NH, T, hs), dtype=np.float32) for _ in range(4))
        att = NumpyAttention(T)
        steps = {"minigpt": lambda: minigpt_step(q, k, v, dout), "numpy": lambda: numpy_step(att, q, k, v, dout)}
        torch_step = torch_step_factory(q, k, v, dout)
        if torch_step is not None:
            steps["torch"] = torch_step
        ms = {name: 1e3 * s for name, s in timed_rounds(steps, 5 if args.quick else args.rounds).items()}
        rows.append(row("attention", f"attention fwd+bwd B={B} H={NH} T={T} D={hs}", "ms", ms["minigpt"],
                        ms["numpy"], ms.get("torch"), better="lower"))
        best = min(ms["numpy"], ms.get("torch", math.inf))
        sdpa = f"{ms['torch']:9.2f}" if "torch" in ms else f"{'-':>9}"
        print(f"{f'B={B} H={NH} T={T} D={hs}':<22}{ms['minigpt']:11.2f}{ms['numpy']:10.2f}{sdpa}"
              f"{best / ms['minigpt']:9.2f}x{mib(minigpt_extra_bytes(B, NH, T, hs, info['num_threads'])):>15}"
              f"{mib(numpy_extra_bytes(att, q, k, v, dout)):>13}")
    print("speed-up: the faster of NumPy and SDPA over minigpt, forward+backward, medians of the rounds")
    write_rows(args.json, rows)


if __name__ == "__main__":
    main()

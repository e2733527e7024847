"""Training-step throughput: minigpt (backend cpu and numpy) against PyTorch eager CPU, same model.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
           python benchmarks/bench_train_step.py [--configs baby small gpt2-124M]

A step is zero_grad + forward + cross-entropy + backward + clip + AdamW, on random tokens, for
the nanoGPT-style model (pre-LN, GELU, tied embeddings, dropout 0). Each engine and config runs
in its own process, so its peak RSS is its own; times are medians over steps after a warm-up. The
engines take turns for --rounds processes each (default 3) and the median round counts; the range
of the rounds is printed beside it.
Prints tokens/s, the ratio to PyTorch, model FLOP/s (6N + 12 L C T per token) and peak RSS.
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

CONFIGS = {  # the shapes of benchmarks/torch_reference.py: n_layer, n_head, n_embd, T, B, V
    "baby": (4, 4, 128, 64, 12, 65),
    "small": (6, 6, 384, 256, 8, 65),
    "gpt2-124M": (12, 12, 768, 256, 4, 50257),
}


def flops_per_token(L, C, T, V):
    n = L * (12 * C * C + 13 * C) + V * C + 2 * C  # non-position parameters
    return 6 * n + 12 * L * C * T


ENGINES = ("minigpt-cpu", "minigpt-numpy", "torch")  # minigpt with its C++ kernels, minigpt on NumPy, PyTorch


def run_minigpt(config, backend, steps, warmup):
    import numpy as np

    import minigpt
    L, H, C, T, B, V = CONFIGS[config]
    cfg = minigpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0)
    model = minigpt.GPT(cfg, seed=0, backend=backend)
    opt = minigpt.AdamW(model, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    data = np.random.default_rng(0).integers(0, V, (4, B, T + 1))

    def step(i):
        d = data[i % 4]
        model.zero_grad()
        _, loss = model.forward(d[:, :-1], d[:, 1:])
        model.backward()
        minigpt.clip_grad_norm(model.grads, 1.0, flat=model.flat)  # as the trainer does
        opt.step()
        return loss
    return timed(step, steps, warmup)


def run_torch(config, steps, warmup):
    import torch

    from torch_reference import TorchGPT
    L, H, C, T, B, V = CONFIGS[config]
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    torch.manual_seed(0)
    model = TorchGPT(L, H, C, T, V)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    g = torch.Generator().manual_seed(0)
    data = [torch.randint(0, V, (B, T + 1), generator=g) for _ in range(4)]

    def step(i):
        d = data[i % 4]
        opt.zero_grad(set_to_none=True)
        _, loss = model(d[:, :-1], d[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()
    return timed(step, steps, warmup)


def timed(step, steps, warmup):
    for i in range(warmup):
        step(i)
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def child(args):
    """One engine, one config, in this process: print one JSON line."""
    L, H, C, T, B, V = CONFIGS[args.config]
    if args.engine == "torch":
        seconds = run_torch(args.config, args.steps, args.warmup)
    else:
        seconds = run_minigpt(args.config, args.engine.split("-")[1], args.steps, args.warmup)
    tokens_per_s = B * T / seconds
    print(json.dumps({"engine": args.engine, "config": args.config, "step_ms": seconds * 1e3,
                      "tokens_per_s": tokens_per_s, "gflops": tokens_per_s * flops_per_token(L, C, T, V) / 1e9,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def median_run(runs):
    """One engine's rounds as one row: the round with the median step time; peak RSS the largest of any."""
    row = sorted(runs, key=lambda r: r["step_ms"])[len(runs) // 2]
    return {**row, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            "step_ms_range": (min(r["step_ms"] for r in runs), max(r["step_ms"] for r in runs))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per engine, the engines taking turns; the median of their step times counts")
    parser.add_argument("--peak-gflops", type=float, default=0.0, help="measured FMA peak, for the fraction column")
    parser.add_argument("--quick", action="store_true", help='"baby" and "small", 5 steps after 1 warm-up, one round')
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:
        args.configs, args.steps, args.warmup, args.rounds = ["baby", "small"], 5, 1, 1
    from report import print_header, row, write_rows
    print_header()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    table = []
    print(f"{'config':<10} {'engine':<14} {'step ms':>9} {'tokens/s':>10} {'vs torch':>9} {'GFLOP/s':>8} "
          f"{'of peak':>8} {'peak RSS MiB':>13}")
    for config in args.configs:
        # The engines take turns, one process each per round, so that a slow spell of this shared
        # machine falls on all of them rather than on whichever ran then.
        runs = {engine: [] for engine in args.engines}
        for _ in range(max(1, args.rounds)):
            for engine in args.engines:
                cmd = [sys.executable, __file__, "--child", "--engine", engine, "--config", config,
                       "--steps", str(args.steps), "--warmup", str(args.warmup)]
                result = subprocess.run(cmd, capture_output=True, text=True,
                                        cwd=os.path.dirname(os.path.abspath(__file__)))
                if result.returncode != 0:
                    print(f"{config:<10} {engine:<14} failed: {result.stderr.strip().splitlines()[-1:]}")
                    continue
                runs[engine].append(json.loads(result.stdout.strip().splitlines()[-1]))
        rows = [median_run(r) for r in runs.values() if r]
        torch_row = next((r for r in rows if r["engine"] == "torch"), None)
        tps = {r["engine"]: r["tokens_per_s"] for r in rows}
        ours = next((r for r in rows if r["engine"] == "minigpt-cpu"), None)
        if ours:
            table.append(row("train", f"train step {config} (fwd+bwd+AdamW)", "tok/s", ours["tokens_per_s"],
                             tps.get("minigpt-numpy"), tps.get("torch"),
                             of_peak=ours["gflops"] / args.peak_gflops if args.peak_gflops else None))
        for r in rows:
            ratio = f"{r['tokens_per_s'] / torch_row['tokens_per_s']:.2f}x" if torch_row else "-"
            peak = f"{r['gflops'] / args.peak_gflops:.0%}" if args.peak_gflops else "-"
            low, high = r["step_ms_range"]
            print(f"{config:<10} {r['engine']:<14} {r['step_ms']:>9.1f} {r['tokens_per_s']:>10,.0f} {ratio:>9} "
                  f"{r['gflops']:>8.1f} {peak:>8} {r['peak_rss_mib']:>13.0f}   (step {low:.1f}-{high:.1f} ms)")
    write_rows(args.json, table)


if __name__ == "__main__":
    main()

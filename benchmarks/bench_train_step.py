"""Training-step throughput: minigpt (backend cpu and numpy) against PyTorch eager CPU, same model.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
           python benchmarks/bench_train_step.py [--configs baby small gpt2-124M]
       ... --configs small gpt1-small --engines minigpt-cpu torch transformers   (pip install ".[parity]")

A step is zero_grad + forward + cross-entropy + backward + clip + AdamW, on random tokens, for
the nanoGPT-style model (pre-LN, GELU, tied embeddings, dropout 0). Each engine and config runs
in its own process, so its peak RSS is its own; times are medians over steps after a warm-up. The
engines take turns for --rounds processes each (default 3) and the median round counts; the range
of the rounds is printed beside it.
Prints tokens/s, the ratio to PyTorch, model FLOP/s (6N + 12 L C T per token) and peak RSS.

The engine `transformers` is Hugging Face's own GPT2LMHeadModel (or OpenAIGPTLMHeadModel for the gpt1
configs, GPT-1's post-LN blocks) loaded from the minigpt model of the same seed, written by
save_pretrained: the same weights and the same tokens as minigpt, so the two print the same first loss
(column "loss"), which shows that they run the same model. `torch` (the nanoGPT-style baseline) has
no GPT-1 form and sits out the gpt1 configs.
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
    "gpt1-small": (6, 6, 384, 256, 8, 65),       # "small" with GPT-1's blocks
    "gpt1-117M": (12, 12, 768, 512, 2, 40478),   # GPT-1 as published: 512 positions, 40,478 BPE tokens
}
GPT2_CONFIGS = ("baby", "small", "gpt2-124M")  # the default: every engine runs these


def arch_of(config):
    return "gpt1" if config.startswith("gpt1") else "gpt2"


def flops_per_token(L, C, T, V):
    n = L * (12 * C * C + 13 * C) + V * C + 2 * C  # non-position parameters
    return 6 * n + 12 * L * C * T


# minigpt with its C++ kernels, minigpt on NumPy, the nanoGPT-style PyTorch model, Hugging Face's model
ENGINES = ("minigpt-cpu", "minigpt-numpy", "torch", "transformers")
DEFAULT_ENGINES = ENGINES[:3]


def minigpt_model(config, backend):
    """The model every minigpt engine and `transformers` start from (seed 0) and their tokens."""
    import numpy as np

    import minigpt
    L, H, C, T, B, V = CONFIGS[config]
    cfg = minigpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0,
                            arch=arch_of(config))
    data = np.random.default_rng(0).integers(0, V, (4, B, T + 1))
    return minigpt.GPT(cfg, seed=0, backend=backend), data


def run_minigpt(config, backend, steps, warmup):
    import minigpt
    model, data = minigpt_model(config, backend)
    opt = minigpt.AdamW(model, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)

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


def run_transformers(config, steps, warmup):
    """Hugging Face's GPT-2 / OpenAI-GPT class with minigpt's seed-0 weights, on minigpt's tokens."""
    import tempfile

    import torch
    import torch.nn.functional as F
    import transformers

    from minigpt.pretrained import save_pretrained
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    ours, data = minigpt_model(config, "numpy")
    model_class = transformers.GPT2LMHeadModel if arch_of(config) == "gpt2" else transformers.OpenAIGPTLMHeadModel
    with tempfile.TemporaryDirectory() as folder:
        save_pretrained(ours, os.path.join(folder, "hf"))
        model = model_class.from_pretrained(os.path.join(folder, "hf"))
    model.train()  # as a training run has it; the config it read sets every dropout to 0, as minigpt's does
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    batches = [torch.from_numpy(d) for d in data]

    def step(i):
        d = batches[i % 4]
        opt.zero_grad(set_to_none=True)
        logits = model(input_ids=d[:, :-1]).logits
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), d[:, 1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()
    return timed(step, steps, warmup)


def timed(step, steps, warmup):
    """(median seconds of a step after the warm-up, the loss of the very first step)"""
    losses = [step(i) for i in range(warmup)]
    times = []
    for i in range(steps):
        t0 = time.perf_counter()
        losses.append(step(i))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(losses[0])


def runtime(engine):
    """What ran the step, as this child process has it: PyTorch's version, threads and BLAS, or minigpt's threads
    and SIMD path (the parent's header shows only NumPy's BLAS)."""
    if engine in ("torch", "transformers"):
        import torch
        from report import torch_description
        return torch_description(torch)
    if engine == "minigpt-cpu":
        from minigpt import kernels
        info = kernels.core_info()
        return f"minigpt C++, {info['num_threads']} threads, SIMD {info['simd']}"
    from report import blas_description
    return f"minigpt NumPy backend, {blas_description()}"


def child(args):
    """One engine, one config, in this process: print one JSON line."""
    L, H, C, T, B, V = CONFIGS[args.config]
    if args.engine == "torch":
        seconds, loss = run_torch(args.config, args.steps, args.warmup)
    elif args.engine == "transformers":
        seconds, loss = run_transformers(args.config, args.steps, args.warmup)
    else:
        seconds, loss = run_minigpt(args.config, args.engine.split("-")[1], args.steps, args.warmup)
    tokens_per_s = B * T / seconds
    print(json.dumps({"engine": args.engine, "config": args.config, "step_ms": seconds * 1e3, "first_loss": loss,
                      "tokens_per_s": tokens_per_s, "gflops": tokens_per_s * flops_per_token(L, C, T, V) / 1e9,
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "runtime": runtime(args.engine)}))


def median_run(runs):
    """One engine's rounds as one row: the round with the median step time; peak RSS the largest of any."""
    row = sorted(runs, key=lambda r: r["step_ms"])[len(runs) // 2]
    return {**row, "peak_rss_mib": max(r["peak_rss_mib"] for r in runs),
            "step_ms_range": (min(r["step_ms"] for r in runs), max(r["step_ms"] for r in runs))}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="+", default=list(GPT2_CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--engines", nargs="+", default=list(DEFAULT_ENGINES), choices=ENGINES)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3,
                        help="processes per engine, the engines taking turns; the median of their step times counts")
    parser.add_argument("--peak-gflops", type=float, default=0.0, help="measured FMA peak, for the fraction column")
    parser.add_argument("--quick", action="store_true", help='5 steps after 1 warm-up, one round, "baby" and "small" '
                        "(each where not given)")
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--engine", help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args)
    if args.quick:  # the quick settings where the command line left the defaults
        for name, value in (("configs", ["baby", "small"]), ("steps", 5), ("warmup", 1), ("rounds", 1)):
            if getattr(args, name) == parser.get_default(name):
                setattr(args, name, value)
    from report import print_header, row, write_rows
    print_header()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")
    table, described = [], set()
    print(f"{'config':<10} {'engine':<14} {'step ms':>9} {'tokens/s':>10} {'vs torch':>9} {'GFLOP/s':>8} "
          f"{'of peak':>8} {'peak RSS MiB':>13} {'loss':>9}")
    for config in args.configs:
        engines = [e for e in args.engines if not (e == "torch" and arch_of(config) == "gpt1")]
        if len(engines) < len(args.engines):
            print(f"{config:<10} {'torch':<14} (the nanoGPT-style baseline has no GPT-1 form; "
                  "the ratios are against transformers)")
        # The engines take turns, one process each per round, so that a slow spell of this shared
        # machine falls on all of them rather than on whichever ran then.
        runs = {engine: [] for engine in engines}
        for _ in range(max(1, args.rounds)):
            for engine in engines:
                cmd = [sys.executable, __file__, "--child", "--engine", engine, "--config", config,
                       "--steps", str(args.steps), "--warmup", str(args.warmup)]
                result = subprocess.run(cmd, capture_output=True, text=True,
                                        cwd=os.path.dirname(os.path.abspath(__file__)))
                if result.returncode != 0:
                    print(f"{config:<10} {engine:<14} failed: {result.stderr.strip().splitlines()[-1:]}")
                    continue
                runs[engine].append(json.loads(result.stdout.strip().splitlines()[-1]))
        rows = [median_run(r) for r in runs.values() if r]
        # the "vs torch" column: PyTorch eager, the nanoGPT-style model where it runs, else Hugging Face's
        torch_row = next((r for r in rows if r["engine"] == "torch"), None) or \
            next((r for r in rows if r["engine"] == "transformers"), None)
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
                  f"{r['gflops']:>8.1f} {peak:>8} {r['peak_rss_mib']:>13.0f} {r['first_loss']:>9.6f}"
                  f"   (step {low:.1f}-{high:.1f} ms)")
        for r in rows:
            if r["engine"] not in described:  # under the first table row of each engine
                described.add(r["engine"])
                print(f"{'':<10} {r['engine']:<14} ran on: {r['runtime']}")
    write_rows(args.json, table)


if __name__ == "__main__":
    main()

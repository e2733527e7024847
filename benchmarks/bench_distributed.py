"""Data-parallel throughput: 1 process x 2 threads against 2 MPI ranks x 1 thread, same global batch.

usage: env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE \
           python benchmarks/bench_distributed.py [--config small] [--steps 5] [--warmup 1]

A step is the pre-training step of minigpt/train.py (zero_grad, forward, backward, gradient
all-reduce, clip, AdamW) on random tokens, nanoGPT's "small" shape by default (6 layers, 384 wide,
T=256, global batch 8). The single process runs batch 8 on 2 OpenMP threads; the 2 ranks run batch 4
each on 1 thread and all-reduce their gradients (minigpt/distributed.py). Prints tokens/s of each, the
ratio, the bytes all-reduced per step and the all-reduce's share of the step, then what the ring
all-reduce cost model (docs/data_parallel.md) predicts for the same model over real networks.
Needs mpi4py and mpiexec (pip install ".[distributed]").
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

CONFIGS = {  # n_layer, n_head, n_embd, T, global B, V (benchmarks/bench_train_step.py's shapes)
    "baby": (4, 4, 128, 64, 12, 65),
    "small": (6, 6, 384, 256, 8, 65),
}
NETWORKS = {"1 GbE": 0.125e9, "10 GbE": 1.25e9, "100 Gb InfiniBand": 12.5e9}  # bytes/s


def worker(config, steps, warmup):
    """Time training steps in this process (one rank of many, or alone); rank 0 prints one JSON line."""
    import numpy as np

    import minigpt
    from minigpt.distributed import get_world
    from minigpt.optim import clip_grad_norm

    world = get_world()
    L, H, C, T, B, V = CONFIGS[config]
    if B % world.size:
        raise ValueError(f"the global batch {B} does not split evenly over {world.size} ranks")
    cfg = minigpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0)
    model = minigpt.GPT(cfg, seed=0, backend="cpu")
    opt = minigpt.AdamW(model, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    tokens = np.random.default_rng(0).integers(0, V, 100_000).astype(np.uint16)
    rng = np.random.default_rng(1)
    step_times, reduce_times, sent = [], [], 0
    for step in range(warmup + steps):
        t0 = time.perf_counter()
        model.zero_grad()
        model.forward(*world.get_batch(tokens, B // world.size, T, rng), train=True)
        model.backward()
        t1 = time.perf_counter()
        sent = world.allreduce_mean_(model.grads)
        t2 = time.perf_counter()
        clip_grad_norm(model.grads, 1.0)
        opt.step()
        if step >= warmup:
            step_times.append(time.perf_counter() - t0)
            reduce_times.append(t2 - t1)
    world.check_same_parameters(model.params, warmup + steps)
    step_s, reduce_s = world.mean(statistics.median(step_times)), world.mean(statistics.median(reduce_times))
    if world.is_main:
        print(json.dumps({"ranks": world.size, "step_s": step_s, "allreduce_s": reduce_s, "bytes": sent,
                          "tokens_per_s": B * T / step_s, "params": model.num_params()}))


def launch(config, steps, warmup, ranks, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    command = [sys.executable, __file__, "--worker", "--config", config, "--steps", str(steps), "--warmup",
               str(warmup)]
    if ranks > 1:
        mpiexec = Path(sys.executable).parent / "mpiexec"
        command = [str(mpiexec) if mpiexec.exists() else shutil.which("mpiexec"), "-n", str(ranks), *command]
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ring_allreduce_s(nbytes, ranks, bandwidth, latency=0.0):
    """The ring all-reduce (reduce-scatter then all-gather): each rank sends and receives 2(N-1)/N of the
    bytes, in 2(N-1) rounds for each bucket of at most BUCKET_BYTES; bandwidth in bytes/s per link,
    latency in s per round (docs/data_parallel.md)."""
    from minigpt.distributed import BUCKET_BYTES

    buckets = max(1, -(-nbytes // BUCKET_BYTES))
    return 2 * (ranks - 1) / ranks * nbytes / bandwidth + 2 * (ranks - 1) * latency * buckets


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=list(CONFIGS), default="small")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.config, args.steps, args.warmup)
    one = launch(args.config, args.steps, args.warmup, ranks=1, threads=2)
    two = launch(args.config, args.steps, args.warmup, ranks=2, threads=1)
    L, H, C, T, B, V = CONFIGS[args.config]
    print(f"config {args.config}: {one['params']:,} parameters, global batch {B} x {T} tokens, "
          f"{args.steps} steps after {args.warmup} warm-up (medians)")
    print(f"{'':28}{'tokens/s':>10}{'step ms':>10}{'all-reduce ms':>15}")
    for name, r in (("1 process x 2 threads", one), ("2 MPI ranks x 1 thread", two)):
        print(f"{name:28}{r['tokens_per_s']:10,.0f}{r['step_s'] * 1e3:10.1f}{r['allreduce_s'] * 1e3:15.2f}")
    print(f"ratio (2 ranks / 1 process): {two['tokens_per_s'] / one['tokens_per_s']:.2f}")
    print(f"all-reduced per step: {two['bytes']:,} bytes per rank ({two['bytes'] / 2**20:.1f} MiB), "
          f"{100 * two['allreduce_s'] / two['step_s']:.1f}% of the step; on this machine "
          f"{two['bytes'] / max(two['allreduce_s'], 1e-9) / 1e9:.1f} GB/s of gradient")
    compute_s = two["step_s"] - two["allreduce_s"]  # one rank's compute on its share of the batch
    print("cost model (docs/data_parallel.md): one host per rank, each with this rank's compute time "
          f"({compute_s * 1e3:.0f} ms a step)")
    for ranks in (2, 8):
        for net, bandwidth in NETWORKS.items():
            comm = ring_allreduce_s(two["bytes"], ranks, bandwidth, latency=20e-6)
            print(f"  {ranks} hosts over {net:18}: all-reduce {comm * 1e3:8.1f} ms, step {compute_s + comm:6.3f} s, "
                  f"speed-up over one host {ranks * compute_s / (compute_s + comm):5.2f} (at best {ranks})")


if __name__ == "__main__":
    main()

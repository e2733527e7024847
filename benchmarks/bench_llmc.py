"""Training step against llm.c's CPU trainer (karpathy/llm.c, train_gpt2.c): same weights, tokens and step.

usage: python benchmarks/bench_llmc.py --llmc PATH/TO/llm.c [--configs baby small gpt2-124M gpt2-124M-T64]
                                       [--steps 5] [--warmup 1] [--rounds 3]

llm.c's code is not part of this repository: clone it and pass the checkout's path (measured with
train_gpt2.c at db2454f8: `git -C llm.c checkout db2454f8`; the harness calls its gpt2_build_from_checkpoint,
gpt2_forward, gpt2_zero_grad, gpt2_backward and gpt2_update, which later versions may change). The script compiles
benchmarks/llmc_step.c, which includes llm.c's train_gpt2.c unchanged (its main() left out, as llm.c's
test_gpt2.c does), with the flags of llm.c's Makefile for the CPU: -Ofast -march=native -fopenmp -DOMP.
Then, for each config:
  - it builds minigpt's model of seed 0, with its LayerNorm gains and every bias set to random values (at
    their initial 1 and 0, a mix-up of two of them would go unseen), and writes it in llm.c's checkpoint
    format: a header of 256 int32 (magic 20240326, version 3 = float32, max T, V, L, heads, C, V padded
    to a multiple of 128), then the 16 tensors in llm.c's order, Linear weights transposed to its (out, in)
    layout and the token embeddings padded with zero rows;
  - it writes random tokens (seed 0), batches of B rows of T + 1;
  - llm.c and minigpt (backend "cpu") each run the same step in a process of their own: forward with the
    loss, zero_grad, backward, AdamW with llm.c's settings (lr 1e-4, betas 0.9 / 0.999, eps 1e-8, no
    weight decay, no clipping). The engines take turns for --rounds rounds; the median round counts.
Both print the loss of every step: they agree to a few float32 roundings when both compute the same
model, and the script says how closely. Threads: OMP_NUM_THREADS for both (default: all cores). For
NumPy's best OpenBLAS kernel (minigpt calls it in a few places) run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_llmc.py --llmc ...
A measurement, not a test: llm.c's GPT-2 124M steps take half a minute each on 2 cores.
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = {  # n_layer, n_head, n_embd, max T, T, B, V: bench_train_step.py's shapes, and llm.c's own batch
    "baby": (4, 4, 128, 64, 64, 12, 65),
    "small": (6, 6, 384, 256, 256, 8, 65),
    "gpt2-124M": (12, 12, 768, 1024, 256, 4, 50257),
    "gpt2-124M-T64": (12, 12, 768, 1024, 64, 4, 50257),  # llm.c's main(): B = 4, T = 64
}
LLMC_MAGIC, LLMC_FLOAT32 = 20240326, 3
HARNESS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llmc_step.c")


def minigpt_model(config):
    """minigpt's GPT of seed 0, LayerNorm gains and biases randomised (seed 1): the model both engines train."""
    import minigpt
    L, H, C, max_T, T, B, V = CONFIGS[config]
    model = minigpt.GPT(minigpt.GPTConfig(vocab_size=V, block_size=max_T, n_layer=L, n_head=H, n_embd=C,
                                          dropout=0.0), seed=0, backend="cpu")
    rng = np.random.default_rng(1)
    for name, value in model.params.items():
        if name.endswith(".bias") or ".ln_" in name or name.startswith("ln_f"):
            centre = 1.0 if name.endswith(".weight") else 0.0
            value[...] = rng.normal(centre, 0.1, value.shape)
    return model


def llmc_tensors(model):
    """The 16 tensors of llm.c's ParameterTensors, in its order and layout: wte (Vp, C), wpe (maxT, C), then
    each kind of layer tensor stacked over the L layers, Linear weights (out, in), then the final LayerNorm."""
    p, L, V = model.params, model.config.n_layer, model.config.vocab_size
    padded_vocab = -(-V // 128) * 128
    wte = np.zeros((padded_vocab, model.config.n_embd), np.float32)
    wte[:V] = p["wte.weight"]  # the padding rows are never a target, and llm.c's softmax leaves them out

    def stacked(name, transpose=False):
        return np.stack([p[f"h.{i}.{name}"].T if transpose else p[f"h.{i}.{name}"] for i in range(L)])

    return padded_vocab, [
        wte, p["wpe.weight"],
        stacked("ln_1.weight"), stacked("ln_1.bias"),
        stacked("attn.c_attn.weight", True), stacked("attn.c_attn.bias"),
        stacked("attn.c_proj.weight", True), stacked("attn.c_proj.bias"),
        stacked("ln_2.weight"), stacked("ln_2.bias"),
        stacked("mlp.c_fc.weight", True), stacked("mlp.c_fc.bias"),
        stacked("mlp.c_proj.weight", True), stacked("mlp.c_proj.bias"),
        p["ln_f.weight"], p["ln_f.bias"],
    ]


def write_llmc_checkpoint(model, path):
    cfg = model.config
    padded_vocab, tensors = llmc_tensors(model)
    header = np.zeros(256, np.int32)
    header[:8] = [LLMC_MAGIC, LLMC_FLOAT32, cfg.block_size, cfg.vocab_size, cfg.n_layer, cfg.n_head, cfg.n_embd,
                  padded_vocab]
    with open(path, "wb") as f:
        header.tofile(f)
        for tensor in tensors:
            np.ascontiguousarray(tensor, dtype=np.float32).tofile(f)


def tokens_for(config, n_batches=4):
    *_, T, B, V = CONFIGS[config]
    return np.random.default_rng(0).integers(0, V, (n_batches, B, T + 1)).astype(np.int32)


def build_harness(llmc, out_dir):
    if not os.path.isfile(os.path.join(llmc, "train_gpt2.c")):
        raise SystemExit(f"--llmc {llmc}: no train_gpt2.c there (git clone https://github.com/karpathy/llm.c)")
    compiler = os.environ.get("CC", "gcc")
    exe = os.path.join(out_dir, "llmc_step")
    cmd = [compiler, "-Ofast", "-march=native", "-fopenmp", "-DOMP", "-I", llmc, HARNESS, "-o", exe, "-lm"]
    print("building llm.c's step:", " ".join(cmd))
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"the build failed:\n{result.stderr[-3000:]}")
    return exe


def minigpt_child(config, tokens_path, steps, warmup):
    """minigpt's step with llm.c's settings, in this process: print the RESULT line."""
    import minigpt
    L, H, C, max_T, T, B, V = CONFIGS[config]
    model = minigpt_model(config)
    opt = minigpt.AdamW(model, lr=1e-4, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    data = np.fromfile(tokens_path, dtype=np.int32).reshape(-1, B, T + 1).astype(np.int64)
    losses, step_ms = [], []
    for step in range(warmup + steps):
        batch = data[step % len(data)]
        t0 = time.perf_counter()
        model.zero_grad()
        _, loss = model.forward(batch[:, :-1], batch[:, 1:])
        model.backward()
        opt.step()
        elapsed = (time.perf_counter() - t0) * 1e3
        losses.append(float(loss))
        if step >= warmup:
            step_ms.append(elapsed)
    print("RESULT " + json.dumps({"losses": losses, "step_ms": step_ms}))


def run(cmd, env=None):
    result = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode != 0 or not lines:
        raise SystemExit(f"{cmd[0]} failed (rc {result.returncode}):\n{(result.stderr or result.stdout)[-2000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--llmc", help="path of a llm.c checkout")
    parser.add_argument("--configs", nargs="+", default=["baby", "small"], choices=list(CONFIGS))
    parser.add_argument("--steps", type=int, default=5, help="timed steps per process")
    parser.add_argument("--warmup", type=int, default=1, help="steps before the timed ones")
    parser.add_argument("--rounds", type=int, default=3, help="processes per engine, taking turns")
    parser.add_argument("--child", nargs=2, metavar=("CONFIG", "TOKENS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return minigpt_child(args.child[0], args.child[1], args.steps, args.warmup)
    if not args.llmc:
        parser.error("--llmc PATH is required (a checkout of https://github.com/karpathy/llm.c)")
    if args.steps < 1 or args.warmup < 0:
        parser.error("--steps must be at least 1 and --warmup at least 0")
    from report import print_header
    print_header()
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}; {args.steps} timed steps after "
          f"{args.warmup} warm-up per process, {args.rounds} rounds taken in turns, median round")
    work = tempfile.mkdtemp(prefix="minigpt_llmc_")
    try:
        exe = build_harness(os.path.abspath(args.llmc), work)
        rows = []
        for config in args.configs:
            L, H, C, max_T, T, B, V = CONFIGS[config]
            checkpoint, tokens_path = os.path.join(work, f"{config}.bin"), os.path.join(work, f"{config}_tokens.bin")
            write_llmc_checkpoint(minigpt_model(config), checkpoint)
            tokens_for(config).tofile(tokens_path)
            commands = {
                "llm.c": [exe, checkpoint, tokens_path, str(B), str(T), str(args.steps), str(args.warmup)],
                "minigpt": [sys.executable, os.path.abspath(__file__), "--child", config, tokens_path,
                            "--steps", str(args.steps), "--warmup", str(args.warmup)],
            }
            rounds = {engine: [] for engine in commands}
            for _ in range(max(1, args.rounds)):
                for engine, cmd in commands.items():
                    rounds[engine].append(run(cmd))
            theirs, ours = rounds["llm.c"][0]["losses"], rounds["minigpt"][0]["losses"]
            agreement = max(abs(a - b) / abs(b) for a, b in zip(ours, theirs))
            medians = {engine: [statistics.median(r["step_ms"]) for r in runs] for engine, runs in rounds.items()}
            ms = {engine: statistics.median(m) for engine, m in medians.items()}
            print(f"{config}: {L} layers, {C} wide, B={B}, T={T}, V={V}; losses llm.c {theirs[0]:.6f} .. "
                  f"{theirs[-1]:.6f}, minigpt {ours[0]:.6f} .. {ours[-1]:.6f}: largest relative difference "
                  f"{agreement:.1e} over {len(ours)} steps", flush=True)
            if agreement > 1e-4:
                print("  WARNING: the losses differ by more than 1e-4: the two engines do not train the same model")
            rows.append((config, B, T, ms["llm.c"], medians["llm.c"], ms["minigpt"], medians["minigpt"]))
        print(f"\n{'config':<14} {'B':>3} {'T':>5} {'llm.c ms/step':>14} {'minigpt ms/step':>16} {'speed-up':>9}")
        for config, B, T, theirs, their_rounds, ours, our_rounds in rows:
            print(f"{config:<14} {B:>3} {T:>5} {theirs:>14,.1f} {ours:>16,.1f} {theirs / ours:>8.2f}x   "
                  f"(rounds: llm.c {min(their_rounds):,.1f}-{max(their_rounds):,.1f}, "
                  f"minigpt {min(our_rounds):,.1f}-{max(our_rounds):,.1f})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()

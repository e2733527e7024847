"""Generation speed, batch 1, greedy: minigpt with and without its KV cache, against PyTorch with a KV cache.

usage: python benchmarks/bench_generate.py [--shapes small,gpt2] [--new 256] [--backends cpu,numpy]
                                           [--uncached-backends cpu] [--reps 3] [--threads 2]
                                           [--no-torch] [--profile] [--wait-quiet 120] [--tries 3]

Shapes (random weights, GPT-2 initialisation; the weights do not change the speed):
  small  6 layers, 6 heads, 384 wide, context 256, vocab 65      (nanoGPT's shakespeare_char model)
  gpt2   12 layers, 12 heads, 768 wide, context 1024, vocab 50257 (GPT-2 124M)
Each run starts from a 1-token prompt and generates --new tokens. Cached: the prompt goes through
forward_cached, then one token per step. Uncached: every step runs the whole context through forward.

The PyTorch baseline is the nanoGPT-style model of ../shared/bench/gpt.py with the KV-cache loop of
../shared/bench/generate.py, copied below (not imported) so this file runs on its own. It gets
minigpt's weights, so both compute the same function, and the script checks that they agree.
PyTorch runs with torch.set_num_threads(--threads); `pip install torch` (2.13 CPU) to include it.

For NumPy's best OpenBLAS kernel on these machines (the numpy backend), run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_generate.py
Each figure is the best of --reps runs, minigpt and PyTorch taking turns within each round so
that both see the same machine load. Before each block of runs the script waits (up to
--wait-quiet seconds) for other processes to go quiet, measures how many cores they kept busy
meanwhile, and runs the block again (up to --tries times) if that was over 0.25: two threads that
share two cores with a neighbour can run several times slower. --profile prints where one cached
decode step of the last shape spends its time, for each backend. This is a measurement, not a test.
"""
import argparse
import cProfile
import math
import os
import pstats
import resource
import time

import numpy as np

from minigpt import kernels
from minigpt.config import GPTConfig
from minigpt.generate import generate
from minigpt.model import GPT
from report import print_header, row, write_rows

SHAPES = {
    "small": GPTConfig(vocab_size=65, block_size=256, n_layer=6, n_head=6, n_embd=384),
    "gpt2": GPTConfig(vocab_size=50257, block_size=1024, n_layer=12, n_head=12, n_embd=768),
}


# ------------------------------------------------------------------ the PyTorch baseline
# From ../shared/bench/gpt.py (GPT, Block, CausalSelfAttention, MLP; training-only parts left out)
# and ../shared/bench/generate.py (gen_kvcache, gen_nocache).

def torch_model_class():
    """The PyTorch GPT class, defined on first use so that this file imports without torch."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    class CausalSelfAttention(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd)
            self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd)
            self.n_head, self.n_embd = cfg.n_head, cfg.n_embd

        def forward(self, x, kv_cache=None, pos=0):
            B, T, C = x.shape
            q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
            hd = C // self.n_head
            q = q.view(B, T, self.n_head, hd).transpose(1, 2)
            k = k.view(B, T, self.n_head, hd).transpose(1, 2)
            v = v.view(B, T, self.n_head, hd).transpose(1, 2)
            if kv_cache is not None:
                kc, vc = kv_cache  # (B, H, block, hd) preallocated
                kc[:, :, pos:pos + T] = k
                vc[:, :, pos:pos + T] = v
                k, v = kc[:, :, :pos + T], vc[:, :, :pos + T]
                if T == 1:
                    y = F.scaled_dot_product_attention(q, k, v)  # one query attends to every cached key
                else:  # prompt prefill at pos: query i may see keys <= pos + i
                    m = torch.ones(T, pos + T, dtype=torch.bool).tril(diagonal=pos)
                    y = F.scaled_dot_product_attention(q, k, v, attn_mask=m)
            else:
                y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            y = y.transpose(1, 2).contiguous().view(B, T, C)
            return self.c_proj(y)

    class MLP(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd)
            self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd)

        def forward(self, x):
            return self.c_proj(F.gelu(self.c_fc(x), approximate="tanh"))  # GPT-2's GELU, as minigpt's

    class Block(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.ln_1 = nn.LayerNorm(cfg.n_embd)
            self.attn = CausalSelfAttention(cfg)
            self.ln_2 = nn.LayerNorm(cfg.n_embd)
            self.mlp = MLP(cfg)

        def forward(self, x, kv_cache=None, pos=0):
            x = x + self.attn(self.ln_1(x), kv_cache, pos)
            return x + self.mlp(self.ln_2(x))

    class TorchGPT(nn.Module):
        def __init__(self, cfg):
            super().__init__()
            self.cfg = cfg
            self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
            self.h = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
            self.ln_f = nn.LayerNorm(cfg.n_embd)
            self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
            self.lm_head.weight = self.wte.weight  # tied

        def forward(self, idx, kv_caches=None, pos=0, last_only=False):
            B, T = idx.shape
            x = self.wte(idx) + self.wpe(torch.arange(pos, pos + T, dtype=torch.long))
            for i, block in enumerate(self.h):
                x = block(x, None if kv_caches is None else kv_caches[i], pos)
            x = self.ln_f(x)
            if last_only:
                x = x[:, -1:, :]
            return self.lm_head(x)

        def new_kv_caches(self, B):
            c = self.cfg
            shape = (B, c.n_head, c.block_size, c.n_embd // c.n_head)
            return [(torch.zeros(shape), torch.zeros(shape)) for _ in range(c.n_layer)]

    return TorchGPT


def torch_from_minigpt(model):
    """A PyTorch model holding minigpt's weights. minigpt stores Linear weights (in, out) as GPT-2's
    checkpoint does; nn.Linear stores (out, in), hence the transposes."""
    import torch

    torch_model = torch_model_class()(model.config).eval()
    state = {}
    for name, value in model.params.items():
        t = torch.from_numpy(np.ascontiguousarray(value.T if name.endswith(".weight") and value.ndim == 2
                                                  and not name.startswith(("wte", "wpe")) else value))
        state[name] = t
    state["lm_head.weight"] = state["wte.weight"]
    torch_model.load_state_dict(state, strict=True)
    return torch_model


def torch_generate(torch_model, n_new, use_cache):
    """Greedy tokens after the prompt [0]: gen_kvcache / gen_nocache of ../shared/bench/generate.py."""
    import torch

    with torch.no_grad():
        idx = torch.zeros(1, 1, dtype=torch.long)
        if not use_cache:
            for _ in range(n_new):
                logits = torch_model(idx[:, -torch_model.cfg.block_size:], last_only=True)
                idx = torch.cat([idx, logits[:, -1, :].argmax(-1, keepdim=True)], dim=1)
            return idx[0, 1:].tolist()
        caches = torch_model.new_kv_caches(1)
        logits = torch_model(idx, kv_caches=caches, pos=0, last_only=True)
        out = [logits[:, -1, :].argmax(-1, keepdim=True)]
        for pos in range(1, n_new):
            logits = torch_model(out[-1], kv_caches=caches, pos=pos)
            out.append(logits[:, -1, :].argmax(-1, keepdim=True))
        return torch.cat(out, dim=1)[0].tolist()


# ------------------------------------------------------------------ measurement

class ForeignLoad:
    """How many cores other processes kept busy while a block ran: (busy CPU time of the machine in
    /proc/stat - this process's own CPU time) / wall time. The machines here are shared; a figure
    taken while this is well above 0 is slowed by the neighbours and should be rerun."""

    def __enter__(self):
        self.start = self._sample()
        return self

    def __exit__(self, *exc):
        busy0, own0, t0 = self.start
        busy1, own1, t1 = self._sample()
        self.cores = max(0.0, ((busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-9))

    @staticmethod
    def _sample():
        usage = resource.getrusage(resource.RUSAGE_SELF)
        try:
            with open("/proc/stat") as f:
                ticks = [int(v) for v in f.readline().split()[1:]]
            busy = (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")  # all but idle and iowait
        except (OSError, ValueError):
            busy = float("nan")  # not Linux: unknown
        return busy, usage.ru_utime + usage.ru_stime, time.perf_counter()


def wait_until_quiet(limit_s, threshold=0.2):
    """Wait (up to limit_s) for a 2-second window in which other processes use under `threshold` cores."""
    if limit_s <= 0:  # not asked to wait
        return
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit_s:
        with ForeignLoad() as load:
            time.sleep(2.0)
        if not load.cores >= threshold:  # (also true for nan: no /proc/stat, nothing to wait for)
            return
    print(f"  (the machine did not get quiet within {limit_s:.0f} s; measuring anyway)")


def minigpt_generate(model, n_new, use_cache):
    return list(generate(model, [0], n_new, greedy=True, use_cache=use_cache))


def best_tokens_per_s(fns, n_new, reps):
    """{name: best tokens/s over reps rounds}; the functions take turns within each round."""
    for fn in fns.values():
        fn(4)  # warm-up: threads, buffers, page faults
    best = {name: math.inf for name in fns}
    for _ in range(reps):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            out = fn(n_new)
            best[name] = min(best[name], time.perf_counter() - t0)
            assert len(out) == n_new
    return {name: n_new / seconds for name, seconds in best.items()}


def check_agreement(model, torch_model):
    """Max |minigpt - PyTorch| of the logits of a 16-token context, and whether minigpt's cached and
    uncached greedy tokens agree (32 tokens)."""
    idx = np.arange(16, dtype=np.int64)[None] % model.config.vocab_size
    ours = model.forward(idx, train=False)[0]
    diff = None
    if torch_model is not None:
        import torch

        with torch.no_grad():
            theirs = torch_model(torch.from_numpy(idx)).numpy()
        diff = float(np.abs(ours - theirs).max())
    same = minigpt_generate(model, 32, True) == minigpt_generate(model, 32, False)
    return diff, same


def measure(fns, args, reps):
    """best_tokens_per_s of fns, repeated (up to --tries times) while other processes kept more than 0.25
    cores busy; returns (tokens/s, the cores they kept busy during the run that was kept)."""
    for attempt in range(args.tries):
        wait_until_quiet(args.wait_quiet)
        with ForeignLoad() as load:
            tps = best_tokens_per_s(fns, args.new, reps)
        if not load.cores > 0.25:
            break
        print(f"  (other processes kept {load.cores:.2f} cores busy: "
              + ("measuring again)" if attempt + 1 < args.tries else "keeping this one)"), flush=True)
    return tps, load.cores


def bench_shape(name, cfg, args, torch_ok):
    """One table row per backend: minigpt cached (beside PyTorch cached, in the same rounds) and uncached."""
    rows, torch_model, torch_uncached = [], None, None
    for backend in args.backends:
        model = GPT(cfg, seed=0, backend=backend)
        if torch_ok and torch_model is None:
            torch_model = torch_from_minigpt(model)
        diff, same = check_agreement(model, torch_model)
        fns = {"cached": lambda n, m=model: minigpt_generate(m, n, True)}
        if torch_model is not None:  # beside every backend, so each ratio is taken under one load
            fns["torch cached"] = lambda n: torch_generate(torch_model, n, True)
        tps, load = measure(fns, args, args.reps)
        report = ", ".join(f"{k} {v:.1f}" for k, v in tps.items()) + f" tok/s (other load {load:.2f} cores)"
        if backend in args.uncached_backends:
            fns = {"uncached": lambda n, m=model: minigpt_generate(m, n, False)}
            if torch_model is not None and torch_uncached is None:
                fns["torch uncached"] = lambda n: torch_generate(torch_model, n, False)
            uncached, load = measure(fns, args, 1)  # O(n^2) work: one round is enough
            tps.update(uncached)
            torch_uncached = uncached.get("torch uncached", torch_uncached)
            report += "; " + ", ".join(f"{k} {v:.1f}" for k, v in uncached.items()) + \
                f" tok/s (other load {load:.2f} cores)"
        rows.append((f"{name} ({backend})", tps["cached"], tps.get("uncached"), tps.get("torch cached"),
                     torch_uncached))
        print(f"  {name} {backend}: {report}"
              + (f"; max |logits - PyTorch's| {diff:.1e}" if diff is not None else "")
              + f"; cached and uncached greedy tokens agree: {same}", flush=True)
        del model
    return rows


def profile_decode_step(cfg, backend, steps=20):
    """cProfile of `steps` cached decode steps at position 128, with the time split by where it goes."""
    model = GPT(cfg, seed=0, backend=backend)
    cache = model.new_kv_cache(1)
    model.forward_cached(np.zeros((1, 128), dtype=np.int64), cache, 0)
    token = np.zeros((1, 1), dtype=np.int64)
    model.forward_cached(token, cache, 128)  # warm-up
    profiler = cProfile.Profile()
    t0 = time.perf_counter()
    profiler.enable()
    for _ in range(steps):
        model.forward_cached(token, cache, 128)
    profiler.disable()
    per_step = (time.perf_counter() - t0) / steps
    stats = pstats.Stats(profiler)
    print(f"\nprofile: one cached decode step, {backend} backend, {cfg.n_layer} layers x {cfg.n_embd} wide, "
          f"vocab {cfg.vocab_size}, position 128: {per_step * 1e3:.2f} ms ({steps} steps, profiler on)")
    rows = sorted(stats.stats.items(), key=lambda kv: -kv[1][2])  # by own time (tottime)
    total = sum(v[2] for _, v in rows)
    print(f"  {'own time':>9} {'share':>6} {'calls/step':>10}  function")
    for (file, line, func), (cc, nc, tt, ct, callers) in rows[:14]:
        where = func if file == "~" else f"{file.split('minigpt/')[-1]}:{line}({func})"
        print(f"  {tt / steps * 1e3:>7.3f}ms {tt / total:>6.1%} {nc / steps:>10.0f}  {where}")
    # Where the time goes, in three parts: the C++ kernels; NumPy's matmul (the own time of
    # kernels.matmul with backend="numpy" is the `@` inside it); everything else is the Python and
    # NumPy glue around them (layer calls, reshapes, temporaries, the NumPy attention over the cache).
    core = sum(v[2] for (file, _, func), v in rows if "minigpt._core" in func)
    numpy_matmul = sum(v[2] for (file, _, func), v in rows
                       if backend == "numpy" and func == "matmul" and file.endswith("matmul.py"))
    glue = total - core - numpy_matmul
    print(f"  split: C++ kernels {core / steps * 1e3:.2f} ms, NumPy matmul {numpy_matmul / steps * 1e3:.2f} ms, "
          f"Python and NumPy glue {glue / steps * 1e3:.2f} ms "
          f"({glue / steps / cfg.n_layer * 1e6:.0f} us per layer) of {total / steps * 1e3:.2f} ms profiled")
    return stats


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="small,gpt2", help="comma-separated: small, gpt2")
    parser.add_argument("--new", type=int, default=256, help="new tokens per run")
    parser.add_argument("--backends", default="cpu,numpy", help="comma-separated minigpt backends")
    parser.add_argument("--uncached-backends", default="cpu",
                        help="backends also timed without the cache (slow: minutes for gpt2); 'none' for none")
    parser.add_argument("--reps", type=int, default=3, help="rounds for the cached runs (best is kept)")
    parser.add_argument("--threads", type=int, default=2, help="PyTorch threads (minigpt: OMP_NUM_THREADS)")
    parser.add_argument("--no-torch", action="store_true", help="skip the PyTorch baseline")
    parser.add_argument("--profile", action="store_true", help="profile a cached decode step of the last shape")
    parser.add_argument("--wait-quiet", type=float, default=120.0,
                        help="seconds to wait, before each block of runs, for other processes to go quiet")
    parser.add_argument("--tries", type=int, default=3,
                        help="runs of a block at most, while other processes keep over 0.25 cores busy")
    parser.add_argument("--quick", action="store_true",
                        help='"small" only, 64 new tokens, one round, no uncached runs, no waiting for quiet')
    parser.add_argument("--json", help="also write the rows here, for minigpt bench")
    args = parser.parse_args()
    if args.quick:
        args.shapes, args.new, args.reps, args.uncached_backends, args.wait_quiet, args.tries = \
            "small", 64, 1, "none", 0.0, 1
    args.backends = [b for b in args.backends.split(",") if b]
    args.uncached_backends = [b for b in args.uncached_backends.split(",") if b]
    for backend in args.backends:
        kernels.check_backend(backend)
    torch_ok = False
    if not args.no_torch:
        try:
            import torch
            torch.set_num_threads(args.threads)
            torch_ok = True
            print(f"PyTorch {torch.__version__}, {torch.get_num_threads()} threads")
        except ImportError:
            print("PyTorch is not installed (pip install torch): no baseline")
    print_header()
    print(f"greedy, batch 1, 1-token prompt, {args.new} new tokens; best of {args.reps} rounds (uncached: 1); "
          "PyTorch cached runs beside each backend, PyTorch uncached once per shape")

    table = []
    for name in args.shapes.split(","):
        table += bench_shape(name, SHAPES[name], args, torch_ok)

    print(f"\n{'shape (backend)':<16} {'minigpt cached':>15} {'minigpt uncached':>17} {'PyTorch cached':>15} "
          f"{'ratio':>6} {'PyTorch uncached':>17}")
    for label, cached, uncached, t_cached, t_uncached in table:
        ratio = f"{cached / t_cached:.2f}" if t_cached else "-"
        t_c = f"{t_cached:.1f}" if t_cached else "-"
        t_u = f"{t_uncached:.1f}" if t_uncached else "-"
        u = f"{uncached:.1f}" if uncached else "-"
        print(f"{label:<16} {cached:>15.1f} {u:>17} {t_c:>15} {ratio:>6} {t_u:>17}")
    print("(tokens/s; ratio = minigpt cached / PyTorch cached, above 1 means minigpt is faster)")
    by_shape = {}
    for label, cached, uncached, t_cached, t_uncached in table:
        by_shape.setdefault(label.split(" (")[0], {})[label.split("(")[1].rstrip(")")] = (cached, t_cached)
    rows = [row("generate", f"generate {shape}, KV cache, batch 1, {args.new} tokens", "tok/s",
                backends.get("cpu", (None,))[0], backends.get("numpy", (None,))[0],
                next(iter(backends.values()))[1]) for shape, backends in by_shape.items()]
    write_rows(args.json, rows)

    if args.profile:
        for backend in args.backends:
            profile_decode_step(SHAPES[args.shapes.split(",")[-1]], backend)


if __name__ == "__main__":
    main()

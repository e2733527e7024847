"""Generation against picoGPT (jaymody/picoGPT): the same GPT-2 weights, prompt and greedy tokens, side by side.

usage: python benchmarks/bench_picogpt.py --picogpt PATH/TO/picoGPT/gpt2.py [--shape gpt2] [--prompt-len 10]
                                          [--new 40] [--reps 3] [--backends cpu,numpy] [--wait-quiet 120]

picoGPT is GPT-2's forward pass in about 60 lines of NumPy: every new token runs the whole context
through the model again (no KV cache), one head at a time, with NumPy's BLAS for the products. Its code
is not part of this repository: clone it (or save its gpt2.py) and pass the file's path. The script
loads that file as it is, hands its `gpt2` and `generate` minigpt's weights in picoGPT's parameter
layout (the nested dict its `load_encoder_hparams_and_params` builds from OpenAI's checkpoint: float32
arrays, Linear weights (in, out) as here), checks that both compute the same logits and the same greedy
tokens, then times picoGPT's `generate` beside minigpt's `generate(greedy=True)`:

  picoGPT           its generate (no cache, NumPy)
  minigpt uncached  the same algorithm as picoGPT: the whole context through `forward` for each token
  minigpt cached    the KV cache: the prompt once, then one token per step

Defaults follow picoGPT's README: GPT-2 124M, a 10-token prompt, 40 new tokens. Random weights of
minigpt's seed 0 stand in for OpenAI's (nothing is downloaded; the weights do not change the speed).
picoGPT's causal mask is a float64 array, so from its first attention on it computes in float64 (NumPy
promotes float32 + float64): its logits differ from minigpt's float32 ones by rounding only, which the
agreement line shows. For NumPy's best OpenBLAS kernel run it as
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_picogpt.py --picogpt ...
Each figure is the best of --reps rounds, the engines taking turns within each round. A measurement,
not a test.
"""
import argparse
import importlib.util
import os

import numpy as np

from bench_generate import SHAPES, ForeignLoad, best_tokens_per_s, wait_until_quiet
from minigpt import kernels
from minigpt.generate import generate
from minigpt.model import GPT
from report import print_header


def load_picogpt(path):
    """picoGPT's gpt2.py as a module, from the path the user gave."""
    if not os.path.isfile(path):
        raise SystemExit(f"--picogpt {path}: no such file (clone https://github.com/jaymody/picoGPT and pass "
                         "the path of its gpt2.py)")
    os.environ.setdefault("TQDM_DISABLE", "1")  # its generate draws a progress bar; keep the table readable
    spec = importlib.util.spec_from_file_location("picogpt_gpt2", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name in ("gpt2", "generate"):
        if not hasattr(module, name):
            raise SystemExit(f"--picogpt {path}: the file has no `{name}`; is it picoGPT's gpt2.py?")
    return module


def picogpt_params(model):
    """minigpt's parameters in picoGPT's layout: {wte, wpe, blocks: [{attn, mlp, ln_1, ln_2}], ln_f},
    with w/b for Linear layers and g/b for LayerNorms. Both store Linear weights (in, out), as GPT-2's
    checkpoint does, so the arrays are handed over as they are."""
    p = model.params

    def linear(prefix):
        return {"w": p[f"{prefix}.weight"], "b": p[f"{prefix}.bias"]}

    def norm(prefix):
        return {"g": p[f"{prefix}.weight"], "b": p[f"{prefix}.bias"]}

    blocks = [{"attn": {"c_attn": linear(f"h.{i}.attn.c_attn"), "c_proj": linear(f"h.{i}.attn.c_proj")},
               "mlp": {"c_fc": linear(f"h.{i}.mlp.c_fc"), "c_proj": linear(f"h.{i}.mlp.c_proj")},
               "ln_1": norm(f"h.{i}.ln_1"), "ln_2": norm(f"h.{i}.ln_2")}
              for i in range(model.config.n_layer)]
    return {"wte": p["wte.weight"], "wpe": p["wpe.weight"], "blocks": blocks, "ln_f": norm("ln_f")}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--picogpt", required=True, help="path of picoGPT's gpt2.py")
    parser.add_argument("--shape", default="gpt2", choices=sorted(SHAPES), help="model shape (bench_generate's)")
    parser.add_argument("--prompt-len", type=int, default=10, help="prompt tokens (random, seed 0)")
    parser.add_argument("--new", type=int, default=40, help="new tokens per run (picoGPT's default)")
    parser.add_argument("--reps", type=int, default=3, help="rounds (best is kept)")
    parser.add_argument("--backends", default="cpu,numpy", help="comma-separated minigpt backends")
    parser.add_argument("--wait-quiet", type=float, default=120.0,
                        help="seconds to wait for other processes to go quiet before timing")
    args = parser.parse_args()
    cfg = SHAPES[args.shape]
    if not (1 <= args.prompt_len and args.prompt_len + args.new <= cfg.block_size):
        raise SystemExit(f"--prompt-len must be at least 1, and --prompt-len + --new at most the context, "
                         f"{cfg.block_size}")
    backends = [b for b in args.backends.split(",") if b]
    for backend in backends:
        kernels.check_backend(backend)
    pico = load_picogpt(args.picogpt)
    print_header()
    print(f"NumPy {np.__version__}; shape {args.shape}: {cfg.n_layer} layers, {cfg.n_head} heads, {cfg.n_embd} wide, "
          f"vocab {cfg.vocab_size}; {args.prompt_len}-token prompt, {args.new} new tokens, greedy, batch 1")

    prompt = [int(t) for t in np.random.default_rng(0).integers(0, cfg.vocab_size, args.prompt_len)]
    models = {backend: GPT(cfg, seed=0, backend=backend) for backend in backends}
    params = picogpt_params(models[backends[0]])

    # The same function: logits of the prompt, and the greedy tokens of every engine.
    theirs = pico.gpt2(prompt, **params, n_head=cfg.n_head)
    reference = [int(t) for t in pico.generate(prompt, params, cfg.n_head, args.new)]
    for backend, model in models.items():
        ours, _ = model.forward(np.array([prompt]), train=False)
        diff = float(np.abs(ours[0] - theirs).max())
        same = [list(generate(model, prompt, args.new, greedy=True, use_cache=c)) == reference for c in (True, False)]
        print(f"  {backend}: max |logits - picoGPT's| {diff:.1e} (logits up to {np.abs(theirs).max():.2f}); "
              f"greedy tokens the same as picoGPT's: cached {same[0]}, uncached {same[1]}")
        if not all(same):
            raise SystemExit("the engines disagree: not the same function, nothing to time")

    fns = {"picoGPT": lambda n: pico.generate(prompt, params, cfg.n_head, n)}
    for backend, model in models.items():
        fns[f"minigpt {backend} uncached"] = lambda n, m=model: list(generate(m, prompt, n, greedy=True,
                                                                              use_cache=False))
        fns[f"minigpt {backend} cached"] = lambda n, m=model: list(generate(m, prompt, n, greedy=True))
    if args.wait_quiet > 0:
        wait_until_quiet(args.wait_quiet)
    with ForeignLoad() as load:
        tokens_per_s = best_tokens_per_s(fns, args.new, args.reps)
    print(f"\n{'engine':<24} {'tokens/s':>9} {'vs picoGPT':>11}   (best of {args.reps} rounds; other processes "
          f"kept {load.cores:.2f} cores busy)")
    for name, tps in tokens_per_s.items():
        print(f"{name:<24} {tps:>9.2f} {tps / tokens_per_s['picoGPT']:>10.2f}x")


if __name__ == "__main__":
    main()

"""Fine-tuning step time on the built-in tasks, beside a pre-training step of the same model.

usage: python benchmarks/bench_finetune.py [--checkpoint DIR] [--tasks shakespeare-genre ...] [--backend cpu]

Without --checkpoint, a model of `minigpt pretrain`'s default shape (4 layers, 4 heads, 128 wide,
context 64, characters of Shakespeare) is drawn at random and saved to a temporary folder: the
timing does not depend on the weights. For each task and mode it times the full fine-tuning step
(zero_grad, forward through every sequence of a batch, head, task loss, auxiliary LM loss, backward,
clipping, AdamW) and, taking turns with it in the same process, a pre-training step of the same
GPT on batch x block_size random tokens. It prints medians in ms, the padded tokens each
fine-tuning step runs (a multiple-choice example is one sequence per candidate), and the time per
token relative to pre-training.
"""
import argparse
import statistics
import tempfile
import time

import numpy as np

import minigpt
from minigpt.checkpoint import save_checkpoint
from minigpt.finetune.config import FineTuneConfig
from minigpt.finetune.train import FineTuneRun

TASKS = ("shakespeare-genre", "shakespeare-follows", "shakespeare-same-play", "shakespeare-next-line")


def random_default_checkpoint(folder, backend):
    from minigpt.corpus import load_shakespeare

    tokenizer = minigpt.CharTokenizer.train("\n\n".join(load_shakespeare().values()))
    config = minigpt.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=64, n_layer=4, n_head=4, n_embd=128)
    return save_checkpoint(folder, minigpt.GPT(config, seed=0, backend=backend), 0, tokenizer)


def lm_step_function(gpt, batch_size, backend):
    """A pre-training step of `gpt` on random tokens, with its own optimizer."""
    opt = minigpt.AdamW(gpt, lr=1e-9)
    T, V = gpt.config.block_size, gpt.config.vocab_size
    data = np.random.default_rng(0).integers(0, V, (batch_size, T + 1))

    def step():
        gpt.zero_grad()
        gpt.forward(data[:, :-1], data[:, 1:])
        gpt.backward()
        minigpt.clip_grad_norm(gpt.grads, 1.0)
        opt.step()
    return step


def time_task(checkpoint, task, mode, aux_lm, args):
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task=task, mode=mode, aux_lm=aux_lm, batch=args.batch,
                         backend=args.backend, max_train=args.batch * (args.steps + 2), max_eval=1,
                         out=tempfile.mkdtemp())
    run = FineTuneRun(cfg)
    batches = list(run.epoch_batches())
    lm_step = lm_step_function(run.model.gpt, args.batch, args.backend)
    ft_times, lm_times, tokens = [], [], []
    for i, batch in enumerate(batches):
        t0 = time.perf_counter()
        run.train_step(batch)
        t1 = time.perf_counter()
        lm_step()
        t2 = time.perf_counter()
        if i >= 2:  # the first steps pay one-time costs
            ft_times.append(t1 - t0)
            lm_times.append(t2 - t1)
            tokens.append(batch.idx.size)
    ft, lm = statistics.median(ft_times), statistics.median(lm_times)
    ft_tokens, lm_tokens = statistics.median(tokens), args.batch * run.model.config.block_size
    print(f"{task:<22} {mode:<6} {aux_lm:>4} {ft * 1e3:>9.1f} {ft_tokens:>8.0f} {lm * 1e3:>9.1f} {lm_tokens:>8} "
          f"{(ft / ft_tokens) / (lm / lm_tokens):>10.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", help="a pre-trained checkpoint (default: a random default-shape model)")
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--backend", default="cpu", choices=["numpy", "cpu"])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    checkpoint = args.checkpoint or random_default_checkpoint(tempfile.mkdtemp(), args.backend)
    if args.backend == "cpu":
        print(f"backend cpu: {minigpt.kernels.core_info()}")
    print(f"{'task':<22} {'mode':<6} {'λ':>4} {'ft ms':>9} {'ft tok':>8} {'lm ms':>9} {'lm tok':>8} "
          f"{'per-token ratio':>10}")
    for task in args.tasks:
        for mode, aux_lm in (("full", 0.5), ("full", 0.0), ("frozen", 0.5)):
            time_task(checkpoint, task, mode, aux_lm, args)


if __name__ == "__main__":
    main()

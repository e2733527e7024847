# %% [markdown]
# # 11 · Zero-shot and few-shot: tasks solved by the language model alone
#
# A language model trained only to predict the next token can already do tasks nobody trained it
# for. GPT-1 noticed it during pre-training (Radford et al. 2018, sec. 5: "zero-shot behaviors"
# improving steadily over training); GPT-2 made it the point of the paper (Radford et al. 2019:
# "language models are unsupervised multitask learners", and for translation it already put example
# pairs in the prompt); GPT-3 made **demonstrations** in the prompt, k solved examples before the
# question, its method, measured for every task at k = 0, 1 and many (Brown et al. 2020, "few-shot").
#
# The trick that turns a classifier into a language-model question: write the example as text
# (a **template**), and let each class be a word (a **verbalizer**). The model does not generate an
# answer; we ask it how likely each possible answer is as the continuation, and take the likeliest:
#
#     "the plot was dull. i"  ->  " hated"  or  " loved"?    compare log P(" hated" | prompt), log P(" loved" | prompt)
#
# This tutorial, step by step (the numbers are the Step headers below):
# 1. computes the log-likelihood of a completion by hand and with `minigpt.prompting`, which runs
#    the shared prompt once through the KV cache;
# 2. sees why long answers lose, and how normalising by length fixes it;
# 3-5. writes text in which a sentiment task hides, pre-trains a small model on it briefly, and
#    solves the task zero-shot;
# 6. evaluates that at every checkpoint of the run (GPT-1's figure 2, right);
# 7. adds demonstrations (few-shot) and sees what a 64-character context does to them;
# 8. runs the same from the command line: `minigpt evaluate`;
# 9. measures how well the model predicts a whole held-out text: loss, perplexity, bits per
#    character (GPT-2's zero-shot language modelling), and why the window has to slide;
# 10. lets the model write its answer instead of choosing one (open answers, as in LAMBADA).
#
# It takes well under a minute on two cores. Run it from the repository root after `pip install .`:
#
#     python tutorials/11_zero_and_few_shot.py

# %%
import json
import math
import tempfile
from pathlib import Path

import numpy as np

from minigpt import kernels
from minigpt.checkpoint import list_checkpoints, load_model
from minigpt.cli import main as minigpt_cli
from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.prompting import Template, aggregate, evaluate_task, score_candidates, score_text
from minigpt.tasks import Example, TaskData
from minigpt.train import train
from minigpt.train_config import TrainConfig

try:
    BACKEND = kernels.check_backend("cpu")  # the C++ kernels; raises, saying how to build them, if missing
except RuntimeError as e:
    BACKEND = "numpy"
    print(f"skipping the C++ steps: minigpt._core is not built ({e}); training with the NumPy backend, which is slower")

# %% [markdown]
# ## Step 1 · The likelihood of a completion
#
# For a prompt x and a candidate completion c = c_1 .. c_L (tokens), the chain rule gives
#
#     log P(c | x) = log P(c_1 | x) + log P(c_2 | x, c_1) + ... + log P(c_L | x, c_1 .. c_{L-1})
#
# and every term is one entry of a log-softmax that a single forward pass over x + c computes: the
# logits at the position before c_j predict c_j. We check that on a small random model (its weights
# scaled up, as in tutorial 09, so that the context matters), in float64.

# %%
cfg = GPTConfig(vocab_size=30, block_size=32, n_layer=2, n_head=2, n_embd=32)
toy = GPT(cfg, seed=0, dtype="float64", backend="numpy")
for p in toy.params.values():
    if p.ndim == 2:
        p *= 6.0

prompt = [3, 14, 15, 9, 2]
candidates = [[6], [5, 3, 5], [8, 9, 7, 9]]


def by_hand(model, prompt, candidate):
    """One forward over prompt + candidate; the log-softmax at the positions that predict the candidate."""
    logits = model.forward(np.array([prompt + candidate]), train=False)[0][0]  # (P+L, V)
    logp = logits - logits.max(-1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(-1, keepdims=True))
    return np.array([logp[len(prompt) - 1 + j, t] for j, t in enumerate(candidate)])


library = score_candidates(toy, prompt, candidates)  # one array of token log-probs per candidate
diff = max(float(np.abs(a - by_hand(toy, prompt, c)).max()) for a, c in zip(library, candidates))
print("step 1: log P(candidate | prompt), total over its tokens:")
for c, lp in zip(candidates, library):
    print(f"        {str(c):<14} tokens {np.round(lp, 2)}  total {lp.sum():7.3f}")
print(f"        max |library - by hand| = {diff:.1e}")
print("        you should see three totals, the longer candidates lower, and a difference around 1e-15")
assert diff < 1e-10

# %% [markdown]
# `score_candidates` does not run one forward per candidate. The prompt is the same for all of
# them, so it goes through the model **once**, filling a KV cache (tutorial 09); the candidates then
# start from position P = len(prompt). It copies the prompt's cache rows into a batch, one row per
# candidate, and runs all the candidates in one call, padded at the end to the longest: causal
# attention means no real position reads the padding after it. (Scoring candidates one at a time
# needs no copy at all: a call at position P overwrites the previous candidate's keys and values and
# reads nothing beyond its own positions, so "rolling back" to P is enough.)
#
# For a few-shot prompt of hundreds of tokens and a few short answers this saves almost all the
# work. One limit: the model reads P + L - 1 positions, which must fit in its context (block_size).
# `minigpt.prompting.fewshot.fit_prompt` makes room by dropping demonstrations, then by cutting the
# prompt from the left (its end, which the answer continues, is kept).

# %%
one_by_one = score_candidates(toy, prompt, candidates, use_cache=False)  # a plain forward per candidate
same = max(float(np.abs(a - b).max()) for a, b in zip(library, one_by_one))
print(f"step 1b: cached prompt vs a plain forward per candidate: max difference {same:.1e}")
print("         you should see 0 or about 1e-15")
assert same < 1e-10

# %% [markdown]
# ## Step 2 · Long answers lose: length normalisation
#
# Every token costs probability, so the total log-likelihood favours short answers. Two fixes
# divide the length out: **per token** (the mean log-probability of the candidate's tokens; GPT-3
# "normalize[s] for length" this way on most tasks, sec. 2.4) and **per character** (which does not
# depend on the tokenizer; lm-evaluation-harness calls its accuracy acc_norm). Here a one-token
# answer at -1.0 beats a three-token answer at -0.4 per token on the total, and loses once the
# length is divided out:

# %%
toy_logprobs = [np.array([-1.0]), np.array([-0.4, -0.4, -0.4])]
texts = [" no", " perhaps"]
for rule in ("total", "per_token", "per_char"):
    scores = aggregate(toy_logprobs, texts, rule)
    print(f"step 2: {rule:<9}  scores {np.round(scores, 3)}  picks {texts[int(np.argmax(scores))]!r}")
print("        you should see ' no' win on the total, ' perhaps' per token and per character")
assert aggregate(toy_logprobs, texts, "total").argmax() == 0 and aggregate(toy_logprobs, texts, "per_token").argmax() == 1

# %% [markdown]
# ## Step 3 · Text in which a task hides
#
# GPT-2's argument: web text contains, here and there, the tasks we later ask about (a review and
# its verdict, an article and "TL;DR:" and a summary), so a model that predicts that text well has
# learned the tasks along the way. We build a tiny world where that is true by construction: short
# reviews whose last words depend on the sentiment of an adjective.
#
#     the music was lovely. i loved it.
#     the plot was tedious. what a bore.
#
# To test *generalisation*, the task's evaluation examples use subject-adjective pairs that never
# occur in the pre-training text (two good and two bad adjectives per subject are held out): the
# model must have learned that "tedious" is bad, not memorised "the plot was tedious".

# %%
SUBJECTS = ["the play", "the actor", "the music", "the plot", "the ending", "the scenery", "the singer", "the set",
            "the story", "the dancing", "the lighting", "the chorus"]
GOOD = ["wonderful", "lovely", "brilliant", "moving", "superb", "charming", "delightful", "splendid"]
BAD = ["dreadful", "dull", "awful", "tedious", "clumsy", "boring", "dismal", "painful"]
VERDICTS = ({0: "i hated it.", 1: "i loved it."}, {0: "what a bore.", 1: "what a joy."})

held_out = {(s, adj) for i, s in enumerate(SUBJECTS) for words in (GOOD, BAD) for adj in (words[i % 8], words[(i + 3) % 8])}
seen = [(s, adj, label) for s in SUBJECTS for label, words in ((0, BAD), (1, GOOD)) for adj in words
        if (s, adj) not in held_out]
rng = np.random.default_rng(0)
lines = []
for _ in range(20_000):
    s, adj, label = seen[rng.integers(len(seen))]
    lines.append(f"{s} was {adj}. {VERDICTS[int(rng.random() < 0.3)][label]}")

run_dir = Path(tempfile.mkdtemp(prefix="minigpt-11-"))
(run_dir / "reviews.txt").write_text("\n".join(lines) + "\n")


def review(s, adj, label, source):
    return Example("classification", (f"{s} was {adj}.",), label, source)


task = TaskData("reviews", "classification", ("negative", "positive"), ("accuracy",),
                train=[review(s, adj, label, f"seen:{s}/{adj}") for s, adj, label in seen],
                dev=[review(s, adj, int(adj in GOOD), f"held-out:{s}/{adj}") for s, adj in sorted(held_out)])
print(f"step 3: {len(lines):,} lines of pre-training text, e.g. {lines[0]!r}")
print(f"        task: {len(task.train)} seen pairs (for demonstrations), {len(task.dev)} held-out pairs to evaluate, "
      f"{sum(e.label for e in task.dev)} of them positive")
print("        you should see 20,000 lines, 144 seen and 48 held-out pairs, 24 positive")
assert len(task.dev) == 48 and sum(e.label for e in task.dev) == 24
assert not any(f"{s} was {adj}." in "\n".join(lines[:2000]) for s, adj in held_out)

# %% [markdown]
# ## Step 4 · Pre-train briefly
#
# A character-level GPT, 2 layers, 64 wide, context 64: 106k parameters, 250 steps. The run saves a
# checkpoint every 50 steps and keeps them all (step 6 reads them). Nothing in training knows about
# the task: the loss is the usual next-character cross-entropy.

# %%
train_cfg = TrainConfig(data=str(run_dir / "reviews.txt"), tokenizer="char", val_fraction=0.1,
                        n_layer=2, n_head=2, n_embd=64, block_size=64, batch_size=16,
                        max_iters=250, learning_rate=6e-3, min_lr=6e-4, warmup_iters=20, lr_decay_iters=250,
                        eval_interval=50, eval_iters=2, backend=BACKEND, seed=0, out=str(run_dir / "run"),
                        sample_tokens=0)
run, final = train(train_cfg, progress=False)
model, tok = run.model, run.tokenizer
print(f"step 4: {model.num_params():,} parameters, {final['iters']} steps in {final['wall_s']:.0f} s, "
      f"validation loss {final['val_loss']:.3f} (ln {tok.vocab_size} = {math.log(tok.vocab_size):.2f} at the start)")
print("        you should see about 106,000 parameters, a few seconds on two cores (much longer when other programs")
print("        compete for them), and a loss near 0.25")
assert final["val_loss"] < 0.5

# %% [markdown]
# ## Step 5 · Zero-shot
#
# A `Template` says how an example becomes a prompt (its fields in braces), how an answer follows it
# (`answer`, by default a space and the answer) and which word stands for each class (`verbalizer`,
# in label order). `evaluate_task` scores every candidate of every held-out example and reports the
# metrics, the chance level, and the first prompt it built.
#
# The template has to sound like the pre-training text. "... i" followed by "hated" or "loved" is
# exactly what the model has read; "verdict" followed by "bad" or "good" uses only characters it
# knows, in a pattern it has never seen.

# %%
natural = Template("{text} i", verbalizer=("hated", "loved"), separator="\n")
foreign = Template("{text} verdict", verbalizer=("bad", "good"), separator="\n")
zero = evaluate_task(model, tok, task, natural)
zero_foreign = evaluate_task(model, tok, task, foreign)
print(f"step 5: the first prompt {zero['example_prompt']!r}, candidates {zero['example_candidates']}")
print(f"        zero-shot accuracy, 'i hated / i loved':     {zero['accuracy']:.3f}")
print(f"        zero-shot accuracy, 'verdict bad / good':    {zero_foreign['accuracy']:.3f}")
print(f"        chance: {zero['chance']['uniform_accuracy']:.3f} (a coin), "
      f"{zero['chance']['majority']['accuracy']:.3f} (always the commonest class)")
print("        accuracy by scoring rule: " +
      ", ".join(f"{rule} {m['accuracy']:.3f}" for rule, m in zero['by_scoring'].items()))
print("        you should see about 0.9 with the natural template and 0.5 with the foreign one: the model")
print("        learned the sentiment of adjectives it never saw in these sentences, but only answers in its own words")
assert zero["accuracy"] >= 0.75 and zero["accuracy"] > zero_foreign["accuracy"]

# %% [markdown]
# ## Step 6 · Zero-shot over the course of pre-training (GPT-1, figure 2 right)
#
# Every checkpoint of the run, evaluated the same way. The run saves no checkpoint of step 0, but we
# do not need one: `train` builds its model as `GPT(config, seed=cfg.seed)`, so the same call gives
# the exact weights the run started from. (`experiments/zero_shot_curve.py` does this for any run and
# task, and draws the plot.)

# %%
init = GPT(model.config, seed=train_cfg.seed, backend=BACKEND)
curve = [(0, evaluate_task(init, tok, task, natural)["accuracy"])]
for step, path in list_checkpoints(train_cfg.out):
    curve.append((step, evaluate_task(load_model(path, backend=BACKEND)[0], tok, task, natural)["accuracy"]))
print("step 6:  step  zero-shot accuracy")
for step, acc in curve:
    print(f"        {step:>5}  {acc:.3f}  {'#' * round(40 * acc)}")
print("        you should see 0.5 at step 0 (random weights), rising over training to the value of step 5;")
print("        not smoothly: 48 examples, and a model that learns the adjectives one by one")
assert curve[-1][1] == zero["accuracy"] and curve[-1][1] > curve[0][1]

# %% [markdown]
# ## Step 7 · Few-shot: demonstrations in the prompt
#
# With `shots=k`, every evaluated example gets k solved examples from the training split before it,
# formatted by the same template and joined by its `separator` (GPT-3's recipe; the draw is seeded
# per example, so a run is reproducible). Each demonstration here is about 30 characters, and the
# model reads only 64: with the question and the answer, one demonstration fits at most.
# `evaluate_task` drops demonstrations that do not fit and reports how many it kept (`k_mean`) and
# for how many examples it had to (`k_shrunk`).

# %%
print("step 7:  shots  accuracy   mean k kept   examples where k shrank")
few = {}
for k in (0, 1, 4):
    few[k] = evaluate_task(model, tok, task, natural, shots=k, seed=0)
    print(f"        {k:>5}  {few[k]['accuracy']:.3f}      {few[k]['k_mean']:.2f}          {few[k]['k_shrunk']}")
print(f"        a 1-shot prompt: {few[1]['example_prompt']!r}")
print("        you should see k = 4 shrink for every example, to about one demonstration (and with shots=1, k")
print("        shrink to 0 for a few examples), and accuracies about the zero-shot one")
assert few[4]["k_shrunk"] == len(task.dev) and few[4]["k_mean"] < 2

# %% [markdown]
# Demonstrations did not teach this model anything: they are only more text to continue. GPT-3
# found few-shot gains small for small models and growing with size (its figure 1.3, over eight
# sizes from 125M to 175B parameters); the ability to pick up a task from the prompt ("in-context learning") appears
# with scale and long contexts, neither of which a 100k-parameter model with 64 characters of
# context has. What the machinery above does give at any scale: a fair comparison, with the same
# template, the same candidates and the same scoring for every k.

# %% [markdown]
# ## Step 8 · From the command line
#
# `minigpt evaluate` does the same for a checkpoint and any task that `minigpt finetune` knows: the
# GLUE-style files, RACE, Story Cloze, the built-in Shakespeare tasks, or a folder of JSON Lines
# (`train.jsonl`, `dev.jsonl`). Templates come from `--template` (with `\n` for a newline),
# `--verbalizer`, `--answer`, or a TOML file (`--template-file`); every task has a default. The
# metrics JSON has the fields of `minigpt finetune`'s (`task`, `n_train`, `n_eval`, each metric by
# name) and what prompting adds.

# %%
task_dir = run_dir / "reviews-task"
task_dir.mkdir()
for split, examples in (("train", task.train), ("dev", task.dev)):
    rows = [{"text": e.texts[0], "label": task.labels[e.label]} for e in examples]
    (task_dir / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
metrics_path = run_dir / "zero-shot.json"
code = minigpt_cli(["evaluate", "--checkpoint", train_cfg.out, "--task", "classification", "--data", str(task_dir),
                    "--template", "{text} i", "--verbalizer", "hated,loved", "--metrics-out", str(metrics_path),
                    "--backend", BACKEND, "--no-progress"])
saved = json.loads(metrics_path.read_text())
print(f"step 8: exit code {code}; {metrics_path.name}: task {saved['task']}, n_eval {saved['n_eval']}, "
      f"accuracy {saved['accuracy']:.3f}, step {saved['step']}")
print("        you should see exit code 0 and the accuracy of step 5")
assert code == 0 and saved["accuracy"] == zero["accuracy"]

# %% [markdown]
# ## Step 9 · Zero-shot language modelling: a whole text
#
# GPT-2's first results are not about tasks at all (Radford et al. 2019, sec. 3.1, table 3): the model
# reads corpora it was not trained on, and each token is scored by the probability the model gave it.
# The sum of -log P(token | the tokens before it) over the text, divided by the number of tokens, is
# the loss the trainer prints; e^loss is the **perplexity** (as if the model hesitated among that many
# tokens at every step), and the sum in bits divided by the text's characters is **bits per
# character**, which, unlike the other two, does not depend on the tokenizer.
#
# A text longer than the context is read in windows of block_size tokens. If the windows simply
# followed one another, the first target of each would be predicted from one token (the window's
# first), the next from two, and so on: a context of 32 characters on average here, not 64. So the window **slides** by
# a stride and scores only the tokens no earlier window scored: with stride S, every prediction after
# the first window sees at least 64 - S + 1 characters. `score_text` (and `minigpt perplexity`) does
# that, with the trainer's own loss: the targets already scored are given the ignore index.
#
# The validation split of the run (the last 10% of the text, never trained on), its first 3,000
# characters, at four strides:

# %%
corpus = (run_dir / "reviews.txt").read_text()
held_out_text = corpus[int(len(corpus) * 0.9):][:3000]  # the run's validation split (prepare.split_text)
print("step 9:  stride  windows  loss (nats/token)  perplexity  bits/char")
by_stride = {}
for stride in (64, 32, 8, 1):
    by_stride[stride] = score_text(model, tok, held_out_text, stride=stride)
    r = by_stride[stride]
    print(f"        {stride:>6}  {r['windows']:>7}  {r['loss']:>17.4f}  {r['perplexity']:>10.3f}  {r['bits_per_char']:.4f}")
print(f"        {by_stride[1]['tokens']:,} tokens scored at every stride: each once (the first character is context)")
print("        you should see the loss fall from stride 64 to 32, where no prediction starts from a bare window,")
print("        and then stay within about 0.19-0.22: the reviews are independent lines of about 30 characters,")
print("        so context beyond the current line does not help, and stride 1 scores every token at the last")
print("        position of a window, where this model happens to do a little worse. All near step 4's loss.")
assert by_stride[32]["loss"] < by_stride[64]["loss"] and by_stride[1]["loss"] < by_stride[64]["loss"]
assert len({r["tokens"] for r in by_stride.values()}) == 1

# %% [markdown]
# Per token, those losses are small: the model knows the form of a review by heart, and most of the
# uncertainty left is which adjective comes and how the verdict is phrased. Now the same model on
# text unlike its training text: a sentence made of characters it knows, in words it has never read.
# Bits per character (or per byte) is the yardstick GPT-2 used for text8 (enwik8: per byte); a
# model that guessed uniformly among its characters would need log2 of their number.

# %%
other = "the old dog slept in the sun all day. i loved the dog.\n" * 5
strange = score_text(model, tok, other, stride=32)
print(f"step 9b: {strange['bits_per_char']:.2f} bits per character on {other[:55]!r} x 5, against "
      f"{by_stride[32]['bits_per_char']:.2f} on the held-out reviews; uniform guessing: {math.log2(tok.vocab_size):.2f}")
print("         you should see more bits than uniform guessing for the unfamiliar text: the model is not unsure")
print("         there but confidently wrong, and a confident miss costs many bits")
assert strange["bits_per_char"] > max(2 * by_stride[32]["bits_per_char"], math.log2(tok.vocab_size))

# %%
(run_dir / "held_out.txt").write_text(held_out_text)
code = minigpt_cli(["perplexity", "--checkpoint", train_cfg.out, "--text", str(run_dir / "held_out.txt"),
                    "--backend", BACKEND, "--no-progress", "--metrics-out", str(run_dir / "perplexity.json")])
from_cli = json.loads((run_dir / "perplexity.json").read_text())
print(f"step 9c: minigpt perplexity: exit code {code}, loss {from_cli['loss']:.4f} at its default stride "
      f"{from_cli['stride']} (half the context)")
print("         you should see exit code 0 and the loss of stride 32 above")
assert code == 0 and from_cli["stride"] == 32 and abs(from_cli["loss"] - by_stride[32]["loss"]) < 1e-6

# %% [markdown]
# ## Step 10 · Open answers: the model writes
#
# So far the model chose among answers we gave it. Some tasks have no list to choose from: GPT-2's
# LAMBADA asks for the last word of a passage, GPT-3's question answering for a name or a number.
# Then the model **writes** (greedy decoding, the likeliest token each time), and it is right when
# it writes the answer, and then does not go on with the word ("bore" followed by "d" is "bored",
# not "bore"). That is the `completion` shape: the example is the context, the label the answer.
# Here the held-out reviews, cut before the verdict's last word: "the plot was tedious. what a" ->
# "bore" or "joy". Nothing offers the model those two words.

# %%
open_task = TaskData("verdict", "completion", None, ("accuracy",), train=[],
                     dev=[Example("completion", (f"{s} was {adj}. what a",), "joy" if adj in GOOD else "bore",
                                  f"held-out:{s}/{adj}") for s, adj in sorted(held_out)])
written = evaluate_task(model, tok, open_task, Template("{context}"))
print(f"step 10: the first prompt {written['example_prompt']!r}: the model wrote {written['example_prediction']!r}, "
      f"the answer is {written['example_candidates'][0]!r}")
print(f"         accuracy {written['accuracy']:.3f} on {written['n_eval']} held-out reviews; the answers' perplexity "
      f"{written['answer_perplexity']:.2f} (GPT-2's other LAMBADA number)")
print("         you should see about the zero-shot accuracy of step 5: the same knowledge, now written out")
assert written["accuracy"] >= 0.75

# %% [markdown]
# ## What to take away
#
# - Zero-shot classification is likelihood comparison: a template turns the example into text, a
#   verbalizer turns each class into a word, and the model's log P(word | prompt) decides.
# - The shared prompt runs once; every candidate continues from its KV cache.
# - Total log-likelihood favours short answers; GPT-3 divides by the number of tokens.
# - The skill comes from pre-training text that contains the task, and it grows during
#   pre-training (step 6, GPT-1's observation). The template must speak the model's language.
# - Few-shot needs context room and, to help, scale; `k_mean` and `k_shrunk` say what was really used.
# - Language modelling itself is the first zero-shot test: loss, perplexity and bits per character on
#   a held-out text, read in windows that slide so that every prediction has context.
# - Where there is no list of answers, the model writes one (greedily), and it counts when it writes
#   the answer and stops the word there.
#
# `experiments/prompting_table.py` compares fine-tuning, zero-shot and 1/4/8-shot on the built-in
# Shakespeare tasks for the model of the default pre-training run.

print(f"\nThe run's files are in {run_dir}. Delete the folder when you are done.")

# %% [markdown]
# # 12 · Loading pretrained weights: GPT-2 and GPT-1 from Hugging Face folders
#
# OpenAI released GPT-1 and GPT-2; today their weights live in the Hugging Face format: a folder with
# `config.json` (the shape of the model), `model.safetensors` (the tensors) and the tokenizer's
# `vocab.json` + `merges.txt`. minigpt reads such a folder from disk (it never downloads anything) and
# writes one that the `transformers` library opens. Because minigpt's parameter names follow the
# GPT-2 checkpoint, importing weights is a mapping of names, not a puzzle.
#
# This tutorial makes a tiny model itself, so it runs offline in a second (about ten where PyTorch and
# transformers are installed: step 7 imports them to load our export):
#
# 1. what a Hugging Face folder holds, written by `model.save_pretrained`
# 2. the name mapping, and why no weight needs a transpose
# 3. loading it back with `GPT.from_pretrained`: the same logits, bit for bit
# 4. GPT-1's post-LN block and its GELU, checked against the formulas transformers uses
# 5. GPT-1's tokenizer: lowercased words, BPE with `</w>` word ends, no spaCy or ftfy
# 6. memory: tensors go straight into the model (about one copy, not two)
# 7. transformers opens the folder and computes the same logits (skipped if it is not installed)
# 8. `minigpt convert`, and what a folder with only `pytorch_model.bin` gets
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/12_loading_pretrained_weights.py
#
# With real weights on disk (say a clone of the `gpt2` model repository) the same two lines apply:
# `model = GPT.from_pretrained("gpt2/")` and `tokenizer = tokenizer_from_pretrained("gpt2/")`.

# %%
import json
import math
import os
import tempfile
import tracemalloc
from pathlib import Path

import numpy as np

from minigpt import GPT, GPTConfig
from minigpt.cli import main as minigpt_cli
from minigpt.layers.gelu import gelu_forward
from minigpt.layers.layernorm import layernorm_forward
from minigpt.pretrained import load_hf_model, save_pretrained, tokenizer_from_pretrained
from minigpt.safetensors import load_file
from minigpt.tokenizer import BPETokenizer, OpenAIGPTTokenizer
from minigpt.tokenizer.openai_gpt_bpe import normalize, split_words

WORK = Path(tempfile.mkdtemp(prefix="minigpt-tutorial12-"))


def randomised(model, seed=0):
    """Noise on every parameter (LayerNorm gains and biases too), so that a swapped tensor would show."""
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(0, 0.3, p.shape).astype(p.dtype)
    return model


# %% [markdown]
# ## Step 1 · What a Hugging Face folder holds
#
# A GPT-2-shaped model (pre-LN blocks, final LayerNorm), tiny, with a byte-level BPE trained on one
# sentence repeated four times. `save_pretrained` writes the folder; the tokenizer goes in GPT-2's
# own file format.

# %%
text = "To be, or not to be, that is the question: whether 'tis nobler in the mind to suffer. " * 4
tokenizer = BPETokenizer.train(text, vocab_size=300)
cfg = GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16, arch="gpt2")
gpt2 = randomised(GPT(cfg, seed=0))
folder = gpt2.save_pretrained(WORK / "tiny-gpt2", tokenizer)
files = sorted(p.name for p in folder.iterdir())
config = json.loads((folder / "config.json").read_text())
print(f"step 1: files {files}")
print(f"        config.json: model_type {config['model_type']!r}, n_positions {config['n_positions']}, "
      f"n_embd {config['n_embd']}, activation {config['activation_function']!r}, "
      f"layer_norm_epsilon {config['layer_norm_epsilon']}")
print("        you should see config.json, merges.txt, model.safetensors, tokenizer_config.json, vocab.json")
assert files == ["config.json", "merges.txt", "model.safetensors", "tokenizer_config.json", "vocab.json"]

# %% [markdown]
# ## Step 2 · Names are a mapping
#
# Hugging Face's GPT2LMHeadModel prefixes GPT-2's own names with `transformer.`; OpenAI-GPT calls the
# embeddings `tokens_embed` and `positions_embed`. Both keep the original code's `Conv1D`, whose weight
# is stored (in, out), which is also how minigpt's `Linear` stores it (`out = x @ w + b`). So the arrays
# are copied as they are: no transposes. The output head is the token embedding (weight tying), so
# the file holds no `lm_head.weight` at all.

# %%
tensors = load_file(folder / "model.safetensors")
for ours in ["wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.0.attn.c_attn.weight", "h.0.mlp.c_fc.weight",
             "ln_f.bias"]:
    theirs = "transformer." + ours
    print(f"step 2: {ours:<24} -> {theirs:<36} {tensors[theirs].shape}")
same = all(np.array_equal(tensors["transformer." + k], v) for k, v in gpt2.params.items())
print(f"        every tensor equal to minigpt's array, untransposed: {same}; 'lm_head.weight' in the file: "
      f"{'lm_head.weight' in tensors}")
print("        you should see c_attn (16, 48) = (in, out), True and False")
assert same and "lm_head.weight" not in tensors

# %% [markdown]
# ## Step 3 · Loading it back
#
# `GPT.from_pretrained` reads config.json, checks every field that would change the math (the
# activation, LayerNorm's epsilon, a tied head, ...), builds the model and reads the tensors into it.

# %%
loaded = GPT.from_pretrained(folder)
tok = tokenizer_from_pretrained(folder)
idx = np.array([tok.encode("to be, or not to be")])
a, _ = gpt2.forward(idx, train=False)
b, _ = loaded.forward(idx, train=False)
print(f"step 3: {idx.shape[1]} tokens; max |logit difference| {np.abs(a - b).max()}; "
      f"tokenizer round trip {tok.decode(idx[0])!r}")
print("        you should see 0.0: the same float32 numbers, bit for bit")
assert np.array_equal(a, b) and tok.to_dict() == tokenizer.to_dict()

# %% [markdown]
# ## Step 4 · GPT-1: post-LN, and which GELU
#
# GPT-1 normalises *after* each residual sum and has no final LayerNorm. transformers' OpenAIGPT block
# (modeling_openai.py) reads
#
#     a = attn(x);  n = ln_1(x + a);  m = mlp(n);  h = ln_2(n + m)
#
# minigpt's `arch="gpt1"` block must be exactly that. We rebuild one block from the layer functions
# and compare. Then the activation: OpenAI-GPT's config says `afn: "gelu"`, but transformers maps that
# name, for this model, to `gelu_new`: the tanh approximation GPT-1 was trained with, which is
# minigpt's GELU. The exact erf GELU (what "gelu" means for most other models) differs by up to about
# 5e-4 per activation, enough to drift through 12 layers; a GPT-2 config asking for it is refused.

# %%
gpt1 = randomised(GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8, arch="gpt1")), 1)
x = np.random.default_rng(2).normal(size=(1, 5, 8)).astype(np.float32)
block = gpt1.h[0]
p = gpt1.params


def ln(v, name):
    return layernorm_forward(v, p[f"h.0.{name}.weight"], p[f"h.0.{name}.bias"])[0]


attn = block.attn.forward(x, None, False)
n = ln(x + attn, "ln_1")
m = gelu_forward(n @ p["h.0.mlp.c_fc.weight"] + p["h.0.mlp.c_fc.bias"])[0] @ p["h.0.mlp.c_proj.weight"] \
    + p["h.0.mlp.c_proj.bias"]
h = ln(n + m, "ln_2")
difference = np.abs(h - block.forward(x, None, False)).max()
grid = np.linspace(-6, 6, 2001)
erf_gelu = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in grid])
tanh_gelu = 0.5 * grid * (1 + np.tanh(math.sqrt(2 / math.pi) * (grid + 0.044715 * grid**3)))
print(f"step 4: post-LN block by hand vs minigpt's gpt1 block: max difference {difference:.1e}")
print(f"        minigpt's GELU vs the tanh formula {np.abs(gelu_forward(grid)[0] - tanh_gelu).max():.1e}; "
      f"tanh vs exact erf GELU {np.abs(tanh_gelu - erf_gelu).max():.1e}")
print("        you should see 0 or about 1e-7 (float32 rounding), then about 1e-16, and about 5e-4")
assert difference < 1e-5 and np.abs(gelu_forward(grid)[0] - tanh_gelu).max() < 1e-12

# %% [markdown]
# ## Step 5 · GPT-1's tokenizer
#
# GPT-1's BPE works on lowercased *words*: the last character of a word carries `</w>`, and merges
# build up pieces such as `low` and `er</w>`. OpenAI cleaned text with ftfy and split it with spaCy;
# transformers' tokenizer splits with BERT's basic tokenizer instead (always since version 5; the
# slow tokenizer of 4.x still used ftfy and spaCy where both were installed), and so does minigpt
# (in plain Python): clean controls, space out CJK characters, strip accents, lowercase, split at
# whitespace and at every punctuation character. The parity tests find the ids of transformers 5 on
# varied text. Against the original pipeline it differs where spaCy did (`don't` -> `do n't`
# there, `don ' t` here).

# %%
sentence = "Don't panic: Café Ökonomie, lower & NEWER!"
print(f"step 5: normalize -> {normalize(sentence)!r}")
print(f"        words     -> {split_words(normalize(sentence))}")
letters = "abcdefghijklmnopqrstuvwxyz"
merges = [("l", "o"), ("lo", "w"), ("e", "r</w>"), ("low", "er</w>"), ("n", "e"), ("ne", "w")]
vocab = list(letters) + [c + "</w>" for c in letters + "!&',:"] + [a + b for a, b in merges]
gpt1_tokenizer = OpenAIGPTTokenizer(vocab, merges)
ids = gpt1_tokenizer.encode("lower & NEWER!")
print(f"        'lower & NEWER!' -> {[gpt1_tokenizer.vocab[i] for i in ids]} -> {gpt1_tokenizer.decode(ids)!r}")
print("        you should see accents gone, 'don', \"'\", 't' as three words, and lower</w> as one token;")
print("        decoding joins the lowercased words with spaces: case and the original spacing are not restored")
assert [gpt1_tokenizer.vocab[i] for i in ids][:2] == ["lower</w>", "&</w>"]

# %% [markdown]
# ## Step 6 · Memory: one copy, not two
#
# GPT-2 124M is 498 MB in float32. Reading the whole file into a dict and then copying it into a model
# holds two copies at the peak (1 GB). minigpt instead reads each tensor from the file straight into
# the parameter the model has already allocated (`file.readinto`), so loading costs what building the
# model costs. `tracemalloc` sees every NumPy allocation; a model also allocates its gradients (zeros,
# which the operating system only backs with memory once written), so building one counts twice.
# `benchmarks/pretrained_memory.py` measures the resident memory of a real-size 124M folder.

# %%
big = GPTConfig(vocab_size=8000, block_size=128, n_layer=2, n_head=4, n_embd=128)
big_folder = save_pretrained(GPT(big), WORK / "bigger")
size = (big_folder / "model.safetensors").stat().st_size
tracemalloc.start()
GPT(big)
build = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
model = load_hf_model(big_folder)
load = tracemalloc.get_traced_memory()[1]
tracemalloc.stop()
print(f"step 6: weights {size / 1e6:.1f} MB; peak while building a model {build / size:.2f} x the weights, "
      f"while loading one {load / size:.2f} x")
print("        you should see the same number twice (about 2.1: parameters + gradients): reading adds nothing")
assert load < build + 0.05 * size

# %% [markdown]
# ## Step 7 · transformers opens the folder
#
# If `transformers` and `torch` are installed (`pip install .[parity]`), the folder minigpt wrote loads
# as a `GPT2LMHeadModel` and computes the same logits. (The parity tests also check the other way,
# gradients, and greedy text, for both GPT-2 and GPT-1.)

# %%
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local folder: transformers has nothing to fetch
try:
    import torch
    import transformers
except ImportError as e:
    print(f"step 7: skipped: transformers or torch is not installed ({e}); pip install .[parity]")
else:
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    hf = transformers.AutoModelForCausalLM.from_pretrained(folder).eval()
    with torch.no_grad():
        theirs = hf(torch.from_numpy(idx)).logits.numpy()
    error = np.abs(theirs - a).max() / np.abs(theirs).max()
    print(f"step 7: {type(hf).__name__}; max relative logit difference {error:.1e}")
    print("        you should see GPT2LMHeadModel and about 1e-7")
    assert error < 1e-4

# %% [markdown]
# ## Step 8 · `minigpt convert`, and pickle files
#
# `minigpt convert` turns a Hugging Face folder into a minigpt checkpoint (which `minigpt generate` and
# fine-tuning start from) and a checkpoint back into a folder. Weights saved only as `pytorch_model.bin`
# are a pickle, and loading a pickle can run code, so minigpt refuses it and says how to convert it.

# %%
status = minigpt_cli(["convert", str(folder), str(WORK / "run")])
checkpoint = next((WORK / "run").glob("ckpt-*"))
print(f"step 8: convert exit status {status}; checkpoint files {sorted(p.name for p in checkpoint.iterdir())}")
pickle_only = WORK / "old-format"
pickle_only.mkdir()
(pickle_only / "config.json").write_text((folder / "config.json").read_text())
(pickle_only / "pytorch_model.bin").write_bytes(b"a pickle we will not open")
try:
    GPT.from_pretrained(pickle_only)
    raise AssertionError("expected an error for a pickle-only folder")
except FileNotFoundError as e:
    print(f"        {str(e).splitlines()[0]}")
print("        you should see status 0, checkpoint.json and model.safetensors, and the refusal to read pickle")
assert status == 0
print(f"(the folders of this tutorial are in {WORK}; delete them when done)")

"""Parity with Hugging Face transformers: tiny random GPT-2 and OpenAI-GPT models made offline.

transformers builds each model from a config (nothing is downloaded) and saves it; minigpt loads the
folder and must give the same logits (1e-4 relative, float32), the same greedy continuation, and
the same gradient of the language-model loss as torch autograd for every parameter (1e-3 relative).
The other way round, a folder minigpt writes must load in transformers and give the same logits.

Needs torch and transformers (`pip install .[parity]`); skipped without them.
"""
import os

import numpy as np
import pytest

from conftest import requires_core
from minigpt import GPT, GPTConfig
from minigpt.generate import generate
from minigpt.pretrained import hf_gpt2, hf_openai_gpt

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for the hub
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

V, P, C, L, NH = 61, 16, 24, 2, 3  # vocab, positions, width, layers, heads: small, and nothing a power of two
MODULES = {"gpt2": hf_gpt2, "openai-gpt": hf_openai_gpt}
BACKENDS = ["numpy", pytest.param("cpu", marks=requires_core)]


def make_hf_model(model_type):
    """A random transformers model. Its own init (std 0.02, LayerNorm 1 and 0) gives nearly uniform logits,
    so every parameter gets noise of 0.3 on top: biases and LayerNorm gains then matter, and greedy
    choices are clear-cut rather than decided by rounding."""
    torch.manual_seed(0)
    sizes = dict(vocab_size=V, n_positions=P, n_embd=C, n_layer=L, n_head=NH, embd_pdrop=0.0, attn_pdrop=0.0,
                 resid_pdrop=0.0)
    if model_type == "gpt2":
        model = transformers.GPT2LMHeadModel(transformers.GPT2Config(**sizes, bos_token_id=None, eos_token_id=None))
    else:
        model = transformers.OpenAIGPTLMHeadModel(transformers.OpenAIGPTConfig(**sizes))
    with torch.no_grad():
        for p in model.parameters():  # the tied head is the embedding itself: one parameter, noised once
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.fixture(scope="module", params=["gpt2", "openai-gpt"])
def hf_pair(request, tmp_path_factory):
    """(model_type, transformers model, the folder it saved itself into)."""
    model = make_hf_model(request.param)
    folder = tmp_path_factory.mktemp(request.param)
    model.save_pretrained(folder)
    return request.param, model, folder


def rel_error(ours, theirs):
    return float(np.abs(ours - theirs).max() / np.abs(theirs).max())


def batch(seed, B=3, T=P):
    return np.random.default_rng(seed).integers(0, V, (B, T))


def hf_logits(model, idx):
    with torch.no_grad():
        return model(torch.from_numpy(idx)).logits.numpy()


@pytest.mark.parametrize("backend", BACKENDS)
def test_logits_match_transformers(hf_pair, backend):
    _, hf, folder = hf_pair
    model = GPT.from_pretrained(folder, backend=backend)
    idx = batch(0)
    ours, _ = model.forward(idx, train=False)
    assert rel_error(ours, hf_logits(hf, idx)) < 1e-4


@pytest.mark.parametrize("use_cache", [True, False])
def test_greedy_continuation_matches_transformers(hf_pair, use_cache):
    _, hf, folder = hf_pair
    model = GPT.from_pretrained(folder)
    prompt = [int(t) for t in batch(1, B=1, T=4)[0]]
    ours = list(generate(model, prompt, P - len(prompt), greedy=True, use_cache=use_cache))
    with torch.no_grad():
        out = hf.generate(torch.tensor([prompt]), max_new_tokens=P - len(prompt), do_sample=False, pad_token_id=0)
    assert ours == out[0, len(prompt):].tolist()


def test_gradients_match_torch_autograd(hf_pair):
    model_type, hf, folder = hf_pair
    model = GPT.from_pretrained(folder)
    tokens = batch(2, T=P + 1)
    x, y = tokens[:, :-1], tokens[:, 1:]
    _, loss = model.forward(x, y)
    model.zero_grad()
    model.backward()
    hf.zero_grad()
    logits = hf(torch.from_numpy(x)).logits
    torch_loss = torch.nn.functional.cross_entropy(logits.reshape(-1, V), torch.from_numpy(y).reshape(-1))
    torch_loss.backward()
    assert abs(loss - torch_loss.item()) < 1e-5 * abs(loss)
    theirs = dict(hf.named_parameters())
    to_hf = MODULES[model_type].to_hf_name
    assert len(theirs) == len(model.grads)  # the tied head is not a parameter of its own
    for name, grad in model.grads.items():
        expected = theirs[to_hf(name)].grad.numpy()
        assert rel_error(grad, expected) < 1e-3, name


@pytest.mark.parametrize("arch", ["gpt2", "gpt1"])
def test_exported_folder_loads_in_transformers(tmp_path, arch):
    cfg = GPTConfig(vocab_size=V, block_size=P, n_layer=L, n_head=NH, n_embd=C, arch=arch)
    model = GPT(cfg, seed=5)
    rng = np.random.default_rng(5)
    for p in model.params.values():
        p += rng.normal(0, 0.3, p.shape).astype(np.float32)
    folder = model.save_pretrained(tmp_path / "hf")
    hf, info = transformers.AutoModelForCausalLM.from_pretrained(folder, output_loading_info=True)
    expected_class = {"gpt2": "GPT2LMHeadModel", "gpt1": "OpenAIGPTLMHeadModel"}[arch]
    assert type(hf).__name__ == expected_class
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    idx = batch(3)
    assert rel_error(model.forward(idx, train=False)[0], hf_logits(hf.eval(), idx)) < 1e-4

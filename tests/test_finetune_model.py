"""The model side of fine-tuning: GPT.forward_hidden / backward_hidden, new embedding rows, frozen
mode leaving every pre-trained weight untouched, transferring the first n layers, and the C++
backend against the NumPy reference."""
import numpy as np
import pytest

import minigpt
from conftest import assert_gradient_matches, requires_core
from minigpt.finetune import keep_first_layers, trainable_parameters
from minigpt.finetune.modes import ParameterSet
from minigpt.flat import FlatParameters
from minigpt.model import collect_parameters
from test_finetune_gradcheck import tiny_task_model


def tiny_gpt(arch="gpt2", dtype="float64", backend="numpy", seed=0):
    config = minigpt.GPTConfig(vocab_size=11, block_size=8, n_layer=3, n_head=2, n_embd=8, arch=arch)
    return minigpt.GPT(config, seed=seed, dtype=dtype, backend=backend)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_forward_hidden_is_the_state_the_tied_head_reads(arch):
    model = tiny_gpt(arch)
    idx = np.random.default_rng(0).integers(0, 11, (2, 6))
    logits, _ = model.forward(idx, train=False)
    h = model.forward_hidden(idx, train=False)  # (B, T, C)
    assert h.shape == (2, 6, 8)
    assert np.allclose(logits, h @ model.params["wte.weight"].T, rtol=1e-12, atol=1e-12)
    if arch == "gpt2":  # after the final LayerNorm: zero mean over the features (its gain 1, bias 0 at init)
        assert np.allclose(h.mean(axis=-1), 0, atol=1e-12)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_backward_hidden_matches_finite_differences(arch):
    model = tiny_gpt(arch)
    rng = np.random.default_rng(2)
    idx, dh = rng.integers(0, 11, (2, 5)), rng.standard_normal((2, 5, 8))
    model.forward_hidden(idx)
    model.zero_grad()
    model.backward_hidden(dh)
    for name in ("wte.weight", "wpe.weight", "h.0.attn.c_attn.weight", "h.2.mlp.c_fc.bias"):
        forward = lambda: model.forward_hidden(idx)  # noqa: E731
        assert_gradient_matches(model.grads[name], forward, model.params[name], dh, 1e-7, name)


def test_new_token_rows_keep_the_old_ones_and_are_scored_by_the_head():
    model = tiny_gpt()
    before = {name: p.copy() for name, p in model.params.items()}
    assert model.add_token_embeddings(3, seed=5) == [11, 12, 13]
    wte = model.params["wte.weight"]
    assert wte.shape == (14, 8) and model.grads["wte.weight"].shape == (14, 8)
    assert model.config.vocab_size == 14 and model.wte.params["weight"] is wte
    assert np.array_equal(wte[:11], before["wte.weight"])  # bit for bit
    assert all(np.array_equal(model.params[n], before[n]) for n in before if n != "wte.weight")
    again = tiny_gpt()
    again.add_token_embeddings(3, seed=5)
    assert np.array_equal(again.params["wte.weight"], wte)  # seeded
    big = tiny_gpt()
    big.add_token_embeddings(20000, seed=5)
    assert abs(big.params["wte.weight"][11:].std() - 0.02) < 0.0005  # GPT-2's init
    logits, loss = model.forward(np.array([[1, 12, 13]]), np.array([[12, 13, 11]]))
    assert logits.shape == (1, 3, 14) and np.isfinite(loss)  # the new ids are inputs and targets now
    model.zero_grad()
    model.backward()
    assert np.abs(model.grads["wte.weight"][11:]).sum() > 0
    for bad in (0, -1, 1.5, True):
        with pytest.raises(ValueError, match="positive integer"):
            model.add_token_embeddings(bad)


def test_the_task_tokens_rows_follow_the_seed_and_the_head_its_defaults():
    from minigpt.finetune import TaskModel
    from minigpt.finetune.tokens import add_task_tokens
    from minigpt.tokenizer import CharTokenizer
    rows = {}
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        gpt = tiny_gpt()
        tokens = add_task_tokens(gpt, CharTokenizer.train("abcdefghijk"), seed=seed)
        rows[name] = gpt.params["wte.weight"][tokens.first_new_id:]  # start, delimiter, extract
    assert rows["a"].shape == (3, 8) and np.array_equal(rows["a"], rows["b"]) and not np.allclose(rows["a"], rows["c"])
    assert TaskModel(tiny_gpt(), "classification", 2).aux_lm == 0.5  # the paper's λ
    with pytest.raises(ValueError, match="a regression head has one output and is for similarity"):
        TaskModel(tiny_gpt(), "classification", 1, regression=True)


def test_new_token_rows_join_the_flat_buffer_of_a_gpu_model():
    model = tiny_gpt()  # the GPU layout (minigpt/flat.py), built here over NumPy arrays
    model.flat = FlatParameters(model.sublayers())
    model.params, model.grads = collect_parameters(model.sublayers())
    old_rows = model.params["wte.weight"].copy()
    model.add_token_embeddings(2)
    assert model.flat.holds(model.params, model.grads)  # zero_grad, clipping and AdamW keep their one-buffer path
    assert np.array_equal(model.params["wte.weight"][:11], old_rows)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
@pytest.mark.parametrize("kind", ["classification", "multiple-choice"])
def test_frozen_mode_leaves_every_pretrained_weight_untouched(backend, kind):
    model, batch = tiny_task_model("gpt2", kind, dtype="float32", backend=backend)
    before = {name: p.copy() for name, p in model.params.items()}
    trainable = trainable_parameters(model, "frozen")
    opt = minigpt.AdamW(trainable, lr=1e-2, weight_decay=0.01)
    for _ in range(3):
        model.zero_grad()
        model.forward(batch)
        model.backward()
        minigpt.clip_grad_norm(trainable.grads, 1.0)
        opt.step()
    first = model.first_new_id
    for name, p in model.params.items():
        if name == "wte.weight":
            assert np.array_equal(p[:first], before[name][:first])  # the pre-trained rows, bit for bit
            assert not np.array_equal(p[first:], before[name][first:])  # the new rows train
        elif name.startswith("head."):
            assert not np.array_equal(p, before[name]), name
        else:
            assert np.array_equal(p, before[name]), name
    full = trainable_parameters(model, "full")
    assert set(full.params) == set(model.params)
    with pytest.raises(ValueError, match="unknown fine-tuning mode"):
        trainable_parameters(model, "partial")


def test_frozen_mode_needs_new_rows():
    model, _ = tiny_task_model("gpt2", "classification")
    model.first_new_id = model.config.vocab_size
    with pytest.raises(ValueError, match="no new token rows|has none"):
        trainable_parameters(model, "frozen")
    assert isinstance(trainable_parameters(model, "full"), ParameterSet)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("n_keep", [0, 2, 3])
def test_transferring_the_first_n_layers(arch, n_keep):
    pretrained = tiny_gpt(arch, seed=0)
    for p in pretrained.params.values():
        p += 1.0  # unlike any fresh init
    before = {name: p.copy() for name, p in pretrained.params.items()}
    keep_first_layers(pretrained, n_keep, seed=7)
    fresh = tiny_gpt(arch, seed=7)
    for name, p in pretrained.params.items():
        kept = name.startswith(("wte.", "wpe.")) or any(name.startswith(f"h.{i}.") for i in range(n_keep)) \
            or (name.startswith("ln_f.") and n_keep == 3)
        assert np.array_equal(p, before[name] if kept else fresh.params[name]), name
    for bad in (-1, 4, 1.0):
        with pytest.raises(ValueError, match="transfer_layers"):
            keep_first_layers(pretrained, bad)


@requires_core
@pytest.mark.parametrize("kind", ["similarity", "multiple-choice", "regression"])
def test_cpu_backend_matches_numpy_over_adamw_steps(kind):
    losses = {}
    for backend in ("numpy", "cpu"):
        model, batch = tiny_task_model("gpt1", kind, dropout=0.0, dtype="float32", backend=backend)
        opt = minigpt.AdamW(trainable_parameters(model, "full"), lr=3e-3)
        losses[backend] = []
        for _ in range(5):
            model.zero_grad()
            _, out = model.forward(batch)
            model.backward()
            opt.step()
            losses[backend].append(out["loss"])
    assert losses["cpu"][-1] < losses["cpu"][0]
    assert np.allclose(losses["cpu"], losses["numpy"], rtol=1e-4)

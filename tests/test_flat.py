"""FlatParameters (minigpt/flat.py): one buffer for every parameter and one for every gradient.

GPT(backend="cuda") keeps its parameters this way; here the same code runs on NumPy arrays, so the
bookkeeping is checked without a GPU: the layers hold views with the old values, the decayed weights
come first, slices are aligned, and training (zero_grad, clipping, AdamW) gives the same numbers as
separate arrays. A dict that no longer holds the views makes every step take the per-array path.
"""
import numpy as np
import pytest

import minigpt
from minigpt.checkpoint import load_optimizer_state, load_weights, save_checkpoint
from minigpt.flat import ALIGN, FlatParameters
from minigpt.model import collect_parameters
from minigpt.optim import AdamW, clip_grad_norm
from minigpt.safetensors import load_file


def config():
    return minigpt.GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=12)


def flattened(model):
    """What GPT.__init__ does for backend="cuda", on a NumPy model."""
    model.flat = FlatParameters(model.sublayers())
    model.params, model.grads = collect_parameters(model.sublayers())
    return model


def batch(seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 11, (3, 8)), rng.integers(0, 11, (3, 8))


def test_layers_hold_views_with_the_same_values():
    plain, flat = minigpt.GPT(config(), seed=1), flattened(minigpt.GPT(config(), seed=1))
    f = flat.flat
    assert f.holds(flat.params, flat.grads)
    for name, p in plain.params.items():
        view = flat.params[name]
        assert np.array_equal(view, p) and np.shares_memory(view, f.params), name
        assert np.shares_memory(flat.grads[name], f.grads), name
        start, shape = f.slices[name]
        assert start % ALIGN == 0 and shape == p.shape
        assert (start < f.n_decay) == (p.ndim >= 2), name  # decayed weights first
    assert flat.h[0].mlp.c_fc.params["weight"] is flat.params["h.0.mlp.c_fc.weight"]  # the layer's own array
    used = sum(p.size for p in plain.params.values())
    assert f.params.size >= used and np.count_nonzero(f.params) == np.count_nonzero(np.concatenate(
        [p.ravel() for p in plain.params.values()]))  # padding is zero


def train_steps(model, steps=3):
    opt = AdamW(model, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
    norms = []
    for step in range(steps):
        model.zero_grad()
        model.forward(*batch(step))
        model.backward()
        norms.append(clip_grad_norm(model.grads, 0.5, flat=getattr(model, "flat", None)))
        opt.step()
    return opt, norms


def test_training_matches_separate_arrays():
    plain, flat = minigpt.GPT(config(), seed=2), flattened(minigpt.GPT(config(), seed=2))
    opt, norms = train_steps(flat)
    assert opt.flat is flat.flat and np.shares_memory(opt.m["wte.weight"], opt.flat_m)  # the two-launch path
    _, ref_norms = train_steps(plain)
    np.testing.assert_allclose(norms, ref_norms, rtol=1e-5)
    assert ref_norms[0] > 0.5  # the clipping did act
    for name, p in plain.params.items():
        np.testing.assert_allclose(flat.params[name], p, rtol=1e-5, atol=1e-7, err_msg=name)


def test_a_replaced_array_takes_the_per_array_path():
    model = flattened(minigpt.GPT(config(), seed=3))
    opt = AdamW(model, lr=1e-2)
    model.params["ln_f.bias"] = model.params["ln_f.bias"].copy()  # no longer a view of the buffer
    assert not model.flat.holds(model.params)
    model.zero_grad()
    model.forward(*batch(0))
    model.backward()
    before = model.params["ln_f.bias"].copy()
    opt.step()
    assert not np.array_equal(model.params["ln_f.bias"], before)  # updated through its own entry


def test_optimizer_of_a_changed_model_keeps_separate_moments():
    model = flattened(minigpt.GPT(config(), seed=3))
    model.grads["ln_f.bias"] = model.grads["ln_f.bias"].copy()
    assert AdamW(model).flat is None


def test_checkpoint_round_trip_keeps_the_views(tmp_path):
    model = flattened(minigpt.GPT(config(), seed=4))
    opt, _ = train_steps(model, steps=2)
    path = save_checkpoint(tmp_path, model, 2, optimizer=opt, extra={})
    other = flattened(minigpt.GPT(config(), seed=5))
    other_opt = AdamW(other, lr=1e-2)
    load_weights(other, load_file(path / "model.safetensors"))
    load_optimizer_state(other_opt, path, {"optimizer": {"t": 2}})
    assert other.flat.holds(other.params, other.grads)  # loaded in place, into the buffer
    np.testing.assert_array_equal(other.flat.params, model.flat.params)
    np.testing.assert_array_equal(other_opt.flat_v, opt.flat_v)


def test_mixed_dtypes_are_refused():
    model = minigpt.GPT(config(), seed=0)
    model.ln_f.params["bias"] = model.ln_f.params["bias"].astype(np.float64)
    with pytest.raises(ValueError, match="mix dtypes"):
        FlatParameters(model.sublayers())

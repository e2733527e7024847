"""The whole GPT: names, causality, a float64 gradient check of every parameter for both
architectures, overfitting one batch on both backends, and clear errors for bad input."""
import numpy as np
import pytest

import minigpt
from conftest import assert_gradient_matches, requires_core


def tiny_config(arch, dropout=0.0, **kw):
    fields = dict(vocab_size=11, block_size=6, n_layer=2, n_head=2, n_embd=8, dropout=dropout, arch=arch)
    return minigpt.GPTConfig(**{**fields, **kw})


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_parameter_names_follow_gpt2(arch):
    model = minigpt.GPT(tiny_config(arch))
    names = set(model.params)
    assert {"wte.weight", "wpe.weight", "h.0.ln_1.weight", "h.1.attn.c_attn.weight", "h.1.attn.c_proj.bias",
            "h.0.mlp.c_fc.weight", "h.0.mlp.c_proj.weight", "h.1.ln_2.bias"} <= names
    assert ("ln_f.weight" in names) == (arch == "gpt2")  # GPT-1 has no final LayerNorm
    assert names == set(model.grads)
    assert model.params["h.0.attn.c_attn.weight"].shape == (8, 24)  # (in, out), as in the GPT-2 checkpoint


def test_init_scales_residual_projections():
    cfg = minigpt.GPTConfig(vocab_size=50, block_size=8, n_layer=8, n_head=4, n_embd=256)
    model = minigpt.GPT(cfg, seed=0)
    assert abs(model.params["h.0.mlp.c_fc.weight"].std() - 0.02) < 0.001
    assert abs(model.params["h.0.mlp.c_proj.weight"].std() - 0.02 / np.sqrt(16)) < 0.0005
    assert np.all(model.params["h.0.attn.c_attn.bias"] == 0)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_logits_never_depend_on_future_tokens(arch):
    model = minigpt.GPT(tiny_config(arch), dtype="float64")
    idx = np.array([[1, 2, 3, 4, 5, 6]])
    before, _ = model.forward(idx, train=False)
    idx[0, 3:] = [9, 9, 9]
    after, _ = model.forward(idx, train=False)
    assert np.allclose(before[0, :3], after[0, :3]) and not np.allclose(before[0, 3:], after[0, 3:])


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_every_gradient_matches_finite_differences(arch, dropout):
    model = minigpt.GPT(tiny_config(arch, dropout), seed=0, dtype="float64")
    rng = np.random.default_rng(1)
    for p in model.params.values():  # move away from the symmetric init so every path carries signal
        p += rng.standard_normal(p.shape) * 0.3
    idx, targets = rng.integers(0, 11, (2, 5)), rng.integers(0, 11, (2, 5))
    targets[0, 1] = -1  # a padded position
    state = model.dropout_rng.bit_generator.state

    def loss():
        model.dropout_rng.bit_generator.state = state  # the same dropout masks on every call
        return model.forward(idx, targets)[1]

    loss()
    model.zero_grad()
    model.backward()
    for name, p in model.params.items():
        assert_gradient_matches(model.grads[name], loss, p, 1.0, 1e-7, name)


def test_float32_and_float64_agree_over_adamw_steps():
    losses = {}
    for dtype in ("float32", "float64"):
        model = minigpt.GPT(tiny_config("gpt2", block_size=16, n_embd=16), seed=3, dtype=dtype)
        opt = minigpt.AdamW(model, lr=1e-2, betas=(0.9, 0.95), weight_decay=0.1)
        idx = np.random.default_rng(0).integers(0, 11, (4, 16))
        losses[dtype] = []
        for _ in range(5):
            _, loss = model.forward(idx[:, :-1], idx[:, 1:])
            model.zero_grad()
            model.backward()
            opt.step()
            losses[dtype].append(loss)
    assert np.allclose(losses["float32"], losses["float64"], rtol=1e-4)
    assert np.isclose(losses["float64"][0], np.log(11), rtol=0.01)  # near uniform at init
    assert losses["float64"][-1] < losses["float64"][0]


def overfit_one_batch(arch, backend, steps=150):
    cfg = minigpt.GPTConfig(vocab_size=65, block_size=32, n_layer=2, n_head=4, n_embd=64, dropout=0.0, arch=arch)
    model = minigpt.GPT(cfg, seed=0, dtype="float32", backend=backend)
    opt = minigpt.AdamW(model, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.0)
    batch = np.random.default_rng(0).integers(0, 65, (4, 33))
    losses = []
    for _ in range(steps):
        _, loss = model.forward(batch[:, :-1], batch[:, 1:])
        model.zero_grad()
        model.backward()
        opt.step()
        losses.append(loss)
    return np.array(losses)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_two_layer_model_overfits_one_batch_numpy(arch):
    assert overfit_one_batch(arch, "numpy")[-1] < 0.05


@requires_core
@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_cpu_backend_overfits_with_the_same_losses(arch):
    numpy_losses, cpu_losses = overfit_one_batch(arch, "numpy"), overfit_one_batch(arch, "cpu")
    assert cpu_losses[-1] < 0.05
    # float32 round-off compounds over 150 optimizer steps; the early steps must agree tightly
    assert np.allclose(cpu_losses[:20], numpy_losses[:20], rtol=1e-3)
    assert np.allclose(cpu_losses, numpy_losses, rtol=0.1, atol=0.01)


@pytest.mark.parametrize("idx, error, message", [
    (np.array([[1.0, 2.0]]), TypeError, "integer"),
    (np.array([1, 2]), ValueError, r"\(B, T\)"),
    (np.array([[1, 11]]), ValueError, "outside"),
    (np.array([[-1, 2]]), ValueError, "outside"),
    (np.zeros((1, 7), dtype=int), ValueError, "block_size"),
    (np.zeros((1, 0), dtype=int), ValueError, r"shape \(1, 0\): the batch \(B\) and the sequence \(T\) must be non"),
    (np.zeros((0, 4), dtype=int), ValueError, r"shape \(0, 4\): the batch \(B\) and the sequence \(T\) must be non"),
])
def test_bad_tokens_are_clear_errors(idx, error, message):
    with pytest.raises(error, match=message):
        minigpt.GPT(tiny_config("gpt2")).forward(idx)


def test_bad_targets_and_call_order():
    model = minigpt.GPT(tiny_config("gpt2"))
    with pytest.raises(ValueError, match="targets shape"):
        model.forward(np.array([[1, 2]]), np.array([[1, 2, 3]]))
    model.forward(np.array([[1, 2]]))
    with pytest.raises(RuntimeError, match="needs a forward"):
        model.backward()


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="unknown backend"):
        minigpt.GPT(tiny_config("gpt2"), backend="tpu")
    with pytest.raises(ValueError, match="dtype"):
        minigpt.GPT(tiny_config("gpt2"), dtype="float16")
    with pytest.raises(ValueError, match="divisible"):
        minigpt.GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=3, n_embd=8)


@requires_core
def test_cpu_backend_refuses_float64():
    with pytest.raises(ValueError, match="float32"):
        minigpt.GPT(tiny_config("gpt2"), dtype="float64", backend="cpu")


def test_missing_extension_error_says_how_to_build(monkeypatch):
    monkeypatch.setattr(minigpt.kernels.backend, "_core", None)
    with pytest.raises(RuntimeError, match="pip install"):
        minigpt.GPT(tiny_config("gpt2"), backend="cpu")


def test_missing_extension_error_names_a_source_folder_that_hides_the_installed_package(monkeypatch, tmp_path):
    # `python -m ...` in a repository root imports its minigpt/ folder, which `pip install .` did not build into
    fake = tmp_path / "minigpt" / "kernels" / "backend.py"
    fake.parent.mkdir(parents=True)
    monkeypatch.setattr(minigpt.kernels.backend, "_core", None)
    monkeypatch.setattr(minigpt.kernels.backend, "_CORE_IMPORT_ERROR", ImportError(
        "cannot import name '_core' from partially initialized module 'minigpt'"))
    monkeypatch.setattr(minigpt.kernels.backend, "__file__", str(fake))
    with pytest.raises(RuntimeError) as plain:
        minigpt.GPT(tiny_config("gpt2"), backend="cpu")
    assert "source folder" not in str(plain.value)  # an installed package's folder: no such note
    (tmp_path / "CMakeLists.txt").write_text("")
    (tmp_path / "csrc").mkdir()
    with pytest.raises(RuntimeError, match=rf"imported from the source folder {tmp_path / 'minigpt'}, which holds "
                                           r"no build: .* run from another folder"):
        minigpt.GPT(tiny_config("gpt2"), backend="cpu")
    # an editable install's _core that fails to load (a missing libgomp, say) is another matter
    monkeypatch.setattr(minigpt.kernels.backend, "_CORE_IMPORT_ERROR", ImportError("libgomp.so.1: cannot open"))
    with pytest.raises(RuntimeError) as other:
        minigpt.GPT(tiny_config("gpt2"), backend="cpu")
    assert "libgomp" in str(other.value) and "source folder" not in str(other.value)

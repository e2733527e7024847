"""The whole GPT on the GPU (backend="cuda") against the same model on the host.

The same GPT, layers and AdamW run on CuPy arrays: parameters, gradients and optimizer moments
live on the device, the batch is copied in and the loss comes out as a float. One training step
matches backend="numpy" in float32 (loss, logits, every gradient, every updated parameter), and
50 steps of training track the CPU run.

Skipped where backend="cuda" cannot run (no minigpt._cuda, no CuPy, or no GPU); with
MINIGPT_REQUIRE_CUDA=1 (the GPU check script sets it) that is an error instead.
"""

import numpy as np
import pytest
from conftest import HOST_BACKEND, counts_host_reads, cupy_or_skip_module, host_reads_of

import minigpt
from minigpt import kernels

cupy = cupy_or_skip_module()


def config(arch="gpt2", dropout=0.0, **kw):
    fields = dict(vocab_size=65, block_size=32, n_layer=3, n_head=4, n_embd=64, dropout=dropout, arch=arch)
    return minigpt.GPTConfig(**{**fields, **kw})


def batches(cfg, n, B=8, seed=0):
    """n batches of (idx, targets), (B, block_size) each; the next token is a fixed shuffle of the current one."""
    rng = np.random.default_rng(seed)
    successor = rng.permutation(cfg.vocab_size)
    idx = [rng.integers(0, cfg.vocab_size, (B, cfg.block_size)) for _ in range(n)]
    return [(x, successor[x]) for x in idx]


def rel(got, ref):
    got, ref = cupy.asnumpy(got).astype(np.float64), np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def test_parameters_gradients_and_moments_live_on_the_gpu():
    model = minigpt.GPT(config(), seed=0, backend="cuda")
    opt = minigpt.AdamW(model)
    for name in model.params:
        assert isinstance(model.params[name], cupy.ndarray), name
        assert isinstance(model.grads[name], cupy.ndarray), name
        assert isinstance(opt.m[name], cupy.ndarray) and isinstance(opt.v[name], cupy.ndarray), name
    host = minigpt.GPT(config(), seed=0, backend="numpy")
    for name, p in host.params.items():  # the same seeded initialisation, copied to the device
        assert np.array_equal(cupy.asnumpy(model.params[name]), p), name


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_one_training_step_matches_numpy(arch):
    cfg = config(arch)
    (idx, targets), = batches(cfg, 1)
    targets[0, :5] = -1  # padded positions count for nothing, on both backends
    models = {be: minigpt.GPT(cfg, seed=3, backend=be) for be in ("numpy", "cuda")}
    results = {}
    for be, model in models.items():
        opt = minigpt.AdamW(model, lr=1e-2, weight_decay=0.1)
        model.zero_grad()
        logits, loss = model.forward(idx, targets)
        model.backward()
        grads = {name: g.copy() for name, g in model.grads.items()}
        opt.step()
        results[be] = logits, loss, grads, model.params
    logits, loss, grads, params = results["cuda"]
    ref_logits, ref_loss, ref_grads, ref_params = results["numpy"]
    assert isinstance(loss, float) and isinstance(logits, cupy.ndarray)
    assert abs(loss - ref_loss) < 1e-5 * abs(ref_loss)
    assert rel(logits, ref_logits) < 1e-5
    for name, ref in ref_grads.items():
        assert rel(grads[name], ref) < 1e-4, name
        # Adam's first step is about lr * sign(g), even for a gradient of pure rounding noise (the keys'
        # bias: softmax ignores a shift common to a row), so compare where the gradient is real, to 1e-3 of a step
        live = np.abs(ref) > 1e-4 * np.abs(ref).max()
        np.testing.assert_allclose(cupy.asnumpy(params[name])[live], ref_params[name][live], rtol=1e-4, atol=1e-5,
                                   err_msg=name)


def test_fifty_steps_track_the_cpu_run():
    cfg = config()
    data = batches(cfg, 4, B=8, seed=1)
    curves = {}
    for be in (HOST_BACKEND, "cuda"):
        model = minigpt.GPT(cfg, seed=0, backend=be)
        opt = minigpt.AdamW(model, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)
        losses = []
        for step in range(50):
            idx, targets = data[step % len(data)]
            model.zero_grad()
            losses.append(model.forward(idx, targets)[1])
            model.backward()
            minigpt.clip_grad_norm(model.grads, 1.0)
            opt.step(lr=minigpt.cosine_lr(step, 3e-3, 3e-4, 5, 50))
        curves[be] = np.array(losses)
    gpu, cpu = curves["cuda"], curves[HOST_BACKEND]
    assert gpu[-1] < gpu[0] - 1.0  # it learns: the 4 batches are memorised
    assert np.max(np.abs(gpu - cpu)) < 2e-3 * np.max(cpu), f"cuda {gpu[::10]} vs {HOST_BACKEND} {cpu[::10]}"


def test_dropout_config_evaluates_like_numpy_and_trains():
    cfg = config(dropout=0.2)
    (idx, targets), = batches(cfg, 1)
    gpu, host = minigpt.GPT(cfg, seed=5, backend="cuda"), minigpt.GPT(cfg, seed=5, backend="numpy")
    logits, loss = gpu.forward(idx, targets, train=False)  # no dropout in evaluation
    ref_logits, ref_loss = host.forward(idx, targets, train=False)
    assert rel(logits, ref_logits) < 1e-5 and abs(loss - ref_loss) < 1e-5 * ref_loss
    _, train_loss = gpu.forward(idx, targets, train=True)  # residual masks made on the GPU, attention's by hash
    gpu.backward()
    assert np.isfinite(train_loss) and train_loss != loss
    assert all(bool(cupy.isfinite(g).all()) for g in gpu.grads.values())


def test_kv_cache_forward_matches_the_full_forward():
    cfg = config()
    model = minigpt.GPT(cfg, seed=2, backend="cuda")
    idx = np.random.default_rng(0).integers(0, cfg.vocab_size, (2, 12))
    full, _ = model.forward(idx, train=False)
    cache = model.new_kv_cache(2)
    assert isinstance(cache[0][0], cupy.ndarray)
    first = model.forward_cached(idx[:, :8], cache, 0)
    steps = [model.forward_cached(idx[:, t:t + 1], cache, t) for t in range(8, 12)]
    got = cupy.concatenate([first] + steps, axis=1)
    assert rel(got, cupy.asnumpy(full)) < 1e-5


def test_clip_grad_norm_on_the_gpu_matches_numpy():
    rng = np.random.default_rng(0)
    grads = {f"g{i}": rng.standard_normal(s).astype(np.float32) for i, s in enumerate([(3, 4), (7,), (2, 2, 2)])}
    on_gpu = {name: cupy.asarray(g) for name, g in grads.items()}
    norm, gpu_norm = minigpt.clip_grad_norm(grads, 0.5), minigpt.clip_grad_norm(on_gpu, 0.5)
    assert isinstance(gpu_norm, float) and abs(gpu_norm - norm) < 1e-6 * norm
    for name in grads:
        assert rel(on_gpu[name], grads[name]) < 1e-6


@counts_host_reads
def test_a_training_step_reads_two_numbers_from_the_gpu():
    # the loss and the gradient norm; the batch's ids and targets are checked on the host
    cfg = config(dropout=0.1)
    model = minigpt.GPT(cfg, seed=0, backend="cuda")
    opt = minigpt.AdamW(model, lr=1e-3)
    idx, targets = batches(cfg, 1)[0]

    def step():
        model.zero_grad()
        model.forward(idx, targets)
        model.backward()
        minigpt.clip_grad_norm(model.grads, 1.0, flat=model.flat)
        opt.step()
    assert host_reads_of(step) == 2


def test_ids_and_targets_are_checked_on_the_host_or_on_the_gpu():
    from minigpt.layers import cross_entropy_forward, embedding_forward
    w = cupy.asarray(np.arange(10, dtype=np.float32).reshape(5, 2))
    for ids in (np.array([1, 5]), cupy.asarray([1, 5])):
        with pytest.raises(ValueError, match="index 5 out of range for a table of 5 rows"):
            embedding_forward(ids, w, backend="cuda")
    host_out, (host_ids, _, _) = embedding_forward(np.array([4, 0, 4]), w, backend="cuda")
    assert isinstance(host_ids, cupy.ndarray)  # copied in once, for the backward too
    assert cupy.array_equal(host_out, embedding_forward(cupy.asarray([4, 0, 4]), w, backend="cuda")[0])
    for ids in (np.array([[4, 0], [4, 1]], dtype=np.int32).T, cupy.asarray([[4, 0], [4, 1]], dtype=cupy.int32).T):
        out, _ = embedding_forward(ids, w, backend="cuda")  # any integer type and layout, as on the host
        assert cupy.array_equal(out, w[cupy.asarray([[4, 4], [0, 1]])])
    z = cupy.asarray(np.random.default_rng(0).standard_normal((2, 3)).astype(np.float32))
    for targets in (np.array([0, 3]), cupy.asarray([0, 3]), np.array([-2, 0])):
        with pytest.raises(ValueError, match="targets must lie in"):
            cross_entropy_forward(z, targets, backend="cuda")
    loss, _ = cross_entropy_forward(z, np.array([2, -1]), backend="cuda")  # -1: ignored
    assert float(loss) == pytest.approx(float(cross_entropy_forward(z, cupy.asarray([2, -1]), backend="cuda")[0]))


def test_cuda_backend_needs_float32():
    with pytest.raises(ValueError, match="float32"):
        minigpt.GPT(config(), dtype="float64", backend="cuda")


def test_parameters_share_one_buffer_and_steps_use_it():
    model = minigpt.GPT(config(), seed=0, backend="cuda")
    opt = minigpt.AdamW(model, lr=1e-2)
    assert model.flat is not None and opt.flat is model.flat
    assert model.flat.holds(model.params, model.grads)
    assert all(cupy.shares_memory(p, model.flat.params) for p in model.params.values())
    idx, targets = batches(model.config, 1)[0]
    model.zero_grad()
    model.forward(idx, targets)
    model.backward()
    assert float(cupy.abs(model.flat.grads).sum()) > 0
    ref = np.sqrt(sum(float((g.astype(cupy.float64) ** 2).sum()) for g in model.grads.values()))  # before clipping
    norm = minigpt.clip_grad_norm(model.grads, 0.1, flat=model.flat)
    assert norm > 0.1 and abs(norm - ref) < 1e-4 * ref  # the norm before clipping
    assert abs(float(cupy.linalg.norm(model.flat.grads)) - 0.1) < 1e-5  # after
    opt.step()
    model.zero_grad()
    assert float(cupy.abs(model.flat.grads).max()) == 0.0


def test_tf32_training_step_is_close_to_float32():
    cfg = config()
    idx, targets = batches(cfg, 1)[0]
    losses, grads = [], []
    for on in (False, True):
        kernels.set_cuda_tf32(on)
        try:
            model = minigpt.GPT(cfg, seed=1, backend="cuda")
            model.zero_grad()
            losses.append(model.forward(idx, targets)[1])
            model.backward()
            grads.append(cupy.asnumpy(model.flat.grads))
        finally:
            kernels.set_cuda_tf32(False)
    assert abs(losses[1] - losses[0]) < 1e-3 * losses[0]
    assert 0 < rel(grads[1], grads[0]) < 2e-2


def test_pretrain_resume_and_generate_on_the_gpu(tmp_path, capsys):
    from minigpt.checkpoint import load_model
    from minigpt.cli import main
    (tmp_path / "text.txt").write_text("ROMEO:\nBut soft, what light through yonder window breaks?\n" * 40)
    args = ["pretrain", "--backend", "cuda", "--data", str(tmp_path / "text.txt"), "--n-layer", "1", "--n-head", "2",
            "--n-embd", "32", "--block-size", "16", "--batch-size", "4", "--eval-iters", "2", "--warmup-iters", "2",
            "--lr-decay-iters", "8", "--eval-interval", "4", "--out", str(tmp_path / "out"), "--no-progress",
            "--sample-tokens", "10"]
    assert main(args + ["--max-iters", "4"]) == 0
    assert "backend cuda (CUDA kernels on" in capsys.readouterr().out
    assert main(args + ["--max-iters", "8", "--resume"]) == 0  # moments and weights back onto the GPU
    assert "resumed from" in capsys.readouterr().out
    ckpt = tmp_path / "out" / "ckpt-0000008"
    assert (ckpt / "model.safetensors").exists() and (ckpt / "optimizer.safetensors").exists()
    gpu, _ = load_model(ckpt, backend="cuda")
    host, _ = load_model(ckpt, backend="numpy")
    idx = np.arange(12).reshape(1, 12) % 10
    assert rel(gpu.forward(idx, train=False)[0], host.forward(idx, train=False)[0]) < 1e-5
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO:", "--max-new-tokens", "10",
                 "--backend", "cuda", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")

"""AdamW against its formula written out by hand, weight decay on 2-D weights only, clipping, the LR schedule."""
import math

import numpy as np
import pytest

import minigpt
from conftest import requires_core
from minigpt import kernels
from minigpt.optim import AdamW, clip_grad_norm, cosine_lr


class TwoParams:
    """The smallest 'model' the optimizer accepts: a params dict and a matching grads dict."""

    def __init__(self):
        self.params = {"w": np.array([[1.0, -2.0]]), "b": np.array([0.5])}
        self.grads = {"w": np.array([[0.1, 0.3]]), "b": np.array([-0.2])}


def test_adamw_matches_hand_written_steps():
    model = TwoParams()
    opt = AdamW(model, lr=0.1, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.5)
    w, b, g_w, g_b = 1.0, 0.5, 0.1, -0.2
    m_w = v_w = m_b = v_b = 0.0
    for t in range(1, 4):
        opt.step()
        w *= 1 - 0.1 * 0.5  # decayed: 2-D
        m_w, v_w = 0.9 * m_w + 0.1 * g_w, 0.95 * v_w + 0.05 * g_w**2
        w -= 0.1 * (m_w / (1 - 0.9**t)) / (math.sqrt(v_w / (1 - 0.95**t)) + 1e-8)
        m_b, v_b = 0.9 * m_b + 0.1 * g_b, 0.95 * v_b + 0.05 * g_b**2  # not decayed: 1-D
        b -= 0.1 * (m_b / (1 - 0.9**t)) / (math.sqrt(v_b / (1 - 0.95**t)) + 1e-8)
        assert np.isclose(model.params["w"][0, 0], w) and np.isclose(model.params["b"][0], b)



@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_adamw_adds_eps_outside_the_square_root(backend):
    # torch.optim.AdamW's m / (sqrt(v) + eps): with |g| = eps the first step is lr * g / (|g| + eps) = lr / 2;
    # eps inside the root, sqrt(v + eps), would make it about lr * 1e-4. The hand-written steps above use
    # gradients so much larger than eps that the placement does not show.
    p, m, v, g = (np.array([1.0, 1.0], np.float32), np.zeros(2, np.float32), np.zeros(2, np.float32),
                  np.array([1e-8, -1e-8], np.float32))
    kernels.adamw_update(p, m, v, g, 1.0, 0.9, 0.999, 1e-8, 0.0, 1 - 0.9, 1 - 0.999, backend=backend)
    np.testing.assert_allclose(p, [0.5, 1.5], rtol=1e-5)  # float32 rounding of 1e-8 and 1e-16


def test_adamw_updates_the_model_in_place():
    model = minigpt.GPT(minigpt.GPTConfig(vocab_size=9, block_size=4, n_layer=1, n_head=1, n_embd=4))
    before = model.h[0].mlp.c_fc.params["weight"].copy()
    model.forward(np.array([[1, 2, 3]]), np.array([[2, 3, 4]]))
    model.zero_grad()
    model.backward()
    AdamW(model, lr=0.01).step()
    assert not np.allclose(model.h[0].mlp.c_fc.params["weight"], before)


def test_bad_hyperparameters():
    with pytest.raises(ValueError):
        AdamW(TwoParams(), lr=-1)
    with pytest.raises(ValueError):
        AdamW(TwoParams(), betas=(0.9, 1.0))


@pytest.mark.parametrize("bad", [dict(lr=math.nan), dict(lr=math.inf), dict(eps=math.nan), dict(eps=math.inf),
                                 dict(weight_decay=math.nan), dict(weight_decay=math.inf),
                                 dict(betas=(math.nan, 0.999)), dict(betas=(0.9,))])
def test_hyperparameters_must_be_finite(bad):
    with pytest.raises(ValueError, match="AdamW: invalid hyperparameters"):
        AdamW(TwoParams(), **bad)


def test_a_step_cannot_make_nan_from_settings():
    # eps = 0: a gradient that is always 0 (an unused position) gives m = v = 0 and 0 / 0 = NaN
    with pytest.raises(ValueError, match=r"eps finite and > 0"):
        AdamW(TwoParams(), eps=0.0)
    opt = AdamW(TwoParams(), lr=0.1)
    for lr in (math.nan, math.inf, -1.0):  # what __init__ refuses, step(lr=...) refuses too, before any change
        with pytest.raises(ValueError, match="AdamW.step: lr must be a finite number >= 0"):
            opt.step(lr=lr)
    assert opt.t == 0 and opt.params["w"][0, 0] == 1.0
    p, m, v, g = (np.ones(3, np.float32) for _ in range(4))
    for backend in ("numpy", "cpu") if minigpt.kernels._core is not None else ("numpy",):
        with pytest.raises(ValueError, match=r"bias1, bias2 \(1 - beta\^t\) in \(0, 1\]"):  # t = 0 would divide by 0
            minigpt.kernels.adamw_update(p, m, v, g, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.0, 1.0, backend=backend)
    if minigpt.kernels._core is not None:  # the extension's own check, for a direct call
        with pytest.raises(ValueError, match=r"bias1, bias2 \(1 - beta\^t\) in \(0, 1\]"):
            minigpt.kernels._core.adamw_update(p, m, v, g, 0.1, 0.9, 0.999, 1e-8, 0.0, 0.0, 1.0)
    assert (p == 1).all() and (m == 1).all()


@pytest.mark.parametrize("max_norm", [-1.0, 0.0, math.nan])
def test_clip_grad_norm_needs_a_positive_max_norm(max_norm):
    grads = {"a": np.array([3.0, 4.0])}  # -1 would have turned them into [-0.6, -0.8]
    with pytest.raises(ValueError, match="clip_grad_norm: max_norm must be > 0"):
        clip_grad_norm(grads, max_norm)
    assert clip_grad_norm(grads, math.inf) == 5.0 and grads["a"].tolist() == [3.0, 4.0]  # inf: measure only


def test_clip_grad_norm_scales_globally():
    grads = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    assert np.isclose(clip_grad_norm(grads, 1.0), 5.0)
    assert np.isclose(math.hypot(grads["a"][0], grads["b"][0, 0]), 1.0, atol=1e-6)
    assert np.isclose(grads["a"][0] / grads["b"][0, 0], 0.75)  # direction kept
    small = {"a": np.array([0.3])}
    clip_grad_norm(small, 1.0)
    assert small["a"][0] == 0.3


def test_cosine_schedule_shape():
    lr = lambda s: cosine_lr(s, max_lr=1e-3, min_lr=1e-4, warmup_iters=10, decay_iters=110)
    assert lr(0) < lr(5) < lr(9) <= 1e-3
    # the warmup as nanoGPT's: step s (from 0) at (s + 1) / (warmup + 1) of the peak, so the first step moves
    assert [lr(s) for s in (0, 4, 9)] == pytest.approx([1e-3 / 11, 5e-3 / 11, 1e-2 / 11], rel=1e-12)
    assert np.isclose(lr(10), 1e-3) and np.isclose(lr(60), 5.5e-4) and np.isclose(lr(110), 1e-4)
    assert lr(500) == 1e-4

"""The whole GPT and the fine-tuning TaskModel on backend="cpu" against backend="numpy", gradient by gradient.

The existing CPU model tests compare loss curves only (test_model.py, test_finetune_model.py), and the layer
tests compare dx with an upstream gradient of ones. Here one forward/backward of the same float32 weights
on both backends must give the same logits, loss and every parameter's gradient (relative norm), and one
AdamW step the same weights: the fused in-place attention, the flat gradient buffer, bias_grad adding into
views, wpe's gradient as a bias over the batch and the tied head's two contributions all enter.
Also what the cpu backend runs with: the same bits on any thread count, its banner, the OpenMP spin setting.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import minigpt
from conftest import child_pythonpath, requires_core, run_with_threads
from minigpt.finetune import trainable_parameters
from test_finetune_gradcheck import tiny_task_model

pytestmark = requires_core


def rel(got, ref):
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def config(arch, dropout):
    return minigpt.GPTConfig(vocab_size=37, block_size=24, n_layer=2, n_head=3, n_embd=48, dropout=dropout, arch=arch)


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
@pytest.mark.parametrize("dropout", [0.0, 0.2])  # the masks come from the same seeded stream on both backends
def test_gpt_step_on_cpu_matches_numpy_gradient_by_gradient(arch, dropout):
    rng = np.random.default_rng(7)
    idx, targets = rng.integers(0, 37, (3, 20)), rng.integers(0, 37, (3, 20))
    targets[1, :4] = -1  # padded positions
    results = {}
    for backend in ("numpy", "cpu"):
        model = minigpt.GPT(config(arch, dropout), seed=11, backend=backend)
        noise = np.random.default_rng(3)  # the same weights, away from the init, on both backends
        for name in sorted(model.params):
            p = model.params[name]
            p += (noise.standard_normal(p.shape) * 0.1).astype(np.float32)
        model.zero_grad()
        logits, loss = model.forward(idx, targets, train=True)
        model.backward()
        grads = {name: g.copy() for name, g in model.grads.items()}
        minigpt.AdamW(model, lr=1e-3, weight_decay=0.1).step()
        results[backend] = logits, loss, grads, {name: p.copy() for name, p in model.params.items()}
    (logits, loss, grads, params), (ref_logits, ref_loss, ref_grads, ref_params) = results["cpu"], results["numpy"]
    assert abs(loss - ref_loss) < 1e-5 * ref_loss
    assert rel(logits, ref_logits) < 1e-5
    assert grads.keys() == ref_grads.keys()
    for name, ref in ref_grads.items():
        assert np.abs(ref).max() > 0, name  # every parameter gets a gradient: a zero would hide a dropped one
        assert rel(grads[name], ref) < 3e-5, name  # float32 rounding lands near 1e-6
        # one AdamW step of lr 1e-3 moves each weight by about 1e-3: compare the move, where the gradient is real
        live = np.abs(ref) > 1e-3 * np.abs(ref).max()
        np.testing.assert_allclose(params[name][live], ref_params[name][live], rtol=0, atol=2e-5, err_msg=name)


@pytest.mark.parametrize("kind", ["classification", "similarity", "multiple-choice", "regression"])
def test_task_model_on_cpu_matches_numpy_gradient_by_gradient(kind):
    results = {}
    for backend in ("numpy", "cpu"):
        model, batch = tiny_task_model("gpt2", kind, aux_lm=0.5, dropout=0.0, dtype="float32", backend=backend)
        noise = np.random.default_rng(5)
        for name in sorted(model.params):
            p = model.params[name]
            p += (noise.standard_normal(p.shape) * 0.3).astype(np.float32)
        model.zero_grad()
        outputs, losses = model.forward(batch, train=True)
        model.backward()
        grads = trainable_parameters(model, "full").grads
        results[backend] = outputs, losses, {name: g.copy() for name, g in grads.items()}
    (outputs, losses, grads), (ref_outputs, ref_losses, ref_grads) = results["cpu"], results["numpy"]
    finite = np.isfinite(ref_outputs)  # a multiple-choice grid has -inf where an example has fewer candidates
    assert np.array_equal(np.isfinite(outputs), finite)
    assert rel(np.asarray(outputs)[finite], np.asarray(ref_outputs)[finite]) < 1e-5
    for key in ("loss", "task_loss", "lm_loss"):
        assert abs(losses[key] - ref_losses[key]) < 1e-5 * abs(ref_losses[key]), key
    for name, ref in ref_grads.items():
        assert rel(grads[name], ref) < 3e-5, name  # float32 rounding lands near 1e-6


STEP_SCRIPT = """
import sys
import numpy as np
import minigpt
from minigpt import kernels
# B * T = 512 rows of C = 256: every kernel of the step is large enough to use all threads
cfg = minigpt.GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=256, dropout=0.1)
model = minigpt.GPT(cfg, seed=0, backend="cpu")
opt = minigpt.AdamW(model, lr=1e-3, weight_decay=0.1)
idx = np.random.default_rng(1).integers(0, 65, (8, 65))
losses = []
for _ in range(2):
    model.zero_grad()
    losses.append(model.forward(idx[:, :-1], idx[:, 1:])[1])
    model.backward()
    minigpt.clip_grad_norm(model.grads, 1.0, flat=model.flat)
    opt.step()
np.savez(sys.argv[1], num_threads=kernels.core_info()["num_threads"], losses=np.array(losses),
         **{name: p for name, p in model.params.items()})
"""


def test_a_training_step_gives_the_same_bits_on_1_2_and_3_threads(tmp_path):
    # the README's promise that a run resumed elsewhere (another OMP_NUM_THREADS) goes on exactly as it would have
    runs = [run_with_threads(STEP_SCRIPT, threads, tmp_path) for threads in (1, 2, 3)]
    for run in runs[1:]:
        assert run.keys() == runs[0].keys()
        for name in runs[0]:
            if name != "num_threads":
                np.testing.assert_array_equal(run[name], runs[0][name], err_msg=name)


def test_the_run_banner_names_the_backend_and_its_threads():
    threads = minigpt.kernels.core_info()["num_threads"]
    line = minigpt.kernels.describe_backend("cpu")
    assert line.startswith(f"cpu (C++ kernels, {threads} thread") and ("threads" in line) == (threads != 1)
    assert minigpt.kernels.describe_backend("numpy") == "numpy"


@pytest.mark.parametrize("chosen", [{}, {"GOMP_SPINCOUNT": "5"}, {"OMP_WAIT_POLICY": "passive"}])
def test_the_spin_count_is_set_only_while_core_loads_and_only_if_the_user_chose_none(tmp_path, chosen):
    # kernels/backend.py: GOMP_SPINCOUNT=1000 while _core loads, unless the user set a wait policy; afterwards
    # the environment is the user's again, so child processes and other libraries keep their own defaults
    env = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    env.update(chosen, PYTHONPATH=child_pythonpath())
    script = ("import os, minigpt.kernels.backend as b; "
              "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'), b._WAIT_POLICY_CHOSEN)")
    result = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [chosen.get("GOMP_SPINCOUNT", "None"), chosen.get("OMP_WAIT_POLICY", "None"),
                                     str(bool(chosen))]

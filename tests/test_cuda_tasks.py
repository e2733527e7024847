"""Fine-tuning and prompting on the GPU (backend="cuda") against the same runs on the host.

GPT-1's fine-tuning (the task model, its heads, the auxiliary LM loss, full and frozen modes) and
GPT-2/3's prompting (candidates scored through the KV cache, few-shot evaluation) are the same code on
every backend. Here they run on CuPy arrays and must give the host's numbers: without dropout a
fine-tuning run on the GPU tracks the CPU run step for step, frozen mode leaves every transformer
weight bit for bit as it was, and zero- and few-shot evaluation picks the same answers from the same
log-probabilities. `minigpt finetune` and `minigpt evaluate` take --backend cuda.

Skipped where backend="cuda" cannot run (no minigpt._cuda, no CuPy, or no GPU); with
MINIGPT_REQUIRE_CUDA=1 (the GPU check script and the CUDA emulator set it) that is an error instead.
"""
import json

import numpy as np
import pytest
from conftest import HOST_BACKEND, counts_host_reads, cupy_or_skip_module, host_reads_of
from test_finetune_train import tiny_checkpoint, write_jsonl
from test_prompting_evaluate import TOK, choice_task, classification_task, spread_model

from minigpt.checkpoint import load_model
from minigpt.cli import main
from minigpt.finetune.batch import collate
from minigpt.finetune.modes import trainable_parameters
from minigpt.finetune.config import FineTuneConfig
from minigpt.finetune.train import build_model, encode_split, finetune
from minigpt.optim import AdamW, clip_grad_norm
from minigpt.prompting import Template, evaluate_task, score_candidates
from minigpt.tasks import load_task

cupy = cupy_or_skip_module()


# One small task of each of GPT-1's input transformations (similarity: both orderings, summed).
TASK_ROWS = {
    "classification": lambda i: {"text": ["a very good film", "the plot was bad"][i % 2] + " " * (i % 3),
                                  "label": ["pos", "neg"][i % 2]},
    "entailment": lambda i: {"premise": "it was very good", "hypothesis": ["good", "bad", "a film"][i % 3],
                             "label": i % 2},
    "similarity": lambda i: {"text_a": "a good film", "text_b": ["quite good", "bad plot", "the cat"][i % 3],
                             "label": i % 2},
    "multiple-choice": lambda i: {"context": "the cat sat on the", "choices": ["mat", "ran", "sky", "a"][:2 + i % 3],
                                  "label": i % 2},
}


def finetune_on(backend, tmp_path, shape, mode):
    """A two-epoch run from the same checkpoint and seed on `backend`, without dropout (whose masks are
    drawn differently on the GPU); returns (the run, its final metrics)."""
    checkpoint = tiny_checkpoint(tmp_path / backend)
    task = write_jsonl(tmp_path / backend / shape, [TASK_ROWS[shape](i) for i in range(12)],
                       [TASK_ROWS[shape](i) for i in range(5)])
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task=shape, data=str(task), mode=mode, aux_lm=0.5, epochs=2,
                         lr=3e-3, batch=4, dropout=0.0, backend=backend, out=str(tmp_path / backend / "ft"))
    return finetune(cfg, progress=False)


@pytest.mark.parametrize("shape, mode", [("classification", "full"), ("entailment", "frozen"),
                                         ("similarity", "full"), ("multiple-choice", "frozen")])
def test_finetuning_on_the_gpu_tracks_the_cpu_run(tmp_path, shape, mode):
    gpu_run, gpu = finetune_on("cuda", tmp_path, shape, mode)
    host_run, host = finetune_on(HOST_BACKEND, tmp_path, shape, mode)
    assert gpu["steps"] == host["steps"] == 6
    for gpu_epoch, host_epoch in zip(gpu["history"], host["history"]):  # task loss + λ LM loss, dev losses
        for key in ("train_loss", "dev_task_loss", "dev_lm_loss"):
            assert gpu_epoch[key] == pytest.approx(host_epoch[key], rel=1e-4), (key, gpu_epoch, host_epoch)
        # at most one of the 5 dev examples apart: on a GPU the order of float atomics (split-K matmul, dq, the
        # embedding's gradient) changes the last bits run to run, which could tip an example on a near-tie
        assert abs(gpu_epoch["accuracy"] - host_epoch["accuracy"]) <= 1 / 5 + 1e-9, (gpu_epoch, host_epoch)
    for name, p in host_run.model.params.items():  # six AdamW updates later, every weight, the head's too
        # by whole tensors: the keys' share of c_attn's bias has a gradient of rounding noise only (softmax
        # ignores a shift common to a row), which AdamW turns into steps that differ run to run on a GPU
        got = cupy.asnumpy(gpu_run.model.params[name])
        assert np.linalg.norm(got - p) <= 1e-3 * np.linalg.norm(p) + 1e-6, name
    if mode == "frozen":  # every pre-trained weight, the embedding's old rows too, exactly as it was loaded
        pretrained, _ = load_model(tmp_path / "cuda" / "pretrained", backend="numpy")
        for name, p in pretrained.params.items():
            got = cupy.asnumpy(gpu_run.model.params[name])
            assert np.array_equal(got[:len(p)], p), name  # wte: the rows before the start/delimiter/extract ones


@counts_host_reads
@pytest.mark.parametrize("mode", ["full", "frozen"])
def test_a_finetuning_step_reads_three_numbers_from_the_gpu(tmp_path, mode):
    # the task loss, the LM loss and the gradient norm; labels and LM targets are checked on the host
    checkpoint = tiny_checkpoint(tmp_path)
    task = write_jsonl(tmp_path / "task", [TASK_ROWS["classification"](i) for i in range(8)],
                       [TASK_ROWS["classification"](i) for i in range(4)])
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task="classification", data=str(task), mode=mode, backend="cuda",
                         out=str(tmp_path / "ft"))
    model, tokenizer, tokens, _ = build_model(cfg, load_task("classification", data=task))
    train, _, _ = encode_split(load_task("classification", data=task).train, tokenizer, tokens,
                               model.config.block_size)
    trainable = trainable_parameters(model, mode)
    opt, batch = AdamW(trainable, lr=1e-3), collate(train[:4])

    def step():
        model.zero_grad()
        model.forward(batch, train=True)
        model.backward()
        clip_grad_norm(trainable.grads, 1.0)
        opt.step()
    assert host_reads_of(step) == 3


def test_candidate_scores_on_the_gpu_equal_the_hosts():
    gpu, host = spread_model(dtype="float32", backend="cuda"), spread_model(dtype="float32", backend=HOST_BACKEND)
    prompt = TOK.encode("good film, warm and keen. so it was")
    candidates = [TOK.encode(w) for w in (" grim", " a", " good")]
    for use_cache in (True, False):  # through the KV cache (batched candidates) and by plain forwards
        got = score_candidates(gpu, prompt, candidates, use_cache=use_cache)
        want = score_candidates(host, prompt, candidates, use_cache=use_cache)
        assert all(isinstance(g, np.ndarray) for g in got)  # log-probabilities come back to the host
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("shots", [0, 2])
def test_zero_and_few_shot_evaluation_on_the_gpu_picks_the_hosts_answers(shots):
    for task, template in ((classification_task(), Template("{text}. so it was", verbalizer=("grim", "good"))),
                           (choice_task(), Template("{context}\nanswer:"))):
        results = {backend: evaluate_task(spread_model(dtype="float32", backend=backend), TOK, task, template,
                                          shots=shots, seed=3, scoring="total")
                   for backend in ("cuda", HOST_BACKEND)}
        assert results["cuda"]["by_scoring"] == results[HOST_BACKEND]["by_scoring"]
        assert results["cuda"]["example_prompt"] == results[HOST_BACKEND]["example_prompt"]


def test_finetune_and_evaluate_commands_run_on_the_gpu(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path)
    task = write_jsonl(tmp_path / "task", [TASK_ROWS["classification"](i) for i in range(8)],
                       [TASK_ROWS["classification"](i) for i in range(4)])
    assert main(["finetune", "--checkpoint", str(checkpoint.parent), "--task", "classification", "--data", str(task),
                 "--epochs", "1", "--batch", "4", "--backend", "cuda", "--out", str(tmp_path / "ft"),
                 "--metrics-out", str(tmp_path / "ft.json"), "--no-progress"]) == 0
    assert "backend cuda" in capsys.readouterr().out
    finetuned = json.loads((tmp_path / "ft.json").read_text())
    assert finetuned["backend"] == "cuda" and finetuned["steps"] == 2 and np.isfinite(finetuned["dev_lm_loss"])
    assert main(["evaluate", "--checkpoint", str(checkpoint.parent), "--task", "classification", "--data", str(task),
                 "--shots", "1", "--separator", ", ", "--template", "{text} was", "--verbalizer", "neg=bad,pos=good",
                 "--backend", "cuda", "--metrics-out", str(tmp_path / "eval.json"), "--no-progress"]) == 0
    assert "backend cuda" in capsys.readouterr().out
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["n_eval"] == 4 and evaluated["shots"] == 1 and 0 <= evaluated["accuracy"] <= 1

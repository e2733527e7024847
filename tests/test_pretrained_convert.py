"""`minigpt convert`: a checkpoint -> HF folder -> checkpoint trip gives the same checkpoint back, with
its fine-tuning tensors, special tokens, fields and files; the command line in both directions."""
import json

import numpy as np
import pytest

import minigpt
from minigpt.checkpoint import load_model, read_info, save_checkpoint
from minigpt.cli import main
from minigpt.pretrained import checkpoint_to_hf, hf_to_checkpoint, load_pretrained, save_pretrained
from minigpt.safetensors import load_file, save_file
from minigpt.tokenizer import BPETokenizer


def fine_tuned_checkpoint(tmp_path, arch="gpt1"):
    """A checkpoint shaped like a fine-tuning run's: GPT-1's special tokens added to the tokenizer and the
    embedding, a task head stored beside the weights, its own fields and a file of its own, an optimizer."""
    tok = BPETokenizer.train("the quick brown fox jumps over the lazy dog " * 5, vocab_size=270)
    tok.add_special_tokens(["_start_", "_delimiter_", "_classify_"])
    cfg = minigpt.GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8, arch=arch)
    model = minigpt.GPT(cfg, seed=3)
    opt = minigpt.AdamW(model, lr=1e-2)
    model.forward(np.array([[1, 2, 3]]), np.array([[2, 3, 4]]))
    model.backward()
    opt.step()
    path = save_checkpoint(tmp_path / "run", model, 42, tok, opt, extra={"finetune": {"task": "sst2", "lambda": 0.5}})
    head = {"head.weight": np.arange(16, dtype=np.float32).reshape(8, 2), "head.bias": np.ones(2, np.float32)}
    save_file({**load_file(path / "model.safetensors"), **head}, path / "model.safetensors")
    (path / "labels.json").write_text('["negative", "positive"]')
    return path


def test_checkpoint_survives_the_trip_through_hf_format(tmp_path):
    original = fine_tuned_checkpoint(tmp_path)
    hf = checkpoint_to_hf(original, tmp_path / "hf")
    assert json.loads((hf / "config.json").read_text())["model_type"] == "openai-gpt"
    assert (hf / "minigpt_extra.safetensors").exists() and (hf / "minigpt_extra" / "labels.json").exists()
    back = hf_to_checkpoint(hf, tmp_path / "back")
    assert back.name == original.name == "ckpt-0000042"
    before, after = load_file(original / "model.safetensors"), load_file(back / "model.safetensors")
    assert sorted(before) == sorted(after) and all(np.array_equal(before[k], after[k]) for k in before)
    _, info_before = read_info(original)
    _, info_after = read_info(back)
    info_before.pop("optimizer")  # the optimizer state stays with the original run
    assert info_after == info_before
    assert set(info_after["tokenizer"]["special_tokens"]) == {"<|endoftext|>", "_start_", "_delimiter_", "_classify_"}
    assert (back / "labels.json").read_text() == '["negative", "positive"]'
    assert not (back / "optimizer.safetensors").exists()


def test_special_tokens_and_heads_are_visible_after_loading_the_hf_folder(tmp_path):
    hf = checkpoint_to_hf(fine_tuned_checkpoint(tmp_path, arch="gpt2"), tmp_path / "hf")
    model, tok, extras = load_pretrained(hf)
    assert tok.special_tokens["_classify_"] == model.config.vocab_size - 1
    assert tok.encode("_start_fox_classify_", "all")[0] == tok.special_tokens["_start_"]
    assert np.array_equal(extras.tensors["head.bias"], np.ones(2, np.float32))
    assert extras.info["finetune"] == {"task": "sst2", "lambda": 0.5} and extras.info["step"] == 42


def test_hf_folder_to_checkpoint_then_generate(tmp_path):
    tok = BPETokenizer.train("to be or not to be " * 10, vocab_size=262)
    cfg = minigpt.GPTConfig(vocab_size=tok.vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=8)
    model = minigpt.GPT(cfg, seed=0)
    save_pretrained(model, tmp_path / "hf", tok)
    path = hf_to_checkpoint(tmp_path / "hf", tmp_path / "run")
    assert path == tmp_path / "run" / "ckpt-0000000"
    loaded, info = load_model(path)
    assert all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())
    assert info["tokenizer"] == tok.to_dict()
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--prompt", "to be", "--max-new-tokens", "3",
                 "--backend", "numpy"]) == 0


def test_cli_converts_both_ways_and_reports_errors(tmp_path, capsys):
    original = fine_tuned_checkpoint(tmp_path)
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "hf")]) == 0  # a run folder: its latest
    assert "wrote the Hugging Face folder" in capsys.readouterr().out
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    assert "wrote the fine-tuned minigpt checkpoint" in capsys.readouterr().out  # task sst2: not for generate
    assert (tmp_path / "back" / original.name / "checkpoint.json").exists()
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")]) == 1  # would join that run's checkpoints
    error = capsys.readouterr().err  # OUT is convert's positional argument, not an --out option
    assert f"{tmp_path / 'back'} already holds a run's checkpoints" in error and "--out" not in error
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "hf")]) == 1
    assert "is the Hugging Face folder itself" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "run"), str(tmp_path / "hf")]) == 1
    assert "not an empty folder" in capsys.readouterr().err
    assert main(["convert", str(tmp_path / "nothing"), str(tmp_path / "x")]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert not list((tmp_path / "back").glob(".tmp-*"))
    (tmp_path / "afile").write_text("")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "afile")]) == 1
    assert "afile is a file, not a folder" in capsys.readouterr().err


def test_cli_convert_names_a_damaged_hf_file(tmp_path, capsys):
    save_pretrained(minigpt.GPT(minigpt.GPTConfig(vocab_size=20, block_size=4, n_layer=1, n_head=2, n_embd=8)),
                    tmp_path / "hf")
    (tmp_path / "hf" / "config.json").write_text("[1]")
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "out")]) == 1
    assert "config.json: holds a JSON list, not an object" in capsys.readouterr().err
    hf = checkpoint_to_hf(fine_tuned_checkpoint(tmp_path), tmp_path / "hf2")
    extras = json.loads((hf / "minigpt.json").read_text())
    extras["info"]["step"] = "42"
    (hf / "minigpt.json").write_text(json.dumps(extras))
    assert main(["convert", str(hf), str(tmp_path / "out")]) == 1
    assert "minigpt.json: 'step' must be a non-negative integer, got '42'" in capsys.readouterr().err


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_converted_model_computes_what_the_checkpoint_did(tmp_path, arch):
    original = fine_tuned_checkpoint(tmp_path, arch)
    hf = checkpoint_to_hf(original, tmp_path / "hf")
    model = minigpt.GPT.from_pretrained(hf)
    reference = minigpt.GPT(model.config)
    tensors = load_file(original / "model.safetensors")
    for name in reference.params:
        reference.params[name][...] = tensors[name]
    idx = np.array([[5, 9, 266, 267, 1]])
    assert np.array_equal(model.forward(idx, train=False)[0], reference.forward(idx, train=False)[0])


def test_a_real_fine_tuning_run_survives_the_trip_and_scores_the_same(tmp_path, capsys):
    """`minigpt finetune` -> `minigpt convert` to a Hugging Face folder -> `minigpt convert` back: the head,
    the task tokens and the fine-tuning record come back, and the reloaded model scores dev the same."""
    from minigpt.finetune import load_task_model
    from minigpt.finetune.train import encode_split, evaluate
    from minigpt.tasks import load_task
    from test_finetune_train import sentiment_task, tiny_checkpoint

    checkpoint, task = tiny_checkpoint(tmp_path, arch="gpt1"), sentiment_task(tmp_path, n_train=16, n_dev=8)
    assert main(["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
                 "--epochs", "1", "--batch", "8", "--backend", "numpy", "--out", str(tmp_path / "ft"),
                 "--no-progress"]) == 0
    assert main(["convert", str(tmp_path / "ft"), str(tmp_path / "hf")]) == 0
    capsys.readouterr()
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    said = capsys.readouterr().out  # a task model: generate would refuse it, so convert must not suggest it
    assert "fine-tuned minigpt checkpoint" in said and "load_task_model" in said and "minigpt generate" not in said
    scores = []
    for folder in ("ft", "back"):
        model, tokenizer, tokens, info = load_task_model(tmp_path / folder)
        dev, _, _ = encode_split(load_task("classification", task).dev, tokenizer, tokens, model.config.block_size)
        scores.append((info["finetune"], evaluate(model, dev, ("accuracy",), 4)))
    (record_ft, metrics_ft), (record_back, metrics_back) = scores
    assert record_back == record_ft and record_ft["labels"] == ["neg", "pos"]
    assert metrics_back["accuracy"] == metrics_ft["accuracy"]
    assert metrics_back["dev_lm_loss"] == metrics_ft["dev_lm_loss"]  # the same weights, bit for bit


def test_a_float64_checkpoint_comes_back_float64(tmp_path):
    cfg = minigpt.GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=8)
    model = minigpt.GPT(cfg, seed=2, dtype="float64")
    save_checkpoint(tmp_path / "c64", model, 3)
    assert main(["convert", str(tmp_path / "c64"), str(tmp_path / "hf")]) == 0
    assert main(["convert", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    back, info = load_model(tmp_path / "back")
    assert info["dtype"] == "float64"
    assert all(np.array_equal(back.params[name], value) for name, value in model.params.items())  # bit for bit

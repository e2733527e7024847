"""Checkpoints: what is saved comes back, saves are atomic, and mismatched or corrupted files are refused."""
import json

import numpy as np
import pytest

import minigpt
from minigpt.checkpoint import (list_checkpoints, load_model, load_optimizer_state, read_info, require_fields,
                                save_checkpoint)
from minigpt.tokenizer import CharTokenizer


def tiny_model(n_embd=8):
    cfg = minigpt.GPTConfig(vocab_size=11, block_size=6, n_layer=1, n_head=2, n_embd=n_embd)
    return minigpt.GPT(cfg, seed=0)


def trained(model):
    opt = minigpt.AdamW(model, lr=1e-2)
    model.forward(np.array([[1, 2, 3]]), np.array([[2, 3, 4]]))
    model.zero_grad()
    model.backward()
    opt.step()
    return opt


def test_weights_optimizer_and_tokenizer_round_trip(tmp_path):
    model = tiny_model()
    opt = trained(model)
    tok = CharTokenizer.train("abcdefghijk")
    path = save_checkpoint(tmp_path, model, 7, tok, opt, extra={"note": "hi"})
    assert path.name == "ckpt-0000007"
    loaded, info = load_model(tmp_path)
    assert info["step"] == 7 and info["note"] == "hi" and info["tokenizer"] == tok.to_dict()
    for name, value in model.params.items():
        assert np.array_equal(loaded.params[name], value)
    opt2 = minigpt.AdamW(loaded, lr=1e-2)
    load_optimizer_state(opt2, path, info)
    assert opt2.t == opt.t and all(np.array_equal(opt2.m[k], opt.m[k]) for k in opt.m)


@pytest.mark.parametrize("damage, message", [
    (lambda t: t.pop("m.wte.weight"), r"optimizer.safetensors: no m.wte.weight"),
    (lambda t: t.update({"m.wte.weight": np.zeros(1, np.float32)}), r"m.wte.weight has shape \(1,\), the model's"),
    (lambda t: t.update({"v.wpe.weight": np.full((6, 8), np.nan, np.float32)}), r"v.wpe.weight holds NaN, inf or neg"),
    (lambda t: t.update({"v.wpe.weight": -np.ones((6, 8), np.float32)}), r"v.wpe.weight holds NaN, inf or negative"),
    (lambda t: t.update({"m.wpe.weight": np.full((6, 8), np.inf, np.float32)}), r"m.wpe.weight holds NaN, inf \("),
])
def test_damaged_optimizer_moments_are_refused_before_anything_is_copied(tmp_path, damage, message):
    from minigpt.safetensors import load_file, save_file
    model = tiny_model()
    path = save_checkpoint(tmp_path, model, 3, optimizer=trained(model))
    tensors = load_file(path / "optimizer.safetensors")
    damage(tensors)
    save_file(tensors, path / "optimizer.safetensors")
    fresh = minigpt.AdamW(tiny_model(), lr=1e-2)
    with pytest.raises(ValueError, match=message):
        load_optimizer_state(fresh, path, read_info(path)[1])
    assert fresh.t == 0 and all(not m.any() for m in fresh.m.values())  # untouched


@pytest.mark.parametrize("step", [-1, 2.5, True])
def test_a_step_that_no_load_would_find_is_refused(tmp_path, step):
    with pytest.raises(ValueError, match="save_checkpoint: step must be an integer >= 0"):
        save_checkpoint(tmp_path, tiny_model(), step)
    assert list(tmp_path.iterdir()) == []


def test_every_step_is_kept_and_the_latest_is_found(tmp_path):
    model = tiny_model()
    for step in (5, 10, 15):
        save_checkpoint(tmp_path, model, step)
    trained(model)
    save_checkpoint(tmp_path, model, 10)  # the same step again replaces it, and the old copy is deleted
    assert [s for s, _ in list_checkpoints(tmp_path)] == [5, 10, 15]
    assert read_info(tmp_path)[1]["step"] == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt-0000005", "ckpt-0000010", "ckpt-0000015"]
    again, _ = load_model(tmp_path / "ckpt-0000010")
    assert all(np.array_equal(again.params[name], value) for name, value in model.params.items())


def test_a_model_loads_in_its_saved_dtype_or_the_one_asked_for(tmp_path):
    model = tiny_model()
    save_checkpoint(tmp_path, model, 1)
    default, info = load_model(tmp_path)
    assert info["dtype"] == "float32" and default.dtype == np.float32
    wide, _ = load_model(tmp_path, dtype="float64")  # float64, as a gradient check needs
    assert wide.dtype == np.float64 and all(p.dtype == np.float64 for p in wide.params.values())
    assert all(np.array_equal(wide.params[name], value) for name, value in model.params.items())


def test_half_written_checkpoint_is_ignored(tmp_path):
    save_checkpoint(tmp_path, tiny_model(), 5)
    (tmp_path / ".tmp-ckpt-0000010-123").mkdir()  # what an interrupted save leaves behind
    (tmp_path / ".tmp-ckpt-0000010-123" / "model.safetensors").write_bytes(b"partial")
    assert read_info(tmp_path)[1]["step"] == 5


def test_checkpoint_of_another_config_is_refused(tmp_path):
    save_checkpoint(tmp_path, tiny_model(n_embd=8), 1)
    path, info = read_info(tmp_path)
    info["config"]["n_embd"] = 16  # the config says one thing, the weights another
    (path / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="shape"):
        load_model(tmp_path)


def test_corrupted_checkpoint_gives_a_clear_error(tmp_path):
    path = save_checkpoint(tmp_path, tiny_model(), 1)
    (path / "checkpoint.json").write_text("{broken")
    with pytest.raises(ValueError, match="corrupted"):
        load_model(tmp_path)
    path = save_checkpoint(tmp_path, tiny_model(), 2)
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted"):
        load_model(tmp_path)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_weights_holding_nan_or_inf_are_refused(tmp_path, bad):
    model = tiny_model()
    model.params["h.0.mlp.c_fc.weight"][0, 0] = bad  # one damaged value among many
    save_checkpoint(tmp_path, model, 1)
    with pytest.raises(ValueError, match="h.0.mlp.c_fc.weight holds NaN or inf values"):
        load_model(tmp_path)


def test_missing_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        load_model(tmp_path)


@pytest.mark.parametrize("damage, message", [
    (lambda info: info.pop("config"), "missing 'config'"),
    (lambda info: info["config"].update(foo=1), r"'config' has unknown fields \['foo'\]"),
    (lambda info: info["config"].pop("n_head"), r"'config' lacks the fields \['n_head'\]"),
    (lambda info: info.update(config=[1, 2]), "'config' is a list"),
    (lambda info: info["config"].update(vocab_size=0), "GPTConfig.vocab_size must be a positive integer, got 0"),
    (lambda info: info.update(tokenizer=[1]), "'tokenizer' is a list"),
])
def test_hand_damaged_checkpoint_json_names_the_file(tmp_path, damage, message):
    path = save_checkpoint(tmp_path, tiny_model(), 1)
    info = json.loads((path / "checkpoint.json").read_text())
    damage(info)
    (path / "checkpoint.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match=f"checkpoint.json: {message}.*damaged or not from minigpt"):
        load_model(tmp_path)


def test_checkpoint_json_that_is_not_an_object_names_the_file(tmp_path):
    path = save_checkpoint(tmp_path, tiny_model(), 1)
    (path / "checkpoint.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="checkpoint.json holds a JSON list, not an object"):
        read_info(tmp_path)


def test_require_fields_names_what_is_missing(tmp_path):
    path, info = read_info(save_checkpoint(tmp_path, tiny_model(), 1))
    require_fields(path, info, ("step", "config"))
    with pytest.raises(ValueError, match=r"checkpoint.json: missing 'rng', 'train_config' \(the file is damaged"):
        require_fields(path, info, ("step", "rng", "train_config"))


def test_a_fine_tuned_checkpoint_is_not_loaded_as_a_plain_model(tmp_path):
    path = save_checkpoint(tmp_path, tiny_model(), 1, extra={"finetune": {"task": "sst2"}})
    with pytest.raises(ValueError, match=r"is a fine-tuned task model \(minigpt finetune\).*load_task_model"):
        load_model(path)

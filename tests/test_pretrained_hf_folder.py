"""Hugging Face folders without transformers: save -> load round trips, the file layout transformers
expects, every config field that would change the math, and loading in about one copy of memory.

The comparison with transformers itself (logits, gradients, greedy text) is test_parity_hf_models.py.
"""
import json
import tracemalloc

import numpy as np
import pytest

from minigpt import GPT, GPTConfig
from minigpt.pretrained import load_hf_model, load_pretrained, save_pretrained, tokenizer_from_pretrained
from minigpt.pretrained.hf_weights import load_weights_into, read_entries
from minigpt.safetensors import load_file, save_file
from minigpt.tokenizer import BPETokenizer, CharTokenizer, OpenAIGPTTokenizer

HF_TYPE = {"gpt2": "gpt2", "gpt1": "openai-gpt"}


def random_model(arch, vocab_size=37, seed=1):
    """A tiny model whose every parameter is random (LayerNorm gains and biases too), so a swapped
    or transposed tensor changes the logits."""
    cfg = GPTConfig(vocab_size=vocab_size, block_size=9, n_layer=2, n_head=2, n_embd=8, arch=arch)
    model = GPT(cfg, seed=seed)
    rng = np.random.default_rng(seed)
    for p in model.params.values():
        p += rng.normal(0, 0.3, p.shape).astype(p.dtype)
    return model


def logits(model, seed=0):
    idx = np.random.default_rng(seed).integers(0, model.config.vocab_size, (2, model.config.block_size))
    return model.forward(idx, train=False)[0]


@pytest.fixture(params=["gpt2", "gpt1"])
def arch(request):
    return request.param


def saved(tmp_path, arch, **kwargs):
    model = random_model(arch, **kwargs)
    folder = save_pretrained(model, tmp_path / "hf")
    return model, folder


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_round_trip_gives_the_same_weights_and_logits(tmp_path, arch):
    model, folder = saved(tmp_path, arch)
    loaded = GPT.from_pretrained(folder)
    assert loaded.config == model.config
    for name, value in model.params.items():
        assert np.array_equal(loaded.params[name], value), name
    assert np.array_equal(logits(loaded), logits(model))


def test_files_have_the_layout_transformers_reads(tmp_path, arch):
    model, folder = saved(tmp_path, arch)
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == HF_TYPE[arch] and config["n_positions"] == 9 and config["vocab_size"] == 37
    assert config.get("activation_function", config.get("afn")) in ("gelu_new", "gelu")  # both are the tanh GELU
    tensors = load_file(folder / "model.safetensors")
    embed = "transformer.wte.weight" if arch == "gpt2" else "transformer.tokens_embed.weight"
    assert np.array_equal(tensors[embed], model.params["wte.weight"])
    # Conv1D stores (in, out), as minigpt's Linear: the same array, no transpose
    assert np.array_equal(tensors["transformer.h.1.mlp.c_fc.weight"], model.params["h.1.mlp.c_fc.weight"])
    assert tensors["transformer.h.1.mlp.c_fc.weight"].shape == (8, 32)
    assert ("transformer.ln_f.weight" in tensors) == (arch == "gpt2")  # GPT-1 has no final LayerNorm
    assert "lm_head.weight" not in tensors  # tied to the token embedding, as transformers saves it


def test_original_names_buffers_and_a_tied_head_copy_load(tmp_path, arch):
    """Older files: no "transformer." prefix, causal-mask buffers, and sometimes a copy of the tied lm_head."""
    model, folder = saved(tmp_path, arch)
    tensors = {k.removeprefix("transformer."): v for k, v in load_file(folder / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = np.tril(np.ones((1, 1, 9, 9), np.float32))
    tensors["h.1.attn.masked_bias"] = np.array(-1e4, np.float32)
    embed = "wte.weight" if arch == "gpt2" else "tokens_embed.weight"
    tensors["lm_head.weight"] = tensors[embed]
    save_file(tensors, folder / "model.safetensors")
    assert np.array_equal(logits(GPT.from_pretrained(folder)), logits(model))
    tensors["lm_head.weight"] = tensors[embed] + 1
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ValueError, match="lm_head.weight differs from the token embedding"):
        GPT.from_pretrained(folder)


def test_buffers_of_any_dtype_are_skipped_but_weights_must_be_floats(tmp_path, arch):
    # transformers 4 saved the causal masks as bool or uint8; they are not weights, whatever their dtype
    model, folder = saved(tmp_path, arch)
    tensors = load_file(folder / "model.safetensors")
    tensors["transformer.h.0.attn.bias"] = np.tril(np.ones((1, 1, 9, 9), bool))
    tensors["transformer.h.1.attn.bias"] = np.tril(np.ones((1, 1, 9, 9), np.uint8))
    save_file(tensors, folder / "model.safetensors")
    assert np.array_equal(logits(GPT.from_pretrained(folder)), logits(model))
    name = "transformer.h.1.mlp.c_fc.bias"
    tensors[name] = tensors[name].astype(np.int32)  # a weight: refused by name
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ValueError, match=f"tensor '{name}' has dtype 'I32'; minigpt reads the float dtypes"):
        GPT.from_pretrained(folder)


def test_a_config_that_does_not_fit_the_files_is_refused_before_allocating(tmp_path, arch):
    # a config.json edited to a 2M-token vocabulary: refused from the files' headers, not after filling 0.5 GB
    _, folder = saved(tmp_path, arch)
    edit_config(folder, vocab_size=2_000_000)
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"has shape \(37, 8\), but the config makes wte.weight \(2000000, 8\)"):
            GPT.from_pretrained(folder)
        assert tracemalloc.get_traced_memory()[1] < 20 * 2**20
    finally:
        tracemalloc.stop()
    _, folder = saved(tmp_path / "layers", arch)
    edit_config(folder, **({"n_layer": 40}))
    with pytest.raises(ValueError, match="the files hold 2 layers, but the config makes 40"):
        GPT.from_pretrained(folder)


@pytest.mark.parametrize("code", ["F16", "BF16", "F64"])
def test_half_and_double_precision_files_become_float32(tmp_path, code):
    model, folder = saved(tmp_path, "gpt2")
    tensors = load_file(folder / "model.safetensors")
    if code == "F16":
        stored = {k: v.astype(np.float16) for k, v in tensors.items()}
        save_file(stored, folder / "model.safetensors")
        expected = {k: v.astype(np.float32) for k, v in stored.items()}
    elif code == "F64":
        save_file({k: v.astype(np.float64) for k, v in tensors.items()}, folder / "model.safetensors")
        expected = tensors  # float32 -> float64 -> float32 is exact
    else:  # bfloat16 is the top 16 bits of a float32, a type NumPy has no name for
        top = {k: (v.view(np.uint32) >> 16).astype(np.uint16) for k, v in tensors.items()}
        write_bfloat16_file(top, folder / "model.safetensors")
        expected = {k: (v.astype(np.uint32) << 16).view(np.float32) for k, v in top.items()}
    loaded = GPT.from_pretrained(folder)
    for name in model.params:
        assert loaded.params[name].dtype == np.float32
        assert np.array_equal(loaded.params[name], expected["transformer." + name]), name


def write_bfloat16_file(bits, path):
    """A safetensors file of BF16 tensors, given their raw 16-bit patterns (the format: safetensors.py)."""
    header, offset = {}, 0
    for name, array in bits.items():
        header[name] = {"dtype": "BF16", "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    data = b"".join(a.astype("<u2").tobytes() for a in bits.values())
    path.write_bytes(len(encoded).to_bytes(8, "little") + encoded + data)


def sharded(tmp_path):
    """(model, folder) with the weights in two shards and an index, as large Hugging Face models come."""
    model, folder = saved(tmp_path, "gpt1")
    tensors = load_file(folder / "model.safetensors")
    names = sorted(tensors)
    shards = {"model-00001-of-00002.safetensors": names[:10], "model-00002-of-00002.safetensors": names[10:]}
    for file, part in shards.items():
        save_file({k: tensors[k] for k in part}, folder / file)
    (folder / "model.safetensors").unlink()
    index = {"weight_map": {k: file for file, part in shards.items() for k in part}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return model, folder


def test_sharded_folders_load(tmp_path):
    model, folder = sharded(tmp_path)
    assert np.array_equal(logits(GPT.from_pretrained(folder)), logits(model))


def test_a_pickle_only_folder_says_how_to_convert_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "vocab_size": 5, "n_positions": 4,
                                                      "n_embd": 4, "n_layer": 1, "n_head": 1}))
    (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
    with pytest.raises(FileNotFoundError, match=r"pytorch_model.bin(.|\n)*save_pretrained"):
        GPT.from_pretrained(tmp_path)


def test_the_wrong_kind_of_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        GPT.from_pretrained(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        GPT.from_pretrained(tmp_path)
    (tmp_path / "checkpoint.json").write_text("{}")
    with pytest.raises(ValueError, match="is a minigpt checkpoint"):
        GPT.from_pretrained(tmp_path)


@pytest.mark.parametrize("arch, changes, message", [
    ("gpt2", {"layer_norm_epsilon": 1e-6}, "layer_norm_epsilon is 1e-06"),
    ("gpt2", {"activation_function": "gelu"}, "activation_function is 'gelu'"),
    ("gpt2", {"n_inner": 16}, "n_inner is 16"),
    ("gpt2", {"n_ctx": 4}, "n_ctx"),
    ("gpt2", {"scale_attn_by_inverse_layer_idx": True}, "scale_attn_by_inverse_layer_idx"),
    ("gpt2", {"scale_attn_weights": False}, "scale_attn_weights"),
    ("gpt2", {"tie_word_embeddings": False}, "untied lm_head"),
    ("gpt2", {"attn_pdrop": 0.2}, "dropout rates differ"),
    ("gpt2", {"model_type": "llama"}, "model_type 'llama'"),
    ("gpt2", {"n_embd": "8"}, "'n_embd' must be a positive integer"),
    ("gpt2", {"embd_pdrop": [0.1], "attn_pdrop": [0.1], "resid_pdrop": [0.1]},
     r"'embd_pdrop' must be a probability in \[0, 1\), got \[0.1\]"),
    ("gpt2", {"n_positions": 12}, r"wpe.weight has shape \(9, 8\), but the config makes wpe.weight \(12, 8\)"),
    ("gpt1", {"afn": "relu"}, "afn is 'relu'"),
    ("gpt1", {"layer_norm_epsilon": 1e-12}, "layer_norm_epsilon"),
])
def test_config_fields_that_change_the_math_are_errors(tmp_path, arch, changes, message):
    _, folder = saved(tmp_path, arch)
    edit_config(folder, **changes)
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(folder)


def test_json_files_that_are_not_objects_name_the_file(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    (folder / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"config.json: holds a JSON list, not an object"):
        GPT.from_pretrained(folder)
    _, folder = saved(tmp_path / "b", "gpt2", vocab_size=40)
    (folder / "minigpt.json").write_text("3")
    with pytest.raises(ValueError, match=r"minigpt.json: holds a JSON int, not an object"):
        load_pretrained(folder)
    (folder / "minigpt.json").write_text(json.dumps({"format": "minigpt-hf-extras", "info": [1]}))
    with pytest.raises(ValueError, match=r"minigpt.json: 'info' must be an object, got a list"):
        load_pretrained(folder)
    (folder / "minigpt.json").write_text(json.dumps({"format": "minigpt-hf-extras", "tokenizer": "gpt2"}))
    with pytest.raises(ValueError, match=r"minigpt.json: 'tokenizer' must be an object or null, got a str"):
        load_pretrained(folder)


def test_the_dropout_rate_comes_from_the_config_else_transformers_default(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    edit_config(folder, embd_pdrop=0.25, attn_pdrop=0.25, resid_pdrop=0.25)
    assert GPT.from_pretrained(folder).config.dropout == 0.25  # fine-tuning an import uses it
    config = json.loads((folder / "config.json").read_text())
    for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop"):
        del config[name]
    (folder / "config.json").write_text(json.dumps(config))
    assert GPT.from_pretrained(folder).config.dropout == 0.1  # GPT2Config's default for a file without them


def test_an_explicit_dropout_settles_differing_rates(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    edit_config(folder, attn_pdrop=0.2)
    assert GPT.from_pretrained(folder, dropout=0.05).config.dropout == 0.05


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.pop("transformer.h.1.ln_2.bias"), r"missing \['h.1.ln_2.bias'\]"),
    (lambda t: t.update({"score.weight": np.zeros((2, 8), np.float32)}), r"unexpected \['score.weight'\]"),
    (lambda t: t.update({"h.0.ln_1.weight": t["transformer.h.0.ln_1.weight"]}), "are the same tensor"),
])
def test_missing_extra_or_doubled_tensors_are_listed(tmp_path, edit, message):
    _, folder = saved(tmp_path, "gpt2")
    tensors = load_file(folder / "model.safetensors")
    edit(tensors)
    save_file(tensors, folder / "model.safetensors")
    with pytest.raises(ValueError, match=message):
        GPT.from_pretrained(folder)


def test_a_truncated_file_is_an_error(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    raw = (folder / "model.safetensors").read_bytes()
    (folder / "model.safetensors").write_bytes(raw[:-100])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        GPT.from_pretrained(folder)


def test_saving_refuses_a_folder_that_is_not_empty(tmp_path, arch):
    model, folder = saved(tmp_path, arch)
    with pytest.raises(FileExistsError, match="not an empty folder"):
        save_pretrained(model, folder)
    (tmp_path / "empty").mkdir()
    assert save_pretrained(model, tmp_path / "empty") == tmp_path / "empty"
    assert not list(tmp_path.glob(".tmp-*"))  # the temporary folder was renamed into place


def test_gpt2_tokenizer_files_round_trip_with_special_tokens(tmp_path):
    text = "the lowest lower newer, newest. " * 20 + "héllo wörld 🙂\n\tend"
    tok = BPETokenizer.train(text, vocab_size=280)
    tok.add_special_tokens(["_start_", "_delimiter_"])
    model = random_model("gpt2", vocab_size=tok.vocab_size)
    folder = save_pretrained(model, tmp_path / "hf", tok)
    vocab = json.loads((folder / "vocab.json").read_text())
    assert vocab["Ġ"] == tok.byte_ids[ord(" ")] and vocab["<|endoftext|>"] == tok.eot_token  # GPT-2's printable bytes
    config = json.loads((folder / "config.json").read_text())
    assert config["eos_token_id"] == config["bos_token_id"] == tok.eot_token  # one <|endoftext|>, as in GPT-2's
    again = tokenizer_from_pretrained(folder)
    assert again.to_dict() == tok.to_dict()
    assert again.encode("_start_the lowest<|endoftext|>", "all") == tok.encode("_start_the lowest<|endoftext|>", "all")


def test_openai_gpt_tokenizer_files_round_trip(tmp_path):
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab = list(letters) + [c + "</w>" for c in letters + ".!"] + ["lo", "low</w>"]
    tok = OpenAIGPTTokenizer(vocab, [("l", "o"), ("lo", "w</w>")])
    tok.add_special_tokens(["_start_", "_classify_"])
    model = random_model("gpt1", vocab_size=tok.vocab_size)
    folder = save_pretrained(model, tmp_path / "hf", tok)
    assert "low</w>" in (folder / "vocab.json").read_text() and "lo w</w>" in (folder / "merges.txt").read_text()
    assert tokenizer_from_pretrained(folder).to_dict() == tok.to_dict()


def test_hf_placeholder_unknown_token_is_skipped_and_gaps_are_errors(tmp_path):
    letters = "abc"
    tok = OpenAIGPTTokenizer(list(letters) + [c + "</w>" for c in letters], [])
    folder = save_pretrained(random_model("gpt1", vocab_size=tok.vocab_size), tmp_path / "hf", tok)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["added_tokens_decoder"] = {"6": {"content": "<unk>"}}  # what transformers adds for GPT-1
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    assert tokenizer_from_pretrained(folder).vocab_size == 6
    tok_config["added_tokens_decoder"] = {"7": {"content": "_start_"}}
    (folder / "tokenizer_config.json").write_text(json.dumps(tok_config))
    with pytest.raises(ValueError, match="added token '_start_' has id 7"):
        tokenizer_from_pretrained(folder)


def test_a_tokenizer_without_hf_form_is_kept_in_minigpt_json(tmp_path):
    tok = CharTokenizer.train("hello world")
    model = random_model("gpt2", vocab_size=tok.vocab_size)
    with pytest.warns(UserWarning, match="no Hugging Face form"):
        folder = save_pretrained(model, tmp_path / "hf", tok)
    assert not (folder / "vocab.json").exists() and (folder / "minigpt.json").exists()
    loaded, again, extras = load_pretrained(folder)
    assert again.to_dict() == tok.to_dict() and extras.tensors == {} and extras.info == {}


def test_only_tokenizer_json_says_how_to_write_vocab_and_merges(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="backend_tokenizer.model.save"):
        tokenizer_from_pretrained(folder)


def test_a_tokenizer_larger_than_the_embedding_is_refused(tmp_path):
    tok = BPETokenizer.train("abc abc abd", vocab_size=260)
    with pytest.raises(ValueError, match="the tokenizer has 260 tokens but the model only 37"):
        save_pretrained(random_model("gpt2"), tmp_path / "hf", tok)


def test_loading_holds_one_copy_of_the_weights_not_two(tmp_path):
    """The principle behind "GPT-2 124M loads in about two copies at most" (benchmarks/pretrained_memory.py
    measures the real size): tensors are read straight into the model's parameters, so loading costs
    no more than building the model, where reading the file into a dict first would add a whole copy."""
    cfg = GPTConfig(vocab_size=2000, block_size=64, n_layer=2, n_head=4, n_embd=128)
    folder = save_pretrained(GPT(cfg, seed=0), tmp_path / "hf")
    weights = (folder / "model.safetensors").stat().st_size
    tracemalloc.start()
    try:
        GPT(cfg)
        build_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        model = load_hf_model(folder)
        load_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        naive = GPT(cfg)
        tensors = load_file(folder / "model.safetensors")  # the naive way: the whole file, then copy
        naive_peak = tracemalloc.get_traced_memory()[1]
        del naive, tensors
    finally:
        tracemalloc.stop()
    assert load_peak < build_peak + 0.05 * weights, (load_peak, build_peak, weights)
    assert naive_peak > build_peak + 0.9 * weights  # the measurement can see a second copy
    assert model.num_params() * 4 < weights < model.num_params() * 4 + 10_000


def test_weights_can_be_read_into_a_float64_model(tmp_path):
    model, folder = saved(tmp_path, "gpt1")
    double = GPT(model.config, dtype="float64")
    from minigpt.pretrained import hf_openai_gpt
    load_weights_into(double, read_entries([folder / "model.safetensors"]), hf_openai_gpt.from_hf_name, "test")
    for name, value in model.params.items():
        assert np.array_equal(double.params[name], value.astype(np.float64))


def test_a_padded_vocabulary_keeps_its_extra_rows(tmp_path):
    """Embeddings padded past the tokenizer (50304 rows for GPT-2's 50257 tokens, say) load and save as they
    are: the config's vocab_size is the number of rows, the tokenizer keeps its own size."""
    tok = BPETokenizer.train("abc abd abe " * 5, vocab_size=261)
    model = random_model("gpt2", vocab_size=tok.vocab_size + 7)
    folder = save_pretrained(model, tmp_path / "hf", tok)
    assert json.loads((folder / "config.json").read_text())["vocab_size"] == 268
    loaded, again, _ = load_pretrained(folder)
    assert loaded.config.vocab_size == 268 and again.vocab_size == 261
    assert np.array_equal(loaded.params["wte.weight"], model.params["wte.weight"])

"""Malformed Hugging Face folders: the shard index, the tokenizer files (vocab.json, merges.txt,
tokenizer_config.json, tokenizer.json, added_tokens.json), config.json and minigpt.json. Each gives one
clear error naming the file (and the line of merges.txt), never a traceback from deep inside or a model
that loads with a silently wrong or missing part."""
import json
import re

import numpy as np
import pytest
from test_pretrained_hf_folder import edit_config, logits, random_model, saved, sharded

from minigpt import GPT
from minigpt.cli import main
from minigpt.pretrained import hf_to_checkpoint, load_pretrained, save_pretrained, tokenizer_from_pretrained
from minigpt.tokenizer import BPETokenizer, OpenAIGPTTokenizer

TEXT = "the quick brown fox jumps over the lazy dog; the lowest lower newer, newest. " * 20


def gpt2_folder(tmp_path):
    """A gpt2 HF folder with GPT-2 style tokenizer files: 256 bytes, 23 merges, <|endoftext|> = 279."""
    tok = BPETokenizer.train(TEXT, vocab_size=280)
    return save_pretrained(random_model("gpt2", vocab_size=tok.vocab_size), tmp_path / "hf", tok)


def gpt1_folder(tmp_path):
    letters = "abcdefghijklmnopqrstuvwxyz"
    tok = OpenAIGPTTokenizer(list(letters) + [c + "</w>" for c in letters] + ["lo", "low</w>"],
                             [("l", "o"), ("lo", "w</w>")])
    return save_pretrained(random_model("gpt1", vocab_size=tok.vocab_size), tmp_path / "hf", tok)


def write_json(path, value):
    path.write_text(json.dumps(value))


def escaped(path):
    return re.escape(str(path))


# --- model.safetensors.index.json ---------------------------------------------------------------------------

@pytest.mark.parametrize("index", [{"weight_map": ["a"]}, {"weight_map": {"a": 3}}, {"weight_map": {}}, {}, [1],
                                   {"weight_map": "model.safetensors"}])
def test_an_index_without_a_weight_map_of_names_is_refused(tmp_path, index):
    _, folder = sharded(tmp_path)
    write_json(folder / "model.safetensors.index.json", index)
    with pytest.raises(ValueError, match=escaped(folder / "model.safetensors.index.json")
                       + r": not a valid safetensors index: it needs a non-empty \"weight_map\""):
        GPT.from_pretrained(folder)


def test_an_index_that_is_not_utf8_json_is_refused(tmp_path):
    _, folder = sharded(tmp_path)
    (folder / "model.safetensors.index.json").write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match=r"model.safetensors.index.json: not a valid safetensors index \(not valid"):
        GPT.from_pretrained(folder)


def test_an_index_may_not_name_shards_outside_its_folder(tmp_path):
    _, folder = sharded(tmp_path)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    outside = tmp_path / "other"
    outside.mkdir()
    shard = "model-00002-of-00002.safetensors"
    (folder / shard).rename(outside / shard)  # the file exists: it is the name that is refused
    for name in (f"../other/{shard}", str(outside / shard), f"sub/../../other/{shard}"):
        index["weight_map"] = {k: (name if v == shard else v) for k, v in index["weight_map"].items()}
        write_json(folder / "model.safetensors.index.json", index)
        with pytest.raises(ValueError, match=f"shard {re.escape(repr(name))} is not a file name inside"):
            GPT.from_pretrained(folder)
        shard = name


def test_a_shard_that_is_a_symlink_loads_as_in_a_hugging_face_cache(tmp_path):
    """A Hugging Face cache's snapshot folder holds symlinks into ../../blobs/: a name inside the folder is fine
    wherever its link points."""
    model, folder = sharded(tmp_path)
    blobs = tmp_path / "blobs"
    blobs.mkdir()
    for shard in folder.glob("*.safetensors"):
        shard.rename(blobs / shard.name)
        shard.symlink_to(blobs / shard.name)
    assert np.array_equal(logits(GPT.from_pretrained(folder)), logits(model))


def test_a_missing_shard_names_the_index(tmp_path):
    _, folder = sharded(tmp_path)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model.safetensors.index.json lists the shard "
                                                r"'model-00002-of-00002.safetensors', but .* is not a file"):
        GPT.from_pretrained(folder)


# --- vocab.json and merges.txt (GPT-2) ----------------------------------------------------------------------

@pytest.mark.parametrize("content, message", [
    (b"{}", r"vocab.json: the single-byte token 'Ā' \(byte 0x00\) is missing"),
    (b"[1, 2]", r"vocab.json: expected a JSON object of token -> id, got a list"),
    (b"{broken", r"vocab.json: not valid JSON"),
    (b"\xff\xfe", r"vocab.json: not valid JSON"),
    (b'{"a": "x"}', r"vocab.json: token 'a' has id 'x'; ids must be integers >= 0"),
    (b'{"a": -1}', r"vocab.json: token 'a' has id -1"),
    (b'{"a": true}', r"vocab.json: token 'a' has id True"),
])
def test_a_malformed_gpt2_vocab_names_the_file(tmp_path, content, message):
    folder = gpt2_folder(tmp_path)
    (folder / "vocab.json").write_bytes(content)
    with pytest.raises(ValueError, match=escaped(folder) + "/" + message):
        tokenizer_from_pretrained(folder)


@pytest.mark.parametrize("file", ["vocab.json", "tokenizer_config.json", "model.safetensors.index.json"])
def test_json_nested_too_deep_to_parse_names_the_file(tmp_path, file):
    folder = gpt2_folder(tmp_path)
    (folder / file).write_text("[" * 100_000 + "]" * 100_000)
    read = GPT.from_pretrained if file == "model.safetensors.index.json" else tokenizer_from_pretrained
    if file == "model.safetensors.index.json":
        (folder / "model.safetensors").unlink()
    with pytest.raises(ValueError, match=re.escape(file) + r": not (a )?valid"):
        read(folder)


def test_a_merge_of_tokens_missing_from_vocab_names_the_merges_line(tmp_path):
    folder = gpt2_folder(tmp_path)
    lines = (folder / "merges.txt").read_text().splitlines()
    (folder / "merges.txt").write_text("\n".join(lines[:3] + ["QQQ WWW"] + lines[3:]) + "\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 4: the merge 'QQQ' 'WWW' needs the token 'QQQ', which "
                                         r"is not in " + escaped(folder / "vocab.json")):
        tokenizer_from_pretrained(folder)


def test_a_merges_file_that_is_not_utf8_names_the_line(tmp_path):
    folder = gpt2_folder(tmp_path)
    (folder / "merges.txt").write_bytes(b"#version: 0.2\n\xc4\xa0 t\n\xff\xfe x\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 3: not valid UTF-8 text"):
        tokenizer_from_pretrained(folder)


def test_special_tokens_keep_their_ids_whatever_their_order_in_vocab_json(tmp_path):
    folder = gpt2_folder(tmp_path)
    vocab = json.loads((folder / "vocab.json").read_text())
    eot = vocab.pop("<|endoftext|>")
    write_json(folder / "vocab.json", {"<a>": eot + 1, **vocab, "<|endoftext|>": eot})  # "<a>" listed first
    assert tokenizer_from_pretrained(folder).special_tokens == {"<|endoftext|>": eot, "<a>": eot + 1}
    write_json(folder / "vocab.json", {**vocab, "<|endoftext|>": eot + 3})
    with pytest.raises(ValueError, match=r"vocab.json: token '<\|endoftext\|>' has id 282, expected 279: the "
                                         r"tokens after the 279 bytes and merges must have the ids 279, 280, ..."):
        tokenizer_from_pretrained(folder)


def test_a_merge_making_the_wrong_id_names_the_merges_line(tmp_path):
    folder = gpt2_folder(tmp_path)
    lines = (folder / "merges.txt").read_text().splitlines()
    lines[1], lines[2] = lines[2], lines[1]  # two merges swapped: each makes the other's id
    (folder / "merges.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 2: merge 0 .* makes token id 257 in .*vocab.json; "
                                         r"expected 256"):
        tokenizer_from_pretrained(folder)


def test_byte_tokens_must_have_the_first_256_ids(tmp_path):
    folder = gpt2_folder(tmp_path)
    vocab = json.loads((folder / "vocab.json").read_text())
    vocab["!"] = 999
    write_json(folder / "vocab.json", vocab)
    with pytest.raises(ValueError, match=r"vocab.json: the 256 single-byte tokens must have the ids 0..255"):
        tokenizer_from_pretrained(folder)


# --- vocab.json and merges.txt (GPT-1) ----------------------------------------------------------------------

def test_malformed_gpt1_tokenizer_files_name_the_file(tmp_path):
    folder = gpt1_folder(tmp_path)
    good_vocab, good_merges = (folder / "vocab.json").read_bytes(), (folder / "merges.txt").read_bytes()
    (folder / "vocab.json").write_text("{broken")
    with pytest.raises(ValueError, match=r"vocab.json: not valid JSON"):
        tokenizer_from_pretrained(folder)
    (folder / "vocab.json").write_bytes(good_vocab)
    (folder / "merges.txt").write_bytes(good_merges + b"\xff x\n")
    with pytest.raises(ValueError, match=r"merges.txt, line 4: not valid UTF-8 text"):
        tokenizer_from_pretrained(folder)
    (folder / "merges.txt").write_bytes(good_merges + b"qq ww\n")
    with pytest.raises(ValueError, match=r"merges.txt with .*vocab.json: OpenAIGPTTokenizer: merge 2 \('qq' 'ww'\) "
                                         r"uses 'qq', which is not in the vocabulary"):
        tokenizer_from_pretrained(folder)


# --- tokenizer_config.json, tokenizer.json, added_tokens.json ------------------------------------------------

@pytest.mark.parametrize("tok_config, message", [
    ([1], r"tokenizer_config.json: holds a JSON list, not an object"),
    ({"tokenizer_class": [1]}, r"tokenizer_config.json: 'tokenizer_class' must be a string, got \[1\]"),
    ({"added_tokens_decoder": [1]}, r"tokenizer_config.json: 'added_tokens_decoder' must be an object of id -> "
                                    r"token, got a list"),
    ({"added_tokens_decoder": {"abc": {"content": "x"}}}, r"tokenizer_config.json: added_tokens_decoder holds 'abc'"),
    ({"added_tokens_decoder": {"-1": {"content": "x"}}}, r"added_tokens_decoder holds '-1'"),
    ({"added_tokens_decoder": {"280": 5}}, r"added_tokens_decoder holds '280': 5"),
    ({"added_tokens_decoder": {"280": {"content": 5}}}, r"added_tokens_decoder holds '280'"),
    ({"added_tokens_decoder": {"280": {}}}, r"added_tokens_decoder holds '280'"),
])
def test_a_malformed_tokenizer_config_names_the_file(tmp_path, tok_config, message):
    folder = gpt2_folder(tmp_path)
    write_json(folder / "tokenizer_config.json", tok_config)
    with pytest.raises(ValueError, match=message):
        tokenizer_from_pretrained(folder)


@pytest.mark.parametrize("named, reads", [("LlamaTokenizer", False), ("T5TokenizerFast", False),
                                           ("PreTrainedTokenizerFast", True), ("GPT2Tokenizer", True)])
def test_a_tokenizer_class_of_another_kind_is_refused(tmp_path, named, reads):
    # a generic class leaves the kind to model_type; a class of another kind is not read as GPT-2's BPE
    folder = gpt2_folder(tmp_path)
    write_json(folder / "tokenizer_config.json", {"tokenizer_class": named})
    if reads:
        assert tokenizer_from_pretrained(folder).vocab_size > 256
    else:
        with pytest.raises(ValueError, match=f"tokenizer class '{named}' .* is not a tokenizer minigpt reads"):
            tokenizer_from_pretrained(folder)


@pytest.mark.parametrize("file, content, message", [
    ("tokenizer.json", [1], r"tokenizer.json: holds a JSON list, not an object"),
    ("tokenizer.json", {"added_tokens": {}}, r"tokenizer.json: 'added_tokens' must be a list, got a dict"),
    ("tokenizer.json", {"added_tokens": [{"id": "280", "content": "<a>"}]}, r"tokenizer.json: added token"),
    ("tokenizer.json", {"added_tokens": [3]}, r"tokenizer.json: added token 3 is not"),
    ("added_tokens.json", [1], r"added_tokens.json: holds a JSON list, not an object"),
    ("added_tokens.json", {"<a>": "280"}, r"added_tokens.json: token '<a>' has id '280'; ids must be integers"),
])
def test_malformed_added_token_files_name_the_file(tmp_path, file, content, message):
    folder = gpt2_folder(tmp_path)
    write_json(folder / file, content)
    with pytest.raises(ValueError, match=message):
        tokenizer_from_pretrained(folder)


def test_added_token_files_must_agree(tmp_path):
    folder = gpt2_folder(tmp_path)
    tok_config = json.loads((folder / "tokenizer_config.json").read_text())
    tok_config["added_tokens_decoder"]["280"] = {"content": "<a>"}
    write_json(folder / "tokenizer_config.json", tok_config)
    write_json(folder / "added_tokens.json", {"<a>": 280})
    assert tokenizer_from_pretrained(folder).special_tokens["<a>"] == 280
    write_json(folder / "added_tokens.json", {"<b>": 280})
    with pytest.raises(ValueError, match=r"added_tokens.json gives id 280 to '<b>', but .*tokenizer_config.json "
                                         r"to '<a>'"):
        tokenizer_from_pretrained(folder)


# --- tokenizer files minigpt cannot read are an error, not a tokenizer quietly left behind -----------------

def test_tokenizer_json_alone_stops_the_conversion_with_the_fix(tmp_path, capsys):
    folder = gpt2_folder(tmp_path)
    (folder / "vocab.json").unlink()
    (folder / "merges.txt").unlink()
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="backend_tokenizer.model.save"):
        load_pretrained(folder)
    assert main(["convert", str(folder), str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minigpt convert: error: ") and "has tokenizer.json but not vocab.json + merges.txt" in err
    assert not list((tmp_path / "out").glob("ckpt-*"))  # nothing half-useful was written


@pytest.mark.parametrize("present, missing", [("vocab.json", "merges.txt"), ("merges.txt", "vocab.json")])
def test_half_of_the_tokenizer_pair_is_an_error(tmp_path, present, missing):
    folder = gpt2_folder(tmp_path)
    (folder / missing).unlink()
    with pytest.raises(FileNotFoundError, match=f"{escaped(folder)} has {present} but no {missing}"):
        load_pretrained(folder)
    with pytest.raises(FileNotFoundError, match=f"has {present} but no {missing}"):
        hf_to_checkpoint(folder, tmp_path / "out")


def test_a_weights_only_folder_converts_with_a_warning(tmp_path):
    _, folder = saved(tmp_path, "gpt2")  # no tokenizer files at all
    assert load_pretrained(folder)[1] is None
    with pytest.warns(UserWarning, match="has no tokenizer files .* the checkpoint holds the model only"):
        path = hf_to_checkpoint(folder, tmp_path / "out")
    assert (path / "model.safetensors").is_file()


def test_the_command_does_not_suggest_generate_for_a_weights_only_checkpoint(tmp_path, capsys):
    _, folder = saved(tmp_path, "gpt2")
    with pytest.warns(UserWarning, match="no tokenizer files"):
        assert main(["convert", str(folder), str(tmp_path / "out")]) == 0
    out = capsys.readouterr().out
    assert "(weights only: load it with minigpt.checkpoint.load_model)" in out and "minigpt generate" not in out


# --- config.json and minigpt.json ---------------------------------------------------------------------------

@pytest.mark.parametrize("eps", [float("nan"), float("inf"), float("-inf"), True])
def test_a_non_finite_layer_norm_epsilon_is_refused(tmp_path, arch, eps):
    _, folder = saved(tmp_path, arch)
    edit_config(folder, layer_norm_epsilon=eps)
    with pytest.raises(ValueError, match=r"config.json: layer_norm_epsilon is .*; minigpt's LayerNorm uses 1e-05"):
        GPT.from_pretrained(folder)


def test_cli_convert_refuses_a_nan_epsilon(tmp_path, capsys):
    _, folder = saved(tmp_path, "gpt2")
    edit_config(folder, layer_norm_epsilon=float("nan"))
    assert main(["convert", str(folder), str(tmp_path / "out")]) == 1
    assert "minigpt convert: error: " in capsys.readouterr().err


@pytest.fixture(params=["gpt2", "gpt1"])
def arch(request):
    return request.param


def test_config_errors_from_gptconfig_name_config_json(tmp_path, arch):
    _, folder = saved(tmp_path, arch)
    edit_config(folder, n_head=3)
    with pytest.raises(ValueError, match=escaped(folder / "config.json") + r": GPTConfig: n_embd \(8\) must be "
                                                                           r"divisible by n_head \(3\)"):
        GPT.from_pretrained(folder)


def test_a_model_type_that_is_not_a_string_is_a_clear_error(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    edit_config(folder, model_type=["gpt2"])
    with pytest.raises(ValueError, match=r"config.json: model_type \['gpt2'\] is not one minigpt loads"):
        GPT.from_pretrained(folder)


def test_a_bad_tokenizer_in_minigpt_json_names_the_file(tmp_path):
    _, folder = saved(tmp_path, "gpt2")
    write_json(folder / "minigpt.json", {"format": "minigpt-hf-extras", "version": 1, "tokenizer": {"type": "char"}})
    with pytest.raises(ValueError, match=r"minigpt.json: 'tokenizer' is not a valid minigpt tokenizer: unsupported "
                                         r"format version None"):
        load_pretrained(folder)

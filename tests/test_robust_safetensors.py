"""Malformed safetensors headers: every reader (load_file, load_metadata, the HF reader's read_entries, and the
commands that load weights) refuses them with one ValueError that names the file and the tensor, never an
AttributeError, a KeyError or a TypeError from deep inside."""
import json
import re
import struct

import numpy as np
import pytest

import minigpt
from minigpt.checkpoint import save_checkpoint
from minigpt.cli import main
from minigpt.pretrained.hf_weights import read_entries
from minigpt.safetensors import load_file, load_metadata, save_file
from minigpt.tokenizer import CharTokenizer

GOOD_ENTRY = {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]}


def write_raw(path, header, data=bytes(24)):
    """A safetensors file with exactly this header (any JSON value) and these data bytes."""
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def with_entry(**changes):
    """GOOD_ENTRY with keys changed (a value of None removes the key)."""
    entry = {**GOOD_ENTRY, **changes}
    return {k: v for k, v in entry.items() if v is not None}


BAD_ENTRIES = [
    pytest.param(3, r"its entry is a JSON number, not an object", id="entry-int"),
    pytest.param([1, 2], r"its entry is a JSON list, not an object", id="entry-list"),
    pytest.param(with_entry(dtype=None), r"its entry has no 'dtype'", id="no-dtype"),
    pytest.param(with_entry(shape=None), r"its entry has no 'shape'", id="no-shape"),
    pytest.param(with_entry(data_offsets=None), r"its entry has no 'data_offsets'", id="no-offsets"),
    pytest.param(with_entry(dtype=4), r"'dtype' must be a string, got 4", id="dtype-int"),
    pytest.param(with_entry(shape=[-2, -3]), r"'shape' must be a list of at most 32 integers in \[0, 2\^62\), got "
                 r"\[-2, -3\]", id="shape-negative"),
    pytest.param(with_entry(shape="ab"), r"'shape' must be a list of at most 32 integers in \[0, 2\^62\), got 'ab'",
                 id="shape-str"),
    # zero bytes either way (another dimension is 0), but NumPy refuses the shape with a message naming nothing
    pytest.param(with_entry(shape=[0, 2**70], data_offsets=[0, 0]), r"'shape' must be a list of at most 32",
                 id="shape-zero-bytes-huge"),
    pytest.param(with_entry(shape=[1] * 100), r"'shape' must be a list of at most 32", id="shape-100-dims"),
    pytest.param(with_entry(shape=[2.0, 3]), r"'shape' must be a list of at most 32 integers", id="shape-float"),
    pytest.param(with_entry(shape=[True, 6]), r"'shape' must be a list of at most 32 integers", id="shape-bool"),
    pytest.param(with_entry(data_offsets=[0.0, 24.0]), r"'data_offsets' must be two integers \[begin, end\]",
                 id="offsets-float"),
    pytest.param(with_entry(data_offsets=[0, 12, 24]), r"'data_offsets' must be two integers", id="offsets-three"),
    pytest.param(with_entry(data_offsets={"a": 1}), r"'data_offsets' must be two integers", id="offsets-object"),
    pytest.param(with_entry(data_offsets=[24, 0]), r"data_offsets 24..0 do not satisfy 0 <= begin <= end",
                 id="offsets-reversed"),
    pytest.param(with_entry(data_offsets=[-8, 16]), r"do not satisfy 0 <= begin <= end", id="offsets-negative"),
    pytest.param(with_entry(data_offsets=[0, 48]), r"go past the end of the data \(24 bytes\); the file is "
                 r"corrupted or truncated", id="offsets-past-end"),
    pytest.param(with_entry(shape=[2, 2]), r"data_offsets 0..24 hold 24 bytes, but shape \[2, 2\] of F32 needs 16",
                 id="offsets-shape-mismatch"),
    pytest.param(with_entry(shape=[2**40, 2**40]), r"needs 4835703278458516698824704", id="shape-huge"),
    pytest.param(with_entry(dtype="BF16"), r"shape \[2, 3\] of BF16 needs 12", id="bf16-size"),
]


@pytest.mark.parametrize("entry, message", BAD_ENTRIES)
def test_a_malformed_entry_names_the_file_and_the_tensor(tmp_path, entry, message):
    path = write_raw(tmp_path / "t.safetensors", {"x": entry})
    prefix = f"{path} is not a valid safetensors file: tensor 'x': "
    for read in (load_file, load_metadata, lambda p: read_entries([p])):
        with pytest.raises(ValueError, match=r"^" + re.escape(prefix) + r".*" + message) as caught:
            read(path)
        assert "corrupted" in str(caught.value)


@pytest.mark.parametrize("header, kind", [([1, 2], "list"), ("x", "string"), (7, "number"), (None, "null")])
def test_a_header_that_is_not_an_object_is_refused(tmp_path, header, kind):
    path = write_raw(tmp_path / "t.safetensors", header)
    with pytest.raises(ValueError, match=f"not a valid safetensors file: the header is a JSON {kind}, not an object"):
        load_file(path)


def test_a_header_nested_too_deep_to_parse_is_refused(tmp_path):
    path = tmp_path / "t.safetensors"
    deep = b"[" * 100_000 + b"]" * 100_000
    path.write_bytes(struct.pack("<Q", len(deep)) + deep)
    with pytest.raises(ValueError, match="the header is not valid JSON; the file is corrupted"):
        load_file(path)


@pytest.mark.parametrize("metadata", [[1], {"step": 3}, "x"])
def test_metadata_must_be_an_object_of_strings(tmp_path, metadata):
    path = write_raw(tmp_path / "t.safetensors", {"__metadata__": metadata, "x": GOOD_ENTRY})
    with pytest.raises(ValueError, match="'__metadata__' must be an object of strings"):
        load_metadata(path)


def test_null_metadata_and_empty_or_scalar_tensors_are_valid(tmp_path):
    path = write_raw(tmp_path / "t.safetensors", {"__metadata__": None, "x": GOOD_ENTRY})
    assert load_metadata(path) == {} and load_file(path)["x"].shape == (2, 3)
    save_file({"empty": np.zeros((0, 4), np.float32), "scalar": np.array(2.5, np.float32)}, tmp_path / "e.safetensors")
    back = load_file(tmp_path / "e.safetensors")
    assert back["empty"].shape == (0, 4) and back["scalar"].shape == () and back["scalar"] == 2.5


def test_a_dtype_the_reader_does_not_support_is_still_its_own_error(tmp_path):
    path = write_raw(tmp_path / "t.safetensors", {"x": with_entry(dtype="F8_E4M3", shape=[24])})
    with pytest.raises(ValueError, match=r"tensor 'x' has unsupported dtype 'F8_E4M3'"):
        load_file(path)
    # (the HF reader refuses a weight of an integer dtype when it plans its reads: test_pretrained_hf_folder.py)


def f32(begin, count):
    return {"dtype": "F32", "shape": [count], "data_offsets": [begin, begin + 4 * count]}


@pytest.mark.parametrize("header, data_bytes, message", [
    ({"a": f32(0, 2)}, 16, r"8 bytes of data after the last tensor's data"),
    ({}, 8, r"8 bytes of data but the header lists no tensor"),
    ({"a": f32(8, 2)}, 16, r"tensor 'a' at data_offsets 8..16 leaves bytes 0..8 unused"),
    ({"a": f32(0, 1), "b": f32(8, 2)}, 16, r"tensor 'b' at data_offsets 8..16 leaves bytes 4..8 unused"),
    ({"a": f32(0, 2), "b": f32(0, 2)}, 8, r"tensor 'b' at data_offsets 0..8 overlaps tensor 'a', which ends at 8"),
    ({"a": f32(0, 3), "b": f32(8, 2)}, 16, r"tensor 'b' at data_offsets 8..16 overlaps tensor 'a', which ends at 12"),
], ids=["bytes-after", "no-tensor", "hole-at-start", "gap", "same-bytes", "overlap"])
def test_tensors_that_do_not_tile_the_data_are_refused(tmp_path, header, data_bytes, message):
    # the files Hugging Face's reader refuses ("incomplete metadata, file not fully covered", "invalid offset")
    path = write_raw(tmp_path / "t.safetensors", header, bytes(data_bytes))
    for read in (load_file, load_metadata, lambda p: read_entries([p])):
        with pytest.raises(ValueError, match=r"^" + re.escape(f"{path} is not a valid safetensors file: ") + message):
            read(path)


def test_tensors_listed_out_of_order_and_empty_ones_tile_the_data(tmp_path):
    empty = {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}
    path = write_raw(tmp_path / "t.safetensors", {"b": f32(8, 2), "e": empty, "a": f32(0, 2)},
                     np.arange(4, dtype=np.float32).tobytes())
    back = load_file(path)
    assert back["a"].tolist() == [0, 1] and back["b"].tolist() == [2, 3] and back["e"].shape == (0,)


def tiny_checkpoint(tmp_path):
    tok = CharTokenizer.train("hello world")
    cfg = minigpt.GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=2, n_embd=8)
    return save_checkpoint(tmp_path / "run", minigpt.GPT(cfg, seed=0), 1, tok)


@pytest.mark.parametrize("edit, message", [
    (lambda header: list(header), "the header is a JSON list, not an object"),
    (lambda header: {**header, "wte.weight": 7}, "tensor 'wte.weight': its entry is a JSON number"),
    (lambda header: {**header, "wte.weight": {k: v for k, v in header["wte.weight"].items() if k != "data_offsets"}},
     "tensor 'wte.weight': its entry has no 'data_offsets'"),
])
def test_generate_reports_a_malformed_header_as_an_error_line(tmp_path, capsys, edit, message):
    path = tiny_checkpoint(tmp_path) / "model.safetensors"
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    write_raw(path, edit(header), raw[8 + n:])
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--max-new-tokens", "2"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("minigpt generate: error: ") and f"{path} is not a valid safetensors file" in err
    assert message in err and "Traceback" not in err


def test_a_header_longer_than_the_file_or_with_an_endless_number_is_named(tmp_path):
    path = tmp_path / "t.safetensors"
    header = json.dumps({"x": GOOD_ENTRY}).encode()
    path.write_bytes(struct.pack("<Q", len(header) + 1000) + header + bytes(24))  # the size claims 1,000 more
    with pytest.raises(ValueError, match=r"the header is \d+ bytes, but the file holds \d+ after its size; the file is "
                                         r"truncated"):
        load_file(path)
    write_raw(path, {"x": {**GOOD_ENTRY, "shape": [2, 3]}})
    path.write_bytes(path.read_bytes().replace(b"[2,3]", b"[2, 3]").replace(b"[2, 3]", b"[" + b"9" * 5000 + b"]"))
    for read in (load_file, lambda p: read_entries([p])):  # Python refuses integers of over 4,300 digits
        with pytest.raises(ValueError, match=r"the header is (not valid JSON|\d+ bytes)"):
            read(path)


def test_save_file_refuses_a_tensor_named_like_the_metadata(tmp_path):
    with pytest.raises(ValueError, match="'__metadata__' is the format's name for the metadata"):
        save_file({"__metadata__": np.zeros(2, np.float32)}, tmp_path / "n.safetensors")
    assert not (tmp_path / "n.safetensors").exists()

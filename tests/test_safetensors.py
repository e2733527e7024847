"""Our safetensors reader/writer: round trips, the byte layout, corrupted files, and the reference package."""
import json
import struct

import numpy as np
import pytest

from minigpt.safetensors import load_file, load_metadata, save_file


def test_round_trip_keeps_values_dtypes_and_shapes(tmp_path, rng):
    tensors = {"a.weight": rng.standard_normal((3, 5)).astype(np.float32), "b": np.arange(7, dtype=np.int64),
               "scalar": np.array(2.5), "empty": np.zeros((0, 4), np.float32), "mask": np.array([True, False])}
    save_file(tensors, tmp_path / "t.safetensors", metadata={"step": 3})
    loaded = load_file(tmp_path / "t.safetensors")
    assert loaded.keys() == tensors.keys()
    for name, value in tensors.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        assert np.array_equal(loaded[name], value)
    assert load_metadata(tmp_path / "t.safetensors") == {"step": "3"}


def test_byte_layout_follows_the_format(tmp_path):
    save_file({"x": np.array([1.0, 2.0], dtype=np.float32)}, tmp_path / "t.safetensors")
    raw = (tmp_path / "t.safetensors").read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8:8 + n])
    assert n % 8 == 0
    assert header["x"] == {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
    assert raw[8 + n:] == np.array([1.0, 2.0], dtype="<f4").tobytes()
    # a big-endian array (read from a file written on such a machine, say) is written little-endian
    save_file({"x": np.array([1.0, 2.0], dtype=">f4")}, tmp_path / "big.safetensors")
    assert (tmp_path / "big.safetensors").read_bytes() == raw


def test_reference_package_reads_ours_and_we_read_its(tmp_path, rng):
    st = pytest.importorskip("safetensors.numpy")
    ours = {"w": rng.standard_normal((4, 3)).astype(np.float32), "i": np.arange(5, dtype=np.int32)}
    save_file(ours, tmp_path / "ours.safetensors")
    theirs = st.load_file(str(tmp_path / "ours.safetensors"))
    assert all(np.array_equal(theirs[k], ours[k]) for k in ours)
    st.save_file(ours, str(tmp_path / "theirs.safetensors"))
    back = load_file(tmp_path / "theirs.safetensors")
    assert all(np.array_equal(back[k], ours[k]) for k in ours)


@pytest.mark.parametrize("damage", ["truncate", "garbage_header", "huge_header", "too_short"])
def test_corrupted_files_give_clear_errors(tmp_path, damage):
    path = tmp_path / "t.safetensors"
    save_file({"x": np.ones(100, np.float32)}, path)
    raw = path.read_bytes()
    damaged = {"truncate": raw[:-40], "garbage_header": raw[:8] + b"{not json" + raw[17:],
               "huge_header": struct.pack("<Q", 2**40) + raw[8:], "too_short": raw[:5]}[damage]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match="corrupted|not a safetensors|too short|implausible"):
        load_file(path)


def test_unsupported_dtype_is_refused(tmp_path):
    with pytest.raises(TypeError, match="unsupported dtype"):
        save_file({"c": np.array([1 + 2j])}, tmp_path / "t.safetensors")

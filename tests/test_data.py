"""Reading text, token files and batches."""
import numpy as np
import pytest

from minigpt.data import atomic_write_bytes, get_batch, open_token_file, read_text, token_dtype, write_token_file


def test_read_file_and_folder(tmp_path):
    (tmp_path / "a.txt").write_text("first", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("\ufeffsecond é", encoding="utf-8")
    assert read_text(tmp_path / "a.txt") == "first"
    assert read_text(tmp_path) == "first\n\nsecond é"  # sorted, BOM dropped


def test_bad_text_inputs(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("  \n")
    with pytest.raises(ValueError, match="empty"):
        read_text(tmp_path / "empty.txt")
    (tmp_path / "latin1.txt").write_bytes("ok\ncaf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match=r"byte 6 \(line 2\)"):
        read_text(tmp_path / "latin1.txt")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="no .txt"):
        read_text(tmp_path / "nothing")


def test_token_file_round_trip_and_dtype(tmp_path):
    assert token_dtype(65) == np.uint16 and token_dtype(65536) == np.uint16 and token_dtype(65537) == np.uint32
    ids = np.array([0, 5, 70000, 3])
    write_token_file(tmp_path / "t.bin", ids, vocab_size=70001, meta={"note": "x"})
    tokens, info = open_token_file(tmp_path / "t.bin")
    assert tokens.dtype == np.uint32 and np.array_equal(tokens, ids) and info["note"] == "x"


def test_token_file_errors(tmp_path):
    with pytest.raises(ValueError, match="does not fit"):
        token_dtype(2**33)
    with pytest.raises(ValueError, match=r"lie in \[0, 10\)"):
        write_token_file(tmp_path / "t.bin", [1, 10], vocab_size=10)
    write_token_file(tmp_path / "t.bin", np.arange(10), vocab_size=10)
    (tmp_path / "t.bin").write_bytes(b"\0" * 7)
    with pytest.raises(ValueError, match="truncated"):
        open_token_file(tmp_path / "t.bin")
    (tmp_path / "t.bin").write_bytes(b"\0" * 22)  # longer than its 10 tokens: not trained on as more tokens
    with pytest.raises(ValueError, match="holds 22 bytes, its metadata promises 10 uint16 tokens"):
        open_token_file(tmp_path / "t.bin")
    for dtype in ("float16", "int16", "int64"):  # read as another type, the bytes would be other ids
        write_token_file(tmp_path / "t.bin", np.arange(10), vocab_size=10)
        meta = tmp_path / "t.bin.json"
        meta.write_text(meta.read_text().replace('"uint16"', f'"{dtype}"'))
        with pytest.raises(ValueError, match="damaged"):
            open_token_file(tmp_path / "t.bin")


def test_an_empty_token_file_opens_as_no_tokens(tmp_path):
    write_token_file(tmp_path / "t.bin", [], vocab_size=10)  # (NumPy cannot map an empty file)
    tokens, info = open_token_file(tmp_path / "t.bin")
    assert tokens.size == 0 and info["num_tokens"] == 0


def test_batches_are_shifted_windows_and_reproducible():
    tokens = np.arange(100, dtype=np.uint16)
    x, y = get_batch(tokens, 4, 8, np.random.default_rng(0))
    assert x.shape == y.shape == (4, 8) and x.dtype == np.int64
    assert np.array_equal(y, x + 1)  # consecutive ids: y is x shifted by one position
    x2, _ = get_batch(tokens, 4, 8, np.random.default_rng(0))
    assert np.array_equal(x, x2)
    with pytest.raises(ValueError, match="fewer than block_size"):
        get_batch(tokens[:8], 1, 8, np.random.default_rng(0))
    # every window can be drawn, the last one too: block_size + 1 tokens make exactly one
    x, y = get_batch(tokens[:9], 3, 8, np.random.default_rng(0))
    assert np.array_equal(x, np.tile(np.arange(8), (3, 1))) and np.array_equal(y, x + 1)
    x, _ = get_batch(tokens[:12], 200, 8, np.random.default_rng(0))
    assert set(x[:, 0]) == {0, 1, 2, 3}


def test_a_failed_atomic_write_names_the_target_and_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    target.mkdir()  # os.replace cannot put a file over a folder
    with pytest.raises(IsADirectoryError, match="out.bin'$"):
        atomic_write_bytes(target, b"data")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_the_encoding_is_reused_only_for_the_same_texts_and_tokenizer_settings(tmp_path):
    from minigpt.prepare import fingerprint
    from minigpt.train_config import TrainConfig
    cfg = TrainConfig(tokenizer="bpe", vocab_size=300)
    key = fingerprint("train text", "val text", cfg)
    assert key == fingerprint("train text", "val text", TrainConfig(tokenizer="bpe", vocab_size=300))
    others = [fingerprint("train text!", "val text", cfg), fingerprint("train text", "val text!", cfg),
              fingerprint("train text", "val text", TrainConfig(tokenizer="bpe", vocab_size=301)),
              fingerprint("train text", "val text", TrainConfig(tokenizer="char", vocab_size=300)),
              fingerprint("train tex", "tval text", cfg)]  # the same characters cut elsewhere
    assert len({key, *others}) == 6


def test_a_character_vocabulary_covers_validation_and_an_empty_split_is_refused(tmp_path):
    from minigpt.prepare import build_tokenizer, read_split
    from minigpt.train_config import TrainConfig
    tok = build_tokenizer("char", "abab", "abc", 0)
    assert tok.decode(tok.encode("cab")) == "cab"  # "c" occurs in validation only
    for text in ("x" * 90 + " " * 10, " " * 90 + "x" * 10):  # validation, then training, only whitespace
        (tmp_path / "t.txt").write_text(text)
        with pytest.raises(ValueError, match="the training or validation text is empty"):
            read_split(TrainConfig(data=str(tmp_path / "t.txt"), val_fraction=0.1))

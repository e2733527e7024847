"""CharTokenizer: vocabulary, round trips, special tokens, files on disk, and errors."""
import json
import os

import numpy as np
import pytest

from minigpt.tokenizer import CharTokenizer, load_tokenizer, tokenizer_from_dict

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n"


def test_vocabulary_is_the_sorted_unique_characters():
    tok = CharTokenizer.train("hello world")
    assert tok.chars == [" ", "d", "e", "h", "l", "o", "r", "w"]
    assert tok.vocab_size == 8
    assert tok.encode("hello") == [3, 2, 4, 4, 5]
    assert tok.special_tokens == {} and tok.eot_token is None
    assert CharTokenizer.from_text("hello world").to_dict() == tok.to_dict()


def test_round_trip_including_unicode():
    text = TEXT + "naïve café 東京 e\u0301 🙂\t\r\n"
    tok = CharTokenizer.train(text)
    ids = tok.encode(text)
    assert len(ids) == len(text)
    assert tok.decode(ids) == text
    assert tok.decode(np.array(ids, dtype=np.int64)) == text  # arrays from the data pipeline work too
    assert tok.decode([np.int32(i) for i in ids]) == text


def test_unknown_character_names_the_character_and_position():
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match=r"'z' \(U\+007A\) at position 3"):
        tok.encode("abcz")


def test_special_tokens_are_appended_and_only_recognised_when_allowed():
    tok = CharTokenizer.train(TEXT, special_tokens=["<|endoftext|>"])
    n = len(tok.chars)
    assert tok.eot_token == n and tok.vocab_size == n + 1
    before = tok.encode(TEXT)
    assert tok.add_special_tokens(["<s>", "<$>", "<e>"]) == [n + 1, n + 2, n + 3]
    assert tok.add_special_tokens(["<$>"]) == [n + 2]  # already there: same id, nothing appended
    assert tok.vocab_size == n + 4
    assert tok.encode(TEXT) == before  # existing ids unchanged
    ids = tok.encode("<s>All:<$>speak<e>", allowed_special="all")
    assert ids == [n + 1] + tok.encode("All:") + [n + 2] + tok.encode("speak") + [n + 3]
    assert tok.decode(ids) == "<s>All:<$>speak<e>"
    assert tok.encode("<s>A", allowed_special={"<s>"}) == [n + 1, tok.stoi["A"]]
    with pytest.raises(ValueError, match="'<'"):  # "<e>" is not allowed here, so it is text, and '<' is unknown
        tok.encode("<s>A<e>", allowed_special={"<s>"})
    # one special token a prefix of another: the longer one is the token wherever its whole text is there
    longer = tok.add_special_tokens(["<s>A"])[0]
    assert tok.encode("<s>A<s>l", allowed_special="all") == [longer, n + 1, tok.stoi["l"]]


def test_special_text_is_ordinary_text_by_default():
    tok = CharTokenizer.train("<|endoftext|> ab", special_tokens=["<|endoftext|>"])
    assert len(tok.encode("<|endoftext|>")) == len("<|endoftext|>")
    assert tok.encode("a<|endoftext|>b", allowed_special="all") == [tok.stoi["a"], tok.eot_token, tok.stoi["b"]]


def test_unknown_character_position_counts_from_the_start_of_the_whole_text():
    tok = CharTokenizer.train("ab", special_tokens=["<|endoftext|>"])
    with pytest.raises(ValueError, match="position 15"):
        tok.encode("ab<|endoftext|>z", allowed_special="all")


def test_save_load_round_trip(tmp_path):
    tok = CharTokenizer.train(TEXT + "é\"\\", special_tokens=["<|endoftext|>"])
    tok.add_special_tokens(["<extract>"])
    path = tmp_path / "tok.json"
    tok.save(path)
    assert os.listdir(tmp_path) == ["tok.json"]  # the temporary file was renamed into place
    for loaded in (CharTokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(json.loads(path.read_text()))):
        assert isinstance(loaded, CharTokenizer)
        assert loaded.to_dict() == tok.to_dict()
        assert loaded.special_tokens == tok.special_tokens
        assert loaded.encode(TEXT + "<extract>", allowed_special="all") == \
            tok.encode(TEXT + "<extract>", allowed_special="all")
    assert tok.to_dict()["type"] == "char"


def test_encode_and_decode_errors():
    tok = CharTokenizer.train("abc")
    with pytest.raises(TypeError, match="expects a str, got bytes"):
        tok.encode(b"abc")
    with pytest.raises(ValueError, match="id 3 at position 1 is out of range"):
        tok.decode([0, 3])
    with pytest.raises(ValueError, match="id -1 at position 0"):
        tok.decode([-1])
    with pytest.raises(TypeError, match="must be integers"):
        tok.decode([0, 1.0])
    with pytest.raises(TypeError, match="must be integers, got True"):  # a bool is an int to Python, not an id
        tok.decode([0, True])
    with pytest.raises(TypeError):
        tok.decode("abc")
    with pytest.raises(ValueError, match="not special tokens"):
        tok.encode("abc", allowed_special={"<|endoftext|>"})
    with pytest.raises(TypeError):
        tok.add_special_tokens("<s>")
    with pytest.raises(ValueError, match="empty"):
        CharTokenizer.train("")
    # a lone surrogate has no UTF-8 form: trained on, the tokenizer could not be saved
    with pytest.raises(ValueError, match=r"train: the text holds a lone surrogate '\\ud800' at position 1"):
        CharTokenizer.train("a\ud800b")
    with pytest.raises(ValueError, match="CharTokenizer: the vocabulary holds a lone surrogate"):
        CharTokenizer(["a", "\ud800"])
    with pytest.raises(ValueError, match="twice"):
        CharTokenizer("aba")


def test_corrupted_or_wrong_files_raise_clear_errors(tmp_path):
    path = tmp_path / "tok.json"
    CharTokenizer.train("abc").save(path)
    path.write_text(path.read_text()[:-5])
    with pytest.raises(ValueError, match="corrupted JSON"):
        load_tokenizer(path)
    path.write_text(json.dumps({"type": "char", "version": 1, "chars": "ab", "special_tokens": {"<s>": 5}}))
    with pytest.raises(ValueError, match="expected 2"):
        CharTokenizer.load(path)
    path.write_text(json.dumps({"type": "char", "version": 1, "special_tokens": {}}))
    with pytest.raises(ValueError, match="missing field 'chars'"):
        load_tokenizer(path)
    path.write_text(json.dumps({"type": "wordpiece"}))
    with pytest.raises(ValueError, match="unknown tokenizer type"):
        load_tokenizer(path)

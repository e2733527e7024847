"""GPT-1's tokenizer (minigpt.tokenizer.OpenAIGPTTokenizer) on hand-checked cases, without transformers.

Each normalisation step against the result worked out by hand, BPE with '</w>' on a toy vocabulary
whose merges are traced in the comments, unknown characters, special tokens, and the files.
The comparison with transformers' own OpenAIGPTTokenizer is in test_parity_hf_tokenizers.py.
"""
import json

import pytest

from minigpt.tokenizer import OpenAIGPTTokenizer, tokenizer_from_dict
from minigpt.tokenizer.openai_gpt_bpe import normalize, read_merges_txt, split_words

LETTERS = "abcdefghijklmnopqrstuvwxyz"
MERGES = [("l", "o"), ("lo", "w"), ("e", "r</w>"), ("low", "er</w>"), ("n", "e"), ("ne", "w</w>")]


def toy_tokenizer(unk_token=None, extra=()):
    vocab = list(LETTERS) + [c + "</w>" for c in LETTERS + "!'.,"] + [a + b for a, b in MERGES] + list(extra)
    return OpenAIGPTTokenizer(vocab, MERGES, unk_token=unk_token)


def tokens(tok, text):
    return [tok.vocab[i] for i in tok.encode(text)]


@pytest.mark.parametrize("text, expected", [
    ("Hello\tWORLD", "hello world"),  # whitespace becomes a space; lowercase
    ("a\x00b\ufffdc\u200bd\x7fe", "abcde"),  # NUL, U+FFFD, a format (Cf) and a control (Cc) character are dropped
    ("a\x0bb\x1cc", "abc"),  # vertical tab and file separator are controls first: dropped, not spaced
    ("a\ue000b\U000f0000c", "abc"),  # private use (Co): dropped
    ("a\u0378b\ufdd0c", "a\u0378b\ufdd0c"),  # unassigned (Cn): kept, as `tokenizers` keeps them
    ("a\u3000b\u00a0c\u2003d\nE", "a b c d e"),  # Unicode spaces and the newline become plain spaces
    ("Café naïve Ångström", "cafe naive angstrom"),  # NFD, then the nonspacing marks go
    ("e\u0301", "e"),  # a combining accent on its own letter
    ("中文ab", " 中  文 ab"),  # each CJK ideograph gets spaces around it
    ("ΟΔΟΣ", "οδοσ"),  # lowercased one character at a time: no final-sigma rule
    ("İ", "i"),  # decomposed to I + dot above, the dot dropped, then lowercased
])
def test_normalize(text, expected):
    assert normalize(text) == expected


@pytest.mark.parametrize("text, expected", [
    ("don't stop!", ["don", "'", "t", "stop", "!"]),
    ("$5+3=8 a|b ~c^", ["$", "5", "+", "3", "=", "8", "a", "|", "b", "~", "c", "^"]),  # ASCII symbols split too
    ("«quoted» — dash", ["«", "quoted", "»", "—", "dash"]),  # Unicode punctuation (P*)
    ("  spaced   out  ", ["spaced", "out"]),
    ("", []),
])
def test_split_words(text, expected):
    assert split_words(text) == expected


def test_bpe_applies_merges_by_rank_with_end_of_word_markers():
    tok = toy_tokenizer()
    # lower: l o w e r</w> -> (l,o) lo w e r</w> -> (lo,w) low e r</w> -> (e,r</w>) low er</w> -> lower</w>
    assert tokens(tok, "lower") == ["lower</w>"]
    # low: l o w</w> -> lo w</w>; (lo, w</w>) is not a merge ((lo, w) is: w without the marker)
    assert tokens(tok, "low") == ["lo", "w</w>"]
    # newer: n e w e r</w> -> (e,r</w>) n e w er</w> -> (n,e) ne w er</w>; (ne, w) is no merge, (ne, w</w>) is
    assert tokens(tok, "newer") == ["ne", "w", "er</w>"]
    # new: n e w</w> -> (n,e) ne w</w> -> (ne,w</w>) new</w>
    assert tokens(tok, "New lower!") == ["new</w>", "lower</w>", "!</w>"]
    assert tok.decode(tok.encode("New lower!")) == "new lower !"  # lowercased words joined by spaces


def test_unknown_character_is_an_error_naming_it():
    tok = toy_tokenizer()
    with pytest.raises(ValueError, match=r"character '7' \(U\+0037\) in the word 'a7'"):
        tok.encode("a7")


def test_unknown_character_maps_to_the_unknown_token_when_there_is_one():
    tok = toy_tokenizer(unk_token="<unk>", extra=["<unk>"])
    unk = tok.token_to_id["<unk>"]
    ids = tok.encode("lo7w")
    # lo 7 w</w>: the unknown character takes part in no merge, so "lo" and "w</w>" stay apart
    assert ids == [tok.token_to_id["lo"], unk, tok.token_to_id["w</w>"]]


def test_special_tokens_follow_the_vocabulary_and_round_trip_through_to_dict():
    tok = toy_tokenizer()
    start, extract = tok.add_special_tokens(["_start_", "_classify_"])
    assert (start, extract) == (tok.n_ordinary, tok.n_ordinary + 1)
    ids = tok.encode("_start_lower_classify_", allowed_special="all")
    assert ids == [start, tok.token_to_id["lower</w>"], extract]
    assert tok.decode(ids) == "_start_ lower _classify_"
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("_start_")  # as ordinary text "_" is a word of its own, and the toy vocabulary has no "_</w>"
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert isinstance(again, OpenAIGPTTokenizer) and again.to_dict() == tok.to_dict()
    assert again.encode("_start_newer", allowed_special="all") == tok.encode("_start_newer", allowed_special="all")


def test_from_files_reads_hugging_face_vocab_and_merges(tmp_path):
    tok = toy_tokenizer()
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tok.vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    loaded = OpenAIGPTTokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.to_dict() == tok.to_dict()
    assert read_merges_txt(tmp_path / "merges.txt") == MERGES


@pytest.mark.parametrize("vocab, merges, message", [
    ({"a": 0, "b": 2}, "", "ids must be 0 .. 1"),
    ({"a": 0, "b": 0}, "", "ids must be 0 .. 1"),
    ({"a": 0, "b": 1}, "a b\n", "uses 'ab', which is not in the vocabulary"),
    ({"a": 0, "b": 1, "ab": 2}, "a b c\n", "line 1: expected two tokens"),
])
def test_bad_files_are_errors_that_say_what_is_wrong(tmp_path, vocab, merges, message):
    (tmp_path / "vocab.json").write_text(json.dumps(vocab))
    (tmp_path / "merges.txt").write_text(merges)
    with pytest.raises(ValueError, match=message):
        OpenAIGPTTokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")


def test_unk_token_must_be_in_the_vocabulary():
    with pytest.raises(ValueError, match="unk_token '<unk>' is not in the vocabulary"):
        toy_tokenizer(unk_token="<unk>")

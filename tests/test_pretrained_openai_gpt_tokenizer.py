"""GPT-1's tokenizer (minigpt.tokenizer.OpenAIGPTTokenizer) on hand-checked cases, without transformers.

Each normalisation step against the result worked out by hand, BPE with '</w>' on a toy vocabulary
whose merges are traced in the comments, the heap against GPT-1's rescanning bpe() loop on random
merge tables, unknown characters, special tokens, decoding, and the files.
The comparison with transformers' own OpenAIGPTTokenizer is in test_parity_hf_tokenizers.py.
"""
import json
import random

import pytest

from minigpt.tokenizer import OpenAIGPTTokenizer, tokenizer_from_dict
from minigpt.tokenizer.openai_gpt_bpe import merges_in_rounds, normalize, read_merges_txt, split_words

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


def merge_pair(parts, pair):
    """Replace each occurrence of pair in parts, left to right, by the two joined."""
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            out.append(pair[0] + pair[1])
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out


def rescanning_bpe(parts, ranks):
    """GPT-1's bpe() loop (text_utils.py; transformers 4's OpenAIGPTTokenizer.bpe): find the lowest-ranked
    pair anywhere, merge it everywhere, again. O(n^2) per word; merges_in_rounds is checked against it."""
    while len(parts) > 1:
        pair = min(zip(parts, parts[1:]), key=lambda p: ranks.get(p, float("inf")))
        if pair not in ranks:
            break
        parts = merge_pair(parts, pair)
    return parts


def word_parts(word):
    return list(word[:-1]) + [word[-1] + "</w>"]


def random_merges(rng, alphabet, n_merges):
    """n_merges merges of parts made so far, in random order. One time in three, a token is made again from
    another split, after a merge of it with that split's left part (abc + ab, then ab + c after a + bc): the
    case where a heap has to finish merging (ab, c) everywhere before it merges a pair that made."""
    inner, ends = list(alphabet), [c + "</w>" for c in alphabet]  # only a word's last part has '</w>'
    merges = []
    while len(merges) < n_merges:
        remakes = [(t[:k], t[k:]) for t in inner for k in range(1, len(t))
                   if t[:k] in inner and t[k:] in inner and (t[:k], t[k:]) not in merges]
        if remakes and rng.random() < 1 / 3:
            left, right = rng.choice(remakes)
            new = [(left + right, left), (left, right)]
        else:
            new = [(rng.choice(inner), rng.choice(ends if rng.random() < 0.2 else inner))]
        for left, right in new:
            merges.append((left, right))
            made = ends if right.endswith("</w>") else inner
            if left + right not in made:
                made.append(left + right)
    return merges[:n_merges]


def random_word(rng, alphabet, tokens, n):
    """Runs of one letter ("aaaa": overlapping pairs), letters with an unknown one (?), or tokens side by side
    (abc abc: a token next to the start of its own next copy)."""
    kind = rng.randrange(3)
    if kind == 0:
        return rng.choice(alphabet) * n
    if kind == 1:
        return "".join(rng.choice(alphabet + "?") for _ in range(n))
    return "".join(rng.choice(tokens) for _ in range(n)) + rng.choice(alphabet)


def test_merges_in_rounds_equal_the_rescanning_loop():
    rng = random.Random(0)
    for _ in range(100):
        alphabet = rng.choice(["ab", "abc", "abcd"])
        merges = random_merges(rng, alphabet, rng.randrange(1, 40))
        ranks = {}
        for rank, pair in enumerate(merges):
            ranks.setdefault(pair, rank)
        tokens = [a + b for a, b in merges if not b.endswith("</w>")] + list(alphabet)
        for n in list(range(1, 6)) + [rng.randrange(6, 60) for _ in range(20)]:
            word = random_word(rng, alphabet, tokens, n)
            parts = [None if p.startswith("?") else p for p in word_parts(word)]  # None: unknown, as encode has it
            assert merges_in_rounds(parts, ranks) == rescanning_bpe(parts, ranks), (merges, word)


def test_a_merge_that_remakes_a_token_waits_for_the_rest_of_its_round():
    # abc is made by (a, bc) and again by (ab, c), with (abc, ab) ranked between them.
    # a b c a b c x</w> -> (a,b) everywhere: ab c ab c x</w> -> (ab,c) everywhere: abc abc x</w>, the end.
    # A heap that lets the first new abc merge with its neighbour at once (rank 2 < 3) makes abcab c x</w>,
    # as the BPE of `tokenizers` (transformers 5) does; GPT-1's bpe() loop finishes (ab, c) first.
    merges = [("a", "b"), ("a", "bc"), ("abc", "ab"), ("ab", "c"), ("b", "c")]
    tok = OpenAIGPTTokenizer(["a", "b", "c", "x</w>", "ab", "bc", "abc", "abcab"], merges)
    assert tokens(tok, "abcabcx") == ["abc", "abc", "x</w>"] == rescanning_bpe(word_parts("abcabcx"), tok.ranks)


def test_a_long_word_encodes_as_the_rescanning_loop_would():
    # a word of 20,000 letters (a base64 blob without spaces): each round of the loop rewrites the whole word,
    # once for each merge that applies, so the table has 40 merges to keep the loop quick here
    rng = random.Random(1)
    merges = random_merges(rng, "abc", 40)
    vocab = sorted({c + end for c in "abc" for end in ("", "</w>")} | {a + b for a, b in merges})
    tok = OpenAIGPTTokenizer(vocab, merges)
    word = "".join(rng.choice("abc") for _ in range(20_000))
    ids = tok.encode(word)
    assert len(ids) < len(word) * 3 // 4 and tok.decode(ids) == word
    assert [tok.vocab[i] for i in ids] == rescanning_bpe(word_parts(word), tok.ranks)


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
    assert tok.decode(ids) == "_start_lower _classify_"  # no space after a special token, as in transformers
    with pytest.raises(ValueError, match="not in the vocabulary"):
        tok.encode("_start_")  # as ordinary text "_" is a word of its own, and the toy vocabulary has no "_</w>"
    again = tokenizer_from_dict(json.loads(json.dumps(tok.to_dict())))
    assert isinstance(again, OpenAIGPTTokenizer) and again.to_dict() == tok.to_dict()
    assert again.encode("_start_newer", allowed_special="all") == tok.encode("_start_newer", allowed_special="all")


def test_decoding_spaces_words_by_their_end_of_word_marker_only():
    # transformers' OpenAIGPTTokenizer: each token's '</w>' is a space, but the last token's is nothing,
    # and a special token (no '</w>') adds no space of its own
    tok = toy_tokenizer()
    eot = tok.add_special_tokens(["<|endoftext|>"])[0]
    ids = lambda text: tok.encode(text, allowed_special="all")
    assert tok.decode(ids("<|endoftext|>new lower<|endoftext|>lower")) == "<|endoftext|>new lower <|endoftext|>lower"
    assert tok.decode([eot, eot]) == "<|endoftext|><|endoftext|>" and tok.decode([]) == ""
    lo, w = tok.token_to_id["lo"], tok.token_to_id["w"]
    assert tok.decode([lo, w, eot, lo]) == "low<|endoftext|>lo"  # pieces inside a word: no space at all
    # decoding a prefix gives a prefix of the whole text, which `minigpt generate` relies on to print as it goes
    whole = ids("new <|endoftext|> lower new!")
    assert all(tok.decode(whole).startswith(tok.decode(whole[:k])) for k in range(len(whole)))


def test_from_files_reads_hugging_face_vocab_and_merges(tmp_path):
    tok = toy_tokenizer()
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tok.vocab)}))
    (tmp_path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in MERGES))
    loaded = OpenAIGPTTokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.to_dict() == tok.to_dict()
    assert read_merges_txt(tmp_path / "merges.txt") == MERGES


def test_from_files_takes_unk_from_the_vocabulary_and_a_repeated_merge_keeps_its_first_rank(tmp_path):
    tok = toy_tokenizer(unk_token="<unk>", extra=["<unk>"])
    (tmp_path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tok.vocab)}))
    # ("l", "o") again after ("ne", "w</w>"): its rank stays 0, as in `tokenizers`
    (tmp_path / "merges.txt").write_text("".join(f"{a} {b}\n" for a, b in MERGES + [("l", "o")]))
    loaded = OpenAIGPTTokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert loaded.unk_token == "<unk>" and loaded.encode("lo7w") == tok.encode("lo7w")  # 7 -> <unk>
    assert loaded.ranks[("l", "o")] == 0 and loaded.to_dict() == tok.to_dict()


def test_only_a_first_line_is_the_version_header(tmp_path):
    (tmp_path / "merges.txt").write_text("#version: 0.2\nl o\n#version: 0.2\n")
    assert read_merges_txt(tmp_path / "merges.txt") == [("l", "o"), ("#version:", "0.2")]  # a merge like any other


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

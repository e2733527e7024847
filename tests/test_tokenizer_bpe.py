"""BPETokenizer training and encoding: a hand-worked example, the fast trainer against a slow
reference that recounts every pair at every merge, special tokens, files on disk, and errors."""
import json
import random
from collections import Counter

import numpy as np
import pytest
import regex

from minigpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, load_tokenizer, tokenizer_from_dict
from minigpt.tokenizer.bpe import merge, merges_by_heap

CORPUS = (
    "The quick brown fox jumps over the lazy dog. The dog's owner isn't amused; they've seen it all.\n"
    "aaaaaaa abababab aaab bbbaaa zzzzzz... 1234567 12 123!!! ?? naïve café déjà vu, 東京 東京都\n"
    "    indented line\twith\ttabs   and trailing spaces   \n\n\n"
) * 3 + "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n" * 5


def reference_train(text, num_merges):
    """The obviously-correct trainer: split, then at every step recount all pairs of all chunks
    (no deduplication, no incremental update), merge the most frequent (smallest pair on ties)."""
    words = [list(chunk.encode("utf-8")) for chunk in regex.findall(GPT2_SPLIT_PATTERN, text)]
    merges = []
    for step in range(num_merges):
        counts = Counter(pair for word in words for pair in zip(word, word[1:]))
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        words = [reference_merge(word, best, 256 + step) for word in words]
    return merges, [i for word in words for i in word]


def reference_merge(word, pair, new_id):
    out = list(word)
    i = 0
    while i < len(out) - 1:
        if (out[i], out[i + 1]) == pair:
            out[i:i + 2] = [new_id]
        i += 1
    return out


def test_merge_replaces_pairs_left_to_right():
    assert merge([5, 5, 5], (5, 5), 9) == [9, 5]
    assert merge([1, 2, 3, 1, 2], (1, 2), 7) == [7, 3, 7]
    assert merge([1, 2], (2, 1), 7) == [1, 2]



def rescanning_merges(ids, merges):
    """openai/gpt-2's bpe() loop: find the earliest-learned pair anywhere, merge it everywhere, again."""
    while len(ids) >= 2:
        pair = min(zip(ids, ids[1:]), key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            return ids
        ids = merge(ids, pair, merges[pair])
    return ids


def test_merges_by_heap_equal_the_rescanning_loop():
    # the heap version encodes long chunks; it must make the same merges in the same order, including
    # overlapping runs ("aaaa"), where left to right decides, and merges of merges
    tok = BPETokenizer.train(CORPUS * 4, vocab_size=400, special_tokens=())
    rng = random.Random(0)
    for n in list(range(12)) + [rng.randrange(12, 800) for _ in range(300)]:
        text = "".join(rng.choice("aaabbz. \n東") for _ in range(n)) if n % 2 else \
            CORPUS[(start := rng.randrange(len(CORPUS) - n)):start + n]
        ids = list(text.encode("utf-8"))
        assert merges_by_heap(ids, tok.merges) == rescanning_merges(ids, tok.merges), text
    assert merges_by_heap([97] * 5, {(97, 97): 256}) == [256, 256, 97] == merge([97] * 5, (97, 97), 256)


def test_a_long_chunk_encodes_as_the_rescanning_loop_would():
    # a chunk of 20,000 letters without a space (a base64 blob, a minified line) goes through the heap
    tok = BPETokenizer.train(CORPUS * 4, vocab_size=400, special_tokens=())
    rng = random.Random(1)
    text = "".join(rng.choice("abehinorst") for _ in range(20_000))
    ids = tok.encode(text)
    assert len(regex.findall(GPT2_SPLIT_PATTERN, text)) == 1 and tok.decode(ids) == text and len(ids) < 18_000
    assert ids == rescanning_merges(list(text.encode()), tok.merges)


def test_wikipedia_example_by_hand():
    # "aaabdaaabac": aa (4 times) -> 256 gives 256 a b d 256 a b a c; then ab and (256, a) tie at 2
    # and the smaller pair (97, 98) wins -> 257; then (256, 257) -> 258: 258 d 258 a c.
    tok = BPETokenizer.train("aaabdaaabac", vocab_size=259, special_tokens=())
    assert list(tok.merges.items()) == [((97, 97), 256), ((97, 98), 257), ((256, 257), 258)]
    assert tok.encode("aaabdaaabac") == [258, 100, 258, 97, 99]
    assert tok.vocab[258] == b"aaab"
    assert tok.decode([258, 100, 258, 97, 99]) == "aaabdaaabac"


def test_incremental_trainer_equals_slow_reference():
    num_merges = 150
    tok = BPETokenizer.train(CORPUS, vocab_size=256 + num_merges, special_tokens=())
    merges, corpus_ids = reference_train(CORPUS, num_merges)
    assert list(tok.merges) == merges
    # Encoding by rank reproduces what training did to its own corpus.
    assert tok.encode(CORPUS) == corpus_ids


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_incremental_trainer_equals_reference_on_random_text(seed):
    # Few distinct letters make long repeats (overlapping pairs like "aaaa") and many count ties.
    rng = random.Random(seed)
    text = "".join(rng.choice("aab ab\nc") for _ in range(3000))
    tok = BPETokenizer.train(text, vocab_size=256 + 80, special_tokens=())
    assert list(tok.merges) == reference_train(text, 80)[0]


def test_training_runs_out_of_pairs_with_a_warning():
    # Chunks "ab", " ab", " ab", " c": merges (a, b), (' ', ab), (' ', c), then every chunk is one token.
    with pytest.warns(UserWarning, match="ran out of pairs after 3 of 43 merges"):
        tok = BPETokenizer.train("ab ab ab c", vocab_size=300)
    assert tok.vocab_size == 256 + 3 + 1 and tok.eot_token == 259
    assert tok.encode("ab ab ab c") == [256, 257, 257, 258]


def test_round_trip_on_unseen_text():
    tok = BPETokenizer.train(CORPUS, vocab_size=400)
    text = "Unseen: Ωμέγα, 😀🎉, e\u0301, \x00\x7f, tabs\t\tand  spaces  \n<|endoftext|>"
    assert tok.decode(tok.encode(text)) == text  # bytes are always in the vocabulary
    ids = tok.encode(CORPUS)
    assert len(ids) < len(CORPUS.encode("utf-8")) / 2  # the merges compress their own corpus
    assert tok.decode(np.array(ids)) == CORPUS


def test_training_is_deterministic():
    a = BPETokenizer.train(CORPUS, vocab_size=320)
    b = BPETokenizer.train(CORPUS, vocab_size=320)
    assert a.to_dict() == b.to_dict()


def test_special_tokens():
    tok = BPETokenizer.train(CORPUS, vocab_size=300)
    assert tok.vocab_size == 300 and tok.eot_token == 299 and len(tok.merges) == 43
    text = "The dog<|endoftext|>The fox"
    plain = tok.encode(text)
    assert 299 not in plain and tok.decode(plain) == text  # not recognised unless allowed
    ids = tok.encode(text, allowed_special="all")
    assert ids == tok.encode("The dog") + [299] + tok.encode("The fox")
    assert tok.encode(text, allowed_special={"<|endoftext|>"}) == ids
    assert tok.decode([299]) == "<|endoftext|>"

    new = tok.add_special_tokens(["<|start|>", "<|delimiter|>", "<|extract|>"])
    assert new == [300, 301, 302] and tok.vocab_size == 303
    assert tok.encode(text) == plain  # existing ids are unchanged
    task = "<|start|>premise<|delimiter|>hypothesis<|extract|>"
    ids = tok.encode(task, allowed_special="all")
    assert ids[0] == 300 and 301 in ids and ids[-1] == 302
    assert tok.decode(ids) == task
    assert tok.encode(task, allowed_special={"<|start|>"})[0] == 300
    assert 302 not in tok.encode(task, allowed_special={"<|start|>"})


def test_decode_of_a_split_character_gives_the_replacement_character():
    tok = BPETokenizer.train("abc", vocab_size=256, special_tokens=())
    ids = tok.encode("é")  # two bytes, 0xC3 0xA9
    assert ids == [0xC3, 0xA9]
    assert tok.decode(ids[:1]) == "\ufffd"


def test_save_load_round_trip(tmp_path):
    tok = BPETokenizer.train(CORPUS, vocab_size=350)
    tok.add_special_tokens(["<|extract|>"])
    path = tmp_path / "bpe.json"
    tok.save(path)
    d = json.loads(path.read_text(encoding="utf-8"))
    assert d["type"] == "bpe" and d["merges"][0] == list(next(iter(tok.merges)))
    for loaded in (BPETokenizer.load(path), load_tokenizer(path), tokenizer_from_dict(d)):
        assert isinstance(loaded, BPETokenizer)
        assert loaded.to_dict() == tok.to_dict()
        assert loaded.vocab == tok.vocab
        assert loaded.encode(CORPUS + "<|extract|>", allowed_special="all") == \
            tok.encode(CORPUS + "<|extract|>", allowed_special="all")


def test_errors(tmp_path):
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train(CORPUS, vocab_size=255, special_tokens=())
    with pytest.raises(ValueError, match="at least 256"):
        BPETokenizer.train(CORPUS, vocab_size=256)  # no room for <|endoftext|>
    with pytest.raises(TypeError, match="expects a str"):
        BPETokenizer.train(CORPUS.encode(), vocab_size=300)
    with pytest.raises(ValueError, match="the text is empty"):  # it only warned, and gave the 256 bytes
        BPETokenizer.train("", vocab_size=300)
    assert BPETokenizer.train(CORPUS, vocab_size=np.int64(260)).vocab_size == 260  # any integer type
    with pytest.raises(ValueError, match=r"a lone surrogate '\\udc00' at position 4"):
        BPETokenizer.train(CORPUS[:4] + "\udc00", vocab_size=300)
    tok = BPETokenizer.train(CORPUS, vocab_size=260)
    with pytest.raises(TypeError, match="expects a str, got list"):
        tok.encode(["a"])
    with pytest.raises(ValueError, match=r"encode: the text holds a lone surrogate '\\udc00' at position 7"):
        tok.encode("abc def\udc00")  # (it was a UnicodeEncodeError at the position within its chunk)
    with pytest.raises(TypeError, match="allowed_special must be"):
        tok.encode("abc", allowed_special=None)
    with pytest.raises(ValueError, match="id 260 at position 2"):
        tok.decode([1, 2, 260])
    with pytest.raises(ValueError, match="both ids must be integers of existing tokens"):
        BPETokenizer([(97, 97), (97, 300)])
    with pytest.raises(ValueError, match="repeats merge 0"):
        BPETokenizer([(97, 97), (97, 97)])


def test_corrupted_or_wrong_files(tmp_path):
    path = tmp_path / "bpe.json"
    BPETokenizer.train(CORPUS, vocab_size=270).save(path)
    good = path.read_text(encoding="utf-8")
    path.write_text(good[: len(good) // 2], encoding="utf-8")
    with pytest.raises(ValueError, match="corrupted JSON"):
        BPETokenizer.load(path)
    path.write_bytes(b"\xff\xfe{")
    with pytest.raises(ValueError, match="corrupted JSON"):
        load_tokenizer(path)
    CharTokenizer.train("abc").save(path)
    with pytest.raises(ValueError, match='expected "type": "bpe"'):
        BPETokenizer.load(path)
    d = json.loads(good)
    for field, value, message in [("merges", [[1, 2, 3]], "pairs"), ("byte_ids", [0] * 256, "permutation"),
                                  ("version", 99, "version"), ("pattern", "(", "not a valid regex"),
                                  ("special_tokens", {"<|endoftext|>": 1000}, "expected 269")]:
        path.write_text(json.dumps({**d, field: value}), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            load_tokenizer(path)


def test_a_split_pattern_that_drops_text_is_refused():
    # findall skips what the pattern does not match: pattern "a" encoded "abc" as [97], silently
    d = BPETokenizer.train("hello world " * 20, 260, special_tokens=()).to_dict()
    for pattern in ("a", ""):
        tok = BPETokenizer.from_dict(dict(d, pattern=pattern))
        with pytest.raises(ValueError, match=f"the split pattern '{pattern}' covers [01] of the text's 3 characters"):
            tok.encode("abc")
    with pytest.raises(ValueError, match="has capturing groups"):  # findall would return the groups
        BPETokenizer.from_dict(dict(d, pattern="(a)|."))
    assert BPETokenizer.from_dict(d).decode(BPETokenizer.from_dict(d).encode("abc, hello!")) == "abc, hello!"


def write_gpt2_style_files(folder, merges_text, extra=None):
    """encoder.json + vocab.bpe in GPT-2's format for a toy vocabulary: the 256 bytes (id = byte), "ab" = 256,
    "abc" = 257, <|endoftext|> = 258, and `extra` entries."""
    from minigpt.tokenizer import bytes_to_unicode
    encoder = {char: b for b, char in bytes_to_unicode().items()} | {"ab": 256, "abc": 257, "<|endoftext|>": 258}
    (folder / "encoder.json").write_text(json.dumps(encoder | (extra or {})))
    (folder / "vocab.bpe").write_bytes(merges_text.encode())
    return folder / "encoder.json", folder / "vocab.bpe"


@pytest.mark.parametrize("merges_text", ["#version: 0.2\na b\nab c\n", "#version: 0.2\r\na b\r\nab c\r\n",
                                         "#version: 0.2\ra b\rab c", "#version: 0.2\na b\n\nab c\n\n"])
def test_gpt2_style_files_read_with_any_line_ends_and_blank_lines(tmp_path, merges_text):
    tok = BPETokenizer.from_gpt2_files(*write_gpt2_style_files(tmp_path, merges_text))
    # both merges read, whatever ends the lines (a blank line is skipped, not the end of the merges)
    assert tok.merges == {(97, 98): 256, (256, 99): 257} and tok.special_tokens == {"<|endoftext|>": 258}
    assert tok.encode("abc abd") == [257, ord(" "), 256, ord("d")]


def test_gpt2_style_files_with_an_entry_the_merges_do_not_make_are_refused(tmp_path):
    files = write_gpt2_style_files(tmp_path, "#version: 0.2\na b\nab c\n", extra={"ba": 5})  # a second id 5
    with pytest.raises(ValueError, match=r"encoder.json has 260 tokens; expected 256 bytes \+ 2 merges \+ 1 special"):
        BPETokenizer.from_gpt2_files(*files)

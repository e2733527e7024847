"""Turning a corpus into training data: split it, build the tokenizer, encode both splits once.

The encoded splits are token files in <out>/data/ (see data.py), reused by later runs and by
--resume as long as the source text and the tokenizer settings are unchanged (a fingerprint of
both is stored with them).
"""
import hashlib
import json
from pathlib import Path

from minigpt.corpus import shakespeare_splits
from minigpt.data import meta_path, open_token_file, read_text, write_token_file
from minigpt.tokenizer import BPETokenizer, CharTokenizer, find_gpt2_files, load_tokenizer

TOKENIZERS = ("char", "bpe", "gpt2")


def split_text(cfg):
    """(train_text, val_text): the held-out plays for the default corpus, else the last val_fraction."""
    if cfg.data == "shakespeare":
        return shakespeare_splits()
    if not 0.0 < cfg.val_fraction < 1.0:
        raise ValueError(f"--val-fraction must be in (0, 1), got {cfg.val_fraction}")
    text = read_text(cfg.data)
    cut = int(len(text) * (1.0 - cfg.val_fraction))
    return text[:cut], text[cut:]


def build_tokenizer(kind, train_text, val_text, vocab_size):
    if kind == "char":
        # nanoGPT's character vocabulary covers the whole text, so validation has no unknown characters
        return CharTokenizer.train(train_text + val_text)
    if kind == "bpe":
        print(f"minigpt: training a {vocab_size}-token byte-level BPE on {len(train_text):,} characters ...",
              flush=True)
        return BPETokenizer.train(train_text, vocab_size)  # with <|endoftext|> as its last id
    if kind == "gpt2":
        return BPETokenizer.from_gpt2_files(*find_gpt2_files())
    raise ValueError(f"unknown tokenizer {kind!r}; choose one of {', '.join(TOKENIZERS)}")


def fingerprint(train_text, val_text, cfg):
    h = hashlib.sha256()
    for part in (train_text, val_text, cfg.tokenizer, str(cfg.vocab_size)):
        h.update(part.encode())
        h.update(b"\0")
    return h.hexdigest()


def encoded_fingerprint(token_path):
    """The fingerprint a token file was written for; None when its metadata is missing or unreadable (the
    files are derived from the text, so a damaged one is simply encoded again)."""
    try:
        return json.loads(meta_path(token_path).read_text()).get("fingerprint")
    except (OSError, ValueError, RecursionError, AttributeError):
        return None


def cached_tokenizer(key, train_path, val_path, tok_path):
    """The tokenizer of out/data when it holds these settings' encoding whole (both token files written for
    this fingerprint and intact, the tokenizer file readable), else None. A re-encode killed midway leaves a
    mix (a new train.bin and tokenizer beside the old val.bin), so both token files must carry the key."""
    if not tok_path.exists() or any(encoded_fingerprint(p) != key for p in (train_path, val_path)):
        return None
    try:
        for p in (train_path, val_path):
            open_token_file(p)
        return load_tokenizer(tok_path)
    except (OSError, ValueError):  # truncated or damaged: encoded again from the text
        return None


def read_split(cfg):
    """(training text, validation text, fingerprint of both and the tokenizer settings) of a run."""
    train_text, val_text = split_text(cfg)
    if not train_text.strip() or not val_text.strip():
        raise ValueError("the training or validation text is empty; use more text or another --val-fraction")
    return train_text, val_text, fingerprint(train_text, val_text, cfg)


def prepare_data(cfg, out, split=None):
    """(tokenizer, train token file, val token file) for a run's settings, encoding only when needed.
    split: read_split(cfg), where the caller has read it already."""
    folder = Path(out) / "data"
    train_path, val_path, tok_path = folder / "train.bin", folder / "val.bin", folder / "tokenizer.json"
    train_text, val_text, key = split or read_split(cfg)
    cached = cached_tokenizer(key, train_path, val_path, tok_path)
    if cached is not None:
        return cached, train_path, val_path
    for p in (train_path, val_path):  # no file of an older encoding may pass for part of this one
        meta_path(p).unlink(missing_ok=True)
    tokenizer = build_tokenizer(cfg.tokenizer, train_text, val_text, cfg.vocab_size)
    print(f"minigpt: encoding {len(train_text) + len(val_text):,} characters with a "
          f"{tokenizer.vocab_size}-token {cfg.tokenizer} tokenizer ...", flush=True)
    folder.mkdir(parents=True, exist_ok=True)
    meta = {"fingerprint": key, "tokenizer": cfg.tokenizer, "source": cfg.data}
    write_token_file(train_path, tokenizer.encode(train_text), tokenizer.vocab_size, meta)
    tokenizer.save(tok_path)
    write_token_file(val_path, tokenizer.encode(val_text), tokenizer.vocab_size, meta)  # last: marks completion
    return tokenizer, train_path, val_path

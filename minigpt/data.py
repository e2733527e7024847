"""Text in, batches out: reading UTF-8 text, encoding it once into a token file, drawing batches.

A token file is the corpus encoded once and stored as raw uint16 (or uint32 when the vocabulary
has more than 65,536 tokens) beside a small JSON of metadata, then opened as a NumPy memmap:
training reads random windows without holding the corpus in memory, as nanoGPT does.
Batches are random windows drawn with an explicit, seeded generator, so a run (and a resumed
run) sees exactly the same batches.
"""
import json
import os
from pathlib import Path

import numpy as np


def read_text(path):
    """The text of a UTF-8 file, or of every *.txt file in a folder and its subfolders (sorted by path, joined
    by blank lines; empty ones are left out, as they add nothing). The suffix is matched as written, .txt and
    not .TXT; subfolders that are symbolic links are not entered (Python's rglob), linked files are read."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.txt") if p.is_file())
        if not files:
            raise ValueError(f"{path} is a folder with no .txt files in it")
        texts = [text for text in map(file_text, files) if text.strip()]
        if not texts:
            raise ValueError(f"{path}: every .txt file in it is empty")
        return "\n\n".join(texts)
    text = file_text(path)
    if not text.strip():
        raise ValueError(f"{path} is empty")
    return text


def file_text(path):
    """The text of one UTF-8 file, without a byte-order mark; clear errors for a missing file or other bytes."""
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ValueError(f"{path} is not valid UTF-8: byte {e.start} (line {line}) is {raw[e.start:e.start + 1]!r}. "
                         "Convert the file to UTF-8 (e.g. iconv -f latin1 -t utf-8).") from None
    return text.removeprefix("\ufeff")  # a byte-order mark is not text


def token_dtype(vocab_size):
    """The smallest unsigned type that holds every token id."""
    if vocab_size <= 2**16:
        return np.uint16
    if vocab_size <= 2**32:
        return np.uint32
    raise ValueError(f"a vocabulary of {vocab_size} tokens does not fit a uint32 token file")


def write_token_file(path, ids, vocab_size, meta=None):
    """Write ids as a raw token file at path (.bin) with path.json beside it; atomic (temp + rename)."""
    path = Path(path)
    dtype = token_dtype(vocab_size)
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError(f"token ids must lie in [0, {vocab_size})")
    path.parent.mkdir(parents=True, exist_ok=True)
    info = {"dtype": np.dtype(dtype).name, "num_tokens": int(ids.size), "vocab_size": int(vocab_size), **(meta or {})}
    atomic_write_bytes(path, ids.astype(dtype).tobytes())
    atomic_write_bytes(meta_path(path), json.dumps(info, indent=1).encode())


def meta_path(path):
    return Path(str(path) + ".json")


def open_token_file(path):
    """(memmap of token ids, metadata dict) for a file written by write_token_file."""
    path = Path(path)
    try:
        info = json.loads(meta_path(path).read_text())
    except (OSError, ValueError, RecursionError) as e:  # ValueError: JSONDecodeError too
        raise ValueError(f"{path}: missing or unreadable metadata {meta_path(path)} ({e})") from None
    try:
        dtype, num_tokens = np.dtype(info["dtype"]), info["num_tokens"]
        if dtype not in (np.uint16, np.uint32) or type(num_tokens) is not int or num_tokens < 0:
            raise TypeError
    except (KeyError, TypeError):  # an edited file: its tokens would be read as the wrong type, or not at all
        raise ValueError(f"{meta_path(path)} is damaged (its dtype must be uint16 or uint32 and num_tokens a count); "
                         f"delete the folder {path.parent} and it is encoded again from the text") from None
    if path.stat().st_size != num_tokens * dtype.itemsize:
        raise ValueError(f"{path} holds {path.stat().st_size} bytes, its metadata promises {num_tokens} "
                         f"{dtype.name} tokens: the file is truncated or not a token file")
    if num_tokens == 0:  # NumPy cannot map an empty file
        return np.zeros(0, dtype=dtype), info
    return np.memmap(path, dtype=dtype, mode="r"), info


def get_batch(tokens, batch_size, block_size, rng):
    """x, y: int64 (batch_size, block_size) windows of tokens at random offsets; y is x shifted by one."""
    if len(tokens) <= block_size:
        raise ValueError(f"the data holds {len(tokens)} tokens, fewer than block_size + 1 = {block_size + 1}")
    starts = rng.integers(0, len(tokens) - block_size, size=batch_size)
    windows = np.stack([np.asarray(tokens[s:s + block_size + 1], dtype=np.int64) for s in starts])
    return windows[:, :-1], windows[:, 1:]


def check_output_file(path, option, reads=(), run_folder=None, run_files=()):
    """Raise before a run when the file it will write at the end cannot be written there (empty path: none),
    or would overwrite what the command reads: `reads` are files and folders (a checkpoint, the data), and the
    output may be none of them nor anything inside one. run_folder: the folder the run writes its own files to,
    `run_files` in it and everything in its subfolders (checkpoints, token files); a new name beside them is fine."""
    if not path:
        return
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{option} {path} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"{option} {path}: the folder {path.parent} does not exist")
    target = path.resolve()
    for source in (Path(s).resolve() for s in reads if s):
        if target == source or source in target.parents:
            what = source if target == source else f"a file in {source}"
            raise ValueError(f"{option} {path} would overwrite {what}, which this command reads; choose another name")
    if run_folder is not None:
        folder = Path(run_folder).resolve()
        if (target.parent == folder and target.name in run_files) or folder in target.parent.parents:
            raise ValueError(f"{option} {path} would overwrite one of the run's own files; choose another name "
                             f"(e.g. {Path(run_folder) / 'final.json'})")


def atomic_write_bytes(path, data):
    """Write data to path through a temporary file in the same folder and a rename, so a crash or
    Ctrl-C mid-write leaves either the old file or the new one, never half of one."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)  # a failed or interrupted write leaves no stray temporary file behind
        if isinstance(e, OSError) and e.errno is not None:
            raise OSError(e.errno, e.strerror, str(path)) from None  # name the target, not the temporary file
        raise

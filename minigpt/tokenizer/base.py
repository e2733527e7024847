"""What every minigpt tokenizer shares: special tokens, input checks, and JSON files on disk.

A tokenizer maps text to a list of integer ids and back. Its ids are dense, 0 .. vocab_size-1:
first the ordinary tokens (characters, or bytes and BPE merges), then the special tokens in the
order they were added. Adding a special token later (GPT-1's start, delimiter and extract tokens
for fine-tuning) appends an id at the end, so a trained model's existing embeddings keep meaning
the same thing.

A special token's text inside `encode`'s input is ordinary text unless the caller allows it
(`allowed_special="all"` or a set of names), as in tiktoken's `encode_ordinary` (tiktoken's `encode`
raises on it instead). Text from users or
data files can then never smuggle in an <|endoftext|> that the model reads as a document boundary.

Subclasses (CharTokenizer, BPETokenizer) supply `n_ordinary`, `_encode_ordinary`, `_decode`,
`to_dict` and `from_dict`. Files are JSON (never pickle), written to a temporary name in the
same folder and renamed into place, so a crash mid-write never leaves a half-written tokenizer.
"""
import json
import numbers
import os
import re

FORMAT_VERSION = 1


class UnencodableText(ValueError):
    """A text a tokenizer cannot encode (a character a char tokenizer never saw), re-raised by prompting and
    fine-tuning with the example it belongs to."""


# A lone surrogate (U+D800..U+DFFF) is no character: Python keeps one for bytes that were not UTF-8 (read with
# errors="surrogateescape") and it has no UTF-8 form, so no tokenizer can encode or save it.
SURROGATE = re.compile("[\ud800-\udfff]")


def check_no_surrogates(text, what):
    found = SURROGATE.search(text)
    if found:
        raise UnencodableText(f"{what} holds a lone surrogate {found.group()!r} at position {found.start()}, "
                              "which is not a Unicode character (bytes that were not UTF-8?)")


class Tokenizer:
    kind = None  # "char" or "bpe": the "type" field of to_dict()

    def __init__(self, special_tokens=None):
        self._special_tokens = {}  # str -> id
        self._special_by_id = {}  # id -> str, for decode
        if special_tokens:
            self.add_special_tokens(list(special_tokens))

    @property
    def n_ordinary(self):
        """The number of ordinary (non-special) tokens; they have ids 0 .. n_ordinary-1."""
        raise NotImplementedError

    @property
    def special_tokens(self):
        """A copy of the special tokens, str -> id (add new ones with add_special_tokens)."""
        return dict(self._special_tokens)

    @property
    def vocab_size(self):
        return self.n_ordinary + len(self._special_tokens)

    @property
    def eot_token(self):
        """The id of <|endoftext|>, which separates documents, or None if this tokenizer has none."""
        return self._special_tokens.get("<|endoftext|>")

    def add_special_tokens(self, tokens):
        """Give each string in `tokens` an id at the end of the vocabulary; returns their ids.
        A token that is already special keeps its id, so calling this twice is harmless."""
        if isinstance(tokens, str):
            raise TypeError("add_special_tokens expects a list of strings, got a single str; wrap it in a list")
        ids = []
        for token in tokens:
            if not isinstance(token, str):
                raise TypeError(f"a special token must be a str, got {type(token).__name__} {token!r}")
            if not token:
                raise ValueError("a special token must be a non-empty string")
            if token not in self._special_tokens:
                new_id = self.vocab_size
                self._special_tokens[token] = new_id
                self._special_by_id[new_id] = token
            ids.append(self._special_tokens[token])
        return ids

    def encode(self, text, allowed_special=()):
        """Text -> list of ids. Special tokens are recognised only if named in `allowed_special`
        ("all", or a set of special-token strings); otherwise their text is encoded as ordinary text."""
        if not isinstance(text, str):
            raise TypeError(f"{type(self).__name__}.encode expects a str, got {type(text).__name__}")
        check_no_surrogates(text, f"{type(self).__name__}.encode: the text")
        allowed = self._allowed_special(allowed_special)
        if not allowed:
            return self._encode_ordinary(text, 0)
        # Longest first, so that when one special token is a prefix of another the longer one wins.
        pattern = "|".join(re.escape(s) for s in sorted(allowed, key=len, reverse=True))
        ids, start = [], 0
        for match in re.finditer(pattern, text):
            ids.extend(self._encode_ordinary(text[start:match.start()], start))
            ids.append(self._special_tokens[match.group()])
            start = match.end()
        ids.extend(self._encode_ordinary(text[start:], start))
        return ids

    def _allowed_special(self, allowed_special):
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str) or allowed_special is None:
            raise TypeError(f'allowed_special must be "all" or a set of strings (empty: none), got {allowed_special!r}')
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ValueError(f"allowed_special names tokens that are not special tokens here: {sorted(unknown)}; "
                             f"the special tokens are {sorted(self.special_tokens)}")
        return allowed

    def decode(self, ids):
        """List of ids (or a 1-D integer array) -> text. A special id decodes to its string."""
        return self._decode(self._checked_ids(ids, "decode"))

    def decode_bytes(self, ids):
        """The UTF-8 bytes that ids stand for, exactly: a byte-level BPE token may hold part of a character,
        which decode can only show as U+FFFD (counting bits per byte needs the bytes themselves)."""
        return self._decode_bytes(self._checked_ids(ids, "decode_bytes"))

    def _checked_ids(self, ids, method):
        if isinstance(ids, (str, bytes)):
            raise TypeError(f"{type(self).__name__}.{method} expects a sequence of integer ids, got "
                            f"{type(ids).__name__}")
        ids = ids.tolist() if hasattr(ids, "tolist") else list(ids)  # a NumPy array -> Python ints
        for position, i in enumerate(ids):
            if not isinstance(i, numbers.Integral) or isinstance(i, bool):
                raise TypeError(f"{method}: ids must be integers, got {i!r} at position {position}")
            if not 0 <= i < self.vocab_size:
                raise ValueError(f"{method}: id {i} at position {position} is out of range: "
                                 f"the vocabulary has ids 0 .. {self.vocab_size - 1}")
        return ids

    def _encode_ordinary(self, text, start):
        """Encode text with no special tokens; `start` is its offset in the caller's string (for errors)."""
        raise NotImplementedError

    def _decode(self, ids):
        """Decode a list of ids already checked to be in range."""
        raise NotImplementedError

    def _decode_bytes(self, ids):
        """The bytes of a list of checked ids; a tokenizer of whole characters has nothing to add to decode's."""
        return self._decode(ids).encode("utf-8")

    def _special_tokens_from_dict(self, d):
        """Restore the special tokens of a to_dict() result, checking that their ids continue the vocabulary."""
        specials = require(d, "special_tokens", dict)
        if not all(type(token_id) is int for token_id in specials.values()):
            raise ValueError(f"special token ids must be integers, got {specials}")
        for token, token_id in sorted(specials.items(), key=lambda item: item[1]):
            if token_id != self.vocab_size:
                raise ValueError(f"special token {token!r} has id {token_id!r}; expected {self.vocab_size} "
                                 f"(special ids must follow the {self.n_ordinary} ordinary tokens without gaps)")
            self.add_special_tokens([token])

    def save(self, path):
        """Write to_dict() as JSON, atomically: a temporary file in the same folder, then os.replace.
        (The name carries the process id so two processes saving at once do not share a temporary file.)"""
        path = os.fspath(path)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump(self.to_dict(), f, ensure_ascii=False)
                f.flush()
                os.fsync(f.fileno())  # the data is on disk before the rename makes it visible
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path):
        """Read a file written by save()."""
        d = read_tokenizer_json(path)
        try:
            return cls.from_dict(d)
        except ValueError as e:
            raise ValueError(f"{path}: not a valid {cls.__name__} file: {e}") from e

    def __repr__(self):
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, special_tokens={self.special_tokens})"


def read_tokenizer_json(path):
    """The dict stored in a tokenizer file, or a ValueError naming the file if it is not valid JSON."""
    try:
        with open(path, encoding="utf-8") as f:
            d = json.load(f)
    except (ValueError, RecursionError) as e:  # not UTF-8 JSON, an integer too long to convert, nested too deep
        raise ValueError(f"{path}: not a valid tokenizer file (corrupted JSON: {e})") from e
    if not isinstance(d, dict):
        raise ValueError(f"{path}: not a valid tokenizer file (expected a JSON object, got {type(d).__name__})")
    return d


def require(d, key, expected_type):
    """d[key], checked to exist and have the expected type, or a ValueError that says what is wrong."""
    if key not in d:
        raise ValueError(f"missing field {key!r}")
    if not isinstance(d[key], expected_type) or isinstance(d[key], bool):
        raise ValueError(f"field {key!r} should be {expected_type.__name__}, got {type(d[key]).__name__}")
    return d[key]


def check_header(d, kind):
    """Check the "type" and "version" fields every tokenizer dict starts with."""
    if d.get("type") != kind:
        raise ValueError(f'expected "type": "{kind}", got {d.get("type")!r}')
    if d.get("version") != FORMAT_VERSION:
        raise ValueError(f"unsupported format version {d.get('version')!r} "
                         f"(this minigpt reads version {FORMAT_VERSION})")

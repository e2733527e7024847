"""The character-level tokenizer: one id per distinct character of the training text.

This is the tokenizer of Karpathy's char-rnn and nanoGPT's shakespeare_char example: the
vocabulary is the sorted set of characters in the text (65 for tiny Shakespeare), so ids are
stable for a given text and a model can be trained in minutes. It cannot encode a character it
has not seen; that is an error naming the character, never a silent substitution.
"""
from minigpt.tokenizer.base import FORMAT_VERSION, Tokenizer, check_header, check_no_surrogates, require


class CharTokenizer(Tokenizer):
    kind = "char"

    def __init__(self, chars, special_tokens=None):
        """chars: the vocabulary, one character per id (any order; train() sorts them)."""
        chars = list(chars)
        for c in chars:
            if not isinstance(c, str) or len(c) != 1:
                raise ValueError(f"CharTokenizer: each vocabulary entry must be a single character, got {c!r}")
        if len(set(chars)) != len(chars):
            raise ValueError("CharTokenizer: the vocabulary contains a character twice")
        check_no_surrogates("".join(chars), "CharTokenizer: the vocabulary")  # it could not be saved as UTF-8
        self.chars = chars  # id -> character
        self.stoi = {c: i for i, c in enumerate(chars)}  # character -> id
        super().__init__(special_tokens)

    @classmethod
    def train(cls, text, special_tokens=None):
        """A tokenizer whose vocabulary is the sorted unique characters of `text`."""
        if not isinstance(text, str):
            raise TypeError(f"CharTokenizer.train expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError("CharTokenizer.train: the text is empty, so there is no vocabulary to build")
        check_no_surrogates(text, "CharTokenizer.train: the text")
        return cls(sorted(set(text)), special_tokens)

    from_text = train

    @property
    def n_ordinary(self):
        return len(self.chars)

    def _encode_ordinary(self, text, start):
        stoi = self.stoi
        try:
            return [stoi[c] for c in text]
        except KeyError:
            # Only on failure do we walk the text again to say where the unknown character is.
            position = next(p for p, c in enumerate(text) if c not in stoi)
            c = text[position]
            raise ValueError(f"CharTokenizer.encode: character {c!r} (U+{ord(c):04X}) at position {start + position} "
                             f"is not in the vocabulary of {len(self.chars)} characters; "
                             "train the tokenizer on text that contains it") from None

    def _decode(self, ids):
        chars, n, specials = self.chars, len(self.chars), self._special_by_id
        return "".join(chars[i] if i < n else specials[i] for i in ids)

    def to_dict(self):
        return {"type": self.kind, "version": FORMAT_VERSION, "chars": "".join(self.chars),
                "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, d):
        check_header(d, cls.kind)
        tokenizer = cls(require(d, "chars", str))
        tokenizer._special_tokens_from_dict(d)
        return tokenizer

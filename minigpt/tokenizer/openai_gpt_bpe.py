"""The OpenAI-GPT (GPT-1) tokenizer: lowercased words, punctuation split off, BPE with '</w>' end-of-word markers.

GPT-1 (Radford et al. 2018, sec. 4.1) used a 40,000-merge BPE over words, not bytes: a word is a
sequence of characters whose last one carries the marker '</w>' ("low" -> l o w</w>), and merges
turn frequent pairs into bigger pieces ("low</w>", "er</w>"). Its vocabulary, vocab.json (40,478
entries: characters, characters with '</w>', then one token per merge) and merges.txt (the merges
in rank order), is what Hugging Face ships for `openai-gpt`.

The original code (openai/finetune-transformer-lm, text_utils.py) cleaned text with ftfy, split it
into words with spaCy, and lowercased. Hugging Face transformers replaced spaCy and ftfy by BERT's
basic tokenizer (and since version 5 always does so). We follow that pipeline, written out here
without spaCy, ftfy or the `tokenizers` library:

  1. clean       drop NUL, U+FFFD and control, format and private-use characters (Unicode Cc, Cf, Co,
                 except tab, newline and carriage return; unassigned ones stay); turn whitespace into spaces
  2. CJK         put spaces around CJK ideographs, so each one is a word
  3. accents     decompose (NFD) and drop the nonspacing marks: "café" -> "cafe"
  4. lowercase   character by character (so a final capital sigma becomes σ, not ς)
  5. words       split at whitespace; each punctuation character (Unicode P*, and the ASCII
                 symbols $ + < = > ^ ` | ~) is a word of its own: "don't!" -> don ' t !
  6. BPE         per word, apply the merges lowest rank first, each at all its places before the next
                 (the bpe() loop of GPT-1 and GPT-2, made O(n log n) by merges_in_rounds)

How close this is: tests/test_parity_hf_tokenizers.py compares it with transformers'
OpenAIGPTTokenizer on varied text (accents, CJK, punctuation, controls, odd whitespace) and finds
the same ids. Where Python's Unicode tables and the Rust crates behind `tokenizers` disagree (a
character assigned in one Unicode version and not the other) the two can differ. Against the
original spaCy + ftfy pipeline it differs on purpose in a few places: spaCy splits "don't" as
"do n't" (here: "don ' t"), ftfy repairs mojibake (not here), GPT-1's text_standardize rewrote
dashes and ellipses, and newlines were tokens of their own there (here they are spaces). The BPE of
`tokenizers` (behind transformers 5) pops merges from a heap without rounds: on a vocabulary where two
merges make the same token and a pair with that token ranks between them, it can merge differently from
the bpe() loop, which we follow (tests/test_pretrained_openai_gpt_tokenizer.py shows a case).

A character that is not in the vocabulary (GPT-1's has no byte fallback) is an error naming it,
unless the vocabulary holds an unknown token ("<unk>"): then it maps to that, as in `tokenizers`.
The literal text "<unk>" in the input is text here, split like any other word; transformers'
tokenizer turns it into the unknown token itself.
Decoding gives the lowercased words joined by spaces: case and the original spacing are lost. As in
transformers, no space follows a special token: [<|endoftext|>, hello</w>] decodes to "<|endoftext|>hello".
"""
import heapq
import unicodedata

from minigpt.tokenizer.base import FORMAT_VERSION, Tokenizer, check_header, require
from minigpt.tokenizer.gpt2_files import read_json_file, read_text_lines

END_OF_WORD = "</w>"
# Unicode's White_Space property (what Rust's char::is_whitespace tests), not Python's str.isspace,
# which also counts the separators U+001C..U+001F.
WHITESPACE = frozenset("\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008"
                       "\u2009\u200a\u2028\u2029\u202f\u205f\u3000")
ASCII_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
              (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))


def is_control(c):
    # Cc, Cf and Co (private use), as `tokenizers`' BertNormalizer drops them; an unassigned character (Cn) stays,
    # as it does there (Python's BERT code dropped those too). Surrogates never get here (Tokenizer.encode).
    return c not in "\t\n\r" and unicodedata.category(c) in ("Cc", "Cf", "Co")


def is_cjk(c):
    cp = ord(c)
    return any(low <= cp <= high for low, high in CJK_RANGES)


def is_punctuation(c):
    return c in ASCII_PUNCTUATION or unicodedata.category(c)[0] == "P"


def normalize(text):
    """Steps 1-4: clean, space out CJK ideographs, strip accents, lowercase."""
    # Order matters: a control character that is also whitespace (vertical tab) is dropped, not spaced.
    cleaned = "".join(" " if c in WHITESPACE else c for c in text
                      if not (c == "\x00" or c == "\ufffd" or is_control(c)))
    spaced = "".join(f" {c} " if is_cjk(c) else c for c in cleaned)
    stripped = "".join(c for c in unicodedata.normalize("NFD", spaced) if unicodedata.category(c) != "Mn")
    return "".join(c.lower() for c in stripped)


def split_words(text):
    """Step 5: whitespace separates words, and every punctuation character is a word of its own."""
    words = []
    for chunk in text.split(" "):  # normalize() turned all whitespace into " "
        word = ""
        for c in chunk:
            if is_punctuation(c):
                if word:
                    words.append(word)
                words.append(c)
                word = ""
            else:
                word += c
        if word:
            words.append(word)
    return words


def merges_in_rounds(parts, ranks):
    """parts (strings) as GPT-1's bpe() loop leaves them: find the lowest-ranked adjacent pair, merge it at all its
    places left to right ("a a a" -> "aa a"), repeat. The loop is O(n^2) for a word of n characters, this
    O(n log n), by bpe.merges_by_heap's method: the parts form a linked list, every adjacent pair that is a merge
    waits in a heap as (rank, position), lowest rank and then leftmost first, and an entry whose pair has changed
    since it was pushed is stale: skipped. One thing differs. Two merges can make the same string ((a, bc) and
    (ab, c) both make abc), so a merge can make a pair that ranks below it ((abc, ab) between those two); the
    loop merges such a pair only once the current pair is merged everywhere, so the pairs a round makes wait
    beside the heap until that round is over."""
    parts, n = list(parts), len(parts)
    nxt = list(range(1, n + 1))  # position of the next live part (n: none)
    prv = list(range(-1, n - 1))  # position of the previous live part (-1: none)
    heap = [(ranks[pair], i) for i, pair in enumerate(zip(parts, parts[1:])) if pair in ranks]
    heapq.heapify(heap)
    made_this_round = []
    while heap:
        rank, i = heapq.heappop(heap)
        j = nxt[i]
        if j < n and ranks.get((parts[i], parts[j])) == rank:  # a part merged away is "", in no pair
            parts[i], parts[j] = parts[i] + parts[j], ""
            nxt[i] = nxt[j]
            if nxt[j] < n:
                prv[nxt[j]] = i
            for left, right in ((prv[i], i), (i, nxt[i])):  # the new part's pairs with its neighbours
                if left >= 0 and right < n and (parts[left], parts[right]) in ranks:
                    made_this_round.append((ranks[parts[left], parts[right]], left))
        if made_this_round and (not heap or heap[0][0] != rank):  # the round of `rank` is over
            for entry in made_this_round:
                heapq.heappush(heap, entry)
            made_this_round.clear()
    return [p for p in parts if p != ""]


class OpenAIGPTTokenizer(Tokenizer):
    kind = "openai-gpt-bpe"

    def __init__(self, vocab, merges, special_tokens=None, unk_token=None):
        """vocab: token strings, the id of each is its position; merges: (left, right) strings in
        rank order, each joining two vocabulary tokens into a third. unk_token: a vocabulary token
        for characters outside the vocabulary, or None to make them an error."""
        vocab = list(vocab)
        if not all(isinstance(t, str) and t for t in vocab):
            raise ValueError("OpenAIGPTTokenizer: every vocabulary entry must be a non-empty string")
        self.vocab = vocab
        self.token_to_id = {t: i for i, t in enumerate(vocab)}
        if len(self.token_to_id) != len(vocab):
            raise ValueError("OpenAIGPTTokenizer: the vocabulary lists a token twice")
        self.ranks = {}  # (left, right) -> rank
        for rank, (left, right) in enumerate(merges):
            for part in (left, right, left + right):
                if part not in self.token_to_id:
                    raise ValueError(f"OpenAIGPTTokenizer: merge {rank} ({left!r} {right!r}) uses {part!r}, "
                                     "which is not in the vocabulary")
            self.ranks.setdefault((left, right), rank)  # a repeated line keeps its first rank, as in tokenizers
        if unk_token is not None and unk_token not in self.token_to_id:
            raise ValueError(f"OpenAIGPTTokenizer: unk_token {unk_token!r} is not in the vocabulary")
        self.unk_token = unk_token
        self._cache = {}  # word -> tuple of ids
        super().__init__(special_tokens)

    @classmethod
    def from_files(cls, vocab_json, merges_txt, special_tokens=None):
        """GPT-1's tokenizer from Hugging Face's vocab.json (token -> id) and merges.txt."""
        encoder = read_json_file(vocab_json)
        if not isinstance(encoder, dict):
            raise ValueError(f"{vocab_json}: expected a JSON object of token -> id")
        vocab = [None] * len(encoder)
        for token, i in encoder.items():
            if type(i) is not int or not 0 <= i < len(encoder) or vocab[i] is not None:
                raise ValueError(f"{vocab_json}: the ids must be 0 .. {len(encoder) - 1}, each once; "
                                 f"{token!r} has id {i!r}")
            vocab[i] = token
        unk = "<unk>" if "<unk>" in encoder else None
        merges = read_merges_txt(merges_txt)
        try:
            return cls(vocab, merges, special_tokens, unk_token=unk)
        except ValueError as e:  # a merge naming a token vocab.json lacks, say: which files, then what
            raise ValueError(f"{merges_txt} with {vocab_json}: {e}") from None

    @property
    def n_ordinary(self):
        return len(self.vocab)

    def _encode_ordinary(self, text, start):
        cache = self._cache
        if len(cache) > 1 << 20:
            cache.clear()  # bounded, as in BPETokenizer
        ids = []
        for word in split_words(normalize(text)):
            if word not in cache:
                cache[word] = self._encode_word(word)
            ids.extend(cache[word])
        return ids

    def _encode_word(self, word):
        """One word -> ids: characters, '</w>' on the last, then merges by rank."""
        parts = list(word[:-1]) + [word[-1] + END_OF_WORD]
        known = self.token_to_id
        for position, part in enumerate(parts):
            if part not in known and self.unk_token is None:
                c = word[position]
                raise ValueError(f"OpenAIGPTTokenizer.encode: character {c!r} (U+{ord(c):04X}) in the word "
                                 f"{word!r} (after lowercasing and accent removal) is not in the vocabulary, "
                                 "which has no unknown token")
        # An unknown character becomes None: no merge pairs with it, and it maps to the unknown token.
        parts = [p if p in known else None for p in parts]
        parts = merges_in_rounds(parts, self.ranks)
        return tuple(known[p] if p is not None else known[self.unk_token] for p in parts)

    def _decode(self, ids):
        # As transformers' OpenAIGPTTokenizer (the BPEDecoder of `tokenizers`): a token's '</w>' becomes the space
        # after its word, except on the last token. A special token has no '</w>', so no space follows it
        # ("<|endoftext|>hello"), and `minigpt generate` from <|endoftext|> prints no space before its first word.
        vocab, n, specials = self.vocab, len(self.vocab), self._special_by_id
        tokens = [vocab[i] if i < n else specials[i] for i in ids]
        return "".join(token.replace(END_OF_WORD, " ") for token in tokens[:-1]) + \
            "".join(token.replace(END_OF_WORD, "") for token in tokens[-1:])

    def to_dict(self):
        return {"type": self.kind, "version": FORMAT_VERSION, "vocab": self.vocab,
                "merges": [list(pair) for pair in self.ranks], "unk_token": self.unk_token,
                "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, d):
        check_header(d, cls.kind)
        merges = require(d, "merges", list)
        if not all(isinstance(m, list) and len(m) == 2 for m in merges):
            raise ValueError('field "merges" must be a list of [left, right] pairs')
        tokenizer = cls(require(d, "vocab", list), merges, unk_token=d.get("unk_token"))
        tokenizer._special_tokens_from_dict(d)
        return tokenizer


def read_merges_txt(path):
    """[(left, right)] from a merges.txt: an optional '#version' line, then one 'left right' per line."""
    lines = read_text_lines(path)
    pairs = []
    for number, line in enumerate(lines, start=1):
        if not line or (number == 1 and line.startswith("#version")):
            continue
        parts = line.split(" ")
        if len(parts) != 2:
            raise ValueError(f"{path}, line {number}: expected two tokens separated by a space, got {line!r}")
        pairs.append((parts[0], parts[1]))
    return pairs

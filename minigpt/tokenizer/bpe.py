"""Byte-level byte-pair encoding (BPE), as in GPT-2: training on any text, encoding and decoding.

Follows Sennrich et al. 2016 (arXiv:1508.07909) as adapted by GPT-2 (Radford et al. 2019, sec. 2.2),
with the structure of Karpathy's minbpe; the code is our own.

  1. Text is UTF-8 bytes, so the 256 single bytes are the base tokens and nothing is ever unknown.
  2. A regex first splits text into chunks (words with their leading space, numbers, punctuation
     runs, whitespace), and merges never cross a chunk boundary, so "dog." and "dog!" share "dog".
  3. Training repeatedly merges the most frequent adjacent pair of tokens into a new token,
     id 256, 257, ... Encoding replays the merges by rank: in each chunk, merge the pair that was
     learned earliest, until no learned pair is left (the bpe() loop of openai/gpt-2's encoder.py).

Training is fast because it works on unique chunks (a word seen 10,000 times is one entry with
weight 10,000), keeps the count of every pair and an index pair -> chunks that contain it, and
after each merge rewrites only those chunks, updating the counts by the difference. The most
frequent pair comes from a heap whose stale entries are skipped when popped. Ties go to the
smallest pair (a, b), so training is deterministic.

Encoding a chunk as openai/gpt-2's bpe() does, finding the earliest-learned pair anywhere and rewriting
the whole chunk, costs O(n^2) for n bytes: nothing for a word, hours for a megabyte without a space (a
base64 blob, a minified line). merges_by_heap makes the same merges in the same order in O(n log n), and
is as fast on ordinary text (1 MB of Shakespeare with GPT-2's vocabulary: 0.29 s against 0.30-0.32 s with
the rescanning loop for chunks under 256 bytes), so it encodes every chunk; tests/test_tokenizer_bpe.py
keeps the rescanning loop as the reference it is checked against. Training rewrites whole chunks, so a
corpus of very long chunks trains slowly (about 15 s for 100 KB of letters without a space, 256 merges).

Left out: GPT-4's regex.
"""
import heapq
import itertools
import numbers
import warnings
from collections import Counter, defaultdict

import regex

from minigpt.tokenizer.base import FORMAT_VERSION, Tokenizer, check_header, check_no_surrogates, require
from minigpt.tokenizer.gpt2_files import read_gpt2_files

# GPT-2's pre-tokenisation: contractions, letters, digits, other symbols (each with an optional
# leading space), then whitespace. \s+(?!\S) leaves the last space of a run to start the next word.
GPT2_SPLIT_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
CACHE_SIZE = 1 << 20  # chunks whose encoding is remembered; bounded so huge corpora cannot exhaust memory


def merge(ids, pair, new_id):
    """Replace every occurrence of `pair` in ids, left to right, by new_id: merge([5, 5, 5], (5, 5), 9) = [9, 5]."""
    out, i, n = [], 0, len(ids)
    a, b = pair
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def merges_by_heap(ids, merges):
    """ids after replaying merges ({(a, b): new id}, ids growing with rank) earliest first: what rescanning
    for the lowest-ranked pair gives, in O(n log n). The tokens form a linked list and every adjacent pair
    that is a merge waits in a heap as (new id, position), so the earliest merge pops first and equal ones
    go left to right, as merge() does them. A merge makes pairs of a later rank only (their new id did not
    exist before), so nothing popped later belongs before it. A heap entry whose pair has changed since it
    was pushed is stale: skipped."""
    ids, n = list(ids), len(ids)
    nxt = list(range(1, n + 1))  # position of the next live token (n: none)
    prv = list(range(-1, n - 1))  # position of the previous live token (-1: none)
    heap = [(merges[pair], i) for i, pair in enumerate(zip(ids, ids[1:])) if pair in merges]
    heapq.heapify(heap)
    while heap:
        new_id, i = heapq.heappop(heap)
        j = nxt[i]
        if ids[i] is None or j == n or merges.get((ids[i], ids[j])) != new_id:
            continue  # stale: i was merged away, or its pair is no longer this one
        ids[i], ids[j] = new_id, None  # the pair becomes one token at i; j leaves the list
        nxt[i] = nxt[j]
        if nxt[j] < n:
            prv[nxt[j]] = i
        for left, right in ((prv[i], i), (i, nxt[i])):  # the new token's pairs with its neighbours
            if left >= 0 and right < n and (ids[left], ids[right]) in merges:
                heapq.heappush(heap, (merges[ids[left], ids[right]], left))
    return [i for i in ids if i is not None]


def train_merges(chunk_counts, num_merges):
    """Learn up to num_merges merges from {chunk string: count}; merge r creates id 256 + r.
    Returns the list of merged (left_id, right_id) pairs in order; shorter if the pairs run out."""
    words = [list(chunk.encode("utf-8")) for chunk in chunk_counts]  # each chunk as token ids
    weights = list(chunk_counts.values())
    pair_counts, where = _count_pairs(words, weights)
    # Python's heap is a min-heap: (-count, pair) pops the highest count, then the smallest pair.
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)
    merges = []
    while len(merges) < num_merges:
        pair = _pop_best(heap, pair_counts)
        if pair is None:
            break  # every chunk is a single token: nothing left to merge
        _apply_merge(pair, 256 + len(merges), words, weights, pair_counts, where, heap)
        merges.append(pair)
    return merges


def _count_pairs(words, weights):
    """The weighted count of every adjacent pair, and the index pair -> set of word indices containing it."""
    pair_counts, where = defaultdict(int), defaultdict(set)
    for w, (word, weight) in enumerate(zip(words, weights)):
        for pair in zip(word, word[1:]):
            pair_counts[pair] += weight
            where[pair].add(w)
    return dict(pair_counts), where


def _pop_best(heap, pair_counts):
    """The most frequent pair, or None. A heap entry is stale if the pair's count has changed since
    it was pushed (the fresh count was pushed too), so we skip entries that disagree with pair_counts."""
    while heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair) == -negative_count:
            return pair
    return None


def _apply_merge(pair, new_id, words, weights, pair_counts, where, heap):
    """Merge `pair` into new_id in every word that contains it, and update the pair counts, the
    index and the heap by the difference between each word's pairs before and after."""
    delta = defaultdict(int)
    for w in where.pop(pair):
        old = words[w]
        new = words[w] = merge(old, pair, new_id)
        old_pairs, new_pairs = list(zip(old, old[1:])), list(zip(new, new[1:]))
        for p in old_pairs:
            delta[p] -= weights[w]
        for p in new_pairs:
            delta[p] += weights[w]
        for p in set(old_pairs).difference(new_pairs, [pair]):  # `pair` itself was popped from where
            where[p].discard(w)
        for p in new_pairs:
            where[p].add(w)
    for p, d in delta.items():
        if d == 0:
            continue  # e.g. (x, y) in "x y a b": unchanged, so no heap push
        count = pair_counts.get(p, 0) + d
        if count > 0:
            pair_counts[p] = count
            heapq.heappush(heap, (-count, p))
        else:
            del pair_counts[p]  # count == 0: the pair no longer occurs anywhere


class BPETokenizer(Tokenizer):
    kind = "bpe"

    def __init__(self, merges, special_tokens=None, byte_ids=None, pattern=GPT2_SPLIT_PATTERN):
        """merges: (left_id, right_id) pairs in rank order; merge r creates id 256 + r.
        byte_ids: byte_ids[b] is the id of byte b; None means byte b has id b (our own training).
        GPT-2's files order the 256 byte tokens differently, so they pass their own permutation."""
        byte_ids = list(range(256)) if byte_ids is None else list(byte_ids)
        if not all(type(i) is int for i in byte_ids) or sorted(byte_ids) != list(range(256)):
            raise ValueError("BPETokenizer: byte_ids must be a permutation of the integers 0..255")
        self.byte_ids = byte_ids
        self.merges = {}  # (left_id, right_id) -> new id; dicts keep insertion (rank) order
        self.vocab = [b""] * 256  # id -> the bytes it stands for
        for b, i in enumerate(byte_ids):
            self.vocab[i] = bytes([b])
        for rank, (a, b) in enumerate(merges):
            self._add_merge(rank, a, b)
        try:
            self._split = regex.compile(pattern)
        except (regex.error, TypeError) as e:
            raise ValueError(f"BPETokenizer: the split pattern {pattern!r} is not a valid regex: {e}") from e
        if self._split.groups:  # findall would return the groups, not the chunks
            raise ValueError(f"BPETokenizer: the split pattern {pattern!r} has capturing groups; write them (?:...)")
        self.pattern = pattern
        self._cache = {}  # chunk string -> tuple of ids
        super().__init__(special_tokens)

    def _add_merge(self, rank, a, b):
        new_id = 256 + rank
        for i in (a, b):
            if type(i) is not int or not 0 <= i < new_id:
                raise ValueError(f"BPETokenizer: merge {rank} is ({a!r}, {b!r}); both ids must be integers "
                                 f"of existing tokens, 0 .. {new_id - 1}")
        if (a, b) in self.merges:
            raise ValueError(f"BPETokenizer: merge {rank} ({a}, {b}) repeats merge {self.merges[a, b] - 256}")
        self.merges[a, b] = new_id
        self.vocab.append(self.vocab[a] + self.vocab[b])

    @classmethod
    def train(cls, text, vocab_size, special_tokens=(ENDOFTEXT,), verbose=False):
        """Learn a vocabulary of vocab_size tokens from `text`: 256 bytes, then merges, then the special
        tokens (so vocab_size - 256 - len(special_tokens) merges). Stops early, with a warning, if the
        text has no pairs left to merge."""
        if not isinstance(text, str):
            raise TypeError(f"BPETokenizer.train expects a str, got {type(text).__name__}")
        if not text:
            raise ValueError("BPETokenizer.train: the text is empty, so there are no merges to learn")
        check_no_surrogates(text, "BPETokenizer.train: the text")
        special_tokens = list(special_tokens or [])
        if not isinstance(vocab_size, numbers.Integral) or isinstance(vocab_size, bool) or \
                vocab_size < 256 + len(special_tokens):
            raise ValueError(f"BPETokenizer.train: vocab_size must be an integer of at least 256 (the bytes) "
                             f"+ {len(special_tokens)} (the special tokens), got {vocab_size!r}")
        num_merges = int(vocab_size) - 256 - len(special_tokens)
        chunk_counts = Counter(regex.findall(GPT2_SPLIT_PATTERN, text))
        merges = train_merges(chunk_counts, num_merges)
        if len(merges) < num_merges:
            warnings.warn(f"BPETokenizer.train: the text ran out of pairs after {len(merges)} of {num_merges} "
                          f"merges; the vocabulary has {256 + len(merges) + len(special_tokens)} tokens, "
                          f"not {vocab_size}", stacklevel=2)
        tokenizer = cls(merges, special_tokens)
        if verbose:
            for a, b in merges:
                new_id = tokenizer.merges[a, b]
                print(f"merge {new_id - 256}: {a} + {b} -> {new_id} {tokenizer.vocab[new_id]!r}")
        return tokenizer

    @classmethod
    def from_gpt2_files(cls, encoder_json, vocab_bpe):
        """GPT-2's own tokenizer (50,257 tokens, <|endoftext|> = 50256) from OpenAI's two files."""
        byte_ids, merges, special_tokens = read_gpt2_files(encoder_json, vocab_bpe)
        return cls(merges, special_tokens, byte_ids=byte_ids)

    @property
    def n_ordinary(self):
        return len(self.vocab)

    def _encode_ordinary(self, text, start):
        chunks = self._split.findall(text)
        # findall skips what the pattern does not match: a pattern from a file ("a", say) would drop text silently
        covered = sum(map(len, chunks))
        if covered != len(text):
            raise ValueError(f"BPETokenizer: the split pattern {self.pattern!r} covers {covered} of the text's "
                             f"{len(text)} characters; the rest would be dropped (the tokenizer file is damaged?)")
        cache = self._cache
        if len(cache) > CACHE_SIZE:
            cache.clear()  # simpler than LRU: the next text refills it with the chunks it uses
        for chunk in set(chunks).difference(cache):
            cache[chunk] = self._encode_chunk(chunk)  # each distinct chunk is encoded once
        # Concatenate the cached encodings; chain and map keep this 1-million-chunk loop in C.
        return list(itertools.chain.from_iterable(map(cache.__getitem__, chunks)))

    def _encode_chunk(self, chunk):
        """One pre-tokenised chunk -> ids: the learned merges replayed, earliest-learned (lowest id) first."""
        return tuple(merges_by_heap([self.byte_ids[b] for b in chunk.encode("utf-8")], self.merges))

    def _decode(self, ids):
        # A slice of ids can end inside a multi-byte character; like GPT-2, show it as U+FFFD.
        return self._decode_bytes(ids).decode("utf-8", errors="replace")

    def _decode_bytes(self, ids):
        vocab, n, specials = self.vocab, len(self.vocab), self._special_by_id
        return b"".join(vocab[i] if i < n else specials[i].encode("utf-8") for i in ids)

    def to_dict(self):
        return {"type": self.kind, "version": FORMAT_VERSION, "pattern": self.pattern,
                "byte_ids": self.byte_ids, "merges": [list(pair) for pair in self.merges],
                "special_tokens": self.special_tokens}

    @classmethod
    def from_dict(cls, d):
        check_header(d, cls.kind)
        merges = require(d, "merges", list)
        if not all(isinstance(m, list) and len(m) == 2 for m in merges):
            raise ValueError('field "merges" must be a list of [left_id, right_id] pairs')
        tokenizer = cls(merges, byte_ids=require(d, "byte_ids", list), pattern=require(d, "pattern", str))
        tokenizer._special_tokens_from_dict(d)
        return tokenizer

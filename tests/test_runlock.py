"""One run at a time in an --out folder (minigpt/runlock.py)."""
import errno
import fcntl
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import threading

import pytest

from minigpt.runlock import LOCK_NAME, claim_run_folder, open_lock_file


def test_a_held_folder_is_refused_and_freed_after_the_run(tmp_path):
    with claim_run_folder(tmp_path / "out", "pretrain") as out:
        holder = json.loads((out / LOCK_NAME).read_text())
        assert holder == {"pid": os.getpid(), "host": socket.gethostname(), "command": "pretrain"}
        with pytest.raises(ValueError, match=rf"is in use by `minigpt pretrain`, process {os.getpid()} on "):
            with claim_run_folder(tmp_path / "out", "finetune"):
                pass
        assert (out / LOCK_NAME).exists()  # the refused claim did not remove the holder's lock
    assert not (tmp_path / "out" / LOCK_NAME).exists()
    with claim_run_folder(tmp_path / "out", "finetune"):  # free again
        pass


def test_the_lock_is_freed_when_the_run_fails(tmp_path):
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError, match="boom"):
        with claim_run_folder(tmp_path / "out", "pretrain"):
            raise RuntimeError("boom")
    assert (tmp_path / "out").is_dir() and not (tmp_path / "out" / LOCK_NAME).exists()


def test_a_run_that_fails_at_once_leaves_no_new_folder_but_keeps_an_old_one(tmp_path):
    with pytest.raises(RuntimeError):
        with claim_run_folder(tmp_path / "new" / "run", "pretrain"):
            raise RuntimeError("e.g. --resume with no checkpoint")
    assert not (tmp_path / "new").exists()  # both folders it created
    (tmp_path / "old").mkdir()
    with pytest.raises(RuntimeError):
        with claim_run_folder(tmp_path / "old", "pretrain"):
            raise RuntimeError
    assert (tmp_path / "old").is_dir()


def test_a_file_is_not_a_run_folder(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a folder"):
        with claim_run_folder(tmp_path / "f", "pretrain"):
            pass


HOLD = """
import sys, time
from minigpt.runlock import claim_run_folder
with claim_run_folder(sys.argv[1], "pretrain"):
    print("held", flush=True)
    time.sleep(120)
"""


def test_a_killed_runs_folder_is_free_at_once(tmp_path):
    # The kernel drops a dead process's lock: nothing stale to detect or delete by hand, even after SIGKILL.
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        with pytest.raises(ValueError, match=rf"in use by `minigpt pretrain`, process {holder.pid} on "):
            with claim_run_folder(tmp_path, "finetune"):
                pass
    finally:
        holder.kill()
        holder.wait()
    assert (tmp_path / LOCK_NAME).exists()  # left behind by the killed run, but no longer locked
    with claim_run_folder(tmp_path, "finetune"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["command"] == "finetune"


def test_a_lock_file_without_a_holder_does_not_block(tmp_path):
    (tmp_path / LOCK_NAME).write_text("damaged")
    with claim_run_folder(tmp_path, "pretrain"):
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()


def test_a_symbolic_link_named_run_lock_is_not_followed(tmp_path):
    (tmp_path / "precious.txt").write_text("keep me")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / LOCK_NAME).symlink_to(tmp_path / "precious.txt")
    with pytest.raises(OSError):
        with claim_run_folder(tmp_path / "out", "pretrain"):
            pass
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_a_folder_removed_as_the_run_starts_is_made_again(tmp_path):
    # A run that failed at once removes the folder it made; one started beside it must still claim it.
    fd, writable = open_lock_file(tmp_path / "gone" / LOCK_NAME, tmp_path / "gone")
    os.close(fd)
    assert writable and (tmp_path / "gone" / LOCK_NAME).exists()


def test_a_folder_that_is_not_writable_says_so(tmp_path, monkeypatch):
    # As a user other than root meets it (root may write anywhere): creating run.lock is refused, and there is
    # none to open for reading. The error said "No such file or directory: run.lock".
    real_open = os.open

    def no_writing(path, flags, *mode):
        if flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_open(path, flags, *mode)
    (tmp_path / "ro").mkdir()
    monkeypatch.setattr(os, "open", no_writing)
    with pytest.raises(PermissionError, match=r"ro is not writable \(permission denied\); choose another folder"):
        with claim_run_folder(tmp_path / "ro", "pretrain"):
            pass


def test_a_file_system_without_locks_warns_and_runs_unlocked(tmp_path, monkeypatch):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")
    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.warns(UserWarning, match="does not support locks .* nothing stops another run"):
        with claim_run_folder(tmp_path / "out", "pretrain") as out:
            assert out.is_dir()


def try_claim(folder, start, results):
    try:
        start.wait()
        try:
            with claim_run_folder(folder, "pretrain"):
                results.put("claimed")
                start.wait()  # hold the lock until every process has tried
        except ValueError:
            results.put("refused")
            start.wait()
    except threading.BrokenBarrierError:  # another process died: end rather than wait forever
        results.put("broken")


def test_of_runs_started_at_the_same_moment_exactly_one_claims_the_folder(tmp_path):
    # What a check for existing checkpoints cannot do: all six would pass it before any wrote a checkpoint.
    context = multiprocessing.get_context("spawn")
    start, results = context.Barrier(6, timeout=60), context.Queue()
    processes = [context.Process(target=try_claim, args=(tmp_path / "out", start, results)) for _ in range(6)]
    try:
        for p in processes:
            p.start()
        outcomes = sorted(results.get(timeout=90) for _ in processes)
    finally:
        for p in processes:
            p.join(timeout=60)
            if p.is_alive():
                p.terminate()
    assert outcomes == ["claimed"] + ["refused"] * 5
    assert not (tmp_path / "out" / LOCK_NAME).exists()

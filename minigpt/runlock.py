"""One run at a time in an --out folder.

Two runs writing into one folder would interleave their checkpoints and metrics, and each would later
resume from the other's weights. A check such as "does the folder hold checkpoints yet?" cannot stop
two runs started at the same moment: both pass it before either writes. So a run first takes an
exclusive lock on the file `run.lock` in its folder (flock, POSIX): the operating system grants it to
one process only, and releases it when that process ends in any way, even killed (SIGKILL, MPI_Abort),
so a crashed run never leaves a folder locked. The file names its holder, for the error message only.
"""
import contextlib
import fcntl
import json
import os
import socket
from pathlib import Path

LOCK_NAME = "run.lock"


def read_holder(path):
    try:
        holder = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}  # being written this instant, or damaged
    return holder if isinstance(holder, dict) else {}


def is_open_file(fd, path):
    """Whether path still names the file open as fd: a holder removes the lock file as it finishes, so a
    process that opened the old file just before must not take its lock for the folder's."""
    try:
        here, there = os.fstat(fd), os.stat(path)
    except FileNotFoundError:
        return False
    return (here.st_dev, here.st_ino) == (there.st_dev, there.st_ino)


def lock_file(path, out):
    """Open path and hold its exclusive lock; return the descriptor, or raise ValueError naming the holder."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # NB: fail at once rather than wait
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(path)
            who = (f"`minigpt {holder.get('command')}`, process {holder.get('pid')} on {holder.get('host')}"
                   if holder else "another run")
            raise ValueError(f"--out {out} is in use by {who}; wait for it to finish, or choose another "
                             "--out") from None
        if is_open_file(fd, path):
            return fd
        os.close(fd)  # the file was replaced under us: lock the new one


@contextlib.contextmanager
def claim_run_folder(out, command, world=None):
    """Create `out` if needed and hold its lock for the with block; ValueError if another run holds it.

    With several MPI ranks only rank 0 claims the folder, since it alone writes there (its error stops
    every rank: distributed.stop_all_on_error)."""
    out = Path(out)
    if world is not None and not world.is_main:
        yield out
        return
    if out.exists() and not out.is_dir():
        raise ValueError(f"--out {out} is a file, not a folder")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd = lock_file(path, out)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command})
                      + "\n").encode())
        yield out
    finally:
        path.unlink(missing_ok=True)  # removed while still locked, so no other run holds it
        os.close(fd)
        if created:  # a run that failed before writing anything leaves no empty folder behind
            with contextlib.suppress(OSError):
                out.rmdir()  # only if empty

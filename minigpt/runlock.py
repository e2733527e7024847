"""One run at a time in an --out folder, a new run never in another run's, and what a killed save left
there cleared before a run starts.

Two runs writing into one folder would interleave their checkpoints and metrics, and each would later
resume from the other's weights. A check such as "does the folder hold checkpoints yet?" cannot stop
two runs started at the same moment: both pass it before either writes. So a run first takes an
exclusive lock on the file `run.lock` in its folder (flock, POSIX): the operating system grants it to
one process only, and releases it when that process ends in any way, even killed (SIGKILL, MPI_Abort),
so a crashed run never leaves a folder locked. The file names its holder, for the error message only.
"""
import contextlib
import errno
import fcntl
import json
import os
import socket
import warnings
from pathlib import Path

from minigpt.checkpoint import clean_unfinished_saves, list_checkpoints

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


# flock's errors where a file system does not support it (some cluster file systems, mounted without locks)
UNSUPPORTED = {errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOLCK, errno.EINVAL}


def open_lock_file(path, out):
    """A descriptor of path, created if missing, and whether it was opened for writing. O_NOFOLLOW: a
    symbolic link named run.lock is refused, not followed to a file that the holder line would overwrite."""
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644), True
        except FileNotFoundError:  # the folder was removed by a run that failed as this one started
            out.mkdir(parents=True, exist_ok=True)
        except PermissionError:  # another user's run.lock, left by a killed run: flock needs no write access
            try:
                return os.open(path, os.O_RDONLY | os.O_NOFOLLOW), False
            except FileNotFoundError:  # no run.lock, and none may be made: the folder itself is not writable
                raise PermissionError(f"{out} is not writable (permission denied); choose another folder") from None


def lock_file(path, out):
    """Open path and hold its exclusive lock: (descriptor, writable), or (None, False) where the file system
    has no flock; ValueError naming the holder if another run holds it."""
    while True:
        fd, writable = open_lock_file(path, out)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # NB: fail at once rather than wait
        except BlockingIOError:
            os.close(fd)
            holder = read_holder(path)
            who = (f"`minigpt {holder.get('command')}`, process {holder.get('pid')} on {holder.get('host')}"
                   if holder else "another run")
            raise ValueError(f"--out {out} is in use by {who}; wait for it to finish, or choose another "
                             "--out") from None
        except OSError as e:
            os.close(fd)
            if e.errno not in UNSUPPORTED:
                raise
            warnings.warn(f"the file system of {out} does not support locks ({e.strerror}): nothing stops "
                          "another run from writing to this folder at the same time", stacklevel=3)
            return None, False
        if is_open_file(fd, path):
            return fd, writable
        os.close(fd)  # the file was replaced under us: lock the new one


def missing_folders(out):
    """out and those of its parents that do not exist yet, deepest first: what mkdir(parents=True) creates."""
    missing = []
    while not out.exists() and out != out.parent:
        missing.append(out)
        out = out.parent
    return missing


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
    created = missing_folders(out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / LOCK_NAME
    fd, writable = lock_file(path, out)
    try:
        if writable:
            os.ftruncate(fd, 0)
            os.write(fd, (json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": command})
                          + "\n").encode())
        yield out
    finally:
        if fd is not None:
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)  # removed while still locked, so no other run holds it
            os.close(fd)
        for folder in created:  # a run that failed before writing anything leaves no empty folders behind
            try:
                folder.rmdir()  # only if empty
            except OSError:
                break


def clean_after_killed_saves(out):
    """Before a run starts in out (claimed): remove what a save killed midway left there, and say so."""
    for name, done in clean_unfinished_saves(out).items():
        print(f"minigpt: {Path(out) / name}: left by a save that was killed midway; {done}", flush=True)


def check_new_run_folder(out, command="pretrain"):
    """A new run must not write into a folder that holds another run's checkpoints: it would replace them
    and mix two runs' metrics. Checked once the folder is claimed (above), so no other run can start
    writing there between the check and this run's first checkpoint."""
    found = list_checkpoints(out)
    if found:
        hint = "continue it with --resume, or " if command == "pretrain" else ""
        # convert takes OUT as a positional argument, the others --out
        named, other = (out, "folder") if command == "convert" else (f"--out {out}", "--out")
        raise ValueError(f"{named} already holds a run's checkpoints (latest: {found[-1][1].name}); "
                         f"{hint}choose another {other}")

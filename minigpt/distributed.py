"""Data-parallel training over MPI: every rank holds the whole model and a share of each batch.

A step on N ranks, as llm.c's MPI trainer and PyTorch's DDP do it:
    batch     every rank draws the same global batch of N*B rows from the same seeded stream and keeps
              its own rows r*B .. (r+1)*B (so N ranks with batch B see exactly what one process with batch
              N*B sees, which the tests check, and a resume needs only one stream state)
    backward  each rank's gradients are the mean over its B rows
    all-reduce  the gradients are summed across ranks and divided by N, bucket by bucket (a few MB each,
              so a large model never needs a second copy of all its gradients), in place
    update    clipping and AdamW then run on identical gradients on every rank, so the parameters stay
              identical; a checksum of them is compared across ranks at every evaluation
Only rank 0 prints, shows progress and writes checkpoints and metrics. A rank that fails stops the whole
job with MPI_Abort (the others would otherwise wait forever in the next all-reduce); checkpoints are
written atomically, so the last one stays intact.

Nothing here imports mpi4py unless the process runs under an MPI launcher (mpiexec sets PMI_* or
OMPI_COMM_WORLD_* variables) or the caller asks for MPI: one process without MPI installed runs the
same code with a SingleProcess world, whose all-reduce does nothing. The CUDA backend is not supported
yet: its gradients live on the GPU, and an all-reduce over them needs a CUDA-aware MPI or NCCL.
"""
import contextlib
import os
import sys
import time
import traceback
import zlib

import numpy as np

from minigpt import kernels
from minigpt.data import get_batch

BUCKET_BYTES = 4 * 2**20  # 4 MiB per all-reduce: large enough to reach the link's bandwidth, small to hold
# (rank, size) variables set by the launchers: MPICH/Intel MPI (hydra), Open MPI, MVAPICH, Slurm's PMI
LAUNCHER_VARIABLES = (("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                      ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))


def launched_size():
    """The number of ranks an MPI launcher started this process among (1 when none did)."""
    for _, size in LAUNCHER_VARIABLES:
        if os.environ.get(size):
            return int(os.environ[size])
    return 1


def get_world(use_mpi=None, backend="cpu"):
    """The world this process trains in: an MPIWorld when launched by mpiexec with more than one rank (or
    when use_mpi is True), else a SingleProcess. use_mpi=False forces a single process."""
    if use_mpi is None:
        use_mpi = launched_size() > 1
    if not use_mpi:
        return SingleProcess()
    if backend == "cuda":
        raise ValueError("data-parallel training with --backend cuda is not supported yet (the gradients live on the "
                         "GPU and need a CUDA-aware MPI or NCCL to all-reduce); use --backend cpu under mpiexec, or "
                         "run one process on the GPU")
    return MPIWorld()


class SingleProcess:
    """One process, no MPI: every collective is the identity, so the training loop has one code path."""
    rank, size, is_main = 0, 1, True

    def get_batch(self, tokens, batch_size, block_size, rng):
        """This rank's rows of a global batch of size*batch_size windows (see the module docstring)."""
        x, y = get_batch(tokens, batch_size * self.size, block_size, rng)
        rows = slice(self.rank * batch_size, (self.rank + 1) * batch_size)
        return x[rows], y[rows]

    def allreduce_mean_(self, grads, weight=1.0):
        return 0

    def mean(self, value, weight=1.0):
        return value

    def any(self, flag):
        return bool(flag)

    def first_signal(self, signum):
        return signum

    def check_same_settings(self, settings, what):
        pass

    def gather(self, obj):
        return [obj]

    def broadcast(self, obj):
        return obj

    def check_same_parameters(self, params, step):
        return parameter_checksum(params)

    @contextlib.contextmanager
    def main_first(self):
        yield

    @contextlib.contextmanager
    def stop_all_on_error(self, out=None):
        yield


class MPIWorld(SingleProcess):
    """COMM_WORLD through mpi4py. Ranks other than 0 print nothing: their standard output goes to /dev/null
    (errors still reach standard error)."""

    def __init__(self, bucket_bytes=BUCKET_BYTES):
        try:
            from mpi4py import MPI
        except ImportError as e:
            # a RuntimeError, which the command line prints in one line (an ImportError came as a traceback)
            raise RuntimeError(f"this process runs under an MPI launcher ({launched_size()} ranks) or was asked "
                               f"for MPI, but mpi4py cannot be imported ({e}): pip install 'minigpt[distributed]'"
                               ) from None
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_main = self.rank == 0
        self.bucket_bytes = bucket_bytes
        self.bucket = None  # allocated on the first all-reduce, in the gradients' dtype
        if not self.is_main:
            sys.stdout = open(os.devnull, "w")

    def allreduce_mean_(self, grads, weight=1.0):
        """Replace every gradient by the weighted mean over ranks, sum(weight_r * g_r) / sum(weight_r), in place;
        return the bytes this rank all-reduced. weight: e.g. this rank's example count when shares differ."""
        total = self.comm.allreduce(float(weight), op=self.MPI.SUM)
        arrays = list(grads.values())
        if self.bucket is None or self.bucket.dtype != arrays[0].dtype:
            self.bucket = np.empty(max(1, self.bucket_bytes // arrays[0].itemsize), dtype=arrays[0].dtype)
        scale_in, scale_out = weight, 1.0 / total
        bucket, filled, pieces, sent = self.bucket, 0, [], 0
        for name, g in grads.items():
            if not g.flags.c_contiguous or g.dtype != bucket.dtype:
                raise ValueError(f"all-reduce: gradient {name} must be C-contiguous {bucket.dtype}, "
                                 f"got {g.dtype} with strides {g.strides}")
            flat, done = g.reshape(-1), 0
            while done < flat.size:  # a gradient larger than the bucket goes through it in pieces
                n = min(flat.size - done, bucket.size - filled)
                np.multiply(flat[done:done + n], scale_in, out=bucket[filled:filled + n])
                pieces.append((flat[done:done + n], filled))
                filled, done = filled + n, done + n
                if filled == bucket.size:
                    sent += self.flush(pieces, filled, scale_out)
                    filled, pieces = 0, []
        if filled:
            sent += self.flush(pieces, filled, scale_out)
        return sent

    def flush(self, pieces, filled, scale):
        """Sum the bucket's first `filled` elements across ranks and copy the scaled sums back to the gradients."""
        part = self.bucket[:filled]
        self.comm.Allreduce(self.MPI.IN_PLACE, part, op=self.MPI.SUM)
        for target, start in pieces:
            np.multiply(part[start:start + target.size], scale, out=target)
        return part.nbytes

    def mean(self, value, weight=1.0):
        """The weighted mean of a number over ranks (losses: every rank then reports the global batch's)."""
        sums = self.comm.allreduce(np.array([value * weight, weight], dtype=np.float64), op=self.MPI.SUM)
        return float(sums[0] / sums[1])

    def any(self, flag):
        """True on every rank when any rank says so (a Ctrl-C seen by one rank stops all of them together)."""
        return bool(self.comm.allreduce(bool(flag), op=self.MPI.LOR))

    def first_signal(self, signum):
        """The stop signal some rank received (None: none did), on every rank: each then exits 128 + it."""
        return self.comm.allreduce(int(signum or 0), op=self.MPI.MAX) or None

    def check_same_settings(self, settings, what):
        """Raise on every rank if the ranks were started with different settings ({name: value}): one rank with
        another --max-iters would wait forever for the others' all-reduce, another --batch-size train wrongly."""
        every = self.comm.allgather(settings)
        differ = sorted({name for theirs in every for name in set(theirs) | set(settings)
                         if theirs.get(name) != every[0].get(name)})
        if differ:
            per_rank = lambda name: ", ".join(f"rank {r} {theirs.get(name)!r}" for r, theirs in enumerate(every))
            shown = "; ".join(f"{name}: {per_rank(name)}" for name in differ[:3])
            raise ValueError(f"the {self.size} ranks were started with different {what} ({shown}); start every rank "
                             "with the same command")

    def gather(self, obj):
        """Every rank's obj, in rank order, on rank 0 (None on the others)."""
        return self.comm.gather(obj, root=0)

    def broadcast(self, obj):
        """Rank 0's obj, on every rank."""
        return self.comm.bcast(obj, root=0)

    def check_same_parameters(self, params, step):
        """Raise if any rank's parameters differ from rank 0's (the data-parallel invariant is broken)."""
        mine = parameter_checksum(params)
        sums = self.comm.allgather(mine)
        if len(set(sums)) != 1:
            differ = [r for r, s in enumerate(sums) if s != sums[0]]
            raise RuntimeError(f"step {step}: the parameters differ across ranks (ranks {differ} differ from rank 0; "
                               f"checksums {sums}): the ranks no longer train one model")
        return mine

    @contextlib.contextmanager
    def main_first(self):
        """Rank 0 runs the block first (e.g. preparing token files), the others after it is done."""
        if not self.is_main:
            self.comm.Barrier()
        yield
        if self.is_main:
            self.comm.Barrier()

    @contextlib.contextmanager
    def stop_all_on_error(self, out=None):
        """An exception on any rank stops every rank: the others would wait forever in their next all-reduce."""
        try:
            yield
        except BaseException as e:
            if isinstance(e, SystemExit) and not e.code:
                raise
            from minigpt.checkpoint import list_checkpoints  # (checkpoint imports nothing of this module's)
            found = list_checkpoints(out) if out else []
            where = f"; the last checkpoint, {found[-1][1]}, is intact" if found else ""
            # a user's mistake (a bad option, a missing file) in one line, as without MPI; a second Ctrl-C (or
            # SIGTERM) too, with its exit code; anything else in full
            code = 128 + getattr(e, "signum", 2) if isinstance(e, KeyboardInterrupt) else 1
            if isinstance(e, KeyboardInterrupt):
                why = ": interrupted\n"
            elif isinstance(e, (ValueError, OSError, RuntimeError, MemoryError)):  # as cli.main has them
                why = f": error: {e}\n"
            else:
                why = f" failed:\n{traceback.format_exc()}"
            sys.stderr.write(f"minigpt: rank {self.rank} of {self.size}{why}"
                             f"minigpt: stopping all {self.size} ranks (MPI_Abort){where}\n")
            sys.stderr.flush()
            # mpiexec forwards a rank's output through a pipe to its launcher, and MPI_Abort kills them all at
            # once: without a pause the message could still sit in the pipe and be lost (1 run in 8 here)
            time.sleep(1.0)
            self.comm.Abort(code)
            os._exit(code)  # Abort should not return; if it does, nothing after the failure may run


def parameter_checksum(params):
    """A CRC-32 of every parameter's bytes, in name order: equal only when the parameters are bit for bit equal."""
    crc = 0
    for name in sorted(params):
        crc = zlib.crc32(name.encode(), crc)
        crc = zlib.crc32(np.ascontiguousarray(kernels.to_host(params[name])).view(np.uint8), crc)  # GPU arrays too
    return crc

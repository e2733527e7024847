# %% [markdown]
# # 14 · Data-parallel training: several processes, one model
#
# A training step's cost grows with the batch. Data parallelism splits the batch: N processes
# (MPI *ranks*, possibly on N machines) each hold the whole model, run forward and backward on their
# share of the batch, and then **average their gradients** with an all-reduce. Every rank then applies
# the same update to the same parameters, so they stay identical without ever sending a weight.
# This is what llm.c's MPI trainer and PyTorch's DistributedDataParallel do, and what
# `mpiexec -n N minigpt pretrain` does (minigpt/distributed.py, docs/data_parallel.md).
#
# Steps: (1) why averaging gradients is exact, (2) how each rank picks its rows, (3) the ring
# all-reduce that does the averaging, and what it sends, (4) buckets, (5) a real 2-rank run against a
# 1-process run with twice the batch, (6) when more machines pay off. Steps 1-4 and 6 need only NumPy;
# step 5 needs `pip install ".[distributed]"` (mpi4py and mpiexec) and is skipped without it.
#
#     python tutorials/14_data_parallel.py          # about 10 s on two cores

# %%
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import minigpt
from minigpt import kernels
from minigpt.checkpoint import load_model
from minigpt.data import get_batch
from minigpt.distributed import SingleProcess, parameter_checksum

try:
    BACKEND = kernels.check_backend("cpu")
except RuntimeError as e:
    BACKEND = "numpy"
    print(f"skipping the C++ steps: minigpt._core is not built ({e}); using the NumPy backend")

# %% [markdown]
# ## Step 1 · Averaging gradients is exact
#
# The loss of a batch is the mean over its rows, L = (1/2B) Σ_i ℓ_i. Split the rows in two halves:
# L = ½ (L_0 + L_1) with L_r the mean over half r, and since the gradient is linear,
# ∇L = ½ (∇L_0 + ∇L_1). So two ranks that each compute the gradient of their half and average them
# get the gradient of the whole batch. Check it on a tiny GPT in float64:

# %%
config = minigpt.GPTConfig(vocab_size=20, block_size=8, n_layer=1, n_head=2, n_embd=16, dropout=0.0)
model = minigpt.GPT(config, seed=0, dtype="float64", backend="numpy")
rng = np.random.default_rng(0)
x = rng.integers(0, 20, (4, 8))
y = rng.integers(0, 20, (4, 8))


def gradients(rows):
    model.zero_grad()
    model.forward(x[rows], y[rows])
    model.backward()
    return {name: g.copy() for name, g in model.grads.items()}


whole = gradients(slice(0, 4))
half0, half1 = gradients(slice(0, 2)), gradients(slice(2, 4))
difference = max(np.abs((half0[n] + half1[n]) / 2 - whole[n]).max() for n in whole)
print(f"step 1: max |mean of the halves' gradients - whole batch's gradient| = {difference:.1e}")
print("        you should see about 1e-17: the same gradient, up to float64 rounding")
assert difference < 1e-12

# %% [markdown]
# ## Step 2 · Which rows each rank trains on
#
# For the equivalence to be testable, minigpt makes the N ranks together see exactly the batch that one
# process with batch N·B would see: every rank draws the same global batch of N·B windows from the same
# seeded stream and keeps its own rows r·B .. (r+1)·B. Drawing N·B offsets costs nothing next to a
# forward pass, and one stream state in the checkpoint resumes every rank. A world of size 2, rank r,
# as `minigpt.distributed` would see it:

# %%
class PretendRank(SingleProcess):  # only for this demonstration: a world's rank and size without MPI
    def __init__(self, rank, size):
        self.rank, self.size, self.is_main = rank, size, rank == 0


tokens = np.arange(10_000, dtype=np.uint16)
global_x, _ = get_batch(tokens, 6, 8, np.random.default_rng(42))  # one process, batch 6
rank_rows = [PretendRank(r, 2).get_batch(tokens, 3, 8, np.random.default_rng(42))[0] for r in range(2)]
print("step 2: one process, first token of each row:", global_x[:, 0])
print("        rank 0:", rank_rows[0][:, 0], " rank 1:", rank_rows[1][:, 0])
print("        you should see rank 0 holding the one process's first three rows and rank 1 its last three")
assert np.array_equal(np.concatenate(rank_rows), global_x)

# %% [markdown]
# ## Step 3 · The ring all-reduce
#
# An all-reduce leaves the sum of every rank's buffer on every rank. The ring algorithm (used by NCCL
# and by MPI libraries for large messages) cuts each buffer into N chunks and passes chunks around a ring
# of ranks in two phases of N-1 rounds:
#
# - **reduce-scatter**: in round s, rank r sends its running sum of chunk (r - s) mod N to rank r+1,
#   which adds it to its own; after N-1 rounds rank r holds the full sum of chunk (r+1) mod N;
# - **all-gather**: the finished chunks go around the ring once more, N-1 rounds, overwriting.
#
# Each rank sends 2(N-1) chunks of size bytes/N: **2(N-1)/N of the buffer**, nearly twice the gradient
# whatever N is. That is why data parallelism scales: the traffic per rank does not grow with the ranks.

# %%
def ring_allreduce(buffers):
    """Simulate the ring all-reduce on N NumPy buffers in place; return the elements each rank sent."""
    n = len(buffers)
    chunks = [np.array_split(b, n) for b in buffers]  # views into each buffer
    sent = 0
    for s in range(n - 1):  # reduce-scatter
        outgoing = [chunks[r][(r - s) % n].copy() for r in range(n)]
        for r in range(n):
            chunks[(r + 1) % n][(r - s) % n] += outgoing[r]
        sent += outgoing[0].size
    for s in range(n - 1):  # all-gather: rank r starts with the finished chunk (r + 1) mod n
        outgoing = [chunks[r][(r + 1 - s) % n].copy() for r in range(n)]
        for r in range(n):
            chunks[(r + 1) % n][(r + 1 - s) % n][...] = outgoing[r]
        sent += outgoing[0].size
    return sent


for n in (2, 4, 8):
    buffers = [np.random.default_rng(r).standard_normal(1000) for r in range(n)]
    expected = np.sum(buffers, axis=0)
    sent = ring_allreduce(buffers)
    assert all(np.allclose(b, expected) for b in buffers)
    print(f"step 3: {n} ranks: every rank holds the sum; each sent {sent} of 1000 elements "
          f"(2(N-1)/N = {2 * (n - 1) / n:.2f} of the buffer)")
print("        you should see 1000, 1500 and 1750: under twice the buffer, however many ranks")

# %% [markdown]
# ## Step 4 · Buckets
#
# minigpt does not all-reduce each of the model's gradient arrays on its own (52 for the default model, 148
# for GPT-2 124M: twelve a block and four more; each message pays a
# latency) nor all of them at once (one giant extra buffer): it copies them into a 4 MiB bucket, all-reduces
# the bucket, copies the averaged values back, and moves on. For the default pre-training model and
# GPT-2 124M:

# %%
from minigpt.distributed import BUCKET_BYTES  # noqa: E402

for name, cfg in (("default 4x128", minigpt.GPTConfig(vocab_size=84, block_size=256, n_layer=4, n_head=4,
                                                      n_embd=128)),  # `minigpt pretrain`'s model
                  ("GPT-2 124M", minigpt.GPTConfig.preset("gpt2"))):
    n_bytes = 4 * cfg.num_params()  # every parameter has a float32 gradient
    print(f"step 4: {name}: {n_bytes / 2**20:7.1f} MiB of float32 gradients per step, "
          f"{-(-n_bytes // BUCKET_BYTES)} all-reduce(s) of at most {BUCKET_BYTES // 2**20} MiB")
print("        you should see one all-reduce a step for the default model and 119 for GPT-2 124M")

# %% [markdown]
# ## Step 5 · A real run: 2 ranks of batch 3 against 1 process of batch 6
#
# `mpiexec -n 2 python -m minigpt pretrain ...` starts two processes; `minigpt.distributed.get_world`
# sees the launcher's variables and joins them with mpi4py. We train the same tiny model on the text of
# this repository's README both ways and compare the logged losses and the final weights. One thread per
# rank: two ranks of two threads would fight over two cores.

# %%
MPIEXEC = Path(sys.executable).parent / "mpiexec"
MPIEXEC = str(MPIEXEC) if MPIEXEC.exists() else shutil.which("mpiexec")
have_mpi = importlib.util.find_spec("mpi4py") is not None and MPIEXEC is not None
if BACKEND != "cpu" or not have_mpi:
    print("step 5: skipping the MPI steps: " + ("mpi4py or mpiexec is not installed (pip install '.[distributed]')"
                                        if not have_mpi else "the C++ backend is not built"))
else:
    work = Path(tempfile.mkdtemp(prefix="minigpt-dp-"))
    # the repository's README as the text: above this file, or, in a notebook (no __file__), above the working folder
    here = Path(__file__).resolve().parent if "__file__" in globals() else Path.cwd()
    root = next((folder for folder in [here, *here.parents] if (folder / "README.md").is_file()), None)
    if root is None:
        raise FileNotFoundError(f"step 5 trains on the repository's README.md: none above {here}")
    (work / "text.txt").write_text((root / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        env.pop(name, None)
    settings = ["-m", "minigpt", "pretrain", "--data", "text.txt", "--n-layer", "2", "--n-head", "2", "--n-embd",
                "32", "--block-size", "32", "--max-iters", "20", "--eval-interval", "10", "--eval-iters", "4",
                "--warmup-iters", "5", "--sample-tokens", "0", "--no-progress"]
    runs = {}
    for name, prefix, batch in (("one", [], "6"), ("two", [MPIEXEC, "-n", "2"], "3")):
        done = subprocess.run([*prefix, sys.executable, *settings, "--batch-size", batch, "--out", name], cwd=work,
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        runs[name] = [json.loads(line) for line in (work / name / "metrics.jsonl").read_text().splitlines()]
    print("step 5: the 2-rank run printed (rank 0 only):\n" + done.stdout.split("{")[0])
    for a, b in zip(runs["one"], runs["two"]):
        if "val_loss" in a:
            print(f"        at step {a['step']:2d}: val loss 1 process {a['val_loss']:.6f}, 2 ranks {b['val_loss']:.6f}")
    worst = max(abs(a["loss"] - b["loss"]) for a, b in zip(runs["one"], runs["two"]))
    print(f"        largest difference of a step's training loss: {worst:.1e}")
    print("        you should see about 1e-7: the same training, up to float32 rounding")
    assert worst < 1e-4
    w1 = load_model(work / "one")[0].params
    w2 = load_model(work / "two")[0].params
    print(f"        largest weight difference after 20 steps: {max(np.abs(w1[n] - w2[n]).max() for n in w1):.1e}; "
          f"checksums {parameter_checksum(w1):08x} and {parameter_checksum(w2):08x} (rounding makes them differ: the "
          "ranks of one run agree bit for bit, which the run checks at every evaluation)")
    print(f"        all-reduced per step and rank: {runs['two'][0]['allreduce_bytes']:,} bytes; the runs are in {work}")

# %% [markdown]
# ## Step 6 · When do more machines pay off?
#
# A step on N hosts costs one host's compute on its share, t_compute = 6 P · bT / F (P parameters, bT tokens
# per host, F FLOP/s), plus the ring all-reduce of 4P bytes, t_comm ≈ 2(N-1)/N · 4P / bandwidth. Their
# ratio, (4/3) · (N-1)/N · F / (bT · bandwidth), close to (4/3) · F / (bT · bandwidth) from a few hosts on,
# does not depend on the model size: what counts is the tokens each host processes per step against its
# speed per byte of network. For a 2-core host (F ≈ 100 GFLOP/s)
# with bT = 2048:

# %%
F, tokens_per_host = 100e9, 2048
for network, bandwidth in (("1 GbE", 0.125e9), ("10 GbE", 1.25e9), ("100 Gb InfiniBand", 12.5e9)):
    ratio = 2 * 7 / 8 * 4 / bandwidth / (6 * tokens_per_host / F)  # per parameter: the P cancels
    print(f"step 6: {network:18}: t_comm / t_compute = {ratio:.3f}, 8 hosts run {8 / (1 + ratio):.1f} times as fast "
          "as one")
print("        you should see the slow network eat a third of the gain and the faster ones almost none")

# %% [markdown]
# docs/data_parallel.md has the whole cost model (latency, gradient accumulation, GPUs), the multi-host
# command with a hostfile, and measurements from `benchmarks/bench_distributed.py`.

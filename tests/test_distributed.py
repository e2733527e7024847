"""Data-parallel training over MPI (minigpt/distributed.py), with 2 ranks launched by mpiexec.

The central check: 2 ranks with batch B train exactly what 1 process with batch 2B trains (same losses,
same parameters, within float32 rounding), because rank r takes rows r*B .. (r+1)*B of the global batch
the single process draws. Then: the bucketed all-reduce against a direct formula, the checksum that
catches ranks drifting apart, a failing rank stopping the job with the last checkpoint intact, and a
resume on a different number of ranks refused. The MPI tests skip without mpi4py and mpiexec
(pip install ".[distributed]").
"""
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minigpt
from conftest import child_pythonpath
from minigpt.checkpoint import list_checkpoints, read_info
from minigpt.data import get_batch
from minigpt.distributed import SingleProcess, get_world, launched_size, parameter_checksum
from minigpt.safetensors import load_file


def find_mpiexec():
    beside_python = Path(sys.executable).parent / "mpiexec"  # the mpich wheel's, in this environment
    return str(beside_python) if beside_python.exists() else shutil.which("mpiexec")


MPIEXEC = find_mpiexec()
requires_mpi = pytest.mark.skipif(importlib.util.find_spec("mpi4py") is None or MPIEXEC is None,
                                  reason="mpi4py and mpiexec are not installed (pip install '.[distributed]')")
TINY = ["--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--max-iters", "6",
        "--eval-interval", "3", "--eval-iters", "2", "--warmup-iters", "2", "--sample-tokens", "0", "--no-progress",
        "--backend", "cpu"]


def child_env():
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=child_pythonpath())
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")  # Open MPI refuses root otherwise
    for name in ("PMI_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"):
        env.pop(name, None)  # a single-process child must not believe it runs under mpiexec
    return env


def launch(args, cwd, ranks=None, timeout=60):
    """Run `python args...` (under mpiexec -n ranks when ranks is given); return the CompletedProcess."""
    command = [sys.executable, *args]
    if ranks is not None:
        command = [MPIEXEC, "-n", str(ranks), *command]
    return subprocess.run(command, cwd=cwd, env=child_env(), capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = np.array("to be or not that is the question whether tis nobler in mind".split())
    path = tmp_path / "text.txt"
    path.write_text(" ".join(rng.choice(words, 4000)))
    return path


def metrics(out):
    return [json.loads(line) for line in (Path(out) / "metrics.jsonl").read_text().splitlines()]


# ---- one process, no MPI ----

def test_single_process_draws_the_plain_batches(rng):
    tokens = np.arange(1000, dtype=np.uint16)
    x, y = SingleProcess().get_batch(tokens, 5, 8, np.random.default_rng(3))
    x_ref, y_ref = get_batch(tokens, 5, 8, np.random.default_rng(3))
    np.testing.assert_array_equal(x, x_ref)
    np.testing.assert_array_equal(y, y_ref)


def test_no_launcher_means_one_process_without_mpi(monkeypatch):
    for name in ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert launched_size() == 1
    assert isinstance(get_world(), SingleProcess)
    monkeypatch.setenv("PMI_SIZE", "2")
    assert launched_size() == 2
    with pytest.raises(ValueError, match="backend cuda is not supported"):
        get_world(backend="cuda")


def test_importing_minigpt_training_does_not_import_mpi4py():
    code = "import sys, minigpt.train, minigpt.finetune.train, minigpt.distributed; print('mpi4py' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_parameter_checksum_sees_one_bit():
    params = {"a": np.ones((3, 4), np.float32), "b": np.zeros(5, np.float32)}
    before = parameter_checksum(params)
    params["b"].view(np.uint32)[2] ^= 1  # the smallest float32 change there is
    assert parameter_checksum(params) != before


# ---- two ranks ----

ALLREDUCE_SCRIPT = r"""
import numpy as np
from minigpt.distributed import MPIWorld
world = MPIWorld(bucket_bytes=40)  # 10 float32 per bucket: gradients of 7, 23 and 1 elements split across buckets
shapes = {"w": (7,), "big": (23,), "one": (1,), "m": (3, 4)}
def grads_of(rank):
    return {k: np.random.default_rng([rank, i]).standard_normal(s).astype(np.float32) for i, (k, s) in
            enumerate(shapes.items())}
weights = [1.0, 3.0]
grads = grads_of(world.rank)
sent = world.allreduce_mean_(grads, weight=weights[world.rank])
for name in shapes:
    expected = (weights[0] * grads_of(0)[name] + weights[1] * grads_of(1)[name]) / sum(weights)
    np.testing.assert_allclose(grads[name], expected, rtol=1e-6, atol=1e-6)
assert sent == 4 * sum(int(np.prod(s)) for s in shapes.values()), sent
assert abs(world.mean(float(world.rank), weight=weights[world.rank]) - 0.75) < 1e-12
assert world.any(world.rank == 1) and not world.any(False)
assert world.first_signal(15 if world.rank == 1 else None) == 15 and world.first_signal(None) is None
world.check_same_settings({"max_iters": 6}, "settings")
try:
    world.check_same_settings({"max_iters": 6 + world.rank}, "settings")
    raise SystemExit("different settings were not caught")
except ValueError as e:
    assert "started with different settings (max_iters: rank 0 6, rank 1 7)" in str(e), e
try:
    world.check_same_parameters({"p": np.full(3, world.rank, np.float32)}, step=7)
    raise SystemExit("different parameters were not caught")
except RuntimeError as e:
    assert "step 7: the parameters differ across ranks (ranks [1]" in str(e), e
world.check_same_parameters({"p": np.ones(3, np.float32)}, step=8)
print("all-reduce ok")
"""


@requires_mpi
def test_bucketed_allreduce_and_collectives(tmp_path):
    result = launch(["-c", ALLREDUCE_SCRIPT], tmp_path, ranks=2)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("all-reduce ok") == 1  # rank 1 prints nothing


@requires_mpi
def test_two_ranks_of_batch_b_train_like_one_process_of_batch_2b(tmp_path, text_file):
    one = launch(["-m", "minigpt", "pretrain", "--data", str(text_file), *TINY, "--batch-size", "4", "--out", "one"],
                 tmp_path)
    assert one.returncode == 0, one.stderr
    two = launch(["-m", "minigpt", "pretrain", "--data", str(text_file), *TINY, "--batch-size", "2", "--out", "two",
                  "--dropout", "0"], tmp_path, ranks=2)
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("step 6: train loss") == 1, two.stdout  # only rank 0 prints
    m1, m2 = metrics(tmp_path / "one"), metrics(tmp_path / "two")
    assert [r["step"] for r in m2] == [1, 2, 3, 4, 5, 6]  # one metrics file, written once
    for key in ("loss", "grad_norm", "train_loss", "val_loss"):
        a, b = [r[key] for r in m1 if key in r], [r[key] for r in m2 if key in r]
        np.testing.assert_allclose(a, b, rtol=2e-5, err_msg=key)
    p1 = load_file(tmp_path / "one" / "ckpt-0000006" / "model.safetensors")
    p2 = load_file(tmp_path / "two" / "ckpt-0000006" / "model.safetensors")
    assert m2[0]["allreduce_bytes"] == sum(p.nbytes for p in p1.values())  # every float32 gradient, once
    for name in p1:
        np.testing.assert_allclose(p1[name], p2[name], rtol=1e-4, atol=2e-6, err_msg=name)
    assert read_info(tmp_path / "two")[1]["world_size"] == 2

    # resuming on another number of ranks is refused, naming both counts
    again = launch(["-m", "minigpt", "pretrain", "--resume", "--out", "two", "--max-iters", "8", "--no-progress"],
                   tmp_path)
    assert again.returncode != 0
    assert "was written by a run on 2 rank(s), this run has 1" in again.stderr


FAILING_RANK_SCRIPT = r"""
import sys
from minigpt.distributed import get_world
from minigpt.train import Run, TrainConfig, train
world = get_world()
if world.rank == 1:
    plain_step = Run.train_step
    def failing_step(run):
        if run.step == 4:
            raise OSError("disk on fire (a simulated failure of rank 1)")
        return plain_step(run)
    Run.train_step = failing_step
cfg = TrainConfig(data=sys.argv[1], n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=2, max_iters=8,
                  eval_interval=3, eval_iters=2, warmup_iters=2, sample_tokens=0, out="run")
train(cfg, progress=False, world=world)
"""


@requires_mpi
def test_a_failing_rank_stops_every_rank_and_keeps_the_last_checkpoint(tmp_path, text_file):
    result = launch(["-c", FAILING_RANK_SCRIPT, str(text_file)], tmp_path, ranks=2)
    assert result.returncode != 0
    assert "minigpt: rank 1 of 2: error: disk on fire" in result.stderr  # an OSError: one line, no traceback
    assert "Traceback" not in result.stderr
    assert "stopping all 2 ranks (MPI_Abort); the last checkpoint, run/ckpt-0000003, is intact" in result.stderr
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [3]
    _, info = read_info(tmp_path / "run")
    assert info["step"] == 3 and len(info["rng"]["dropout_ranks"]) == 2

    # the same number of ranks resumes from it and finishes the run
    resumed = launch(["-m", "minigpt", "pretrain", "--resume", "--out", "run", "--max-iters", "8",
                      "--no-progress"], tmp_path, ranks=2)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "resumed from run/ckpt-0000003 at step 3" in resumed.stdout
    assert [r["step"] for r in metrics(tmp_path / "run")] == list(range(1, 9))


@requires_mpi
def test_ranks_started_with_different_settings_stop_at_once_instead_of_hanging(tmp_path, text_file):
    rank = [sys.executable, "-m", "minigpt", "pretrain", "--data", str(text_file), *TINY, "--out", "run"]
    command = [MPIEXEC, "-n", "1", *rank, ":", "-n", "1", *rank[:-2], "--max-iters", "8", "--out", "run"]  # MPMD
    result = subprocess.run(command, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "started with different settings (max_iters: rank 0 6, rank 1 8)" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr



@requires_mpi
def test_ranks_that_read_different_text_stop_before_any_writes_its_tokens(tmp_path, text_file):
    # Two hosts with different copies at the same --data path (here: two working folders, one run folder):
    # rank 1 encoded its own text over rank 0's token files and trained on it, without a word.
    for rank, seed in ((0, 0), (1, 1)):
        (tmp_path / f"host{rank}").mkdir()
        words = np.array("to be or not that is the question".split())
        (tmp_path / f"host{rank}" / "text.txt").write_text(" ".join(np.random.default_rng(seed).choice(words, 4000)))
    rank = [sys.executable, "-m", "minigpt", "pretrain", "--data", "text.txt", *TINY, "--out", str(tmp_path / "run")]
    command = [MPIEXEC, "-n", "1", "-wdir", str(tmp_path / "host0"), *rank, ":",
               "-n", "1", "-wdir", str(tmp_path / "host1"), *rank]
    result = subprocess.run(command, cwd=tmp_path, env=child_env(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "the ranks do not all read the same text as rank 0" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "run" / "data").exists()


@requires_mpi
def test_a_diverging_run_says_so_in_one_line_on_every_rank(tmp_path, text_file):
    # NonFiniteStep is a RuntimeError: without MPI one line; under MPI it came as a traceback from every rank
    result = launch(["-m", "minigpt", "pretrain", "--data", str(text_file), *TINY, "--out", "run",
                     "--learning-rate", "1e38", "--warmup-iters", "0", "--grad-clip", "0"], tmp_path, ranks=2)
    assert result.returncode != 0
    assert "error: step " in result.stderr and "is nan" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def fine_tuning_inputs(tmp_path, n_train=18, n_dev=6):
    """A tiny pre-trained checkpoint and a JSONL classification task (18 examples: with 2 x 4 per step, the last
    step's 2 examples all fall to rank 0 and rank 1 sits it out with weight 0)."""
    tokenizer = minigpt.CharTokenizer.train("abcdefghijklmnopqrstuvwxyz ")
    config = minigpt.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=24, n_layer=1, n_head=2, n_embd=16)
    from minigpt.checkpoint import save_checkpoint
    checkpoint = save_checkpoint(tmp_path / "pretrained", minigpt.GPT(config, seed=5), 10, tokenizer)
    rng = np.random.default_rng(0)
    words = ["the", "film", "was", "plot", "very", "a"]

    def row():
        label = str(rng.choice(["good", "bad"]))
        return {"text": " ".join(rng.choice(words, 3)) + f" {label}", "label": label}
    task = tmp_path / "task"
    task.mkdir()
    for name, n in (("train.jsonl", n_train), ("dev.jsonl", n_dev)):
        (task / name).write_text("".join(json.dumps(row()) + "\n" for _ in range(n)))
    return checkpoint, task


@requires_mpi
def test_two_ranks_fine_tune_like_one_process_with_twice_the_batch(tmp_path):
    checkpoint, task = fine_tuning_inputs(tmp_path)
    common = ["-m", "minigpt", "finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data",
              str(task), "--epochs", "2", "--lr", "3e-3", "--dropout", "0", "--aux-lm", "0", "--backend", "cpu",
              "--no-progress"]
    one = launch([*common, "--batch", "8", "--out", "one", "--metrics-out", "one.json"], tmp_path)
    assert one.returncode == 0, one.stderr
    two = launch([*common, "--batch", "4", "--out", "two", "--metrics-out", "two.json"], tmp_path, ranks=2)
    assert two.returncode == 0, two.stdout + two.stderr
    assert two.stdout.count("epoch 2:") == 1
    m1, m2 = json.loads((tmp_path / "one.json").read_text()), json.loads((tmp_path / "two.json").read_text())
    assert m1["steps"] == m2["steps"] == 6 and m2["ranks"] == 2
    for key in ("train_loss", "dev_task_loss", "accuracy"):
        np.testing.assert_allclose([h[key] for h in m1["history"]], [h[key] for h in m2["history"]], rtol=2e-5,
                                   err_msg=key)
    saved = sorted(Path(m1["checkpoint"] if Path(m1["checkpoint"]).is_absolute() else tmp_path / m1["checkpoint"])
                   .glob("*.safetensors"))
    assert saved
    for path in saved:
        a, b = load_file(path), load_file(tmp_path / "two" / path.parent.name / path.name)
        for name in a:  # atol: the key biases have a zero gradient in exact arithmetic (softmax ignores them),
            # so AdamW's normalised step turns float32 rounding into moves of a few 1e-6
            np.testing.assert_allclose(a[name], b[name], rtol=1e-4, atol=1e-5, err_msg=f"{path.name}: {name}")

"""Generative pre-training (Radford et al. 2018, sec. 3.1): maximise the likelihood of the next token.

The loop, in the order a step runs:
    lr      linear warmup, then cosine decay to min_lr (optim.cosine_lr)
    grads   forward + backward on grad_accum micro-batches, averaged
    clip    global gradient norm at most grad_clip
    check   an inf or NaN loss or gradient norm stops the run before the update (optim.check_finite_step)
    update  AdamW
Every eval_interval steps: the loss on train and validation batches, a checkpoint, a metrics
line. Ctrl-C finishes the current step, saves a checkpoint and exits; a second Ctrl-C stops at
once. A resumed run continues the same random streams, so its losses equal an uninterrupted run's.
Under mpiexec the run is data-parallel (minigpt/distributed.py): after the backward pass the gradients
are averaged across ranks, before clipping; only rank 0 prints and writes.
"""
import json
import math
import os
import time
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np

from minigpt import kernels
from minigpt.checkpoint import list_checkpoints, load_optimizer_state, load_weights, read_info, require_fields, \
    save_checkpoint
from minigpt.data import atomic_write_bytes, check_output_file, open_token_file
from minigpt.distributed import SingleProcess, get_world
from minigpt.model import GPT, check_fits_in_memory
from minigpt.optim import AdamW, NonFiniteStep, check_finite_step, clip_grad_norm, cosine_lr
from minigpt.prepare import encoded_fingerprint, fingerprint, prepare_data, read_split, split_text
from minigpt.runlock import LOCK_NAME, check_new_run_folder, claim_run_folder, clean_after_killed_saves
from minigpt.safetensors import load_file
from minigpt.stopping import StopRequest
from minigpt.train_config import RESUMABLE, TrainConfig, model_config, new_run_schedule


def flops_per_token(model):
    """Training FLOPs per token, forward and backward: 6N + 12 L C T (the PaLM / nanoGPT estimate)."""
    c = model.config
    n = model.num_params() - model.params["wpe.weight"].size
    return 6 * n + 12 * c.n_layer * c.n_embd * c.block_size


def estimate_loss(model, tokens, cfg, step, world=SingleProcess()):
    """Mean loss over eval_iters batches. The batches depend on the step alone, not on the
    training stream, so evaluating never changes what training sees (and a resume matches).
    Over several ranks each takes its rows of every batch, as in training, and the means are averaged."""
    rng = np.random.default_rng([cfg.seed, 2, step])
    losses = [model.forward(*world.get_batch(tokens, cfg.batch_size, cfg.block_size, rng), train=False)[1]
              for _ in range(cfg.eval_iters)]
    return world.mean(float(np.mean(losses)))


def read_run_info(out):
    """The latest checkpoint of a pre-training run in out: (folder, checkpoint.json), with what a resume reads."""
    path, info = read_info(out)
    if info.get("finetune"):
        raise ValueError(f"{path} is a fine-tuned task model (minigpt finetune), not a pre-training run to resume")
    if "train_config" not in info and "optimizer" not in info:  # e.g. written by minigpt convert
        raise ValueError(f"{path} holds a model's weights only (no training settings, optimizer state or random "
                         "generators, as minigpt convert writes), so there is no run to resume; sample from it, "
                         "evaluate or fine-tune it")
    require_fields(path, info, ("train_config", "rng", "tokenizer", "optimizer"))
    rng = info["rng"] if isinstance(info["rng"], dict) else {}
    states = [rng.get("data"), *rng.get("dropout_ranks", [rng.get("dropout")])]
    if not (isinstance(info["train_config"], dict) and all(isinstance(state, dict) for state in states)):
        raise ValueError(f"{path / 'checkpoint.json'}: train_config or the random-generator states in rng are not "
                         "tables (the file is damaged or not from minigpt)")
    return path, info


def resume_settings(given):
    """The settings of `minigpt pretrain --resume`: the run's own, then the options given (restore_settings
    refuses those that would change the run)."""
    out = given.get("out", TrainConfig.out)
    if not list_checkpoints(out):
        moved = sorted(Path(out).glob(".old-ckpt-*"))  # the run's only checkpoint, moved aside by a killed save
        hint = f" (a save was killed while replacing one: rename {moved[-1]} to ckpt-<its step>)" if moved else ""
        raise FileNotFoundError(f"--resume: no checkpoint in {out} to resume from{hint}")
    return {**read_run_info(out)[1]["train_config"], **given}


def same_setting(name, given, saved):
    """Whether a resumed run's setting is the run's own: --data as the same file, however the path is written."""
    if name == "data" and given != saved and "shakespeare" not in (given, saved):
        return Path(given).resolve() == Path(saved).resolve()
    return given == saved


def logged_step(line):
    """The step of a metrics.jsonl line; None for a line cut short (a kill or a full disk mid-write)."""
    try:
        return json.loads(line)["step"]
    except (ValueError, KeyError, TypeError):
        return None


class Run:
    """A pre-training run: its settings, data, model, optimizer, random streams and metrics file."""

    def __init__(self, cfg, resume=False, world=SingleProcess()):
        self.out, self.world = Path(cfg.out), world
        if resume:
            cfg = self.restore_settings(cfg)
        else:
            cfg = new_run_schedule(cfg)
            if cfg.data != "shakespeare":  # saved absolute, so that --resume works from any folder
                cfg = replace(cfg, data=str(Path(cfg.data).resolve()))
        self.cfg = cfg
        with world.main_first():  # rank 0 fetches the corpus first; the others then find it
            split = read_split(cfg)
        # every rank reads --data itself: a host with another copy would encode it over rank 0's token files
        # (where --out is shared) and train on it, or hang in the all-reduce with another vocabulary size
        if world.any(split[2] != world.broadcast(split[2])):
            raise ValueError(f"--data {cfg.data}: the ranks do not all read the same text as rank 0 (a host with "
                             "another copy?); give every rank the same file")
        with world.main_first():  # rank 0 encodes; the others then find its files (or, unshared, encode a copy)
            self.tokenizer, train_path, val_path = prepare_data(cfg, self.out, split)
        self.train_tokens, _ = open_token_file(train_path)
        self.val_tokens, _ = open_token_file(val_path)
        for split, tokens in (("training", self.train_tokens), ("validation", self.val_tokens)):
            if len(tokens) <= cfg.block_size:  # a batch is windows of block_size + 1 tokens
                raise ValueError(f"the {split} split holds {len(tokens)} tokens, too few for one window of "
                                 f"--block-size {cfg.block_size} + 1; use more text, a smaller --block-size"
                                 f"{' or a larger --val-fraction' if split == 'validation' else ''}")
        config = model_config(cfg, self.tokenizer.vocab_size)
        if cfg.backend != "cuda":
            check_fits_in_memory(config, np.float32, 4, "its weights, gradients and AdamW's two moments")
        self.model = GPT(config, seed=cfg.seed, backend=cfg.backend)
        self.opt = AdamW(self.model, lr=cfg.learning_rate, betas=(cfg.beta1, cfg.beta2),
                         weight_decay=cfg.weight_decay)
        self.data_rng = np.random.default_rng([cfg.seed, 1])  # the same global batches on every rank
        if world.size > 1:  # each rank's rows get their own dropout masks
            self.model.dropout_rng = np.random.default_rng([cfg.seed, 1, world.rank])
        self.step = 0
        if resume:
            self.restore_state()

    def restore_settings(self, cfg):
        """cfg, checked against the settings the run was started with: only RESUMABLE ones may differ."""
        path, info = read_run_info(self.out)
        saved_ranks = info.get("world_size", 1)
        if saved_ranks != self.world.size:
            raise ValueError(f"--resume: {path} was written by a run on {saved_ranks} rank(s), this run has "
                             f"{self.world.size}; resume with the same number (mpiexec -n {saved_ranks}): the "
                             "global batch (ranks x --batch-size) and each rank's dropout stream depend on it")
        saved = TrainConfig.from_dict({**info["train_config"], "out": cfg.out})
        if cfg.lr_decay_iters == -1:  # not given: the run's own (fixed when it started)
            cfg = replace(cfg, lr_decay_iters=saved.lr_decay_iters)
        if not same_setting("data", cfg.data, saved.data) and self.holds_tokens_of(cfg.data, saved):
            # the same text at a new place: the run goes on from there
            cfg = replace(cfg, data=str(Path(cfg.data).resolve()))
            saved = replace(saved, data=cfg.data)
        changed = [f"--{name.replace('_', '-')} {getattr(cfg, name)!r} (the run's: {getattr(saved, name)!r})"
                   for name in (f.name for f in fields(TrainConfig))
                   if name not in RESUMABLE and not same_setting(name, getattr(cfg, name), getattr(saved, name))]
        if cfg.data != "shakespeare" and not Path(cfg.data).exists():
            hint = ("the run's text is not there any more; put it back, or name its new place with --data (the same "
                    "text)" if same_setting("data", cfg.data, saved.data) else "no such file or folder")
            raise FileNotFoundError(f"--resume: --data {cfg.data}: {hint}")
        if changed:
            raise ValueError(f"--resume continues the run in {self.out} with the settings it started with, and "
                             f"these differ from them: {', '.join(changed)}. Start a new run (another --out) "
                             "to change them")
        if cfg.max_iters <= info["step"]:
            raise ValueError(f"--resume: the run in {self.out} is at step {info['step']} already; give a larger "
                             f"--max-iters (now {cfg.max_iters}) to train on")
        return cfg

    def holds_tokens_of(self, data, saved):
        """Whether the text at `data` is the one this run's token files (out/data) were encoded from, with the
        run's tokenizer settings: the fingerprint that prepare_data stored with them."""
        if "shakespeare" in (data, saved.data) or not Path(data).exists():
            return False
        train_text, val_text = split_text(replace(saved, data=data))
        return fingerprint(train_text, val_text, saved) == encoded_fingerprint(self.out / "data" / "val.bin")

    def restore_state(self):
        path, info = read_run_info(self.out)
        if info["tokenizer"] != self.tokenizer.to_dict():
            raise ValueError(f"--resume: the tokenizer built from the data now differs from the one {path} was "
                             f"trained with (the text in {self.cfg.data} changed?), so the token ids would no "
                             "longer match the model's embeddings; restore the data or start a new run")
        load_weights(self.model, load_file(path / "model.safetensors"), source=str(path))
        load_optimizer_state(self.opt, path, info)
        self.step = info["step"]
        try:  # NumPy checks a state it is given; its message does not say where the state came from
            self.data_rng.bit_generator.state = info["rng"]["data"]
            self.model.dropout_rng.bit_generator.state = info["rng"].get("dropout_ranks", [info["rng"]["dropout"]])[
                self.world.rank]
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise ValueError(f"{path / 'checkpoint.json'}: its random-generator states (rng) are damaged ({e})") \
                from None
        if self.world.is_main:
            self.align_metrics_with(self.step, info.get("metrics"))
        print(f"minigpt: resumed from {path} at step {self.step}")

    def align_metrics_with(self, step, record):
        """Make metrics.jsonl end at the checkpoint's step: drop the lines of steps after it (a killed run logs
        past its last save; the resumed run logs those steps again), and write the checkpoint's own line, which
        the checkpoint keeps, if a kill came between the save and that line."""
        path = self.out / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        kept = [line for line in lines if (logged_step(line) or step + 1) <= step]
        if record and record.get("step") == step and not any(logged_step(line) == step for line in kept):
            kept.append(json.dumps(record))
        atomic_write_bytes(path, "".join(line + "\n" for line in kept).encode())

    def save(self, metrics):
        """Every rank calls this (each sends its dropout state); rank 0 writes the checkpoint."""
        dropout_states = self.world.gather(self.model.dropout_rng.bit_generator.state)
        if not self.world.is_main:
            return None
        extra = {"train_config": asdict(self.cfg), "metrics": metrics, "world_size": self.world.size,
                 "rng": {"data": self.data_rng.bit_generator.state, "dropout": dropout_states[0]}}
        if self.world.size > 1:
            extra["rng"]["dropout_ranks"] = dropout_states
        return save_checkpoint(self.out, self.model, self.step, self.tokenizer, self.opt, extra)

    def train_step(self):
        cfg, model = self.cfg, self.model
        lr = cosine_lr(self.step, cfg.learning_rate, cfg.min_lr, cfg.warmup_iters, cfg.lr_decay_iters)
        model.zero_grad()
        loss = 0.0
        for _ in range(cfg.grad_accum):
            x, y = self.world.get_batch(self.train_tokens, cfg.batch_size, cfg.block_size, self.data_rng)
            loss += model.forward(x, y, train=True)[1] / cfg.grad_accum
            model.backward()
        if cfg.grad_accum > 1:
            for g in model.grads.values():
                g /= cfg.grad_accum  # the mean over micro-batches, as one big batch would give
        self.bytes_reduced = self.world.allreduce_mean_(model.grads)  # the mean over ranks (none on one process)
        loss = self.world.mean(loss)
        # the norm is taken even without clipping (a max of inf scales nothing): it is the check for inf/NaN gradients
        norm = clip_grad_norm(model.grads, cfg.grad_clip if cfg.grad_clip > 0 else math.inf, flat=model.flat)
        check_finite_step(self.step + 1, loss, norm)  # the same numbers on every rank, so every rank stops here
        self.opt.step(lr)
        self.step += 1
        return loss, lr, norm

    def evaluate(self):
        self.world.check_same_parameters(self.model.params, self.step)
        return {"step": self.step,
                "train_loss": estimate_loss(self.model, self.train_tokens, self.cfg, self.step, self.world),
                "val_loss": estimate_loss(self.model, self.val_tokens, self.cfg, self.step, self.world)}


def banner(run):
    cfg, model = run.cfg, run.model
    c, backend = model.config, kernels.describe_backend(cfg.backend)
    print(f"minigpt: backend {backend}; model {c.arch} {c.n_layer} layers, {c.n_head} heads, {c.n_embd} wide, "
          f"context {c.block_size}, vocab {c.vocab_size}: {model.num_params():,} parameters")
    print(f"minigpt: {len(run.train_tokens):,} training tokens, {len(run.val_tokens):,} validation tokens; "
          f"{cfg.max_iters} steps of {cfg.batch_size * cfg.grad_accum} x {cfg.block_size} tokens; out {run.out}")
    if run.world.size > 1:
        print(f"minigpt: data-parallel over {run.world.size} MPI ranks: each step is {run.world.size} x "
              f"{cfg.batch_size * cfg.grad_accum} sequences, gradients all-reduced in buckets of "
              f"{run.world.bucket_bytes / 2**20:g} MiB")


def train(cfg, resume=False, progress=True, world=None):
    """Run (or resume) pre-training; return (run, final metrics dict). world: a distributed world (default:
    MPI when launched by mpiexec with several ranks, else one process)."""
    world = world or get_world(backend=cfg.backend)
    with world.stop_all_on_error(cfg.out), claim_run_folder(cfg.out, "pretrain", world):
        return train_ranks(cfg, resume, progress, world)


def train_ranks(cfg, resume, progress, world):
    from tqdm import tqdm  # imported here so the library imports without it

    kernels.check_backend(cfg.backend)  # a missing build or GPU is reported before any data is prepared
    world.check_same_settings(asdict(cfg), "settings")  # before the first all-reduce, which a mismatch would hang
    with world.main_first():  # before anyone lists the checkpoints; the folder is claimed, so no save is under way
        if world.is_main:
            clean_after_killed_saves(cfg.out)
    if resume and not list_checkpoints(cfg.out):
        raise FileNotFoundError(f"--resume: no checkpoint in {cfg.out} to resume from")
    if not resume:
        check_new_run_folder(cfg.out)
    # not its data, nor the files it keeps in --out; cfg holds a resumed run's saved --metrics-out too
    check_output_file(cfg.metrics_out, "--metrics-out", reads=[cfg.data if cfg.data != "shakespeare" else None],
                      run_folder=cfg.out, run_files=("metrics.jsonl", "loss.png", LOCK_NAME))
    run = Run(cfg, resume, world)
    cfg = run.cfg
    banner(run)
    metrics_path = run.out / "metrics.jsonl"
    tokens_per_step = cfg.batch_size * cfg.grad_accum * cfg.block_size * world.size
    record = {"step": run.step}
    started, timed_tokens, timed_seconds = time.perf_counter(), 0, 0.0
    bar = tqdm(total=cfg.max_iters, initial=run.step, disable=not (progress and world.is_main), dynamic_ncols=True)
    # only rank 0 writes metrics; a new run starts the file afresh (a run killed before its first checkpoint
    # may have left one, which would mix two runs' steps)
    log = open(metrics_path, "a" if resume else "w") if world.is_main else open(os.devnull, "w")
    stopping = False
    with StopRequest() as stop, log:
        while run.step < cfg.max_iters and not stopping:
            t0 = time.perf_counter()
            try:
                loss, lr, norm = run.train_step()
            except NonFiniteStep as e:
                found = list_checkpoints(run.out)
                kept = f"the latest checkpoint is {found[-1][1]}" if found else "no checkpoint was written yet"
                raise NonFiniteStep(f"{e}; {kept}") from None
            dt = time.perf_counter() - t0
            stopping = world.any(stop.requested)  # every rank stops at the same step
            if run.step > 1:  # the first step pays one-time costs (page faults, thread start)
                timed_tokens, timed_seconds = timed_tokens + tokens_per_step, timed_seconds + dt
            tokens_per_s = timed_tokens / timed_seconds if timed_seconds else tokens_per_step / dt
            bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", tok_s=f"{tokens_per_s:,.0f}", refresh=False)
            bar.update(1)
            record = {"step": run.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens_per_s": tokens_per_s,
                      "gflops": tokens_per_s * flops_per_token(run.model) / 1e9}
            if world.size > 1:
                record["allreduce_bytes"] = run.bytes_reduced
            evaluating = run.step % cfg.eval_interval == 0 or run.step == cfg.max_iters or stopping
            if evaluating:
                record.update(run.evaluate())
                run.save(record)
            log.write(json.dumps(record) + "\n")
            log.flush()
            if evaluating:  # printed last: a closed standard output must not cost the checkpoint or its line
                bar.write(f"step {run.step}: train loss {record['train_loss']:.4f}, val loss {record['val_loss']:.4f}")
    bar.close()
    found = list_checkpoints(run.out)
    final = {"train_loss": record.get("train_loss"), "val_loss": record.get("val_loss"), "iters": run.step,
             "tokens_per_s": timed_tokens / timed_seconds if timed_seconds else None,
             "wall_s": time.perf_counter() - started, "interrupted": stopping,
             "stop_signal": world.first_signal(stop.signal) if stopping else None,  # every rank: the same
             "checkpoint": str(found[-1][1]) if found else None, "ranks": world.size}
    if not world.is_main:
        run.cfg = replace(cfg, sample_tokens=0)  # only rank 0 samples at the end (cli/pretrain.py, cmd_pretrain)
        return run, final
    if cfg.metrics_out:
        atomic_write_bytes(cfg.metrics_out, json.dumps(final, indent=1).encode())
    plot_losses(metrics_path, run.out / "loss.png")
    return run, final


def plot_losses(metrics_path, png_path):
    """A loss-curve PNG when matplotlib is installed (pip install "minigpt[plot]"); skipped otherwise."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    rows = [json.loads(line) for line in Path(metrics_path).read_text().splitlines() if line.strip()]
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot([r["step"] for r in rows], [r["loss"] for r in rows], lw=0.8, alpha=0.6, label="train (batch)")
    evals = [r for r in rows if "val_loss" in r]
    ax.plot([r["step"] for r in evals], [r["val_loss"] for r in evals], "o-", label="validation")
    ax.set_xlabel("step")
    ax.set_ylabel("cross-entropy (nats/token)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png_path, dpi=100)
    plt.close(fig)
    return png_path

"""Supervised fine-tuning (Radford et al. 2018, sec. 3.2 and 4.1): a pre-trained GPT, a task, a head.

The run, in order:
    task      tasks.load_task: train and dev Examples, label names, metrics
    model     the checkpoint's GPT (or, with init="random", the same shape freshly drawn: the baseline
              without pre-training), dropout set for fine-tuning, the first transfer_layers blocks
              kept, the start / delimiter / extract tokens added, a linear head on top
    encode    every example through the input transformations, once (transforms.py)
    train     epochs over the shuffled training set: AdamW, linear warmup over warmup (0.2%) of the
              steps then linear decay to 0 (the paper's schedule), global gradient clipping
    evaluate  after every epoch, the task's metrics on dev, with the dev task and LM losses
    save      the fine-tuned model in out/ckpt-<step>/ (finetune/checkpoint.py), the metrics as JSON
Ctrl-C finishes the current step, evaluates, saves and exits, like pre-training; a second Ctrl-C
stops at once. There is no resume: a fine-tuning run takes minutes.
Under mpiexec the run is data-parallel (minigpt/distributed.py): every step's batch of N x batch examples
is shared out by rows, the gradients are averaged weighted by each rank's example count (exact for the
task loss; the auxiliary LM loss, a mean over each rank's tokens, is then weighted by examples, not
tokens), and only rank 0 evaluates, prints and saves.

The settings, with the paper's and ours: finetune/config.py.
"""
import json
import math
import time
from dataclasses import asdict, replace

import numpy as np

from minigpt import kernels
from minigpt.checkpoint import load_weights, read_info
from minigpt.config import GPTConfig
from minigpt.data import atomic_write_bytes, check_output_file
from minigpt.distributed import SingleProcess, get_world
from minigpt.finetune.batch import collate
from minigpt.finetune.checkpoint import save_task_model
from minigpt.finetune.modes import keep_first_layers, trainable_parameters
from minigpt.finetune.task_model import TaskModel
from minigpt.finetune.tokens import add_task_tokens
from minigpt.finetune.transforms import UnencodableText, encode_example
from minigpt.model import GPT
from minigpt.optim import AdamW, NonFiniteStep, check_finite_step, clip_grad_norm
from minigpt.runlock import LOCK_NAME, check_new_run_folder, claim_run_folder, clean_after_killed_saves
from minigpt.safetensors import load_file
from minigpt.stopping import StopRequest
from minigpt.tasks.subsets import dev_subset, train_subset
from minigpt.tokenizer import tokenizer_from_dict

def linear_warmup_decay(step, max_lr, warmup_steps, total_steps):
    """GPT-1's schedule: linear from 0 to max_lr over warmup_steps, then linear down to 0 at total_steps."""
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    return max_lr * max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def load_pretrained_gpt(cfg):
    """(gpt, tokenizer) from cfg.checkpoint: its weights (init="pretrained") or its shape only ("random")."""
    path, info = read_info(cfg.checkpoint)
    if info.get("finetune"):
        raise ValueError(f"{path} is already fine-tuned (task {info['finetune']['task']}); start from a "
                         "pre-trained checkpoint")
    if not info.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer saved, so task texts cannot be encoded")
    config = replace(GPTConfig(**info["config"]), dropout=cfg.dropout)
    gpt = GPT(config, seed=cfg.seed, dtype="float32", backend=cfg.backend)
    if cfg.init == "pretrained":
        load_weights(gpt, load_file(path / "model.safetensors"), source=str(path))
        if cfg.transfer_layers > gpt.config.n_layer:  # named as the option, before keep_first_layers checks it
            raise ValueError(f"--transfer-layers {cfg.transfer_layers}: {path} has only {gpt.config.n_layer} "
                             "layers to keep")
        if cfg.mode == "frozen" and cfg.transfer_layers not in (-1, gpt.config.n_layer):
            raise ValueError(f"--mode frozen with --transfer-layers {cfg.transfer_layers} of {gpt.config.n_layer} "
                             "would freeze freshly drawn blocks, which nothing then trains; use --mode full")
        if cfg.transfer_layers != -1:
            keep_first_layers(gpt, cfg.transfer_layers, seed=cfg.seed)
    return gpt, tokenizer_from_dict(info["tokenizer"]), path


def build_model(cfg, task):
    """(TaskModel, tokenizer, tokens, checkpoint path) for the task."""
    from minigpt.tasks import is_regression

    gpt, tokenizer, path = load_pretrained_gpt(cfg)
    tokens = add_task_tokens(gpt, tokenizer, seed=cfg.seed)
    regression = is_regression(task)
    n_out = 1 if regression or task.shape == "multiple-choice" else len(task.labels)
    model = TaskModel(gpt, task.shape, n_out, regression, cfg.aux_lm, tokens.first_new_id, seed=cfg.seed)
    return model, tokenizer, tokens, path


def encode_split(examples, tokenizer, tokens, block_size, skip_unencodable=False):
    """(encoded examples, how many had to be truncated, the sources of the examples left out)."""
    encoded, skipped = [], []
    for example in examples:
        try:
            encoded.append(encode_example(example, tokenizer, tokens, block_size))
        except UnencodableText as e:
            if not skip_unencodable:
                raise UnencodableText(f"{e}; pass --skip-unencodable to leave such examples out") from None
            skipped.append(example.source)
    return encoded, sum(e.truncated for e in encoded), skipped


def evaluate(model, encoded, metric_names, batch_size):
    """Metrics on `encoded` (no dropout), with the mean dev task loss and LM loss per token."""
    from minigpt.tasks import metrics

    predictions, labels, task_loss, lm_sum, lm_count = [], [], 0.0, 0.0, 0
    for start in range(0, len(encoded), batch_size):
        batch = collate(encoded[start:start + batch_size], model.regression)
        outputs, losses = model.forward(batch, train=False, with_lm=True)
        predictions.append(model.predict(outputs))
        labels.append(batch.labels)
        task_loss += losses["task_loss"] * batch.n_examples
        counted = int((batch.lm_targets >= 0).sum())
        lm_sum, lm_count = lm_sum + losses["lm_loss"] * counted, lm_count + counted
    result = metrics.compute(metric_names, np.concatenate(predictions), np.concatenate(labels))
    result.update(dev_task_loss=task_loss / len(encoded), dev_lm_loss=lm_sum / max(lm_count, 1))
    return result


class FineTuneRun:
    """One fine-tuning run: the task, the model, the encoded splits, the optimizer and random streams."""

    def __init__(self, cfg, world=SingleProcess()):
        from minigpt.tasks import load_task

        self.cfg, self.world = cfg.check(), world
        # the data seed fixes the task sample and the dev subset, so runs of different seeds score one dev set
        data_seed = cfg.seed if cfg.data_seed == -1 else cfg.data_seed
        self.task = load_task(cfg.task, cfg.data or None, seed=data_seed)
        if self.task.shape == "completion":
            raise ValueError(f"task {cfg.task} has open answers (the text that follows): GPT-1's fine-tuning picks "
                             "among classes or candidates with a linear head, and has nothing to pick among here; "
                             f"evaluate it with `minigpt evaluate --task {cfg.task}`: the model writes its answer")
        if not self.task.train or not self.task.dev:
            raise ValueError(f"task {cfg.task} needs both training and dev examples "
                             f"(has {len(self.task.train)} and {len(self.task.dev)})")
        self.model, self.tokenizer, self.tokens, self.checkpoint = build_model(cfg, self.task)
        block_size = self.model.config.block_size
        train = train_subset(self.task.train, cfg.max_train, cfg.seed)
        dev = dev_subset(self.task.dev, cfg.max_eval, data_seed)  # the examples `minigpt evaluate` scores
        skip = cfg.skip_unencodable
        self.train_set, self.train_truncated, self.train_skipped = encode_split(train, self.tokenizer, self.tokens,
                                                                                block_size, skip)
        self.dev_set, self.dev_truncated, self.dev_skipped = encode_split(dev, self.tokenizer, self.tokens,
                                                                          block_size, skip)
        if not self.train_set or not self.dev_set:
            raise ValueError(f"task {cfg.task}: no {'training' if not self.train_set else 'dev'} example left that "
                             "the tokenizer can encode")
        self.trainable = trainable_parameters(self.model, cfg.mode)
        self.opt = AdamW(self.trainable, lr=cfg.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=cfg.weight_decay)
        self.steps_per_epoch = math.ceil(len(self.train_set) / (cfg.batch * world.size))
        self.total_steps = cfg.epochs * self.steps_per_epoch
        self.warmup_steps = max(1, math.ceil(cfg.warmup * self.total_steps)) if cfg.warmup > 0 else 0
        self.shuffle_rng = np.random.default_rng([cfg.seed, 7])  # the same order on every rank
        if world.size > 1:  # each rank's examples get their own dropout masks
            self.model.gpt.dropout_rng = np.random.default_rng([cfg.seed, 1, world.rank])
        self.step = 0

    def epoch_batches(self):
        """The training set in a fresh seeded order, cut into batches of batch x ranks examples; this rank's
        share of each (rows rank*batch ..), or None where the last, shorter batch leaves it nothing."""
        order = self.shuffle_rng.permutation(len(self.train_set))
        size, mine = self.cfg.batch * self.world.size, slice(self.world.rank * self.cfg.batch,
                                                             (self.world.rank + 1) * self.cfg.batch)
        for start in range(0, len(order), size):
            rows = order[start:start + size][mine]
            yield collate([self.train_set[i] for i in rows], self.model.regression) if len(rows) else None

    def train_step(self, batch):
        cfg, model = self.cfg, self.model
        lr = linear_warmup_decay(self.step, cfg.lr, self.warmup_steps, self.total_steps)
        model.zero_grad()
        n = batch.n_examples if batch is not None else 0
        if n:
            _, losses = model.forward(batch, train=True)
            model.backward()
        else:
            losses = {"loss": 0.0, "task_loss": 0.0, "lm_loss": 0.0 if cfg.aux_lm > 0 else None}
        self.world.allreduce_mean_(self.trainable.grads, weight=n)  # the mean over the whole batch's examples
        losses = {k: v if v is None else self.world.mean(v, weight=n) for k, v in losses.items()}
        norm = clip_grad_norm(self.trainable.grads, cfg.grad_clip if cfg.grad_clip > 0 else math.inf)
        check_finite_step(self.step + 1, losses["loss"], norm)  # before the update: the weights stay finite
        self.opt.step(lr)
        self.step += 1
        return losses, lr, norm

    def evaluate(self):
        """The dev metrics, computed by rank 0 and sent to every rank."""
        self.world.check_same_parameters(self.model.params, self.step)
        if not self.world.is_main:
            return self.world.broadcast(None)
        return self.world.broadcast(self.evaluate_here())

    def evaluate_here(self):
        return evaluate(self.model, self.dev_set, self.task.metrics, self.cfg.batch)

    def settings(self):
        c = self.cfg
        return {"mode": c.mode, "aux_lm": c.aux_lm, "transfer_layers": c.transfer_layers, "init": c.init,
                "seed": c.seed, "data_seed": c.data_seed, "epochs": c.epochs, "lr": c.lr, "batch": c.batch,
                "dropout": c.dropout,
                "weight_decay": c.weight_decay, "warmup": c.warmup, "grad_clip": c.grad_clip,
                "backend": c.backend, "checkpoint": str(self.checkpoint), "max_train": c.max_train,
                "max_eval": c.max_eval, "skip_unencodable": c.skip_unencodable}


def banner(run):
    c, model, cfg = run.model.config, run.model, run.cfg
    trained, backend = sum(p.size for p in run.trainable.params.values()), kernels.describe_backend(cfg.backend)
    print(f"minigpt: backend {backend}; {cfg.init} {c.arch} {c.n_layer} layers, {c.n_embd} wide, context "
          f"{c.block_size}, vocab {c.vocab_size} (with start/delimiter/extract): {model.num_params():,} parameters, "
          f"{trained:,} trained ({cfg.mode})")
    print(f"minigpt: task {run.task.name} ({run.task.shape}): {len(run.train_set):,} train, {len(run.dev_set):,} dev "
          f"examples; {run.train_truncated} train and {run.dev_truncated} dev examples truncated to fit"
          f"{skipped_note(run)}; "
          f"{run.total_steps} steps of {cfg.batch} in {cfg.epochs} epochs; λ = {cfg.aux_lm}; out {cfg.out}")
    if run.world.size > 1:
        print(f"minigpt: data-parallel over {run.world.size} MPI ranks: each step is {run.world.size} x {cfg.batch} "
              f"examples, gradients all-reduced in buckets of {run.world.bucket_bytes / 2**20:g} MiB")


def skipped_note(run):
    skipped = run.train_skipped + run.dev_skipped
    if not skipped:
        return ""
    return (f"; {len(run.train_skipped)} train and {len(run.dev_skipped)} dev examples left out, the tokenizer "
            f"cannot encode them (the first: {skipped[0]})")


def finetune(cfg, progress=True, world=None):
    """Run fine-tuning; return (run, final metrics dict). The dict is also written to cfg.metrics_out.
    world: a distributed world (default: MPI when launched by mpiexec with several ranks, else one process)."""
    world = world or get_world(backend=cfg.backend)
    with world.stop_all_on_error(cfg.out), claim_run_folder(cfg.check().out, "finetune", world):
        return finetune_ranks(cfg, progress, world)


def finetune_ranks(cfg, progress, world):
    from tqdm import tqdm  # imported here so the library imports without it

    world.check_same_settings(asdict(cfg), "settings")  # before the first all-reduce, which a mismatch would hang
    with world.main_first():  # a save killed midway (a second Ctrl-C) left a .tmp-ckpt-* folder: remove it
        if world.is_main:
            clean_after_killed_saves(cfg.out)
    check_new_run_folder(cfg.out, "finetune")  # before any work: the model is saved there at the end
    check_output_file(cfg.metrics_out, "--metrics-out", reads=[cfg.checkpoint, cfg.data], run_folder=cfg.out,
                      run_files=(LOCK_NAME,))
    run = FineTuneRun(cfg, world)
    banner(run)
    history, record, step_times = [], {}, []
    started = time.perf_counter()
    bar = tqdm(total=run.total_steps, disable=not (progress and world.is_main), dynamic_ncols=True)
    stopping = False
    with StopRequest() as stop:
        for epoch in range(cfg.epochs):
            epoch_losses = []
            for batch in run.epoch_batches():
                t0 = time.perf_counter()
                try:
                    losses, lr, norm = run.train_step(batch)
                except NonFiniteStep as e:
                    raise NonFiniteStep(f"{e}; nothing was saved to {cfg.out} (the fine-tuned model is written at "
                                        f"the end) and {cfg.checkpoint} is untouched") from None
                step_times.append(time.perf_counter() - t0)
                epoch_losses.append(losses)
                bar.set_postfix(loss=f"{losses['loss']:.4f}", task=f"{losses['task_loss']:.4f}", lr=f"{lr:.2e}",
                                refresh=False)
                bar.update(1)
                stopping = world.any(stop.requested)  # every rank stops at the same step
                if stopping:
                    break
            record = {"epoch": epoch + 1, "step": run.step, **epoch_means(epoch_losses), **run.evaluate()}
            history.append(record)
            bar.write("epoch {epoch}: ".format(**record) + ", ".join(
                f"{k} {v:.4f}" for k, v in record.items() if k not in ("epoch", "step") and v is not None))
            if stopping:
                break
    bar.close()
    final = final_metrics(run, record, history, step_times, time.perf_counter() - started, stopping)
    final["ranks"] = world.size
    final["stop_signal"] = world.first_signal(stop.signal) if stopping else None  # every rank: the same
    if world.is_main:
        final["checkpoint"] = str(save_task_model(cfg.out, run.model, run.step, run.tokenizer, run.task,
                                                  run.settings(), metrics=final))
        if cfg.metrics_out:
            atomic_write_bytes(cfg.metrics_out, json.dumps(final, indent=1).encode())
    final["checkpoint"] = world.broadcast(final.get("checkpoint"))
    return run, final


def epoch_means(steps):
    """An epoch's training losses, each the mean over its steps: train_loss, what is minimised (L_task +
    λ L_LM), and its two parts, train_task_loss (beside dev_task_loss) and train_lm_loss (None without the
    auxiliary loss). One step's loss was shown before: the last batch's, which may hold a single example."""
    parts = {"train_loss": "loss", "train_task_loss": "task_loss", "train_lm_loss": "lm_loss"}
    return {name: None if steps[-1][key] is None else float(np.mean([s[key] for s in steps]))
            for name, key in parts.items()}


def final_metrics(run, record, history, step_times, wall_s, interrupted):
    """The run's summary: task, sizes, every metric by name, the settings, timings."""
    metrics = {name: record[name] for name in run.task.metrics}
    timed = step_times[1:] or step_times  # the first step pays one-time costs
    return {"task": run.task.name, "n_train": len(run.train_set), "n_eval": len(run.dev_set), **metrics,
            "dev_task_loss": record["dev_task_loss"], "dev_lm_loss": record["dev_lm_loss"],
            "train_loss": record["train_loss"], "train_task_loss": record["train_task_loss"],
            "train_lm_loss": record["train_lm_loss"], **run.settings(), "steps": run.step,
            "truncated_train": run.train_truncated, "truncated_eval": run.dev_truncated,
            "skipped_train": len(run.train_skipped), "skipped_eval": len(run.dev_skipped),
            "step_s": float(np.mean(timed)), "wall_s": wall_s, "interrupted": interrupted, "history": history}


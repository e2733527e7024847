"""The settings of a fine-tuning run (FineTuneConfig) and their help texts, which `minigpt finetune --help` prints.

The paper's settings for its 117M model: lr 6.25e-5, batch 32, 3 epochs, dropout 0.1, warmup 0.2%,
λ = 0.5, weight decay 0.01. Our default models are a hundred times smaller and take a larger learning
rate: 3e-4 (batch 16) did better than 1e-4 and 1e-3 on shakespeare-genre from `minigpt pretrain`'s
default model after 1000 steps (one seed, 1000 training examples; tune it for other models).
"""
import math
from dataclasses import dataclass

from minigpt import kernels
from minigpt.finetune.modes import MODES

INITS = ("pretrained", "random")

HELP = {
    "checkpoint": "the pre-trained checkpoint folder, or a pre-training run's --out folder (its latest checkpoint)",
    "task": "the task: sst2 cola mnli snli qnli rte mrpc qqp stsb race storycloze (with --data: the task's "
            "folder or file), classification entailment similarity multiple-choice (with --data: a folder "
            "holding train.jsonl and dev.jsonl), movie-reviews (after `minigpt data fetch movie-reviews`), or "
            "a built-in task made from held-out Shakespeare plays, no data needed: shakespeare-genre "
            "shakespeare-follows shakespeare-same-play shakespeare-next-line",
    "data": "the task's data folder or file (real formats and JSONL tasks)",
    "mode": "full: every weight trains (the paper); frozen: only the head and the start/delimiter/extract "
            "embeddings train",
    "aux_lm": "λ, the weight of the auxiliary language-modelling loss on the task's inputs (the paper: 0.5; "
              "0 turns it off)",
    "transfer_layers": "keep only the first N pre-trained blocks and draw the rest fresh (-1: keep all; "
                       "the paper's figure 2)",
    "init": "pretrained: start from the checkpoint's weights; random: the same shape and tokenizer with fresh "
            "weights (the baseline without pre-training)",
    "epochs": "passes over the training set",
    "lr": "peak learning rate, reached after the warmup, then linear decay to 0",
    "batch": "examples per step (a multiple-choice example is one sequence per candidate)",
    "dropout": "dropout in the transformer and before the head",
    "weight_decay": "AdamW decoupled weight decay (2-D weights only)",
    "warmup": "fraction of the steps with linear warmup",
    "grad_clip": "clip the global gradient norm of the trained weights to this (0: no clipping)",
    "max_train": "train on a seeded random subset of N examples (0: all); nested across N for one seed",
    "max_eval": "evaluate on a seeded random subset of N dev examples (0: all)",
    "seed": "random seed: the head, the new embeddings, fresh weights, subsets, shuffling, dropout; also picks "
            "the built-in tasks' sample and the --max-eval dev subset unless --data-seed is set",
    "data_seed": "seed of the built-in tasks' sample and of the --max-eval dev subset (-1: --seed); fix it to "
                 "compare seeds on one dev set",
    "backend": kernels.BACKEND_HELP,
    "out": "output folder for the fine-tuned model (ckpt-<step>/: weights, head, tokenizer with its new tokens, "
           "config)",
    "metrics_out": "also write the final metrics (task, n_train, n_eval, each metric, settings) to this JSON file",
    "skip_unencodable": "leave out (and count) examples the tokenizer cannot encode (e.g. a character the "
                        "char tokenizer never saw) instead of stopping",
}


@dataclass
class FineTuneConfig:
    """Every setting of a fine-tuning run; `minigpt finetune --help` documents each one."""
    checkpoint: str = ""
    task: str = ""
    data: str = ""
    mode: str = "full"
    aux_lm: float = 0.5
    transfer_layers: int = -1  # -1: every layer
    init: str = "pretrained"
    epochs: int = 3
    lr: float = 3e-4  # measured on shakespeare-genre from a 1000-step default checkpoint: above 1e-4 and 1e-3
    batch: int = 16
    dropout: float = 0.1
    weight_decay: float = 0.01
    warmup: float = 0.002
    grad_clip: float = 1.0
    max_train: int = 0  # 0: all
    max_eval: int = 0  # 0: all
    seed: int = 0
    data_seed: int = -1  # -1: seed
    backend: str = "cpu"
    out: str = "out-finetune"
    metrics_out: str = ""
    skip_unencodable: bool = False

    def check(self):
        """Raise a ValueError naming the first setting that makes no sense."""
        problems = [(not self.checkpoint, "--checkpoint is required: a pre-trained checkpoint or run folder"),
                    (not self.task, "--task is required"),
                    (self.mode not in MODES, f"--mode must be one of {', '.join(MODES)}, got {self.mode!r}"),
                    (self.init not in INITS, f"--init must be one of {', '.join(INITS)}, got {self.init!r}"),
                    (not (math.isfinite(self.aux_lm) and self.aux_lm >= 0),
                     f"--aux-lm (λ) must be a number >= 0, got {self.aux_lm}"),
                    (not self.out.strip(), "--out must name a folder (an empty one would mean the current folder)"),
                    (self.epochs < 1, f"--epochs must be at least 1, got {self.epochs}"),
                    (not (math.isfinite(self.lr) and self.lr > 0), f"--lr must be a number > 0, got {self.lr}"),
                    (not (math.isfinite(self.weight_decay) and self.weight_decay >= 0),
                     f"--weight-decay must be >= 0, got {self.weight_decay}"),
                    (not (math.isfinite(self.grad_clip) and self.grad_clip >= 0),
                     f"--grad-clip must be >= 0 (0: no clipping), got {self.grad_clip}"),
                    (self.seed < 0, f"--seed must be >= 0, got {self.seed}"),
                    (self.batch < 1, f"--batch must be at least 1, got {self.batch}"),
                    (not 0 <= self.dropout < 1, f"--dropout must be in [0, 1), got {self.dropout}"),
                    (not 0 <= self.warmup < 1, f"--warmup is a fraction of the steps in [0, 1), got {self.warmup}"),
                    (self.max_train < 0 or self.max_eval < 0, "--max-train and --max-eval must be >= 0"),
                    (self.transfer_layers < -1,
                     f"--transfer-layers must be >= 0 (or -1: keep all), got {self.transfer_layers}"),
                    (self.data_seed < -1, f"--data-seed must be >= 0 (or -1: --seed), got {self.data_seed}"),
                    (self.init == "random" and self.transfer_layers != -1,
                     "--transfer-layers keeps pre-trained layers, so it needs --init pretrained"),
                    (self.mode == "frozen" and self.init == "random",
                     "--mode frozen with --init random would train a head on an untrained, frozen transformer; "
                     "use --mode full for the random-init baseline")]
        for bad, message in problems:
            if bad:
                raise ValueError(message)
        return self

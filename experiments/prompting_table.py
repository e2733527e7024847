"""Fine-tuned vs zero-shot vs few-shot, on the same tasks and the same pre-trained model, with chance shown.

usage: python experiments/prompting_table.py [--checkpoint out] [--tasks shakespeare-genre,shakespeare-next-line]
                                             [--data ''] [--shots 0,1,4,8] [--max-eval 300]
                                             [--finetune-args "--epochs 3"] [--no-finetune]
                                             [--backend cpu] [--json prompting_table.json]

The question of GPT-2 and GPT-3 put to a small model: how much of a task does pre-training alone
solve (zero-shot, Radford et al. 2019), how much do k demonstrations in the prompt add (few-shot,
Brown et al. 2020), and how does that compare with fine-tuning on the labelled training set
(GPT-1, Radford et al. 2018)? The defaults take the model of the default pre-training run
(`minigpt pretrain`, folder out/) and the four built-in Shakespeare tasks, whose dev examples come
from plays held out of pre-training.

The prompting columns run minigpt.prompting.evaluate_task in this process, with each task's default
template (see minigpt/prompting/templates.py). The fine-tuned column runs `minigpt finetune
--checkpoint ... --task ... --metrics-out ...` as a user would, with --finetune-args appended, and
reads the headline metric from its metrics JSON. Both evaluate the same --max-eval dev examples
(a seeded random subset, drawn the same way by both; --max-eval and --seed are passed to finetune).
Chance is a uniform random guess; "constant" always answers the commonest class of the evaluated examples
(a --max-eval subset need not be balanced), the best any constant answer scores there. k-shrink:
with a short context (the default run's is 256 characters) the demonstrations do not fit, and the
table says how many were kept on average.
Small models sit near chance zero-shot; the table reports what it measures.
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from minigpt.checkpoint import load_model, resolve_checkpoint
from minigpt.data import atomic_write_bytes, check_output_file
from minigpt.prompting import evaluate_task, resolve_template
from minigpt.tasks import load_task
from minigpt.tokenizer import tokenizer_from_dict

BUILT_IN = "shakespeare-genre,shakespeare-follows,shakespeare-same-play,shakespeare-next-line"


def finetune_score(checkpoint, task, data, head, args):
    """The headline metric of `minigpt finetune` on this task, or a short reason why there is none."""
    with tempfile.TemporaryDirectory() as tmp:
        metrics = Path(tmp) / "metrics.json"
        cmd = [sys.executable, "-m", "minigpt", "finetune", "--checkpoint", str(Path(checkpoint).resolve()),
               "--task", task, "--metrics-out", str(metrics), "--seed", str(args.seed), "--backend", args.backend,
               "--max-eval", str(args.max_eval), "--out", str(Path(tmp) / "run")]
        if data:
            cmd += ["--data", str(Path(data).resolve()) if Path(data).exists() else data]
        cmd += args.finetune_args.split()
        print("running:", " ".join(cmd), flush=True)
        # cwd: `python -m` looks in the current folder first, and from the repository root it would import the
        # source folder, without the extension that `pip install .` built, rather than the installed package
        result = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp)
        if result.returncode != 0:
            if "invalid choice: 'finetune'" in result.stderr:
                return None, "minigpt finetune is not available in this version"
            return None, f"minigpt finetune failed: {result.stderr.strip().splitlines()[-1:]}"
        return json.loads(metrics.read_text())[head], ""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default="out", help="a checkpoint, or a run folder (its latest); default out")
    p.add_argument("--tasks", default=BUILT_IN, help=f"comma-separated task names (default {BUILT_IN})")
    p.add_argument("--data", default="", help="comma-separated data paths, one per task ('' for none)")
    p.add_argument("--shots", default="0,1,4,8")
    p.add_argument("--max-eval", type=int, default=300)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scoring", default="per_token", choices=["total", "per_token", "per_char"])
    p.add_argument("--backend", default="cpu", choices=["numpy", "cpu"])
    p.add_argument("--finetune-args", default="", help="extra options for minigpt finetune (it runs in a "
                   "temporary folder: give paths in them absolute)")
    p.add_argument("--no-finetune", action="store_true")
    p.add_argument("--json", default="prompting_table.json", help="the rows ('' for none)")
    args = p.parse_args(argv)
    names = args.tasks.split(",")
    data = args.data.split(",") if args.data else [""] * len(names)
    if len(data) != len(names):
        p.error("--data needs one entry per task")
    try:
        shots = [int(k) for k in args.shots.split(",")]
    except ValueError:
        p.error(f"--shots takes comma-separated whole numbers, got {args.shots!r}")
    try:
        return prompting_table(args, names, data, shots)
    except (ValueError, OSError) as e:  # a missing checkpoint, an unknown task: one line, as `minigpt` says it
        print(f"prompting_table.py: error: {e}", file=sys.stderr)
        return 1


def prompting_table(args, names, data, shots):
    check_output_file(args.json, "--json", reads=[args.checkpoint])  # before the evaluations, not after them
    checkpoint = resolve_checkpoint(args.checkpoint)
    model, info = load_model(checkpoint, backend=args.backend)
    if not info.get("tokenizer"):
        raise ValueError(f"{checkpoint} has no tokenizer saved; cannot encode the prompts")
    tok = tokenizer_from_dict(info["tokenizer"])
    print(f"model: {checkpoint} (step {info.get('step')}), {model.num_params():,} parameters, "
          f"context {model.config.block_size} tokens")
    rows = []
    for name, d in zip(names, data):
        task = load_task(name, data=d or None, seed=args.seed)
        template = resolve_template(name)
        head = task.metrics[0]
        row = {"task": name, "metric": head, "shots": {}}
        for k in shots:
            r = evaluate_task(model, tok, task, template, shots=k, seed=args.seed, max_eval=args.max_eval,
                              scoring=args.scoring, skip_unencodable=True)
            row["shots"][k] = {"score": r[head], "k_mean": r["k_mean"], "n_eval": r["n_eval"], "skipped": r["skipped"]}
            row["chance"] = r["chance"]
            print(f"{name}: {k}-shot {head} {r[head]:.4f} (mean k {r['k_mean']:.2f}, n {r['n_eval']})", flush=True)
        row["finetuned"], row["finetune_note"] = (None, "--no-finetune") if args.no_finetune else \
            finetune_score(checkpoint, name, d, head, args)
        rows.append(row)
    if args.json:
        atomic_write_bytes(args.json, json.dumps(rows, indent=1).encode())
    print()
    print(table(rows, shots))
    return 0


def table(rows, shots):
    header = "| task | metric | chance | constant | fine-tuned | " + " | ".join(f"{k}-shot" for k in shots) + " |"
    lines = [header, "|" + "---|" * (5 + len(shots))]
    for row in rows:
        chance = row["chance"].get("uniform_accuracy")
        majority = row["chance"].get("commonest_here", row["chance"].get("majority", {})).get(row["metric"])
        cells = [row["task"], row["metric"], fmt(chance), fmt(majority),
                 fmt(row["finetuned"]) if row["finetuned"] is not None else "n/a"]
        for k in shots:
            s = row["shots"][k]
            cells.append(fmt(s["score"]) + (f" (k {s['k_mean']:.1f})" if s["k_mean"] < k else ""))
        lines.append("| " + " | ".join(cells) + " |")
    notes = [f"{row['task']}: fine-tuned n/a: {row['finetune_note']}" for row in rows if row["finetuned"] is None]
    return "\n".join(lines + [""] + notes)


def fmt(x):
    return "" if x is None else f"{x:.3f}"


if __name__ == "__main__":
    sys.exit(main())

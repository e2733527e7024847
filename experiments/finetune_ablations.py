"""GPT-1's fine-tuning ablations at small scale, with means and spread over seeds.

usage: python experiments/finetune_ablations.py --checkpoint RUN_OR_CKPT [--tasks shakespeare-genre movie-reviews]
           [--parts a d b c] [--seeds 0 1 2] [--sizes 100 300 1000 0] [--base-n 1000] [--min-steps 150]
           [--max-eval 0] [--data-seed 0] [--out experiments/results/finetune_ablations] [--quick] [--report]

The parts (Radford et al. 2018, sec. 5 and figure 2):
    a  pre-trained vs random initialisation, at --base-n labelled examples (the paper's central claim)
    b  auxiliary LM loss λ = 0.5 vs 0, from the pre-trained model, at --base-n (and from random weights)
    c  transferring only the first 0 .. L pre-trained blocks, the rest drawn fresh (figure 2, left)
    d  dev score against the number of labelled examples (--sizes; 0 is all) for pre-trained and random
Runs that two parts share (a's runs are points of d; c's L layers is a's pre-trained run) run once.

Every run is one `minigpt finetune` (minigpt.finetune.train.FineTuneRun, the same model, encoding,
optimizer and schedule) with two differences that keep the runs comparable and short:
- the training length: max(--epochs, enough epochs for --min-steps steps), so that 100 examples get
  about as many updates as 1000 instead of a handful (with a fixed 3 epochs, 100 examples are 21
  steps, and a small-data run would measure too few steps, not too few labels);
- the dev set is scored once, at the end (finetune scores it after every epoch), and no model is saved.
The dev set is the same for every run of a task: --data-seed fixes the built-in tasks' sample and the
--max-eval subset; --seed changes the head, the new token rows, fresh weights, the --max-train subset
(nested across sizes), the shuffling and dropout.

Each run writes one JSON file to --out (named by its settings) and is skipped when that file exists,
so an interrupted sweep resumes where it stopped and a new seed adds only its own runs. At the end
(or with --report alone) the script reads every result in --out, writes runs.csv (one row per run)
and summary.json (mean, sample standard deviation and count per setting), prints a markdown table,
and draws ablations.png (parts d and c) when matplotlib is installed.
"""
import argparse
import csv
import json
import math
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np

PARTS = "abcd"
DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "finetune_ablations"
HEADLINE = ("accuracy", "f1", "matthews", "pearson")  # the first of these that a task reports is its score


def run_name(spec):
    """The result file's name: every setting that varies between runs."""
    n = spec["max_train"] or "all"
    return (f"{spec['task']}__{spec['init']}__aux{spec['aux_lm']:g}__layers{spec['transfer_layers']}"
            f"__n{n}__seed{spec['seed']}.json")


def spec(task, seed, n, init="pretrained", aux_lm=0.5, transfer_layers=-1):
    return {"task": task, "init": init, "aux_lm": aux_lm, "transfer_layers": transfer_layers, "max_train": n,
            "seed": seed}


def planned_runs(parts, tasks, seeds, sizes, base_n, n_layer):
    """The specs of every run the parts need, each once, in the order of the parts asked for."""
    runs = []
    for part in parts:
        for task in tasks:
            for seed in seeds:
                if part == "a":
                    runs += [spec(task, seed, base_n, init) for init in ("pretrained", "random")]
                elif part == "b":
                    runs += [spec(task, seed, base_n, init, aux) for init in ("pretrained", "random")
                             for aux in (0.5, 0.0)]
                elif part == "c":
                    # all L blocks kept is the plain pre-trained run (transfer_layers -1)
                    runs += [spec(task, seed, base_n, transfer_layers=k if k < n_layer else -1)
                             for k in range(n_layer + 1)]
                elif part == "d":
                    runs += [spec(task, seed, n, init) for n in sizes for init in ("pretrained", "random")]
    unique = {run_name(r): r for r in runs}
    return list(unique.values())


def run_one(run_spec, args):
    """Fine-tune once as `run_spec` says; return the result dict (the headline metrics, losses, timings)."""
    from minigpt.finetune.config import FineTuneConfig
    from minigpt.finetune.train import FineTuneRun, evaluate

    cfg = FineTuneConfig(checkpoint=args.checkpoint, task=run_spec["task"], init=run_spec["init"],
                         aux_lm=run_spec["aux_lm"], transfer_layers=run_spec["transfer_layers"],
                         max_train=run_spec["max_train"], seed=run_spec["seed"], data_seed=args.data_seed,
                         max_eval=args.max_eval, lr=args.lr, batch=args.batch, backend=args.backend,
                         skip_unencodable=True)
    started = time.perf_counter()
    probe = FineTuneRun(cfg)  # to learn the training set's size, then the real run with its epochs
    epochs = max(args.epochs, math.ceil(args.min_steps / probe.steps_per_epoch))
    run = FineTuneRun(cfg.__class__(**{**asdict(cfg), "epochs": epochs})) if epochs != cfg.epochs else probe
    losses = {}
    for _ in range(epochs):
        for batch in run.epoch_batches():
            losses, _, _ = run.train_step(batch)
    train_s = time.perf_counter() - started
    scores = evaluate(run.model, run.dev_set, run.task.metrics, batch_size=64)
    return {**run_spec, "n_train": len(run.train_set), "n_eval": len(run.dev_set), "epochs": epochs,
            "steps": run.step, **{m: scores[m] for m in run.task.metrics}, "dev_task_loss": scores["dev_task_loss"],
            "dev_lm_loss": scores["dev_lm_loss"], "train_loss": losses.get("loss", float("nan")),
            "chance": chance_level(run.task), "lr": cfg.lr, "batch": cfg.batch, "data_seed": args.data_seed,
            "max_eval": args.max_eval, "checkpoint": str(run.checkpoint), "n_layer": run.model.config.n_layer,
            "train_s": train_s,
            "wall_s": time.perf_counter() - started}


def chance_level(task):
    """The accuracy of always answering the most frequent dev label (None for regression)."""
    if task.is_regression:
        return None
    labels = [e.label for e in task.dev]
    return max(labels.count(v) for v in set(labels)) / len(labels)


def headline(result):
    return next((m, result[m]) for m in HEADLINE if m in result)


# ---- reading the results back ----

def load_results(out):
    return [json.loads(p.read_text()) for p in sorted(Path(out).glob("*.json")) if p.name != "summary.json"]


def setting_of(result, layer_sizes, aux_sizes):
    """The part(s) of the sweep a result belongs to, as (part, setting, x) rows. Part a is part d's
    pre-trained and random runs at one size, so they share rows. layer_sizes and aux_sizes: the (task,
    labelled N) that parts c and b ran at, whose plain pre-trained run is their reference point."""
    rows = []
    default_aux, all_layers = result["aux_lm"] == 0.5, result["transfer_layers"] == -1
    where = (result["task"], result["max_train"])
    if default_aux and all_layers:
        rows.append(("a,d", result["init"], result["max_train"] or result["n_train"]))
    if all_layers and where in aux_sizes:
        rows.append(("b", f"{result['init']}, λ={result['aux_lm']:g}", result["max_train"] or result["n_train"]))
    if result["init"] == "pretrained" and default_aux and where in layer_sizes:
        rows.append(("c", f"pretrained, N={result['max_train'] or 'all'}", result["transfer_layers"]))
    return rows


def layers_of(results):
    """The pre-trained model's number of blocks, as the results say, or from the checkpoint they name (None if
    neither)."""
    from minigpt.checkpoint import read_info
    if "n_layer" in results[0]:
        return results[0]["n_layer"]
    try:
        return read_info(results[0]["checkpoint"])[1]["config"]["n_layer"]
    except (OSError, ValueError, KeyError):
        return None


def summarize(results, n_layer=None):
    """One row per (task, part, setting, x): the mean, sample std and count of the headline metric over seeds.
    Part c's all-blocks point is at x = n_layer (default: read from the results' checkpoint), else "all"."""
    n_layer = layers_of(results) if n_layer is None and results else n_layer
    groups = {}
    layer_sizes = {(r["task"], r["max_train"]) for r in results if r["transfer_layers"] != -1}
    aux_sizes = {(r["task"], r["max_train"]) for r in results if r["aux_lm"] != 0.5}
    for r in results:
        metric, value = headline(r)
        for part, label, x in setting_of(r, layer_sizes, aux_sizes):
            if part == "c" and x == -1:
                x = n_layer if n_layer is not None else "all"
            key = (r["task"], part, label, x, metric)
            groups.setdefault(key, []).append((r["seed"], value, r["dev_lm_loss"], r["wall_s"], r["chance"]))
    rows = []
    for (task, part, label, x, metric), vals in sorted(groups.items(), key=lambda kv: str(kv[0])):
        scores = np.array([v[1] for v in vals])
        rows.append({"task": task, "part": part, "setting": label, "x": x, "metric": metric,
                     "mean": float(scores.mean()), "std": float(scores.std(ddof=1)) if len(scores) > 1 else 0.0,
                     "n_seeds": len(scores), "seeds": sorted(v[0] for v in vals),
                     "dev_lm_loss": float(np.mean([v[2] for v in vals])),
                     "wall_s": float(np.mean([v[3] for v in vals])), "chance": vals[0][4]})
    return rows


def markdown_table(rows):
    lines = ["| task | part | setting | labelled N / layers | metric | mean ± std | seeds | dev LM loss | s/run |",
             "|---|---|---|---|---|---|---|---|---|"]
    order = {"a,d": 0, "b": 1, "c": 2}
    for r in sorted(rows, key=lambda r: (r["task"], order[r["part"]], r["setting"], str(r["x"]).zfill(6))):
        lines.append(f"| {r['task']} | {r['part']} | {r['setting']} | {r['x']} | {r['metric']} | "
                     f"{r['mean']:.3f} ± {r['std']:.3f} | {r['n_seeds']} | {r['dev_lm_loss']:.3f} | "
                     f"{r['wall_s']:.0f} |")
    return "\n".join(lines)


def write_csv(results, path):
    keys = [k for k in results[0] if not isinstance(results[0][k], (list, dict))]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=keys, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(results)


def plot(rows, path):
    """Parts d (score against labelled examples, log x) and c (score against transferred layers), per task."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = sorted({r["task"] for r in rows})
    fig, axes = plt.subplots(len(tasks), 2, figsize=(10, 3.6 * len(tasks)), squeeze=False)
    for (ax_d, ax_c), task in zip(axes, tasks):
        for ax, part, xlabel in ((ax_d, "d", "labelled training examples"), (ax_c, "c", "pre-trained blocks kept")):
            mine = [r for r in rows if r["task"] == task and r["part"] == ("a,d" if part == "d" else part)]
            if not mine:
                ax.set_title(f"{task}: part {part} not run")
                ax.axis("off")
                continue
            for label in sorted({r["setting"] for r in mine}):
                line = sorted((r for r in mine if r["setting"] == label), key=lambda r: str(r["x"]).zfill(9))
                xs, ms, ss = [r["x"] for r in line], np.array([r["mean"] for r in line]), [r["std"] for r in line]
                ax.errorbar(xs, ms, yerr=ss, marker="o", capsize=3, label=label)
            if mine and mine[0]["chance"] is not None:
                ax.axhline(mine[0]["chance"], color="grey", linestyle=":", label="chance")
            if part == "d" and mine:
                ax.set_xscale("log")
            if part == "c":
                ax.set_xticks(range(int(max([r["x"] for r in mine], default=0)) + 1))
            ax.set_xlabel(xlabel)
            ax.set_ylabel(mine[0]["metric"] if mine else "")
            ax.set_title(f"{task}: part {part}")
            if mine:
                ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def report(out, n_layer=None):
    results = load_results(out)
    if not results:
        print(f"no results in {out} yet")
        return []
    rows = summarize(results, n_layer)
    write_csv(results, Path(out) / "runs.csv")
    (Path(out) / "summary.json").write_text(json.dumps(rows, indent=1))
    print(markdown_table(rows))
    png = plot(rows, Path(out) / "ablations.png")
    print(f"\n{len(results)} runs; {Path(out) / 'runs.csv'}, {Path(out) / 'summary.json'}"
          + (f", {png}" if png else " (no plot: pip install matplotlib)"))
    return rows


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", help="the pre-trained checkpoint or `minigpt pretrain` run folder")
    p.add_argument("--tasks", nargs="+", default=["shakespeare-genre"])
    p.add_argument("--parts", default="adbc", help="which parts to run, in order: any of a b c d")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--sizes", nargs="+", type=int, default=[100, 300, 1000, 0], help="part d; 0: all")
    p.add_argument("--base-n", type=int, default=1000, help="labelled examples for parts a, b and c (0: all)")
    p.add_argument("--epochs", type=int, default=3, help="at least this many epochs")
    p.add_argument("--min-steps", type=int, default=150, help="and at least this many steps")
    p.add_argument("--max-eval", type=int, default=0, help="score a fixed subset of N dev examples (0: all)")
    p.add_argument("--data-seed", type=int, default=0, help="fixes the built-in tasks' sample and the dev subset")
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--backend", default="cpu", choices=["cpu", "numpy"])
    p.add_argument("--out", default=str(DEFAULT_OUT), help="one JSON per run, runs.csv, summary.json, ablations.png")
    p.add_argument("--quick", action="store_true", help="a smoke-test scale: 2 seeds, sizes 100 300, 300 dev "
                   "examples, 40 steps at least (minutes; the numbers mean little)")
    p.add_argument("--report", action="store_true", help="only read the results in --out and report them")
    p.add_argument("--dry-run", action="store_true", help="list the runs still to do, run nothing")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.sizes, args.base_n = args.seeds[:2], [100, 300], 300
        args.max_eval, args.min_steps = args.max_eval or 300, 40
        if args.out == str(DEFAULT_OUT):
            args.out = str(DEFAULT_OUT.with_name("finetune_ablations_quick"))
    if set(args.parts) - set(PARTS):
        p.error(f"--parts takes letters from {PARTS}, got {args.parts!r}")
    if not args.report and not args.checkpoint:
        p.error("--checkpoint is required (unless --report)")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    n_layer = None
    if args.checkpoint:
        from minigpt.checkpoint import read_info
        n_layer = read_info(args.checkpoint)[1]["config"]["n_layer"]
    if not args.report:
        out.mkdir(parents=True, exist_ok=True)
        runs = planned_runs(args.parts, args.tasks, args.seeds, args.sizes, args.base_n, n_layer)
        todo = [r for r in runs if not (out / run_name(r)).exists()]
        print(f"{len(runs)} runs planned, {len(runs) - len(todo)} already done, {len(todo)} to run")
        for i, r in enumerate(todo if not args.dry_run else []):
            result = run_one(r, args)
            tmp = out / (run_name(r) + ".tmp")
            tmp.write_text(json.dumps(result, indent=1))
            tmp.rename(out / run_name(r))  # a run stopped half-way leaves no result, so it reruns
            metric, value = headline(result)
            print(f"[{i + 1}/{len(todo)}] {run_name(r)[:-5]}: {metric} {value:.3f}, dev LM loss "
                  f"{result['dev_lm_loss']:.3f}, {result['steps']} steps, {result['wall_s']:.0f} s", flush=True)
        if args.dry_run:
            print("\n".join(run_name(r) for r in todo))
            return
    report(out, n_layer)


if __name__ == "__main__":
    main()

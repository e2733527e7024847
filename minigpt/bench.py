"""`minigpt bench`: run the benchmark scripts of benchmarks/ and print their figures as one table.

Each script runs in a process of its own (as `python benchmarks/bench_X.py --json FILE [--quick]`) and
prints its own detailed table as it goes; at the end this prints every row together: the case, its
unit, minigpt's figure, NumPy's (OpenBLAS) and PyTorch's where they apply, minigpt's speed-up over
each (above 1: minigpt is faster, whatever the unit) and minigpt's fraction of the machine's peak
(matmul: of the FMA peak; memory-bound kernels: of a copy of as many bytes; training step: of the
FMA peak, when given).

The scripts' environment drops OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE, which on these machines
make OpenBLAS pick a slower sgemm kernel: the baseline runs at its best, and only there (tests and
training keep the environment they were given). The scripts live in the repository's benchmarks/
folder: next to the package in a source checkout (pip install -e .), or in the current directory when
minigpt was installed with `pip install .` and the command runs from the checkout's root.
"""
import json
import os
import pathlib
import subprocess
import sys
import tempfile

SCRIPTS = {  # name: (script, extra arguments)
    "kernels": ("bench_kernels.py", []),
    "matmul": ("bench_matmul.py", []),
    "attention": ("bench_attention.py", []),
    "train": ("bench_train_step.py", []),
    "generate": ("bench_generate.py", ["--uncached-backends", "none"]),
}


def find_benchmarks():
    """The benchmarks/ folder: beside the package (editable install) or in the current directory."""
    for folder in (pathlib.Path(__file__).resolve().parent.parent / "benchmarks", pathlib.Path.cwd() / "benchmarks"):
        if (folder / "bench_matmul.py").is_file():
            return folder
    raise RuntimeError("minigpt bench runs the scripts in the repository's benchmarks/ folder, found neither beside "
                       "the installed package nor in the current directory: run it from the root of a minigpt "
                       "checkout")


def benchmark_environment():
    """This process's environment without the variables that slow OpenBLAS down."""
    return {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}


def run_script(name, quick, peak):
    """Run one benchmark script (its own output goes to this terminal); return its rows."""
    script, extra = SCRIPTS[name]
    benchmarks = find_benchmarks()
    with tempfile.TemporaryDirectory() as tmp:
        out = pathlib.Path(tmp) / "rows.json"
        cmd = [sys.executable, str(benchmarks / script), "--json", str(out), *extra]
        if quick:
            cmd.append("--quick")
        if peak and name == "matmul":
            cmd += ["--peak", str(peak)]
        if peak and name == "train":
            cmd += ["--peak-gflops", str(peak)]
        print(f"\n=== {' '.join(cmd[1:])}", flush=True)
        result = subprocess.run(cmd, env=benchmark_environment(), cwd=benchmarks)
        if result.returncode != 0 or not out.exists():
            print(f"(benchmark {name} failed with exit code {result.returncode}; its rows are missing)")
            return []
        return json.loads(out.read_text())


def speedup(row, other):
    """How many times faster minigpt is than `other` (a figure in the row's unit), or None."""
    theirs, ours = row.get(other), row["minigpt"]
    if not theirs or not ours:
        return None
    return ours / theirs if row["better"] == "higher" else theirs / ours


def format_table(rows):
    def num(x):
        return "-" if x is None else f"{x:,.1f}" if abs(x) >= 10 else f"{x:.3g}"

    def times(x):
        return "-" if x is None else f"{x:.2f}x"

    width = max([len(r["case"]) for r in rows] + [4])
    lines = [f"{'case':<{width}}  {'unit':<8} {'minigpt':>9} {'NumPy':>9} {'PyTorch':>9} {'vs NumPy':>9} "
             f"{'vs PyTorch':>10} {'of peak':>8}"]
    for r in rows:
        peak = "-" if r.get("of_peak") is None else f"{r['of_peak']:.0%}"
        lines.append(f"{r['case']:<{width}}  {r['unit']:<8} {num(r['minigpt']):>9} {num(r.get('numpy')):>9} "
                     f"{num(r.get('torch')):>9} {times(speedup(r, 'numpy')):>9} {times(speedup(r, 'torch')):>10} "
                     f"{peak:>8}")
    return "\n".join(lines)


def run_benchmarks(only=None, quick=False, peak=None):
    """Run the chosen benchmarks (default: all) and print the one table; returns the rows."""
    names = only or list(SCRIPTS)
    unknown = [n for n in names if n not in SCRIPTS]
    if unknown:
        raise ValueError(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(SCRIPTS)}")
    find_benchmarks()  # fail before any script runs
    rows = []
    for name in names:
        rows += run_script(name, quick, peak)
    print("\n=== all benchmarks: minigpt against NumPy (OpenBLAS) and PyTorch, measured side by side")
    print(format_table(rows) if rows else "(no rows)")
    print("vs NumPy / vs PyTorch: how many times faster minigpt is (above 1: faster); of peak: matmul and training "
          "against the FP32 FMA peak, memory-bound kernels against a copy of as many bytes")
    return rows

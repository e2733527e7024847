"""What every benchmark prints first, and the rows it hands to `minigpt bench`.

Each benchmark script prints its own table and, with --json FILE, also writes its rows as a JSON list
of {"bench", "case", "unit", "minigpt", "numpy", "torch", "better", "of_peak"}: `minigpt bench` runs
the scripts and prints all their rows as one table. "better" is "higher" (GFLOP/s, tokens/s, GB/s)
or "lower" (ms); "numpy", "torch" and "of_peak" are None where they do not apply.
"""
import json
import os

from minigpt import kernels


def blas_description():
    """NumPy's BLAS library, the kernel it runs (e.g. SkylakeX or Haswell) and its threads, via threadpoolctl."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown (pip install threadpoolctl, or pip install .[bench], to see it)"
    blas = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version')} kernel {i.get('architecture')}, "
                     f"{i['num_threads']} threads" for i in blas) or "none found"


def print_header():
    """The facts a reader needs to trust the figures: SIMD path, threads, how idle threads wait, NumPy's
    BLAS kernel, the OpenBLAS variables that would pick a slower kernel, and the machine's load."""
    info = kernels.core_info()
    print(f"minigpt._core: SIMD path {info['simd']} (attention {info['attention_simd']}), "
          f"{info['num_threads']} OpenMP threads, idle threads wait: {info['omp_wait']}")
    print(f"NumPy BLAS: {blas_description()}")
    for var in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE"):
        if var in os.environ:
            print(f"warning: {var}={os.environ[var]} is set, so OpenBLAS may not run its best kernel; run the "
                  f"benchmark as `env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python ...` (minigpt bench does)")
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs "
          "(on a shared machine compare the ratios, measured side by side, not the times)")


def torch_description(torch):
    """PyTorch's version, threads and BLAS (MKL on x86 wheels), for the header of a comparison with it."""
    blas = "MKL" if "USE_MKL=ON" in torch.__config__.show() else "its own BLAS"
    return f"torch {torch.__version__}, {torch.get_num_threads()} threads, {blas}"


def row(bench, case, unit, minigpt, numpy=None, torch=None, better="higher", of_peak=None):
    return {"bench": bench, "case": case, "unit": unit, "minigpt": minigpt, "numpy": numpy, "torch": torch,
            "better": better, "of_peak": of_peak}


def write_rows(path, rows):
    """Write the rows for `minigpt bench` (when --json was given)."""
    if path:
        with open(path, "w") as f:
            json.dump(rows, f)

"""Backend selection: the one place that imports the compiled extensions minigpt._core and minigpt._cuda.

backend="numpy" runs each op's NumPy reference (any float dtype; host or CuPy arrays);
backend="cpu" runs the C++/OpenMP kernels (float32, C-contiguous NumPy arrays);
backend="cuda" runs the CUDA kernels (float32, C-contiguous CuPy arrays on the GPU).
The two extensions share most functions and their arguments, so most ops dispatch with
`core(backend).op(...)` whichever it is; each op's module handles the differences (embedding has no C++
kernel, the cached attention no CUDA one, and the CUDA range checks take `check_range`). Nothing falls
back silently: asking for a backend that was not built, or for "cuda" on a machine without CuPy or a GPU,
raises an error that says how to fix it.
"""
import functools
import importlib.util
import os
from pathlib import Path

import numpy as np

BACKENDS = ("numpy", "cpu", "cuda")
BACKEND_HELP = ("numpy (the readable reference), cpu (the C++ kernels) or cuda (the CUDA kernels: an NVIDIA GPU, "
                "CuPy and a build with -Ccmake.define.MINIGPT_CUDA=ON)")  # for --backend in every command

# How idle OpenMP threads wait, read once by the OpenMP runtime when _core loads it. GNU OpenMP's
# default is to spin for 300,000 rounds (milliseconds) in every barrier and between parallel regions;
# when another process keeps a core busy, a spinning thread holds the very core that the thread it
# waits for needs, and a training step ran 4-15x slower (README, "Threads"). Sleeping at once
# (OMP_WAIT_POLICY=passive) avoids that, but every parallel region then pays a wake-up of 10-30 us,
# and a one-token generation step is dozens of regions a few tens of microseconds apart. So minigpt
# spins 1,000 rounds and then sleeps: meant to bridge the Python between two kernels, though a round is a
# `pause`, whose length depends on the CPU (9.4 ns on an Intel Xeon VM: ~10 us in all, which is why the
# smallest products of generation stay on one thread, csrc/matmul.cpp). It is set only while _core
# loads, and only if the user chose no policy, so other libraries keep theirs.
SPIN_ROUNDS = "1000"
_WAIT_POLICY_CHOSEN = "OMP_WAIT_POLICY" in os.environ or "GOMP_SPINCOUNT" in os.environ
if not _WAIT_POLICY_CHOSEN:
    os.environ["GOMP_SPINCOUNT"] = SPIN_ROUNDS
try:
    from minigpt import _core
    _CORE_IMPORT_ERROR = None
except ImportError as e:  # the package can be read and used with backend="numpy" without a build
    _core = None
    _CORE_IMPORT_ERROR = e
finally:
    if not _WAIT_POLICY_CHOSEN:
        del os.environ["GOMP_SPINCOUNT"]

try:  # built only with -Ccmake.define.MINIGPT_CUDA=ON; importing it needs no GPU
    from minigpt import _cuda
    _CUDA_IMPORT_ERROR = None
except ImportError as e:
    _cuda = None
    _CUDA_IMPORT_ERROR = e


def source_tree_hint():
    """A note for when this minigpt is a source checkout's folder that Python found first (`python -m` and
    `python -c` put the current folder first on the import path), hiding the installed, built one: the
    folder has no _core at all (an editable install's _core, found elsewhere, fails with another error)."""
    package = Path(__file__).resolve().parent.parent  # minigpt/
    if not (package.parent / "CMakeLists.txt").exists() or not (package.parent / "csrc").is_dir():
        return ""
    if "cannot import name '_core'" not in str(_CORE_IMPORT_ERROR) or any(package.glob("_core*")):
        return ""
    return (f" This minigpt was imported from the source folder {package}, which holds no build: if you "
            "installed it with `pip install .`, run from another folder (Python looks in the current folder "
            "first), or install it with `pip install -e .` so that the source folder is the installed one.")


@functools.lru_cache(maxsize=None)
def cuda_problem():
    """Why backend="cuda" cannot run in this process, or None when it can (looked up once)."""
    if _cuda is None:
        built = importlib.util.find_spec("minigpt._cuda") is not None
        why = f"it does not load: {_CUDA_IMPORT_ERROR}" if built else "it was not built"
        return (f"backend='cuda' needs the compiled extension minigpt._cuda, and {why}. Build it with "
                "`pip install . -Ccmake.define.MINIGPT_CUDA=ON` (needs the CUDA compiler nvcc on PATH) from the "
                "repository root, or use backend='cpu'.")
    try:
        import cupy
    except ImportError as e:
        return (f"backend='cuda' keeps its arrays in CuPy, which is not importable ({e}). Install it with "
                "`pip install cupy-cuda13x` (or `pip install .[cuda]`; cupy-cuda12x for CUDA 12), or use "
                "backend='cpu'.")
    if not cupy.cuda.is_available():
        return "backend='cuda' needs an NVIDIA GPU with its driver, and CuPy finds none here; use backend='cpu'."
    return None


def check_backend(backend):
    """Raise a clear error if `backend` is unknown or cannot run here; return it otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cpu" and _core is None:
        raise RuntimeError(
            "backend='cpu' needs the compiled extension minigpt._core, which is not importable "
            f"({_CORE_IMPORT_ERROR}). Build it with `pip install .` (or `pip install -e .` for "
            f"development) from the repository root, or use backend='numpy'.{source_tree_hint()}"
        )
    if backend == "cuda":
        if cuda_problem() is not None:
            raise RuntimeError(cuda_problem())
        _apply_tf32_environment()
        _apply_cupy_pool_environment()
    return backend


@functools.lru_cache(maxsize=None)
def _apply_tf32_environment():
    """MINIGPT_TF32=1 turns TF32 on, once, the first time backend="cuda" is checked (unset or 0: off)."""
    value = os.environ.get("MINIGPT_TF32", "0").strip()
    if value not in ("0", "1"):
        raise ValueError(f"MINIGPT_TF32 must be 0 or 1, got {value!r}")
    _cuda.set_tf32(value == "1")


@functools.lru_cache(maxsize=None)
def _apply_cupy_pool_environment():
    """MINIGPT_CUPY_NO_POOL=1 gives every CuPy array a cudaMalloc of its own (benchmarks/cuda_check.sh sets it under
    compute-sanitizer): a read past an array is then a read past an allocation, which memcheck reports, where in
    CuPy's pool it would land in a neighbouring array unseen."""
    if os.environ.get("MINIGPT_CUPY_NO_POOL") == "1":
        import cupy
        getattr(cupy.cuda, "set_allocator", lambda allocator: None)(None)  # (the emulator's CuPy has no pool)


def core(backend):
    """The extension behind a backend: _core for "cpu", _cuda for "cuda", None for "numpy" (after check_backend)."""
    return {"numpy": None, "cpu": _core, "cuda": _cuda}[check_backend(backend)]


def core_info():
    """Threads and build facts of the C++ extension, e.g. for the banner printed by every run."""
    info = core("cpu").info()
    if _WAIT_POLICY_CHOSEN:
        info["omp_wait"] = ", ".join(f"{k}={os.environ[k]}" for k in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
                                     if k in os.environ)
    else:
        info["omp_wait"] = f"GOMP_SPINCOUNT={SPIN_ROUNDS}, then sleep (minigpt's default)"
    return info


def describe_backend(backend):
    """One line for a run's banner: the backend and what it runs on ("cpu (C++ kernels, 2 threads, SIMD avx512)")."""
    if backend == "cpu":
        info = core_info()
        threads = info["num_threads"]
        return f"cpu (C++ kernels, {threads} thread{'s' if threads != 1 else ''}, SIMD {info['simd']})"
    if backend == "cuda":
        info = cuda_info()
        return f"cuda (CUDA kernels on {info['device']}, compute capability {info['compute_capability']})"
    return backend


def cuda_info():
    """The GPU and the build of the CUDA extension: device name, compute capability, CUDA versions, TF32."""
    return {**core("cuda").info(), "tf32": core("cuda").tf32()}


def set_cuda_tf32(on):
    """Let backend="cuda" matmuls use TF32 tensor cores (on) or float32 arithmetic (off, the default).

    TF32 rounds the inputs of each product to 10 bits of mantissa and sums in float32: several times
    faster on Ampere and newer GPUs, with relative errors near 1e-3 instead of 1e-6 (as PyTorch's
    allow_tf32). Attention and every other op stay float32. The environment variable MINIGPT_TF32=1
    turns it on for a whole process, e.g. `MINIGPT_TF32=1 minigpt pretrain --backend cuda`.
    """
    core("cuda").set_tf32(bool(on))


def array_module(x):
    """NumPy for host arrays, CuPy for device arrays: lets op code create arrays where x lives."""
    return np if type(x).__module__.split(".")[0] != "cupy" else __import__("cupy")


def to_backend(x, backend):
    """The host array x where `backend` keeps its arrays: a copy on the GPU for "cuda", x itself otherwise.

    Layers make their parameters on the host from the seeded generator, so every backend starts from
    the same weights, and move them once with this.
    """
    if check_backend(backend) == "cuda":
        import cupy
        return cupy.asarray(x)
    return x


def to_host(x):
    """x as a NumPy array: a copy from the GPU for a CuPy array, x itself otherwise (for files and sampling)."""
    return x.get() if array_module(x) is not np else x


# The compiled kernels check every argument in their bindings; NumPy would broadcast a wrong shape into a
# silently wrong answer (a bias of shape (1,) added to every column, a dropout_p of 1 dividing by zero, an id
# of -1 reading the last row). So the NumPy references check the same things, in the bindings' words
# (csrc/bindings.cpp). np.shape reads .shape where there is one: a CuPy array stays on the GPU.

def check_same_shape(op, name, array, ref_name, ref):
    """A ValueError unless array has exactly the shape of ref."""
    if np.shape(array) != np.shape(ref):
        raise ValueError(f"{op}: {name} must have the shape of {ref_name} {np.shape(ref)}, got {np.shape(array)}")


def check_shape(op, name, array, shape, letters=None):
    """A ValueError unless array has this shape; letters ("(N,)") name its dimensions in the message."""
    if np.shape(array) != tuple(shape):
        named = f"{letters} = {tuple(shape)}" if letters else f"{tuple(shape)}"
        raise ValueError(f"{op}: {name} must have shape {named}, got {np.shape(array)}")


def check_dropout_p(op, dropout_p):
    if not 0.0 <= dropout_p < 1.0:  # (written so that NaN fails too)
        raise ValueError(f"{op}: dropout_p must be in [0, 1), got {dropout_p!r}")


def check_ids(op, idx):
    """Ids must be integers: NumPy would read a boolean array as a mask (picking rows 0 and 2 of [True, False,
    True]) and refuse floats only with a message about indexing."""
    if idx.dtype.kind not in "iu":
        raise TypeError(f"{op}: ids must be an integer array, got {idx.dtype}")


def check_rows(op, idx, rows):
    """Every index in [0, rows): NumPy would read index -1 as the last row and fail only past the end.
    On CuPy arrays this reads two numbers back from the GPU, which waits for the work queued before it."""
    if idx.size and (int(idx.min()) < 0 or int(idx.max()) >= rows):
        bad = int(idx.min()) if int(idx.min()) < 0 else int(idx.max())
        raise ValueError(f"{op}: index {bad} out of range for a table of {rows} rows")


def check_targets(op, targets, logits, check_range=True):
    """One target per row of logits and, with check_range, each below the number of classes (negative ones
    mark padding). The range is a read back from the GPU on CuPy arrays: callers that checked the targets
    where they came from pass check_range=False."""
    N, V = np.shape(logits)
    if np.shape(targets) != (N,):
        raise ValueError(f"{op}: targets must be a contiguous {(N,)} array, one per row of logits, got "
                         f"{np.shape(targets)}")
    if check_range and N and int(targets.max()) >= V:
        row = int(array_module(targets).argmax(targets >= V))  # the first row out of range, as the C++ check
        raise ValueError(f"{op}: target {int(targets[row])} at row {row} is out of range for {V} classes")

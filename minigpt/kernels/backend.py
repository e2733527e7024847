"""Backend selection: the one place that imports the compiled extension minigpt._core.

backend="numpy" runs each op's NumPy reference (any float dtype; host or CuPy arrays);
backend="cpu" runs the C++/OpenMP kernels (float32, C-contiguous). Nothing falls back silently:
asking for "cpu" when the extension was not built raises an error that says how to build it.
"""
import numpy as np

BACKENDS = ("numpy", "cpu")

try:
    from minigpt import _core
    _CORE_IMPORT_ERROR = None
except ImportError as e:  # the package can be read and used with backend="numpy" without a build
    _core = None
    _CORE_IMPORT_ERROR = e


def check_backend(backend):
    """Raise a clear error if `backend` is unknown or not built; return it otherwise."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "cpu" and _core is None:
        raise RuntimeError(
            "backend='cpu' needs the compiled extension minigpt._core, which is not importable "
            f"({_CORE_IMPORT_ERROR}). Build it with `pip install .` (or `pip install -e .` for "
            "development) from the repository root, or use backend='numpy'."
        )
    return backend


def core(backend):
    """The extension module when backend is "cpu", None for "numpy" (after check_backend)."""
    return _core if check_backend(backend) == "cpu" else None


def core_info():
    """Threads and build facts of the C++ extension, e.g. for the banner printed by every run."""
    return core("cpu").info()


def array_module(x):
    """NumPy for host arrays, CuPy for device arrays: lets op code create arrays where x lives."""
    return np if type(x).__module__.split(".")[0] != "cupy" else __import__("cupy")

import os
import subprocess
import sys

import numpy as np
import pytest

import minigpt
from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error

if os.environ.get("MINIGPT_REQUIRE_CORE") and kernels._core is None:
    # CI sets this: there, a missing extension is a build failure, not a reason to skip tests.
    raise RuntimeError(f"MINIGPT_REQUIRE_CORE is set but minigpt._core is not importable: {kernels._CORE_IMPORT_ERROR}")

if os.environ.get("MINIGPT_CUPY_NO_POOL") == "1" and kernels.cuda_problem() is None:
    kernels.check_backend("cuda")  # cuda_check.sh's memcheck pass: CuPy's pool off before any test allocates

requires_core = pytest.mark.skipif(kernels._core is None, reason="minigpt._core is not built (pip install .)")


HOST_BACKEND = "cpu" if kernels._core is not None else "numpy"  # "the CPU run" that the GPU's is compared with


def cupy_or_skip_module():
    """CuPy, for a test module of backend="cuda"; the whole module is skipped where that backend cannot run
    (no minigpt._cuda, no CuPy, or no GPU), except under MINIGPT_REQUIRE_CUDA=1 (set by the GPU check
    script and the CUDA emulator), where it is an error."""
    if kernels.cuda_problem() is not None:
        if os.environ.get("MINIGPT_REQUIRE_CUDA") == "1":
            raise RuntimeError(f"MINIGPT_REQUIRE_CUDA=1 but backend='cuda' cannot run: {kernels.cuda_problem()}")
        pytest.skip(kernels.cuda_problem(), allow_module_level=True)
    return pytest.importorskip("cupy")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def assert_gradient_matches(analytic, f, x, df, tol, name):
    """A parameter's backward gradient against central differences of f, and proof that the parameter is
    connected at all: rel_error is 0 when both gradients are 0, so a parameter that forward forgot (and
    backward too) would otherwise pass."""
    numeric = numerical_gradient(f, x, df)
    assert np.linalg.norm(numeric) > 1e-8, f"{name}: no gradient reaches it (is it used in forward?)"
    assert rel_error(analytic, numeric) < tol, name


def dropout_hash_top24(seed, counter):
    """The top 24 bits of splitmix64 of seed + counter * 0x9E3779B97F4A7C15, in plain Python integers: attention
    weight number counter - 1 (flat, counted from 0) is kept when they are >= p * 2^24. Written out here, apart from
    the three implementations it checks (kernels/attention.py, csrc/attention_ops.h, csrc/cuda/common.cuh)."""
    mask64 = (1 << 64) - 1
    z = (seed + counter * 0x9E3779B97F4A7C15) & mask64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask64
    return (z ^ (z >> 31)) >> 40


def child_pythonpath():
    """PYTHONPATH for a child interpreter that must import this minigpt: its folder first, then the caller's own
    entries. (Run the child outside the repository root, which would put the source tree, without _core, first.)"""
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minigpt.__file__)))
    return os.pathsep.join([package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))])


def run_with_threads(script, threads, tmp_path):
    """Run `script` in a fresh interpreter with OMP_NUM_THREADS=threads; return the arrays it saved
    (the script writes an .npz to the path it gets as sys.argv[1])."""
    path = tmp_path / f"threads{threads}.npz"
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=child_pythonpath())
    # cwd=tmp_path: from the repository root, the child would import the source tree, which has no _core
    result = subprocess.run([sys.executable, "-c", script, str(path)], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(np.load(path))


def counts_host_reads(test):
    """Marks a test that counts what the host reads back from the GPU: only the CUDA emulator's CuPy counts."""
    import cupy
    return pytest.mark.skipif(not hasattr(cupy, "host_reads"),
                              reason="the CUDA emulator's CuPy counts what the host reads from the GPU")(test)


def host_reads_of(step):
    """The values the host reads back from the GPU in one call of step(), after a first call to warm up. On a
    GPU each read waits for all the work queued before it, which then idles until the host queues more."""
    import cupy
    step()
    before = cupy.host_reads
    step()
    return cupy.host_reads - before

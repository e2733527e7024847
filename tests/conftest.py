import os
import subprocess
import sys

import numpy as np
import pytest

import minigpt
from minigpt import kernels

if os.environ.get("MINIGPT_REQUIRE_CORE") and kernels._core is None:
    # CI sets this: there, a missing extension is a build failure, not a reason to skip tests.
    raise RuntimeError(f"MINIGPT_REQUIRE_CORE is set but minigpt._core is not importable: {kernels._CORE_IMPORT_ERROR}")

requires_core = pytest.mark.skipif(kernels._core is None, reason="minigpt._core is not built (pip install .)")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def run_with_threads(script, threads, tmp_path):
    """Run `script` in a fresh interpreter with OMP_NUM_THREADS=threads; return the arrays it saved
    (the script writes an .npz to the path it gets as sys.argv[1])."""
    path = tmp_path / f"threads{threads}.npz"
    # the folder holding the minigpt package, so the child imports this minigpt
    package_root = os.path.dirname(os.path.dirname(os.path.abspath(minigpt.__file__)))
    pythonpath = [package_root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), PYTHONPATH=os.pathsep.join(pythonpath))
    # cwd=tmp_path: from the repository root, the child would import the source tree, which has no _core
    result = subprocess.run([sys.executable, "-c", script, str(path)], env=env, cwd=tmp_path, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return dict(np.load(path))

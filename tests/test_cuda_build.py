"""The CUDA sources compile wherever nvcc is, GPU or not: CMake configures the project with
MINIGPT_CUDA=ON in a scratch folder and builds minigpt._cuda for the default architectures, sm_80 and
sm_90a (the H100's, with the wgmma instructions of the Hopper-only TF32 kernel), so the kernels cannot rot
between runs on a GPU machine. It takes one to three minutes on two cores, so it runs in CI (CI set)
or when MINIGPT_TEST_CUDA_BUILD=1, and is skipped without nvcc, CMake or the pybind11 package (whose
CMake files the build needs)."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.skipif(not (os.environ.get("CI") or os.environ.get("MINIGPT_TEST_CUDA_BUILD") == "1"),
                    reason="compiles for minutes: runs in CI or with MINIGPT_TEST_CUDA_BUILD=1")
@pytest.mark.skipif(shutil.which("nvcc") is None or shutil.which("cmake") is None, reason="needs nvcc and cmake")
def test_cuda_extension_compiles(tmp_path):
    pybind11 = pytest.importorskip("pybind11")
    configure = ["cmake", "-S", str(ROOT), "-B", str(tmp_path), "-DMINIGPT_CUDA=ON",
                 "-DCMAKE_CUDA_ARCHITECTURES=80;90a",
                 f"-Dpybind11_DIR={pybind11.get_cmake_dir()}", f"-DPython_EXECUTABLE={sys.executable}"]
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    for command in (configure, ["cmake", "--build", str(tmp_path), "--target", "_cuda", "-j", "2"]):
        result = subprocess.run(command, capture_output=True, text=True, timeout=900)
        assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert list(tmp_path.glob("_cuda*")), "the build finished but made no _cuda module"

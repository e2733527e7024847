"""The C++ kernels compile for ARM64, where only their portable paths run (an AVX-only line outside
`#if defined(__x86_64__)` is an error there, which no x86-64 build notices):

- with GCC's cross compiler (`aarch64-linux-gnu-g++`, Debian's g++-aarch64-linux-gnu), as on an ARM64
  Linux machine, with OpenMP;
- with ziglang's clang (`pip install ziglang`), as on a Mac with Apple silicon, without OpenMP (Apple's
  clang has none).

Each compiles every csrc/*.cpp but the Python bindings, with the flags CMakeLists.txt gives, and must
print no warning. Skipped where the compiler is missing; .ci/run installs the GCC one where apt can.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = sorted(p for p in (ROOT / "csrc").glob("*.cpp") if p.name != "bindings.cpp")
FLAGS = ["-std=c++17", "-O3", "-Wall", "-fno-math-errno", f"-I{ROOT / 'csrc'}"]  # CMakeLists.txt's

TOOLCHAINS = {
    "gcc-aarch64-linux": (["aarch64-linux-gnu-g++", "-fopenmp", "-DMINIGPT_OPENMP=1"],
                          shutil.which("aarch64-linux-gnu-g++") is not None),
    "clang-aarch64-macos": ([sys.executable, "-m", "ziglang", "c++", "-target", "aarch64-macos",
                             "-Wno-source-uses-openmp"],
                            importlib.util.find_spec("ziglang") is not None),
}


@pytest.mark.slow
@pytest.mark.parametrize("toolchain", TOOLCHAINS)
def test_kernels_compile_for_arm64_without_warnings(toolchain, tmp_path):
    compiler, available = TOOLCHAINS[toolchain]
    if not available:
        pytest.skip(f"{toolchain}: {compiler[0] if compiler[0] != sys.executable else 'ziglang'} is not installed")
    # zig reuses a cached object without printing its warnings again: give it an empty cache
    env = dict(os.environ, ZIG_GLOBAL_CACHE_DIR=str(tmp_path / "zig"), ZIG_LOCAL_CACHE_DIR=str(tmp_path / "zig"))
    probe = subprocess.run([*compiler, "-x", "c++", "-", "-c", "-o", str(tmp_path / "probe.out")],
                           input="int main() { return 0; }\n", capture_output=True, text=True, timeout=600, env=env)
    if probe.returncode != 0:  # a half-installed toolchain (CI installs it best-effort): not our code's fault
        pytest.skip(f"{toolchain}: the compiler cannot build an empty program: {probe.stderr[-500:]}")

    def compile_one(source):
        command = [*compiler, *FLAGS, "-c", str(source), "-o", str(tmp_path / f"{source.stem}.o")]
        return source.name, subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)

    assert SOURCES, "no C++ sources found"
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(compile_one, SOURCES))
    failed = {name: r.stderr[-2000:] for name, r in results if r.returncode != 0 or r.stderr.strip()}
    assert not failed, f"{toolchain}: errors or warnings in {sorted(failed)}:\n" + "\n".join(failed.values())
    assert len(list(tmp_path.glob("*.o"))) == len(SOURCES)

"""Run the CUDA tests on the CUDA emulator: backend="cuda" without a GPU, slowly, on the CPU.

    python tests/cuda_emulator/run.py -q                   # tests/test_cuda_*.py: kernels, model, tasks
    python tests/cuda_emulator/run.py tests/test_cuda_kernels.py -k attention -x
    python tests/cuda_emulator/run.py --memcheck -q        # built with AddressSanitizer: out-of-bounds accesses

It builds the real csrc/cuda/ sources and bindings with g++ against include/cuda_runtime.h (build.py),
then runs pytest with this folder first on PYTHONPATH: sitecustomize.py loads the build as
minigpt._cuda in every Python process, and `import cupy` finds the NumPy-backed stand-in (cupy/).
What passes here has the right indexing, masking, barriers and shuffles; speed and true concurrency
are what it cannot check, which only a GPU does (benchmarks/cuda_check.sh).
"""
import os
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent
DEFAULT_TESTS = [str(ROOT / "tests" / f"test_cuda_{part}.py") for part in ("kernels", "bad_input", "model", "tasks")]


def names_tests(arg):
    """Whether a pytest argument picks tests (a file, folder or node id) rather than being an option."""
    return not arg.startswith("-") and (arg.endswith(".py") or "::" in arg or os.path.isdir(arg))


def emulator_environment(memcheck=False):
    """The environment under which a Python process runs backend="cuda" on the emulator (builds it first)."""
    sys.path.insert(0, str(HERE))
    from build import asan_preload, build
    path = build(memcheck=memcheck)
    pythonpath = [str(HERE)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    env = {**os.environ, "MINIGPT_CUDA_EMULATOR": str(path), "PYTHONPATH": os.pathsep.join(pythonpath),
           "MINIGPT_REQUIRE_CUDA": "1"}  # a CUDA test module that cannot run is an error, not a skip
    if memcheck:  # Python itself is not built with AddressSanitizer: its runtime must be loaded first
        env.update(LD_PRELOAD=asan_preload(), ASAN_OPTIONS="detect_leaks=0")
    return env


def main(argv):
    memcheck = "--memcheck" in argv
    argv = [arg for arg in argv if arg != "--memcheck"]
    env = emulator_environment(memcheck)
    print(f"minigpt._cuda emulated on the CPU: {env['MINIGPT_CUDA_EMULATOR']}", flush=True)
    # pytest as the `pytest` command runs it: the source tree in the current folder must not shadow
    # the installed minigpt (with its compiled _core), as `python -m pytest` would let it
    launcher = ("import sys; sys.path[:] = [p for p in sys.path if p not in ('', '.')]; import pytest; "
                "sys.exit(pytest.main(sys.argv[1:]))")
    tests = [] if any(names_tests(arg) for arg in argv) else DEFAULT_TESTS
    if not any(arg.startswith(("--capture", "-s")) for arg in argv):
        # a sanitizer (alignment always, AddressSanitizer with --memcheck) stops the process at once: its
        # report must not wait in pytest's captured output
        argv = ["--capture=sys", *argv]
    return subprocess.call([sys.executable, "-c", launcher, *tests, *argv], env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

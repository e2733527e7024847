"""The CUDA emulator (tests/cuda_emulator/): CUDA kernels checked on a CPU, for machines without a GPU.

Its own semantics first (selftest.cu: barriers, exited threads, shuffles, atomics, tensor-core mma,
TF32 rounding, asynchronous copies, launch limits, a divergent barrier reported, a missing barrier
visible), and the rewrite that turns a .cu file into C++. Then the whole CUDA test suite
(tests/test_cuda_kernels.py, test_cuda_bad_input.py, test_cuda_model.py, test_cuda_tasks.py), on the real csrc/cuda/
sources built for the emulator: a few minutes on two cores, so it runs in CI (CI set) or with
MINIGPT_TEST_CUDA_EMULATOR=1, like tests/test_cuda_build.py.
"""
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EMULATOR = Path(__file__).resolve().parent / "cuda_emulator"


def load_by_path(name, path):
    """A module of tests/cuda_emulator/, loaded by path: putting its folder on sys.path would let `import cupy`
    in later tests find the emulator's NumPy stand-in instead of the real CuPy."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


build = load_by_path("cuda_emulator_build", EMULATOR / "build.py")

needs_gxx = pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")


def has_asan():
    """Whether g++ has the AddressSanitizer runtime (it prints just the name when it has not)."""
    found = subprocess.run(["g++", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    return os.path.isabs(found)


def test_launch_rewrite_keeps_kernel_config_and_arguments():
    src = ("    kernel<D><<<grid, kThreads, smem, L.stream>>>(out, f(a, b),\n        c);\n"
           "    KERNEL<true, false><<<GRID, BLOCK>>>(__VA_ARGS__);\n")
    assert build.rewrite(src) == (
        "    ::emu::launch(kernel<D>, grid, kThreads, smem, L.stream, [&] { kernel<D>(out, f(a, b),\n        c); });\n"
        "    ::emu::launch(KERNEL<true, false>, GRID, BLOCK, 0, nullptr, [&] { KERNEL<true, false>(__VA_ARGS__); });\n")


def test_dynamic_shared_memory_rewrite():
    assert build.rewrite("    extern __shared__ __align__(16) float smem[];") == \
        "    float* smem = ::emu::dynamic_shared<float>();"


def test_launch_rewrite_rejects_a_malformed_launch():
    with pytest.raises(ValueError, match="configuration values"):
        build.rewrite("k<<<grid>>>(x);")


@needs_gxx
def test_emulator_semantics(tmp_path):
    program = build.build_program(EMULATOR / "selftest.cu", tmp_path / "selftest")
    done = subprocess.run([str(program)], capture_output=True, text=True, timeout=120)
    lines = done.stdout.splitlines()
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(lines) == 12 and all(line.endswith(" ok") for line in lines), done.stdout


@needs_gxx
def test_memcheck_build_stops_an_out_of_bounds_read(tmp_path):
    if not has_asan():
        pytest.skip("g++ has no AddressSanitizer runtime here")
    program = build.build_program(EMULATOR / "selftest.cu", tmp_path / "selftest", memcheck=True)
    done = subprocess.run([str(program), "--out-of-bounds"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "ASAN_OPTIONS": "detect_leaks=0"})
    assert done.returncode != 0 and "ran to the end" not in done.stdout
    assert "heap-buffer-overflow" in done.stderr and "out_of_bounds_kernel" in done.stderr, done.stderr[-3000:]
    assert "False positive" not in done.stderr  # the fibers' stack switches are announced to AddressSanitizer


@needs_gxx
def test_every_build_stops_a_misaligned_vector_read(tmp_path):
    program = build.build_program(EMULATOR / "selftest.cu", tmp_path / "selftest")
    done = subprocess.run([str(program), "--misaligned"], capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "ran to the end" not in done.stdout
    assert "misaligned address" in done.stderr and "selftest.cu" in done.stderr, done.stderr[-3000:]


def slow_emulator_run(test):
    """Marks a test that runs tests on the emulator: minutes, so only in CI or with MINIGPT_TEST_CUDA_EMULATOR=1."""
    wanted = os.environ.get("CI") or os.environ.get("MINIGPT_TEST_CUDA_EMULATOR") == "1"
    test = pytest.mark.skipif(not wanted, reason="takes minutes: runs in CI or with MINIGPT_TEST_CUDA_EMULATOR=1")(test)
    return pytest.mark.slow(needs_gxx(test))


def run_on_the_emulator(*pytest_args, env=None):
    """Run pytest on the emulator (run.py) with these arguments; fail with its output unless every test passed."""
    pytest.importorskip("pybind11")
    done = subprocess.run([sys.executable, str(EMULATOR / "run.py"), "-q", "-p", "no:cacheprovider", *pytest_args],
                          capture_output=True, text=True, timeout=1800, env={**os.environ, **(env or {})})
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else ""
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-3000:]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary, summary


# The whole CUDA test suite (run.py's default), in two halves of about equal time, so that `pytest -n 2`
# can run them side by side
SUITE_HALVES = {"kernels": ["test_cuda_kernels.py"],
                "model-and-tasks": ["test_cuda_model.py", "test_cuda_tasks.py", "test_cuda_bad_input.py"]}


@slow_emulator_run
@pytest.mark.parametrize("half", SUITE_HALVES)
def test_cuda_test_suite_passes_on_the_emulator(half):
    tests = Path(__file__).resolve().parent
    run_on_the_emulator(*(str(tests / name) for name in SUITE_HALVES[half]))


def test_the_halves_are_the_whole_cuda_suite():
    run = load_by_path("cuda_emulator_run", EMULATOR / "run.py")
    assert sorted(Path(path).name for path in run.DEFAULT_TESTS) == sorted(sum(SUITE_HALVES.values(), []))


@slow_emulator_run
def test_kernels_pass_on_an_emulated_99_kib_gpu():
    # GPUs of compute capability 8.6 and 8.9 give a block at most 99 KiB of shared memory: the TF32 matmul
    # then runs mma.sync's two-stage pipeline (the emulator reports 8.9, so not Hopper's wgmma, whose two
    # tests by name are left out), and attention at head size 64 must fit as well
    run_on_the_emulator(str(Path(__file__).resolve().parent / "test_cuda_kernels.py"), "-k",
                        "(tf32 or (attention and hs64)) and not (overlapped or truncation)",
                        env={"MINIGPT_CUDA_EMULATOR_SMEM_OPTIN": "101376"})


@slow_emulator_run
def test_first_look_at_every_kernel_passes_on_the_emulator(tmp_path):
    # benchmarks/cuda_smoke.py, the GPU check's first step: every kernel ok in a process of its own, so
    # nothing to route around (tests/test_cuda_check_routes.py covers the routes themselves)
    pytest.importorskip("pybind11")
    root = Path(__file__).resolve().parent.parent
    routes = tmp_path / "routes.sh"
    code = ("import subprocess, sys; sys.path.insert(0, sys.argv[1]); from run import emulator_environment; "
            "sys.exit(subprocess.run(sys.argv[2:], env=emulator_environment()).returncode)")
    done = subprocess.run([sys.executable, "-c", code, str(EMULATOR), sys.executable,
                           str(root / "benchmarks" / "cuda_smoke.py"), "--routes", str(routes), "--jobs", "2",
                           "--timeout", "600"], capture_output=True, text=True, timeout=1200)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    lines = done.stdout.strip().splitlines()
    assert "compute capability 9.0" in lines[0] and "TF32 matmul wgmma" in lines[0]
    outcomes = {line.split()[0]: line.split()[1] for line in lines[1:]}
    assert outcomes == {name: "ok" for name in outcomes} and len(outcomes) == 11, done.stdout
    assert routes.read_text() == "PYTEST_LEAVE_OUT=''\nBENCH_SKIP=''\n"

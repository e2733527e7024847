"""How the GPU check goes around kernels its first look finds broken (benchmarks/cuda_smoke.py's routes).

Pure logic, no GPU: which outcomes give which environment, pytest -k expression and bench_cuda.py
--skip names, and that the shell lines it writes give those values back when sourced. The first look
itself runs on the emulator in tests/test_cuda_emulator.py.
"""
import importlib.util
import os
import subprocess

import pytest
from _pytest.mark.expression import Expression

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def smoke():
    spec = importlib.util.spec_from_file_location("cuda_smoke", os.path.join(ROOT, "benchmarks", "cuda_smoke.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOPPER = {"float32_kernel": "cp.async", "tf32_kernel": "wgmma"}
AMPERE = {"float32_kernel": "cp.async", "tf32_kernel": "mma.sync"}


def all_ok(smoke, **changed):
    return {**{name: "ok" for name in smoke.CHECKS}, **changed}


def selected(expression, test_id):
    """Whether pytest -k expression keeps the test test_id (a word of it matches a part of the name)."""
    return Expression.compile(expression).evaluate(lambda word: word.lower() in test_id.lower())


def test_nothing_to_route_when_every_kernel_works(smoke):
    assert smoke.routes(all_ok(smoke, matmul_tf32_wgmma_overlapped="n/a"), HOPPER) == ({}, [], [], [])


def test_broken_wgmma_sends_tf32_to_mma_sync(smoke):
    env, leave_out, skip, notes = smoke.routes(
        all_ok(smoke, matmul_tf32="FAILED", matmul_tf32_wgmma_overlapped="FAILED"), HOPPER)
    assert env == {"MINIGPT_CUDA_TF32_KERNEL": "mma.sync"}
    assert skip == ["matmul_tf32_wgmma_overlapped"]
    expression = "not (" + " or ".join(f"({w})" for w in leave_out) + ")"
    assert not selected(expression, "test_matmul_tf32_matches_numpy_to_tf32_precision[False-False-matmul_tf32_wgmma_"
                                    "overlapped-127-129-131]")
    assert not selected(expression, "test_matmul_kernel_from_the_environment[tf32]")  # it asks for wgmma by name
    assert selected(expression, "test_matmul_kernel_from_the_environment[float32]")
    assert selected(expression, "test_matmul_tf32_matches_numpy_to_tf32_precision[False-False-matmul-127-129-131]")
    assert selected(expression, "test_tf32_training_step_is_close_to_float32")
    assert any("mma.sync" in note for note in notes)


def test_no_working_tf32_kernel_leaves_tf32_out(smoke):
    for used, outcomes in ((HOPPER, all_ok(smoke, matmul_tf32="WRONG", matmul_tf32_mma="FAILED")),
                           (AMPERE, all_ok(smoke, matmul_tf32="HUNG", matmul_tf32_mma="HUNG"))):
        env, leave_out, skip, _ = smoke.routes(outcomes, used)
        assert env == {} and "tf32" in leave_out and "tf32" in skip
    # on Ampere mma.sync is matmul's TF32 kernel: nothing to send it to
    assert smoke.routes(all_ok(smoke, matmul_tf32="FAILED"), AMPERE)[0] == {}


def test_broken_cp_async_matmul_sends_float32_to_staged(smoke):
    env, leave_out, _, _ = smoke.routes(all_ok(smoke, matmul="FAILED"), HOPPER)
    assert env == {"MINIGPT_CUDA_FLOAT32_KERNEL": "staged"} and leave_out == ["kernel_from_the_environment and float32"]
    env, _, _, notes = smoke.routes(all_ok(smoke, matmul="FAILED", matmul_staged="FAILED"), HOPPER)
    assert env == {} and any("nothing can go around" in note for note in notes)


def test_kernels_called_by_name_are_left_out_and_the_rest_are_said(smoke):
    _, leave_out, skip, notes = smoke.routes(all_ok(smoke, attention_forward_mma="WRONG", attention="FAILED"), HOPPER)
    assert skip == ["attention_forward_mma"]
    expression = "not (" + " or ".join(f"({w})" for w in leave_out) + ")"
    assert not selected(expression, "test_attention_matches_numpy[B2H3T17hs64-0.0-attention_forward_mma]")
    assert selected(expression, "test_attention_matches_numpy[B2H3T17hs64-0.0-flash]")
    assert any(note.startswith("attention failed, and the model needs it") for note in notes)


def test_broken_teaching_versions_leave_their_tests_out_and_no_timing(smoke):
    _, leave_out, skip, _ = smoke.routes(all_ok(smoke, teaching_versions="FAILED"), AMPERE)
    expression = "not (" + " or ".join(f"({w})" for w in leave_out) + ")"
    assert skip == []
    assert not selected(expression, "test_matmul_matches_numpy[False-False-7-13-5-matmul_naive]")
    assert not selected(expression, "test_matmul_matches_numpy[False-False-7-13-5-matmul_tiled]")
    assert not selected(expression, "test_attention_matches_numpy[B2H3T17hs64-0.0-naive]")
    assert selected(expression, "test_matmul_matches_numpy[False-False-7-13-5-matmul]")


def test_shell_lines_give_the_routes_back(smoke, tmp_path):
    _, leave_out, skip, _ = routes = smoke.routes(
        all_ok(smoke, matmul_tf32="FAILED", matmul_staged="WRONG", matmul_tf32_wgmma_overlapped="FAILED"), HOPPER)
    path = tmp_path / "routes.sh"
    path.write_text(smoke.shell_lines(*routes[:3]))
    shown = subprocess.run(["bash", "-c", f'. "{path}"; echo "$MINIGPT_CUDA_TF32_KERNEL"; echo "$PYTEST_LEAVE_OUT"; '
                                          'echo "$BENCH_SKIP"'], capture_output=True, text=True, check=True)
    tf32_kernel, expression, bench_skip = shown.stdout.splitlines()
    assert tf32_kernel == "mma.sync" and bench_skip.split() == skip
    Expression.compile(expression)  # pytest accepts it
    assert not selected(expression, "test_matmul_tuned_and_staged_agree_bit_for_bit[False-False-7-13-5]")
    assert not selected(expression, "test_matmul_kernel_from_the_environment[float32]")  # it calls matmul_staged too
    assert selected(expression, "test_matmul_matches_numpy[False-False-127-129-131-matmul]")
    assert len(leave_out) == 3
    nothing = tmp_path / "none.sh"
    nothing.write_text(smoke.shell_lines({}, [], []))
    shown = subprocess.run(["bash", "-c", f'. "{nothing}"; echo "[$PYTEST_LEAVE_OUT][$BENCH_SKIP]"'],
                           capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[][]"

"""The FMA peak that the benchmarks and tutorial 05 compare against (csrc/fma_peak.cpp): its result and its
refusals. Its figures are measurements, printed by the benchmarks; nothing here times anything."""
import pytest
from conftest import requires_core

from minigpt import kernels

pytestmark = requires_core


def test_a_measurement_per_round_on_the_path_and_threads_asked_for():
    core = kernels._core
    result = core.fma_peak("portable", threads=1, seconds=0.01, rounds=3)
    assert result["simd"] == "portable" and result["threads"] == 1 and len(result["gflops"]) == 3
    assert all(g > 0 for g in result["gflops"]) and result["best"] == max(result["gflops"])
    assert sorted(result["gflops"])[1] == result["median"]
    default = core.fma_peak(seconds=0.01, rounds=1)  # the kernels' own path, on all their threads
    assert default["simd"] == core.info()["simd"] and default["threads"] == core.info()["num_threads"]


@pytest.mark.parametrize("kwargs, message", [
    ({"path": "sse9"}, "no SIMD path 'sse9'"),
    ({"threads": -1}, "threads must be >= 1"),
    ({"rounds": 0}, "rounds >= 1"),
    ({"seconds": 0.0}, "seconds in"),
    ({"seconds": float("nan")}, "seconds in"),
    ({"seconds": 61.0, "rounds": 1}, "seconds in"),  # over the 60 s cap
])
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        kernels._core.fma_peak(**{"seconds": 0.01, **kwargs})


def test_the_threads_that_ran_are_counted_not_those_asked_for(tmp_path):
    import os
    import subprocess
    import sys
    script = "import minigpt._core as c; print(c.fma_peak(threads=2, seconds=0.01, rounds=1)['threads'])"
    # run outside the repository: there the source folder, without a built _core, would shadow the installed package
    ran = subprocess.run([sys.executable, "-c", script], env={**os.environ, "OMP_THREAD_LIMIT": "1"}, cwd=tmp_path,
                         capture_output=True, text=True, check=True)
    assert ran.stdout.strip() == "1"  # OpenMP gave one: its FLOPs, not two threads' worth

#!/usr/bin/env bash
# The GPU check of the CUDA build, in one run (about 4-6 minutes on an H100, 8 at most):
#   1. build minigpt with its CUDA kernels, offline (no build isolation, nothing downloaded: it needs
#      scikit-build-core, pybind11, cmake, ninja, nvcc, numpy, cupy and torch already installed);
#   1b. a first look at every kernel on small shapes, in checks that each run in a process of their own
#      (benchmarks/cuda_smoke.py). A kernel that faults leaves its process's CUDA context unusable, and
#      so would fail every test and timing after it; instead, what the first look finds broken is routed
#      around for the rest of the run (matmul's other kernel where there is one, else its tests and
#      timings left out), and said;
#   2. run the CUDA tests, which must run rather than skip (MINIGPT_REQUIRE_CUDA=1), all of them
#      (no -x: one run should show every failure);
#   3. time the kernels and whole training steps against PyTorch eager (benchmarks/bench_cuda.py), each
#      part in a process of its own, for the same reason;
#   4. if time is left, a short compute-sanitizer memcheck pass, a racecheck pass on the cp.async
#      pipelines, and 5. tutorial 13 on the GPU.
# Logs (build, smoke, tests, bench, memcheck, tutorial) and bench_cuda.py's JSON (one file per part) go to
# $OUT when it is set (else /tmp/minigpt_cuda_check).
#
# usage, from anywhere:  bash benchmarks/cuda_check.sh [--quick]
#   CUDA_ARCHS (default 90a: the H100, with its wgmma instructions) picks the GPU generation to compile
#   for; PYTHON the interpreter.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOGS=${OUT:-/tmp/minigpt_cuda_check}
mkdir -p "$LOGS"
QUICK=${1:-}
status=0
phase() { echo; echo "=== $1  (t = ${SECONDS}s)"; }

phase "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
nvcc --version | tail -n 2
"$PY" -c "import sys, numpy, cupy, torch; print('python', sys.version.split()[0], '| numpy', numpy.__version__,
'| cupy', cupy.__version__, '| torch', torch.__version__, torch.version.cuda, '| GPU visible to torch:',
torch.cuda.is_available())"

phase "1. build (pip install -e . with MINIGPT_CUDA=ON, CUDA architectures ${CUDA_ARCHS:-90a})"
if ! timeout 420 "$PY" -m pip install --no-build-isolation --no-deps -e . \
        -Ccmake.define.MINIGPT_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a}" \
        >"$LOGS/build.log" 2>&1; then
    tail -n 60 "$LOGS/build.log"
    echo "BUILD FAILED (full log: $LOGS/build.log)"
    exit 1
fi
grep -E "minigpt:|Successfully" "$LOGS/build.log" || true
"$PY" -c "from minigpt import kernels; kernels.check_backend('cuda'); print('minigpt._cuda:', kernels.cuda_info())" \
    || { echo "minigpt._cuda does not load"; exit 1; }

phase "1b. a first look at every kernel, in checks that each run in a process of their own"
PYTEST_LEAVE_OUT="" BENCH_SKIP=""  # what the first look finds broken, as a pytest -k expression and names
rm -f "$LOGS/routes.sh" "$LOGS"/bench_*.log "$LOGS"/cuda_results_*.json  # nothing of an earlier run in $LOGS
timeout 150 "$PY" benchmarks/cuda_smoke.py --timeout 40 --routes "$LOGS/routes.sh" 2>&1 | tee "$LOGS/smoke.log"
smoke_rc=${PIPESTATUS[0]}
case $smoke_rc in
    0) smoke_said="every kernel ok" ;;
    1) smoke_said="SOME KERNELS FAILED (above)"; status=1 ;;
    *) smoke_said="DID NOT FINISH (rc $smoke_rc): nothing routed around"; status=1 ;;
esac
echo "first look: $smoke_said"
if [ -f "$LOGS/routes.sh" ]; then
    . "$LOGS/routes.sh"  # exports MINIGPT_CUDA_TF32_KERNEL / MINIGPT_CUDA_FLOAT32_KERNEL where needed
    grep -E "^export" "$LOGS/routes.sh" || true
    [ -z "$PYTEST_LEAVE_OUT" ] || echo "tests left out: -k \"$PYTEST_LEAVE_OUT\"; timings left out: $BENCH_SKIP"
fi
# A -k selection with the tests of broken kernels left out.
select_tests() { if [ -n "$PYTEST_LEAVE_OUT" ]; then echo "($1) and $PYTEST_LEAVE_OUT"; else echo "$1"; fi; }

phase "2. CUDA tests"
# One pytest process per module, for the same reason: a fault the first look missed spoils one module's run.
: >"$LOGS/tests.log"
for module in test_cuda_kernels test_cuda_bad_input test_cuda_model test_cuda_tasks; do
    MINIGPT_REQUIRE_CUDA=1 timeout 200 "$PY" -m pytest -q -rfE --tb=short -p no:cacheprovider \
        ${PYTEST_LEAVE_OUT:+-k "$PYTEST_LEAVE_OUT"} "tests/$module.py" 2>&1 | tee -a "$LOGS/tests.log" | tail -n 40
    module_rc=${PIPESTATUS[0]}
    echo "tests/$module.py: rc $module_rc" >>"$LOGS/tests.log"
    [ "$module_rc" -eq 0 ] || [ "$module_rc" -eq 5 ] || status=1  # 5: every test of the module left out
done

phase "3. benchmarks against PyTorch on the same GPU"
# Each part in its own process, within 330 s for all four (a part at most its own cap).
bench_start=$SECONDS
for part_cap in matmul:150 attention:90 training:180 profile:90; do
    part=${part_cap%:*} cap=${part_cap#*:} bench_left=$(( 330 - (SECONDS - bench_start) ))
    [ "$bench_left" -lt "$cap" ] && cap=$bench_left
    if [ "$cap" -lt 15 ]; then echo "bench $part: NOT RUN, out of time"; status=1; continue; fi
    timeout "$cap" "$PY" benchmarks/bench_cuda.py ${QUICK:+--quick} --parts "$part" ${BENCH_SKIP:+--skip $BENCH_SKIP} \
        --json "$LOGS/cuda_results_$part.json" 2>&1 | tee "$LOGS/bench_$part.log"
    part_rc=${PIPESTATUS[0]}
    [ "$part_rc" -eq 124 ] && echo "bench $part: STOPPED at its limit of $cap s"
    [ "$part_rc" -eq 0 ] || { status=1; echo "bench $part: FAILED (rc $part_rc)" >>"$LOGS/bench_$part.log"; }
done

# The last two checks only run in the time left of the 8 minutes (each needs at least a minute).
left() { echo $(( 470 - SECONDS )); }
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ -x "$SANITIZER" ] && [ -z "$QUICK" ] && [ "$(left)" -gt 60 ]; then  # also after failed tests: it may say why
    phase "4. compute-sanitizer memcheck on small shapes (out-of-bounds and misaligned accesses; $(left) s left)"
    MINIGPT_REQUIRE_CUDA=1 timeout $(( $(left) > 150 ? 150 : $(left) )) "$SANITIZER" --tool memcheck \
        --report-api-errors no --error-exitcode 9 \
        "$PY" -m pytest -q -x --tb=short -p no:cacheprovider tests/test_cuda_kernels.py \
        -k "$(select_tests "B2H3T17hs64 or B2H2T65hs80 or B1H2T70hs5 or B1H2T130hs128 or 127-129-131 or 130-257-8 \
            or 100-5000-70 or unaligned or softmax or layernorm or cross_entropy or embedding or adamw or gelu \
            or tf32_is_a_switch or bias_grad and (7-33 or 257-33 or 1000-384 or empty)")" \
        >"$LOGS/memcheck.log" 2>&1
    memcheck_rc=$?
    tail -n 15 "$LOGS/memcheck.log"
    case $memcheck_rc in
        0) echo "memcheck: clean" ;;
        124) echo "memcheck: stopped at its time limit (not a failure; see $LOGS/memcheck.log)" ;;
        *) echo "MEMCHECK FAILED (rc $memcheck_rc; see $LOGS/memcheck.log)"; status=1 ;;
    esac
elif [ ! -x "$SANITIZER" ]; then
    echo "memcheck: SKIPPED, compute-sanitizer not found (looked on PATH and in /usr/local/cuda/bin)"
fi

# Shared-memory races (a missing __syncthreads around the cp.async pipelines): racecheck on small float32
# and TF32 matmuls and the attention at head size 64, both passes.
if [ -x "$SANITIZER" ] && [ -z "$QUICK" ] && [ "$(left)" -gt 60 ]; then
    phase "4b. compute-sanitizer racecheck on the cp.async pipelines ($(left) s left)"
    MINIGPT_REQUIRE_CUDA=1 timeout $(( $(left) > 120 ? 90 : $(left) - 30 )) "$SANITIZER" --tool racecheck \
        --racecheck-report hazard --error-exitcode 9 \
        "$PY" -m pytest -q -x --tb=short -p no:cacheprovider tests/test_cuda_kernels.py \
        -k "$(select_tests "tf32_matches and False-False and (127-129-131 or 256-384-512) \
            or attention and B1H3T300hs64 and not naive or matmul_matches and 127-129-131 and not (staged or tiled or naive)")" \
        >"$LOGS/racecheck.log" 2>&1
    racecheck_rc=$?
    tail -n 8 "$LOGS/racecheck.log"
    case $racecheck_rc in
        0) echo "racecheck: clean" ;;
        124) echo "racecheck: stopped at its time limit (not a failure; see $LOGS/racecheck.log)" ;;
        *) echo "RACECHECK FAILED (rc $racecheck_rc; see $LOGS/racecheck.log)"; status=1 ;;
    esac
fi

if [ "$(left)" -gt 60 ]; then
    phase "5. tutorial 13 on the GPU ($(left) s left)"
    timeout "$(left)" "$PY" tutorials/13_cuda_kernels.py >"$LOGS/tutorial.log" 2>&1
    tutorial_rc=$?
    grep -E "^step [67]|you should|Error|assert" "$LOGS/tutorial.log" | tail -n 25
    [ "$tutorial_rc" -eq 0 ] && echo "tutorial: ran to the end" || { echo "TUTORIAL FAILED (rc $tutorial_rc)"; status=1; }
fi

phase "summary (the full logs and the cuda_results_*.json are in $LOGS)"
echo "first look: $smoke_said"
grep -E "  (WRONG|FAILED|HUNG) |^route:" "$LOGS/smoke.log"
grep -E "^tests/test_cuda_[a-z]+.py: rc|^[0-9]+ (passed|failed|deselected)|^=+ .*(passed|failed|error)" "$LOGS/tests.log"
for part in matmul attention training profile; do  # each part's tables, from its "ratio:" line on
    if [ ! -f "$LOGS/bench_$part.log" ]; then echo "bench $part: not run"; continue; fi
    sed -n '/^ratio: float32/,/^wrote /p' "$LOGS/bench_$part.log" | grep -v "^wrote "
    grep -E "^bench $part: FAILED" "$LOGS/bench_$part.log"
done
echo
echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED) after ${SECONDS}s"
exit $status

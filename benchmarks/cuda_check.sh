#!/usr/bin/env bash
# The GPU check of the CUDA build, in one run (about 4-6 minutes on an H100; CHECK_BUDGET, 530 s, at most):
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
#   for; PYTHON the interpreter; CHECK_BUDGET (default 530) the seconds the whole check may take: every
#   phase is cut to what is left of it, so the summary is printed before an outer limit (the device run's
#   600 s) stops the script. Run it with that outer limit above CHECK_BUDGET.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
LOGS=${OUT:-/tmp/minigpt_cuda_check}
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log "$LOGS/routes.sh" "$LOGS"/cuda_results_*.json*  # nothing of an earlier run in the summary
QUICK=${1:-}
BUDGET=${CHECK_BUDGET:-530}
status=0
smoke_said="not run"
phase() { echo; echo "=== $1  (t = ${SECONDS}s of ${BUDGET}s)"; }
left() { echo $(( BUDGET - SECONDS )); }
# capped WANT [RESERVE]: WANT seconds, or less so that RESERVE seconds of the budget are left after it; at least
# 1 (`timeout 0` would mean no limit at all): a caller skips its phase when the answer is too short to be of use
capped() {
    local want=$1 room=$(( BUDGET - SECONDS - ${2:-0} ))
    [ "$room" -lt "$want" ] && want=$room
    [ "$want" -lt 1 ] && want=1
    echo "$want"
}
# A Python process stuck in a CUDA call runs no signal handler: `timeout` kills it 10 s after its TERM.
limit() { timeout -k 10 "$@"; }

summary() {
    # The timings first and the verdicts last: the end of the output is what a device run shows when it is long.
    phase "summary (the full logs and the cuda_results_*.json are in $LOGS)"
    for part in matmul attention training profile; do  # each part's tables, from its "ratio:" line on
        if [ ! -f "$LOGS/bench_$part.log" ]; then echo "bench $part: not run"; continue; fi
        sed -n '/^ratio: float32/,/^wrote /p' "$LOGS/bench_$part.log" | grep -v "^wrote "
        grep -E "^bench $part: FAILED" "$LOGS/bench_$part.log"
    done
    echo
    for log in "$LOGS"/sanitize_*.log; do  # the first look's failures under compute-sanitizer (1c)
        [ -f "$log" ] && { echo "${log##*/}:"; grep -E "^=========" "$log" | grep -v "COMPUTE-SANITIZER" | head -n 8; }
    done
    echo "first look: $smoke_said"
    [ -f "$LOGS/smoke.log" ] && grep -E "  (WRONG|FAILED|HUNG) |^route:" "$LOGS/smoke.log"
    [ -f "$LOGS/tests.log" ] && grep -E "^tests/test_cuda_[a-z_]+.py: (rc|NOT RUN)|^[0-9]+ (passed|failed|deselected)|^=+ .*(passed|failed|error)" "$LOGS/tests.log"
    echo
    echo "overall: $([ $status -eq 0 ] && echo OK || echo FAILED) after ${SECONDS}s"
}
trap 'rc=$?; trap - EXIT; [ "$rc" -ne 0 ] && status=1; summary; exit $status' EXIT
trap 'echo "STOPPED by a signal at ${SECONDS}s"; exit 1' TERM INT

phase "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm --format=csv,noheader || true
if ! command -v nvcc >/dev/null && [ -x /usr/local/cuda/bin/nvcc ]; then export PATH="/usr/local/cuda/bin:$PATH"; fi
nvcc --version | tail -n 2
"$PY" -c "import sys, numpy, cupy, torch; print('python', sys.version.split()[0], '| numpy', numpy.__version__,
'| cupy', cupy.__version__, '| torch', torch.__version__, torch.version.cuda, '| GPU visible to torch:',
torch.cuda.is_available())"
# What the build and CuPy need, said in a line each before two minutes go into a build that cannot work: the
# Python headers (no extension builds without them), the tools, and CuPy compiling a kernel of its own (NVRTC;
# every test and check needs it, and it warms CuPy's kernel cache).
"$PY" - <<'EOF' || true
import os, shutil, sysconfig
include = sysconfig.get_paths()["include"]
print("Python.h:", "found" if os.path.exists(os.path.join(include, "Python.h")) else
      f"MISSING in {include}: no Python extension can be built here (the python3-dev headers)")
print("tools:", {tool: shutil.which(tool) for tool in ("nvcc", "cmake", "ninja", "compute-sanitizer")})
for module in ("scikit_build_core", "pybind11"):
    try:
        print(module, __import__(module).__version__)
    except Exception as e:
        print(module, "NOT IMPORTABLE:", e)
try:
    import cupy
    x = cupy.arange(8, dtype=cupy.float32)
    print("CuPy compiles and runs a kernel:", float((x * 2).sum()) == 56.0)
except Exception as e:
    print("CuPy CANNOT RUN A KERNEL of its own (NVRTC, CUDA headers?):", repr(e)[:300])
EOF

phase "1. build (pip install -e . with MINIGPT_CUDA=ON, CUDA architectures ${CUDA_ARCHS:-90a})"
# PIP_BREAK_SYSTEM_PACKAGES: a distribution's Python marked externally managed (PEP 668) refuses any pip
# install without it; older pips ignore the variable.
if PIP_BREAK_SYSTEM_PACKAGES=1 limit "$(capped 300 200)" "$PY" -m pip install --no-build-isolation --no-deps -e . \
        -Ccmake.define.MINIGPT_CUDA=ON -Ccmake.define.CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90a}" \
        >"$LOGS/build.log" 2>&1; then
    grep -E "minigpt:|Successfully" "$LOGS/build.log" || true
elif [ "$(capped 300 200)" -lt 60 ]; then  # (pip ran out of its time: a second build would not finish either)
    tail -n 40 "$LOGS/build.log"
    echo "BUILD FAILED, and too little of the budget is left for a second try (full log: $LOGS/build.log)"
    exit 1
else
    # pip, scikit-build-core or the editable install may be what failed, not the code: build the two modules
    # with CMake straight into the source tree (as tests/test_cuda_build.py does) and import them from there.
    tail -n 40 "$LOGS/build.log"
    echo "pip install FAILED (full log: $LOGS/build.log); building with CMake into minigpt/ instead"
    generator=()
    command -v ninja >/dev/null && generator=(-G Ninja)
    if limit "$(capped 300 200)" bash -c '
            cmake -S . -B build/direct "${@:2}" -DCMAKE_BUILD_TYPE=Release -DMINIGPT_CUDA=ON \
                -DCMAKE_CUDA_ARCHITECTURES="$0" -DPython_EXECUTABLE="$(command -v "$1")" \
                -Dpybind11_DIR="$("$1" -m pybind11 --cmakedir)" -DCMAKE_LIBRARY_OUTPUT_DIRECTORY="$PWD/minigpt" &&
            cmake --build build/direct -j "$(nproc)"' "${CUDA_ARCHS:-90a}" "$PY" "${generator[@]}" \
            >"$LOGS/build_direct.log" 2>&1; then
        export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"  # every process below, the tests' children too
        echo "built with CMake into minigpt/ (PYTHONPATH=$PYTHONPATH)"
    else
        tail -n 60 "$LOGS/build_direct.log"
        echo "BUILD FAILED both ways (full logs: $LOGS/build.log, $LOGS/build_direct.log)"
        exit 1
    fi
fi
"$PY" -c "from minigpt import kernels; kernels.check_backend('cuda'); print('minigpt._cuda:', kernels.cuda_info())" \
    || { echo "minigpt._cuda does not load"; exit 1; }

phase "1b. a first look at every kernel, in checks that each run in a process of their own"
PYTEST_LEAVE_OUT="" BENCH_SKIP=""  # what the first look finds broken, as a pytest -k expression and names
# 11 checks, 4 at a time: three rounds of at most 40 s each, less when the budget is short, so that the first
# look ends (and writes its routes) within its own limit
smoke_cap=$(capped 150 120) per_check=40
[ $(( (smoke_cap - 20) / 3 )) -lt "$per_check" ] && per_check=$(( (smoke_cap - 20) / 3 ))
[ "$per_check" -lt 10 ] && per_check=10
limit "$smoke_cap" "$PY" benchmarks/cuda_smoke.py --timeout "$per_check" --routes "$LOGS/routes.sh" 2>&1 \
    | tee "$LOGS/smoke.log"
smoke_rc=${PIPESTATUS[0]}
case $smoke_rc in
    0) smoke_said="every kernel ok" ;;
    1) smoke_said="SOME KERNELS FAILED (above)"; status=1 ;;
    *) smoke_said="DID NOT FINISH (rc $smoke_rc): nothing routed around"; status=1 ;;
esac
echo "first look: $smoke_said"
# A check the first look finds broken runs once more, at once, under compute-sanitizer with the tool for what
# it showed: a fault, memcheck (it names the kernel and, the build having -lineinfo, the source line, which a
# fault's "illegal memory access" does not); wrong numbers, racecheck; a hang, synccheck. CuPy's memory pool
# is off there (MINIGPT_CUPY_NO_POOL), so that a read past an array is a read past an allocation. At most two
# checks: this is the one place the run learns why, since the later sanitizer passes rarely find time left.
# Before the routes below are read: with them, a rerun of a matmul check would run the other kernel.
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)
if [ "$smoke_rc" -ne 0 ] && [ -x "$SANITIZER" ] && [ -f "$LOGS/smoke.log" ]; then
    while read -r name outcome; do
        case $outcome in FAILED) tool=memcheck ;; WRONG) tool=racecheck ;; *) tool=synccheck ;; esac
        t=$(capped 75 240)
        if [ "$t" -lt 20 ]; then echo "compute-sanitizer on $name: NOT RUN, out of time"; break; fi
        phase "1c. compute-sanitizer $tool on the first look's $name check (at most $t s)"
        MINIGPT_CUPY_NO_POOL=1 limit "$t" "$SANITIZER" --tool "$tool" --error-exitcode 9 \
            "$PY" benchmarks/cuda_smoke.py --one "$name" >"$LOGS/sanitize_$name.log" 2>&1
        echo "compute-sanitizer $tool on $name: rc $? (log: $LOGS/sanitize_$name.log)"
        grep -E "^=========" "$LOGS/sanitize_$name.log" | head -n 30
    done < <(awk '$2 ~ /^(FAILED|WRONG|HUNG)$/ {print $1, $2}' "$LOGS/smoke.log" | head -n 2)
fi

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
    cap=$(capped 200 90)  # 90 s kept for the timings and the summary
    if [ "$cap" -lt 20 ]; then echo "tests/$module.py: NOT RUN, out of time" | tee -a "$LOGS/tests.log"; status=1; continue; fi
    MINIGPT_REQUIRE_CUDA=1 limit "$cap" "$PY" -m pytest -q -rfE --tb=short -p no:cacheprovider --durations=5 \
        ${PYTEST_LEAVE_OUT:+-k "$PYTEST_LEAVE_OUT"} "tests/$module.py" 2>&1 | tee -a "$LOGS/tests.log" | tail -n 40
    module_rc=${PIPESTATUS[0]}
    [ "$module_rc" -eq 124 ] && echo "tests/$module.py: STOPPED at its time limit of $cap s"
    printf '\ntests/%s.py: rc %s\n' "$module" "$module_rc" >>"$LOGS/tests.log"  # (a stopped run ends mid-line)
    [ "$module_rc" -eq 0 ] || [ "$module_rc" -eq 5 ] || status=1  # 5: every test of the module left out
done

phase "3. benchmarks against PyTorch on the same GPU"
# Each part in its own process, at most its own cap and what is left of the budget; --quick (fewer shapes and
# steps) when under four minutes are left. A part stopped at its cap still writes the rows it measured.
BENCH_QUICK=$QUICK
if [ -z "$BENCH_QUICK" ] && [ "$(left)" -lt 240 ]; then BENCH_QUICK=--quick; echo "bench: --quick, $(left) s left"; fi
for part_cap in matmul:150 attention:90 training:180 profile:90; do
    part=${part_cap%:*} cap=$(capped "${part_cap#*:}" 10)
    if [ "$cap" -lt 15 ]; then echo "bench $part: NOT RUN, out of time"; status=1; continue; fi
    limit "$cap" "$PY" benchmarks/bench_cuda.py ${BENCH_QUICK:+--quick} --parts "$part" ${BENCH_SKIP:+--skip $BENCH_SKIP} \
        --json "$LOGS/cuda_results_$part.json" 2>&1 | tee "$LOGS/bench_$part.log"
    part_rc=${PIPESTATUS[0]}
    [ "$part_rc" -eq 124 ] && echo "bench $part: STOPPED at its limit of $cap s"
    [ "$part_rc" -eq 0 ] || { status=1; echo "bench $part: FAILED (rc $part_rc)" >>"$LOGS/bench_$part.log"; }
done

# The last checks only run in the time left of the budget (each needs at least a minute).
if [ -x "$SANITIZER" ] && [ -z "$QUICK" ] && [ "$(left)" -gt 60 ]; then  # also after failed tests: it may say why
    phase "4. compute-sanitizer memcheck on small shapes (out-of-bounds and misaligned accesses; $(left) s left)"
    MINIGPT_CUPY_NO_POOL=1 MINIGPT_REQUIRE_CUDA=1 limit "$(capped 150 20)" "$SANITIZER" --tool memcheck \
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
    MINIGPT_REQUIRE_CUDA=1 limit "$(capped 90 20)" "$SANITIZER" --tool racecheck \
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
    limit "$(capped 120 15)" "$PY" tutorials/13_cuda_kernels.py >"$LOGS/tutorial.log" 2>&1
    tutorial_rc=$?
    grep -E "^step [67]|you should|Error|assert" "$LOGS/tutorial.log" | tail -n 25
    case $tutorial_rc in
        0) echo "tutorial: ran to the end" ;;
        124) echo "tutorial: stopped at its time limit (not a failure; see $LOGS/tutorial.log)" ;;
        *) echo "TUTORIAL FAILED (rc $tutorial_rc)"; status=1 ;;
    esac
fi

exit $status

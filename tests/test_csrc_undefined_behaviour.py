"""The exponent bit trick of csrc/simd.h under GCC's undefined-behaviour sanitizer.

exp2_in_range builds 2^n by adding n << 23 to the bits of a float. Done in int32, the shift runs into
the sign bit and the sum overflows for every n < 0 (every softmax term below the max): undefined
behaviour that today's GCC happens to compile to the wanted wrap-around, and that a later optimiser
may not. simd.h does it in uint32, where wrapping is defined. This test compiles a small program on
the header with -fsanitize=undefined, which stops at the first undefined operation, and sweeps the
exponents of every float that the kernels can hand it, on all three vector widths, against
std::exp2. Skipped where there is no C++ compiler (the extension's build needs one).
"""
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPILER = shutil.which("g++") or shutil.which("c++")

PROGRAM = r"""
#include <cmath>
#include <cstdio>
#include "simd.h"

const char* matmul_simd_path() { return "portable"; }  // simd.h's declaration, defined in matmul.cpp

// 2^x for x from -300 to 0 (exp2_nonpositive: the row kernels' exp) and from -125 to 127
// (exp2_in_range: GELU's), in steps of 1/64, lane by lane in vectors of W floats.
template <typename V>
int sweep(bool nonpositive) {
    constexpr int W = Lanes<V>::W;
    const int first = nonpositive ? -300 * 64 : -125 * 64, last = nonpositive ? 0 : 127 * 64;
    int bad = 0;
    for (int i = first; i <= last; i += W) {
        V x;
        for (int k = 0; k < W; k++) x[k] = std::fmin((i + k) / 64.0f, last / 64.0f);
        const V in = x;
        if (nonpositive) exp2_nonpositive(x); else exp2_in_range(x);
        for (int k = 0; k < W; k++) {
            const double want = in[k] < -125.0f && nonpositive ? 0.0 : std::exp2(double(in[k]));
            if (std::fabs(x[k] - want) > 3e-7 * want) {
                if (bad++ < 5) std::printf("W=%d: 2^%g gave %g, not %g\n", W, in[k], x[k], want);
            }
        }
    }
    return bad;
}

int main() {
    int bad = 0;
    for (int nonpositive = 0; nonpositive < 2; nonpositive++) {
        bad += sweep<vec4>(nonpositive) + sweep<vec8>(nonpositive) + sweep<vec16>(nonpositive);
    }
    std::printf("%d wrong\n", bad);
    return bad == 0 ? 0 : 1;
}
"""


@pytest.mark.skipif(COMPILER is None, reason="no C++ compiler on this machine")
def test_exp2_bit_trick_has_no_undefined_behaviour(tmp_path):
    source, program = tmp_path / "exp2_ub.cpp", tmp_path / "exp2_ub"
    source.write_text(PROGRAM)
    build = subprocess.run([COMPILER, "-std=c++17", "-O1", "-fsanitize=undefined", "-fno-sanitize-recover=all",
                            f"-I{ROOT / 'csrc'}", str(source), "-o", str(program)],
                           capture_output=True, text=True, timeout=300)
    # a compiler without the sanitizer, or without its runtime library (-lubsan), is not our code's fault
    if build.returncode != 0 and ("sanitiz" in build.stderr or "ubsan" in build.stderr):
        pytest.skip(f"{COMPILER} has no undefined-behaviour sanitizer: {build.stderr[-300:]}")
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(program)], capture_output=True, text=True, timeout=120)
    # UBSan prints "runtime error: ..." and exits non-zero at the first undefined operation
    assert "runtime error" not in run.stderr, run.stderr[-2000:]
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert run.stdout.strip().endswith("0 wrong")

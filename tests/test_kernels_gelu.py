"""GELU kernels: the C++ version (x times a sigmoid, with a vectorised exp) against the NumPy reference, errors."""
import numpy as np
import pytest

from conftest import requires_core, run_with_threads
from minigpt import kernels

pytestmark = requires_core


@pytest.mark.parametrize("n", [1, 7, 33, 1000, 100_003])
def test_matches_numpy(rng, n):
    x = (rng.standard_normal(n) * 4).astype(np.float32)
    x[:3] = [0.0, 30.0, -30.0][: min(3, n)]  # the saturated tails
    dout = rng.standard_normal(n).astype(np.float32)
    x64, dout64 = x.astype(np.float64), dout.astype(np.float64)  # the truth, to float32 precision
    assert np.allclose(kernels.gelu_forward(x, backend="cpu"), kernels.gelu_forward(x64), rtol=1e-5, atol=1e-6)
    # In the far negative tail gelu' is about 1e-6: an absolute error of a few 1e-6 there is float32's
    # rounding of the terms, which NumPy's own float32 tanh form shows as well.
    assert np.allclose(kernels.gelu_backward(dout, x, backend="cpu"), kernels.gelu_backward(dout64, x64),
                       rtol=1e-5, atol=5e-6)


def test_negative_tail_keeps_relative_precision():
    # For x < -3, 1 + tanh(u) in float32 cancels almost every digit; x / (1 + exp(-2u)), the same
    # number, does not: the kernel keeps a relative precision of about 1e-5 down to x = -9 (gelu(-9) is
    # about -3e-28). Not 1e-7: at x = -9 the exponent of 2^t is near 95, and each of the few float32
    # roundings that compute it (half an ulp of 95 is 3.8e-6) moves 2^t by 2.6e-6 of itself. Measured:
    # 9.6e-6 on the AVX paths, 1.1e-5 on the portable path, which has no FMA on x86-64. The truth is
    # that form in float64, since below x = -6 the tanh form cancels in float64 too.
    x32 = np.linspace(-9.0, -3.0, 601).astype(np.float32)
    x = x32.astype(np.float64)
    u = np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)
    s = 1 / (1 + np.exp(-2 * u))  # = 0.5 (1 + tanh(u))
    dsdx = 2 * s * (1 - s) * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x**2)
    assert np.allclose(kernels.gelu_forward(x32, backend="cpu"), x * s, rtol=2e-5, atol=0)
    assert np.allclose(kernels.gelu_backward(np.ones_like(x32), x32, backend="cpu"), s + x * dsdx, rtol=2e-5, atol=0)


EXTREMES_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
x = np.array({x}, dtype=np.float32)  # inf and nan written as float("inf"), float("nan")
with np.errstate(all="ignore"):
    np.savez(sys.argv[1], simd=kernels.core_info()["simd"], gelu=kernels.gelu_forward(x, backend="cpu"),
             dgelu=kernels.gelu_backward(np.full_like(x, 2.0), x, backend="cpu"))
"""


@pytest.mark.parametrize("simd", ["avx512", "avx2", "portable"])
def test_the_far_ends_give_the_limits_on_every_path(simd, tmp_path, monkeypatch):
    # Far left gelu and its slope are 0 to float32's precision, far right x and 1, however large |x|: not
    # x / (1 + 2^t) with t clamped, which left gelu(-1e30) at -0.79. Infinities get the limits, NaN stays NaN.
    # Up to the clamp at -9.9, where gelu is about -1.6e-36, the forward keeps its relative precision.
    left, right = [-3e38, -1e30, -1e10, -1e4, -10.5, -9.95, -np.inf], [9.95, 1e4, 1e10, 1e30, 3e38]
    edge = [-9.85, -9.6, -9.3]
    monkeypatch.setenv("MINIGPT_SIMD", simd)
    try:
        values = ", ".join(f"float('{v}')" for v in left + right + [np.inf] + edge + [np.nan] * 17)
        got = run_with_threads(EXTREMES_SCRIPT.format(x=f"[{values}]"), 1, tmp_path)
    except AssertionError as e:
        if "lacks" in str(e):
            pytest.skip(f"this CPU has no {simd} path")
        raise
    assert str(got["simd"]) == simd
    n, m = len(left), len(left) + len(right)
    gelu, dgelu = got["gelu"], got["dgelu"]  # dgelu: dout = 2
    assert (np.abs(gelu[:n]) < 2e-36).all() and (np.abs(dgelu[:n]) < 1e-33).all()
    assert np.array_equal(gelu[n:m], np.array(right, np.float32)) and (dgelu[n:m + 1] == 2.0).all()
    assert gelu[m] == np.inf
    x = np.array(edge, dtype=np.float64)
    s = 1 / (1 + np.exp(-2 * np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    np.testing.assert_allclose(gelu[m + 1:m + 4], x * s, rtol=2e-5, atol=0)
    assert np.isnan(gelu[m + 4:]).all() and np.isnan(dgelu[m + 4:]).all()


def test_any_shape_and_errors(rng):
    x = rng.standard_normal((2, 3, 5)).astype(np.float32)
    assert kernels.gelu_forward(x, backend="cpu").shape == (2, 3, 5)
    with pytest.raises(TypeError, match="float32"):
        kernels.gelu_forward(x.astype(np.float64), backend="cpu")
    with pytest.raises(ValueError, match="shape"):
        kernels.gelu_backward(x[0].copy(), x, backend="cpu")

"""LayerNorm kernels: the C++ version against the NumPy reference (float32, awkward widths), errors."""
import numpy as np
import pytest

from conftest import requires_core, run_with_threads
from minigpt import kernels

pytestmark = requires_core


@pytest.mark.parametrize("shape", [(1, 1), (3, 7), (2, 5, 33), (130, 768), (4, 1, 65), (2048, 384)])
def test_forward_and_backward_match_the_float64_reference(rng, shape):
    # Against the NumPy reference run in float64 on the same float32 inputs, to within a few float32 roundings
    # of each output's scale (measured: at most 1e-6 of it, for db summed over 2,048 rows): a kernel off by
    # 0.1% anywhere fails. The floor is for C = 1, where dx is 0 exactly: float32 leaves a rounding of
    # dout * w, scaled by rstd = 1 / sqrt(eps), about 316.
    C = shape[-1]
    x = (rng.standard_normal(shape) * 3 + 1).astype(np.float32)
    w, b = rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)
    dout = rng.standard_normal(shape).astype(np.float32)
    x64, w64, b64, dout64 = (a.astype(np.float64) for a in (x, w, b, dout))
    ref = kernels.layernorm_forward(x64, w64, b64, backend="numpy")  # out, mean, rstd
    got = kernels.layernorm_forward(x, w, b, backend="cpu")
    ref_grads = kernels.layernorm_backward(dout64, x64, *ref[1:], w64, backend="numpy")  # dx, dw, db
    got_grads = kernels.layernorm_backward(dout, x, *got[1:], w, backend="cpu")
    floor = 1e-6 * float(ref[2].max()) * float(np.abs(dout64).max() * np.abs(w64).max())
    for name, g, r in zip(("out", "mean", "rstd", "dx", "dw", "db"), (*got, *got_grads), (*ref, *ref_grads)):
        assert g.dtype == np.float32 and g.shape == r.shape, name
        assert np.abs(g - r).max() <= 3e-6 * np.abs(r).max() + floor, name


def test_bad_input():
    x, w = np.ones((2, 4), np.float32), np.ones(4, np.float32)
    with pytest.raises(TypeError, match="float32"):
        kernels.layernorm_forward(x.astype(np.float64), w, w, backend="cpu")
    with pytest.raises(ValueError, match="w must have shape"):
        kernels.layernorm_forward(x, np.ones(3, np.float32), w, backend="cpu")
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.layernorm_forward(np.ones((4, 8), np.float32)[:, ::2], w, w, backend="cpu")
    out, mean, rstd = kernels.layernorm_forward(x, w, w, backend="cpu")
    with pytest.raises(ValueError, match="one value per row"):
        kernels.layernorm_backward(x, x, mean[:1], rstd, w, backend="cpu")


THREADS_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
rng = np.random.default_rng(0)
x, dout = (rng.standard_normal((4096, 128)).astype(np.float32) for _ in range(2))  # enough rows for all threads
w, b = rng.standard_normal(128).astype(np.float32), rng.standard_normal(128).astype(np.float32)
out, mean, rstd = kernels.layernorm_forward(x, w, b, backend="cpu")
dx, dw, db = kernels.layernorm_backward(dout, x, mean, rstd, w, backend="cpu")
np.savez(sys.argv[1], num_threads=kernels.core_info()["num_threads"], out=out, dx=dx, dw=dw, db=db)
"""


@pytest.mark.parametrize("threads", [2, 3])
def test_the_same_bits_on_any_number_of_threads(tmp_path, threads):
    # dw and db sum 4,096 rows: in fixed parts of rows, added in order, so neither the thread count nor
    # which thread finishes first changes a bit (3 threads, run twice: the order threads finish in varies)
    one = run_with_threads(THREADS_SCRIPT, 1, tmp_path)
    for _ in range(2 if threads == 3 else 1):
        many = run_with_threads(THREADS_SCRIPT, threads, tmp_path)
        if kernels.core_info()["openmp"]:
            assert int(many["num_threads"]) == threads
        for name in ("out", "dx", "dw", "db"):
            np.testing.assert_array_equal(many[name], one[name], err_msg=name)

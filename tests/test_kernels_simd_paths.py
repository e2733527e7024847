"""The memory-bound kernels (GELU, softmax, LayerNorm, cross-entropy, AdamW, bias gradient) on every SIMD path and
thread count.

Each kernel's loop is compiled three times (csrc/simd.h: 16, 8 and 4 floats a vector) and the process
runs one of them, the one matmul_simd_path() names (MINIGPT_SIMD forces a lower one). So each path
runs in a child process of its own, on 1 and 2 OpenMP threads, on shapes that leave a tail after the
last whole vector of every width (N = 1, 7, 33, 65, 131) and with a single row; each result is
compared with the NumPy reference in float64, and the two thread counts must agree bit for bit
(every element is computed by one thread in one order; the LayerNorm weight and bias gradients add
fixed parts of 128 rows in order, whichever thread summed each).
"""
import numpy as np
import pytest

from conftest import requires_core, run_with_threads
from minigpt import kernels

SHAPES = [(1, 1), (1, 33), (3, 7), (5, 65), (40, 131), (300, 1000)]  # (rows, N); the last one splits over threads

SCRIPT = """
import os, sys
import numpy as np
from minigpt import kernels
shapes = {shapes}
rng = np.random.default_rng(0)
saved = {{"simd": kernels.core_info()["simd"], "num_threads": kernels.core_info()["num_threads"]}}
for i, (rows, N) in enumerate(shapes):
    x = (rng.standard_normal((rows, N)) * 3).astype(np.float32)
    d = rng.standard_normal((rows, N)).astype(np.float32)
    w, b = rng.standard_normal(N).astype(np.float32), rng.standard_normal(N).astype(np.float32)
    t = rng.integers(-1, N, rows)
    y = kernels.softmax_forward(x, backend="cpu")
    out, mean, rstd = kernels.layernorm_forward(x, w, b, backend="cpu")
    losses, lse = kernels.cross_entropy_forward(x, t, backend="cpu")
    p, m, v = x.copy(), d.copy(), np.abs(d) + 0.1
    kernels.adamw_update(p, m, v, d, 0.1, 0.9, 0.95, 1e-8, 0.1, 0.271, 0.142625, backend="cpu")
    saved.update({{f"x{{i}}": x, f"d{{i}}": d, f"w{{i}}": w, f"b{{i}}": b, f"t{{i}}": t,
                  f"gelu{{i}}": kernels.gelu_forward(x, backend="cpu"),
                  f"dgelu{{i}}": kernels.gelu_backward(d, x, backend="cpu"),
                  f"softmax{{i}}": y, f"dsoftmax{{i}}": kernels.softmax_backward(d, y, backend="cpu"),
                  f"softmax_big{{i}}": kernels.softmax_forward(x * 33, backend="cpu"),
                  f"ln{{i}}": out, f"mean{{i}}": mean, f"rstd{{i}}": rstd,
                  f"dln{{i}}": np.concatenate([g.reshape(-1) for g in kernels.layernorm_backward(d, x, mean, rstd, w,
                                                                                               backend="cpu")]),
                  f"loss{{i}}": losses, f"lse{{i}}": lse,
                  f"dce{{i}}": kernels.cross_entropy_backward(x, lse, t, 0.5, backend="cpu"),
                  f"adamw{{i}}": np.concatenate([p, m, v], axis=None),
                  f"dbias{{i}}": kernels.bias_grad(d, backend="cpu")}})
np.savez(sys.argv[1], **saved)
"""


def numpy_results(run, i):
    """The same kernels in float64 from the NumPy reference, keyed like the child's results."""
    x, d, w, b, t = (run[f"{name}{i}"].astype(np.float64) for name in "xdwbt")
    t = t.astype(np.int64)
    y = kernels.softmax_forward(x)
    out, mean, rstd = kernels.layernorm_forward(x, w, b)
    losses, lse = kernels.cross_entropy_forward(x, t)
    p, m, v = x.copy(), d.copy(), np.abs(d) + 0.1
    kernels.adamw_update(p, m, v, d, 0.1, 0.9, 0.95, 1e-8, 0.1, 0.271, 0.142625)  # bias1, bias2 at step 3
    big = (run[f"x{i}"] * 33).astype(np.float64)  # the child's float32 product, bit for bit
    return {"gelu": kernels.gelu_forward(x), "dgelu": kernels.gelu_backward(d, x), "softmax": y,
            "softmax_big": kernels.softmax_forward(big),
            "dsoftmax": kernels.softmax_backward(d, y), "ln": out, "mean": mean, "rstd": rstd,
            "dln": np.concatenate([g.reshape(-1) for g in kernels.layernorm_backward(d, x, mean, rstd, w)]),
            "loss": losses, "lse": lse, "dce": kernels.cross_entropy_backward(x, lse, t, 0.5),
            "adamw": np.concatenate([p, m, v], axis=None), "dbias": kernels.bias_grad(d)}


@requires_core
@pytest.mark.parametrize("simd", ["avx512", "avx2", "portable"])
def test_memory_bound_kernels_on_every_path_and_1_and_2_threads(simd, tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_SIMD", simd)
    try:
        runs = {threads: run_with_threads(SCRIPT.format(shapes=SHAPES), threads, tmp_path) for threads in (1, 2)}
    except AssertionError as e:
        if "lacks" in str(e):
            pytest.skip(f"this CPU has no {simd} path")
        raise
    assert [str(runs[t]["simd"]) for t in (1, 2)] == [simd, simd]
    if kernels.core_info()["openmp"]:
        assert [int(runs[t]["num_threads"]) for t in (1, 2)] == [1, 2]
    for i in range(len(SHAPES)):
        expected = numpy_results(runs[1], i)
        for name, value in expected.items():
            # float32 against float64; GELU's derivative and the softmax-based kernels see inputs up to ~15.
            # softmax_big: logits near 300, where each probability must still be within a few roundings of
            # x - max (without FMA, x log2(e) - max log2(e) was 1.3e-5 off on the portable path)
            rtol, atol = (5e-6, 1e-7) if name == "softmax_big" else (1e-4, 2e-5)
            np.testing.assert_allclose(runs[1][f"{name}{i}"], value, rtol=rtol, atol=atol,
                                       err_msg=f"{name} {SHAPES[i]}")
            np.testing.assert_array_equal(runs[2][f"{name}{i}"], runs[1][f"{name}{i}"], err_msg=f"{name} {SHAPES[i]}")


@requires_core
def test_masked_entries_get_exactly_zero_weight():
    # exp of a very negative number is flushed to exactly 0 (simd.h), so -inf (a masked entry) weighs nothing
    x = np.array([[0.0, -np.inf, 1.0, -200.0] * 9], dtype=np.float32)  # 36 entries: whole vectors and a tail
    y = kernels.softmax_forward(x, backend="cpu")
    assert (y[0, 1::4] == 0).all() and (y[0, 3::4] == 0).all()
    np.testing.assert_allclose(y, kernels.softmax_forward(x.astype(np.float64)), rtol=1e-6, atol=1e-30)

"""Causal attention with attention dropout: the NumPy reference, then minigpt._core against it.

Read top to bottom: the dropout mask against a pure-Python splitmix64 and its drop rate; the
reference forward against explicit loops; the reference backward against central finite
differences, with and without dropout (float64); _core forward and backward in float32 on
awkward shapes and head sizes (T = 1, T not a multiple of the 64-wide tiles, T spanning several
tiles; head sizes that are not multiples of the SIMD width), with and without dropout, on every
SIMD path this CPU has and in the naive teaching kernels; scores so large that only a correct
online softmax survives them; a property test over shapes; _core drops exactly the reference's
weights; empty sizes; the same bits on 1 and 2 OpenMP threads; bad input, which must raise
TypeError/ValueError and leave the process alive.
"""
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from conftest import dropout_hash_top24, requires_core, run_with_threads
from minigpt import kernels
from minigpt.gradcheck import numerical_gradient, rel_error


def make_qkv(rng, shape, dtype=np.float32):
    return tuple(rng.standard_normal(shape).astype(dtype) for _ in range(3))


# ----------------------------------------------------------------------------- the dropout mask

def splitmix64_keep(seed, index, p):
    """Element `index` (flat) of the keep mask, in plain Python integers: the formula, written out."""
    return dropout_hash_top24(seed, index + 1) >= min(int(p * 2**24), 2**24)


@pytest.mark.parametrize("seed", [0, 1234, 2**64 - 1])
def test_mask_matches_splitmix64(seed):
    shape, p = (2, 3, 4, 4), 0.3
    mask = kernels.dropout_keep_mask(seed, shape, p)
    expected = [splitmix64_keep(seed, index, p) for index in range(math.prod(shape))]
    np.testing.assert_array_equal(mask.reshape(-1), expected)


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_mask_drops_a_fraction_p(p):
    mask = kernels.dropout_keep_mask(7, (4, 4, 64, 64), p)  # 65,536 draws: the standard error is below 0.002
    assert abs((~mask).mean() - p) < 0.01


# ----------------------------------------------------------------------------- the NumPy reference

def attention_loops(q, k, v, dropout_p, seed):
    """Causal attention one (b, h, i) row at a time, in float64: the formula, written out."""
    B, NH, T, hs = q.shape
    keep = kernels.dropout_keep_mask(seed, (B, NH, T, T), dropout_p) if dropout_p > 0 else np.ones((B, NH, T, T))
    out, lse = np.zeros_like(q), np.zeros((B, NH, T))
    for b, h, i in np.ndindex(B, NH, T):
        scores = [float(q[b, h, i] @ k[b, h, j]) / math.sqrt(hs) for j in range(i + 1)]  # keys j <= i only
        lse[b, h, i] = math.log(sum(math.exp(s) for s in scores))
        for j, s in enumerate(scores):
            out[b, h, i] += math.exp(s - lse[b, h, i]) * keep[b, h, i, j] / (1 - dropout_p) * v[b, h, j]
    return out, lse


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_reference_forward_matches_loops(dropout_p):
    q, k, v = make_qkv(np.random.default_rng(0), (2, 2, 5, 3), np.float64)
    out, lse = kernels.attention_forward(q, k, v, dropout_p, seed=11)
    out_loops, lse_loops = attention_loops(q, k, v, dropout_p, seed=11)
    np.testing.assert_allclose(out, out_loops, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(lse, lse_loops, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_reference_backward_matches_finite_differences(dropout_p):
    rng = np.random.default_rng(1)
    q, k, v = make_qkv(rng, (2, 2, 5, 3), np.float64)
    dout = rng.standard_normal(q.shape)  # a random upstream gradient
    seed = 5  # fixed, so the mask is the same at every perturbed point and the loss is smooth

    def forward():
        return kernels.attention_forward(q, k, v, dropout_p, seed)[0]

    out, lse = kernels.attention_forward(q, k, v, dropout_p, seed)
    dq, dk, dv = kernels.attention_backward(dout, q, k, v, out, lse, dropout_p, seed)
    for name, x, dx in (("q", q, dq), ("k", k, dk), ("v", v, dv)):
        error = rel_error(dx, numerical_gradient(forward, x, dout))
        assert error < 1e-6, f"d{name}: relative error {error:.2e}"


# ----------------------------------------------------------------------------- _core against the reference

# (B, NH, T, hs). The C++ kernel works in tiles of 64 queries x 64 keys and vectors of 16 (AVX-512) or
# 8 (AVX2) floats: these shapes cover T = 1, T inside one tile, T one short of and one past a tile,
# several tiles with a ragged end, and head sizes that leave a partial vector (5, 24, 80).
SHAPES = [(1, 1, 1, 32), (2, 3, 7, 64), (1, 2, 33, 80), (2, 1, 65, 128), (1, 2, 130, 32), (3, 1, 17, 5),
          (1, 2, 63, 64), (1, 1, 200, 24), (1, 1, 64, 64), (2, 1, 129, 16)]


def reference64(q, k, v, dout, dropout_p, seed):
    """Forward and backward of the NumPy reference in float64 on the same values: the yardstick."""
    q, k, v, dout = (x.astype(np.float64) for x in (q, k, v, dout))
    out, lse = kernels.attention_forward(q, k, v, dropout_p, seed)
    return (out, lse) + kernels.attention_backward(dout, q, k, v, out, lse, dropout_p, seed)


def assert_matches_reference(core, reference):
    for name, x, x64 in zip(("out", "lse", "dq", "dk", "dv"), core, reference):
        assert x.dtype == np.float32 and x.shape == x64.shape, name
        np.testing.assert_allclose(x, x64, rtol=1e-4, atol=2e-5, err_msg=name)


def core_results(shape, dropout_p, seed=2024, forward=None, backward=None):
    """Random q, k, v, dout of `shape`, and out, lse, dq, dk, dv from _core (the tuned kernels by default)."""
    rng = np.random.default_rng(shape[2] * 1000 + shape[3])
    q, k, v, dout = (rng.standard_normal(shape).astype(np.float32) for _ in range(4))
    forward = forward or (lambda *args: kernels.attention_forward(*args, backend="cpu"))
    backward = backward or (lambda *args: kernels.attention_backward(*args, backend="cpu"))
    out, lse = forward(q, k, v, dropout_p, seed)
    return (q, k, v, dout), (out, lse) + tuple(backward(dout, q, k, v, out, lse, dropout_p, seed))


@requires_core
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dropout_p", [0.0, 0.1, 0.5])
def test_core_matches_reference(shape, dropout_p):
    (q, k, v, dout), core = core_results(shape, dropout_p)
    assert_matches_reference(core, reference64(q, k, v, dout, dropout_p, 2024))


@pytest.fixture(params=["avx512", "avx2", "portable"])
def simd(request, monkeypatch):
    """Run a test on one SIMD path of the attention kernels; MINIGPT_SIMD is read at every attention call."""
    kernels.core_info()  # matmul reads MINIGPT_SIMD once, at its first use: let it settle on its default first
    monkeypatch.setenv("MINIGPT_SIMD", request.param)
    try:
        assert kernels.core_info()["attention_simd"] == request.param
    except ValueError as error:
        if "lacks" not in str(error):  # only a CPU without the instructions is a reason to skip
            raise
        pytest.skip(f"this CPU cannot run the {request.param} path")
    return request.param


@requires_core
# head sizes 3, 5, 10 and 13: rows that end in a partial vector on every path, alone in its block of
# columns (3, 10) or after a whole vector (5, 13)
@pytest.mark.parametrize("shape", [(1, 1, 1, 24), (2, 1, 17, 80), (1, 2, 65, 32), (1, 1, 200, 64), (1, 1, 70, 128),
                                   (1, 1, 23, 3), (1, 1, 37, 5), (1, 1, 45, 10), (2, 1, 70, 13),
                                   (1, 1, 70, 17)])  # hs = 17: one float in the last vector on every path
@pytest.mark.parametrize("dropout_p", [0.0, 0.2])
def test_every_simd_path_matches_reference(simd, shape, dropout_p):
    (q, k, v, dout), core = core_results(shape, dropout_p)
    assert_matches_reference(core, reference64(q, k, v, dout, dropout_p, 2024))


@requires_core
def test_unknown_simd_path_is_rejected(monkeypatch):
    kernels.core_info()
    monkeypatch.setenv("MINIGPT_SIMD", "avx9000")
    q = np.ones((1, 1, 4, 8), dtype=np.float32)
    with pytest.raises(ValueError, match="MINIGPT_SIMD must be avx512, avx2 or portable .* got 'avx9000'"):
        kernels.attention_forward(q, q, q, backend="cpu")
    monkeypatch.delenv("MINIGPT_SIMD")
    kernels.attention_forward(q, q, q, backend="cpu")  # the process survives


@requires_core
@pytest.mark.parametrize("shape", [(1, 1, 1, 32), (1, 2, 33, 80), (1, 1, 130, 24)])
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_naive_kernels_match_reference(shape, dropout_p):
    (q, k, v, dout), core = core_results(shape, dropout_p, forward=kernels._core.attention_forward_naive,
                                         backward=kernels._core.attention_backward_naive)
    assert_matches_reference(core, reference64(q, k, v, dout, dropout_p, 2024))


@requires_core
@pytest.mark.parametrize("growth", [0.5, -0.5])
def test_core_online_softmax_survives_huge_scores(simd, growth):
    # Scores s_ij = growth * j * sqrt(hs) / 4 run from 0 to about +-500 along each row: exp(500) overflows
    # float32, so only a softmax that subtracts the running max survives; with growth > 0 every new key
    # tile raises the max, so the rescaling of what was summed before is exercised at every tile.
    B, NH, T, hs = 1, 2, 200, 64
    q = np.full((B, NH, T, hs), 0.25, dtype=np.float32)
    k = np.broadcast_to(growth * np.arange(T, dtype=np.float32)[:, None], (B, NH, T, hs)).copy()
    rng = np.random.default_rng(0)
    v, dout = (rng.standard_normal((B, NH, T, hs)).astype(np.float32) for _ in range(2))
    out, lse = kernels.attention_forward(q, k, v, backend="cpu")
    core = (out, lse) + kernels.attention_backward(dout, q, k, v, out, lse, backend="cpu")
    assert all(np.isfinite(x).all() for x in core)
    reference = reference64(q, k, v, dout, 0.0, 0)
    for name, x, x64 in zip(("out", "lse", "dq", "dk", "dv"), core, reference):
        np.testing.assert_allclose(x, x64, rtol=1e-4, atol=1e-3 * max(1.0, np.abs(x64).max()), err_msg=name)


@requires_core
@pytest.mark.parametrize("T, bad", [(8, 3), (150, 0), (150, 70), (150, 149)])
def test_every_simd_path_passes_a_nan_key_on_to_every_query_that_sees_it(simd, T, bad):
    # A NaN is bad input (a diverged run): it must reach every output it touches, never vanish into a
    # weight of 0. Query i sees key j <= i, so rows bad.. of out and lse turn NaN and the rows before
    # stay exact; in the backward, the NaN reaches every query's dq and the keys' dk and dv that they see.
    rng = np.random.default_rng(T + bad)
    q, k, v, dout = (rng.standard_normal((1, 2, T, 16)).astype(np.float32) for _ in range(4))
    k[0, 1, bad, 5] = np.nan
    out, lse = kernels.attention_forward(q, k, v, backend="cpu")
    assert np.isnan(out[0, 1, bad:]).all() and np.isnan(lse[0, 1, bad:]).all()
    if bad > 0:  # the queries before the NaN key: as if it were not there
        clean_out, clean_lse = kernels.attention_forward(*(np.ascontiguousarray(x[:, :, :bad]) for x in (q, k, v)),
                                                         backend="cpu")
        np.testing.assert_array_equal(out[:, :, :bad], clean_out)
        np.testing.assert_array_equal(lse[:, :, :bad], clean_lse)
    assert np.isfinite(out[0, 0]).all(), "the other head has no NaN"
    dq, dk, dv = kernels.attention_backward(dout, q, k, v, out, lse, backend="cpu")
    assert np.isnan(dq[0, 1, bad:]).all() and np.isnan(dv[0, 1, :bad + 1]).any()
    assert np.isfinite(dq[0, 0]).all() and np.isfinite(dk[0, 0]).all() and np.isfinite(dv[0, 0]).all()


@requires_core
@settings(max_examples=15, deadline=None)
@given(B=st.integers(1, 2), NH=st.integers(1, 2), T=st.integers(1, 140), hs=st.integers(1, 72),
       dropout_p=st.sampled_from([0.0, 0.25]), seed=st.integers(0, 2**64 - 1))
def test_core_property_matches_reference(B, NH, T, hs, dropout_p, seed):
    (q, k, v, dout), core = core_results((B, NH, T, hs), dropout_p, seed)
    assert_matches_reference(core, reference64(q, k, v, dout, dropout_p, seed))


@requires_core
@pytest.mark.parametrize("p", [0.1, 0.5])
@pytest.mark.parametrize("seed", [3, 2**64 - 1])
def test_core_drops_the_reference_weights(p, seed):
    # With q = k = 0 every weight of row i is 1 / (i + 1), and with v = I (hs = T) row i of out is
    # row i of the dropped weights: each entry j <= i is 0 exactly when the weight was dropped.
    B, NH, T = 2, 2, 64
    q = k = np.zeros((B, NH, T, T), dtype=np.float32)
    v = np.ascontiguousarray(np.broadcast_to(np.eye(T, dtype=np.float32), (B, NH, T, T)))
    out, _ = kernels.attention_forward(q, k, v, p, seed, backend="cpu")
    causal = np.tril(np.ones((T, T), dtype=bool))
    kept = out[:, :, causal] != 0
    np.testing.assert_array_equal(kept, kernels.dropout_keep_mask(seed, (B, NH, T, T), p)[:, :, causal])
    assert abs((~kept).mean() - p) < 0.03  # 8,320 weights: the standard error is below 0.006
    expected = np.where(causal, 1.0 / np.arange(1, T + 1)[:, None], 0.0) / (1 - p)
    np.testing.assert_allclose(out[:, :, causal][kept], np.broadcast_to(expected[causal], kept.shape)[kept],
                               rtol=1e-6)


def unsplitmix64(z):
    """The seed-side input x with splitmix64's finaliser of x = z: each step of the finaliser undone in reverse."""
    mask64 = (1 << 64) - 1

    def unshift(y, s):  # the x with x ^ (x >> s) = y, found from the top bits down
        x = y
        for _ in range(64 // s + 1):
            x = y ^ (x >> s)
        return x

    z = unshift(z, 31)
    z = (z * pow(0x94D049BB133111EB, -1, 1 << 64)) & mask64
    z = unshift(z, 27)
    z = (z * pow(0xBF58476D1CE4E5B9, -1, 1 << 64)) & mask64
    return unshift(z, 30)


@requires_core
@pytest.mark.parametrize("p", [0.25, 0.5])
@pytest.mark.parametrize("above", [-1, 0])
def test_core_drops_a_weight_whose_hash_is_one_below_the_threshold(p, above):
    # The one weight of T = 1 (counter 1) is kept exactly when the top 24 bits of its hash are >= p * 2^24:
    # a seed is built whose hash lands one below that threshold (dropped) or on it (kept), where a threshold
    # rounded differently (p * (2^24 - 1), say) would keep or drop it unlike the NumPy reference.
    threshold = int(p * 2**24)
    hashed = ((threshold + above) << 40) | 0x0123456789
    seed = (unsplitmix64(hashed) - 0x9E3779B97F4A7C15) % 2**64
    kept = above >= 0
    assert splitmix64_keep(seed, 0, p) == kept
    assert bool(kernels.dropout_keep_mask(seed, (1, 1, 1, 1), p).item()) == kept
    q = k = np.zeros((1, 1, 1, 4), dtype=np.float32)
    v = dout = np.array([[[[1.0, -2.0, 3.0, 0.5]]]], dtype=np.float32)
    expected = v / (1 - p) if kept else np.zeros_like(v)
    for forward, backward in [(kernels._core.attention_forward, kernels._core.attention_backward),
                              (kernels._core.attention_forward_naive, kernels._core.attention_backward_naive)]:
        out, lse = forward(q, k, v, p, seed)
        np.testing.assert_allclose(out, expected, rtol=1e-6)
        _, _, dv = backward(dout, q, k, v, out, lse, p, seed)
        np.testing.assert_allclose(dv, expected, rtol=1e-6)  # dv = P keep / (1 - p) dout, with P = 1


@requires_core
@pytest.mark.parametrize("shape", [(0, 2, 4, 8), (1, 0, 4, 8), (2, 2, 0, 8)])
def test_core_empty_sizes(shape):
    q, k, v = make_qkv(np.random.default_rng(0), shape)
    out, lse = kernels.attention_forward(q, k, v, 0.1, 0, backend="cpu")
    assert out.shape == shape and lse.shape == shape[:3]
    grads = kernels.attention_backward(q, q, k, v, out, lse, 0.1, 0, backend="cpu")
    assert [g.shape for g in grads] == [shape] * 3


# ----------------------------------------------------------------------------- threads

THREADS_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
rng = np.random.default_rng(3)
q, k, v, dout = (rng.standard_normal((2, 3, 130, 80)).astype(np.float32) for _ in range(4))
out, lse = kernels.attention_forward(q, k, v, 0.1, 99, backend="cpu")
dq, dk, dv = kernels.attention_backward(dout, q, k, v, out, lse, 0.1, 99, backend="cpu")
qkv = rng.standard_normal((2, 130, 3 * 240)).astype(np.float32)  # the fused kernels: 3 heads of 80
y, lse_fused = kernels.attention_forward_fused(qkv, 3, 0.1, 99)
dqkv = kernels.attention_backward_fused(y, qkv, y, lse_fused, 3, 0.1, 99)
np.savez(sys.argv[1], num_threads=kernels.core_info()["num_threads"], q=q, k=k, v=v, dout=dout,
         out=out, lse=lse, dq=dq, dk=dk, dv=dv, y=y, lse_fused=lse_fused, dqkv=dqkv)
"""



@requires_core
def test_core_same_result_on_1_and_2_threads(tmp_path):
    one, two = (run_with_threads(THREADS_SCRIPT, threads, tmp_path) for threads in (1, 2))
    if kernels.core_info()["openmp"]:
        assert (int(one["num_threads"]), int(two["num_threads"])) == (1, 2)
    names = ("out", "lse", "dq", "dk", "dv")
    reference = reference64(one["q"], one["k"], one["v"], one["dout"], 0.1, 99)
    assert_matches_reference([one[name] for name in names], reference)
    # each query tile (forward) and each (b, h) slice (backward) is summed by one thread in one order
    for name in names + ("y", "lse_fused", "dqkv"):
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


# ----------------------------------------------------------------------------- bad input

Q = np.ones((1, 2, 3, 4), dtype=np.float32)  # (B, NH, T, hs)
LSE = np.ones((1, 2, 3), dtype=np.float32)  # (B, NH, T)

BAD_FORWARD = [  # (q, k, v, dropout_p), the error, words the message must contain
    ((Q.astype(np.float64), Q, Q, 0.0), TypeError, "q must be float32, got float64"),
    ((Q, Q.astype(np.int32), Q, 0.0), TypeError, "k must be float32, got int32"),
    ((Q, Q, np.ones((1, 2, 3, 8), np.float32)[..., ::2], 0.0), TypeError, "v must be C-contiguous"),
    ((Q, Q.transpose(0, 1, 3, 2), Q, 0.0), TypeError, "k must be C-contiguous"),
    ((Q[0], Q[0], Q[0], 0.0), ValueError, r"q must be 4-D \(B, NH, T, hs\), got shape \(2, 3, 4\)"),
    ((Q, Q[:, :, :2].copy(), Q, 0.0), ValueError, r"k must have the shape of q \(1, 2, 3, 4\), got \(1, 2, 2, 4\)"),
    ((Q, Q, Q[..., :3].copy(), 0.0), ValueError, "v must have the shape of q"),
    ((Q[..., :0], Q[..., :0], Q[..., :0], 0.0), ValueError, "head size hs"),
    ((Q, Q, Q, -0.1), ValueError, r"dropout_p must be in \[0, 1\), got -0.1"),
    ((Q, Q, Q, 1.0), ValueError, r"dropout_p must be in \[0, 1\), got 1.0"),
    ((Q, Q, Q, float("nan")), ValueError, "dropout_p must be in"),
]


@requires_core
@pytest.mark.parametrize("args, error, message", BAD_FORWARD)
def test_core_forward_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.attention_forward(*args, seed=0, backend="cpu")
    out, _ = kernels.attention_forward(Q, Q, Q, backend="cpu")  # the process survives
    np.testing.assert_array_equal(out, Q)


BAD_BACKWARD = [  # (dout, q, k, v, out, lse, dropout_p), the error, words the message must contain
    ((Q.astype(np.float64), Q, Q, Q, Q, LSE, 0.0), TypeError, "dout must be float32, got float64"),
    ((Q, Q, Q, Q, Q, LSE.astype(np.float64), 0.0), TypeError, "lse must be float32, got float64"),
    ((Q, Q, Q, Q, Q.transpose(0, 1, 3, 2), LSE, 0.0), TypeError, "out must be C-contiguous"),
    ((Q[:, :1].copy(), Q, Q, Q, Q, LSE, 0.0), ValueError, "dout must have the shape of q"),
    ((Q, Q, Q, Q, Q[..., :2].copy(), LSE, 0.0), ValueError, "out must have the shape of q"),
    ((Q, Q, Q, Q, Q, LSE[..., :2].copy(), 0.0), ValueError, r"lse must have shape \(B, NH, T\) = \(1, 2, 3\)"),
    ((Q, Q, Q, Q, Q, LSE[None], 0.0), ValueError, "lse must have shape"),
    ((Q, Q, Q, Q, Q, LSE, 1.5), ValueError, "dropout_p must be in"),
]


@requires_core
@pytest.mark.parametrize("args, error, message", BAD_BACKWARD)
def test_core_backward_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):
        kernels.attention_backward(*args, seed=0, backend="cpu")
    dq, dk, dv = kernels.attention_backward(Q, Q, Q, Q, Q, LSE, backend="cpu")  # the process survives
    assert dq.shape == dk.shape == dv.shape == Q.shape


@requires_core
def test_naive_kernels_reject_bad_input():
    # the naive kernels share the tuned ones' checks; one case each is enough to see they are wired in
    with pytest.raises(TypeError, match="attention_forward_naive: q must be float32, got float64"):
        kernels._core.attention_forward_naive(Q.astype(np.float64), Q, Q)
    with pytest.raises(ValueError, match=r"attention_backward_naive: lse must have shape \(B, NH, T\)"):
        kernels._core.attention_backward_naive(Q, Q, Q, Q, Q, LSE[..., :2].copy())


# ----------------------------------------------------------------------------- fused: heads read in place from qkv

def split_path(qkv, dy, n_head, dropout_p, seed):
    """The unfused composition the fused kernels replace: split the heads, attend, merge them back."""
    from minigpt.layers import merge_heads, split_heads
    B, T, C3 = qkv.shape
    hs = C3 // (3 * n_head)
    q, k, v = split_heads(qkv, n_head)
    out, lse = kernels.attention_forward(q, k, v, dropout_p, seed, backend="cpu")
    dout = np.ascontiguousarray(dy.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3))
    dq, dk, dv = kernels.attention_backward(dout, q, k, v, out, lse, dropout_p, seed, backend="cpu")
    dqkv = np.ascontiguousarray(np.stack([dq, dk, dv]).transpose(1, 3, 0, 2, 4)).reshape(B, T, C3)
    return merge_heads(out), lse, dqkv


@requires_core
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dropout_p", [0.0, 0.3])
def test_fused_equals_split_heads_bit_for_bit(shape, dropout_p):
    # the same tile arithmetic on the same numbers, only the row strides differ: identical bits
    B, NH, T, hs = shape
    rng = np.random.default_rng(T * 100 + hs)
    qkv = rng.standard_normal((B, T, 3 * NH * hs)).astype(np.float32)
    dy = rng.standard_normal((B, T, NH * hs)).astype(np.float32)
    y, lse = kernels.attention_forward_fused(qkv, NH, dropout_p, 77)
    dqkv = kernels.attention_backward_fused(dy, qkv, y, lse, NH, dropout_p, 77)
    for name, fused, split in zip(("y", "lse", "dqkv"), (y, lse, dqkv), split_path(qkv, dy, NH, dropout_p, 77)):
        np.testing.assert_array_equal(fused, split, err_msg=name)


@requires_core
def test_fused_matches_the_float64_reference(simd):
    # and so, on every SIMD path, the float64 reference on the split heads
    B, NH, T, hs = 2, 2, 70, 32
    rng = np.random.default_rng(5)
    qkv = rng.standard_normal((B, T, 3 * NH * hs)).astype(np.float32)
    dy = rng.standard_normal((B, T, NH * hs)).astype(np.float32)
    y, lse = kernels.attention_forward_fused(qkv, NH, 0.2, 9)
    dqkv = kernels.attention_backward_fused(dy, qkv, y, lse, NH, 0.2, 9)
    q, k, v = (np.ascontiguousarray(qkv.reshape(B, T, 3, NH, hs)[:, :, i].transpose(0, 2, 1, 3)) for i in range(3))
    dout = np.ascontiguousarray(dy.reshape(B, T, NH, hs).transpose(0, 2, 1, 3))
    out64, lse64, dq64, dk64, dv64 = reference64(q, k, v, dout, 0.2, 9)
    np.testing.assert_allclose(y, out64.transpose(0, 2, 1, 3).reshape(B, T, NH * hs), rtol=1e-4, atol=2e-5)
    np.testing.assert_allclose(lse, lse64, rtol=1e-4, atol=2e-5)
    dqkv64 = np.stack([dq64, dk64, dv64]).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * NH * hs)
    np.testing.assert_allclose(dqkv, dqkv64, rtol=1e-4, atol=2e-5)


QKV = np.ones((1, 3, 12), dtype=np.float32)  # (B, T, 3C) with C = 4: n_head 1, 2 or 4
Y = np.ones((1, 3, 4), dtype=np.float32)
LSE2 = np.ones((1, 2, 3), dtype=np.float32)  # (B, n_head=2, T)

BAD_FUSED = [  # (function, args), the error, words the message must contain
    ("forward", (QKV.astype(np.float64), 2), TypeError, "qkv must be float32, got float64"),
    ("forward", (np.ones((1, 3, 24), np.float32)[..., ::2], 2), TypeError, "qkv must be C-contiguous"),
    ("forward", (QKV[0], 2), ValueError, r"qkv must be 3-D \(B, T, 3C\)"),
    ("forward", (QKV, 3), ValueError, r"must be 3 \* n_head \* hs"),
    ("forward", (QKV, 0), ValueError, r"must be 3 \* n_head \* hs"),
    ("forward", (QKV[..., :0], 1), ValueError, "hs >= 1"),
    ("backward", (Y, QKV, Y[..., :2].copy(), LSE2, 2), ValueError, r"y must have shape \(B, T, C\) = \(1, 3, 4\)"),
    ("backward", (Y[:, :2].copy(), QKV, Y, LSE2, 2), ValueError, "dy must have the shape of y"),
    ("backward", (Y, QKV, Y, LSE2[:, :1].copy(), 2), ValueError, r"lse must have shape \(B, n_head, T\)"),
    ("backward", (Y.astype(np.float64), QKV, Y, LSE2, 2), TypeError, "dy must be float32"),
]


@requires_core
@pytest.mark.parametrize("which, args, error, message", BAD_FUSED)
def test_fused_rejects_bad_input(which, args, error, message):
    fn = kernels.attention_forward_fused if which == "forward" else kernels.attention_backward_fused
    with pytest.raises(error, match=message):
        fn(*args)
    y, lse = kernels.attention_forward_fused(QKV, 2)  # the process survives
    assert y.shape == (1, 3, 4) and lse.shape == (1, 2, 3)


def test_fused_is_refused_on_other_backends():
    qkv = np.ones((1, 3, 12))
    with pytest.raises(ValueError, match="split the heads"):
        kernels.attention_forward_fused(qkv, 2, backend="numpy")

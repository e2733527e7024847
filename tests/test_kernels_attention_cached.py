"""Attention over a KV cache (one generation step): the NumPy reference, then minigpt._core against it.

Read top to bottom: the reference, stepped through a sequence (a prompt, then one token at a time),
against full causal attention of the whole sequence (an independent formula: no cache at all);
_core against the reference in float32, on awkward shapes (one head of size 1, head sizes that are
no multiple of the SIMD width, several new positions at once, a batch of 2, the cache's last slot),
on every SIMD path this CPU has, and the cache writes themselves; a NaN key reaching exactly the queries
that see it; the same bits on 1 and 2 OpenMP
threads; bad input, which must raise TypeError/ValueError and leave the process alive.
"""
import numpy as np
import pytest

from conftest import requires_core, run_with_threads
from minigpt import kernels


def random_step(rng, B, Tn, NH, hs, Tmax, pos, dtype=np.float32):
    """qkv (B, Tn, 3C) of the new positions and caches (B, NH, Tmax, hs) filled with noise everywhere,
    so that a kernel reading past position pos + Tn - 1 would show."""
    qkv = rng.standard_normal((B, Tn, 3 * NH * hs)).astype(dtype)
    k_cache = rng.standard_normal((B, NH, Tmax, hs)).astype(dtype)
    v_cache = rng.standard_normal((B, NH, Tmax, hs)).astype(dtype)
    return qkv, k_cache, v_cache


def heads(qkv, NH):
    """(B, T, 3C) -> q, k, v, each (B, NH, T, hs)."""
    B, T, C3 = qkv.shape
    return qkv.reshape(B, T, 3, NH, C3 // (3 * NH)).transpose(2, 0, 3, 1, 4)


# ----------------------------------------------------------------------------- the NumPy reference

@pytest.mark.parametrize("steps", [[5, 1, 1, 1], [1, 1, 1], [3, 4]])
def test_reference_steps_equal_full_causal_attention(steps):
    rng = np.random.default_rng(0)
    B, NH, hs, T = 2, 3, 8, sum(steps)
    qkv = rng.standard_normal((B, T, 3 * NH * hs))
    q, k, v = heads(qkv, NH)
    full, _ = kernels.attention_forward(q, k, v)  # (B, NH, T, hs): every position at once, no cache
    full = full.transpose(0, 2, 1, 3).reshape(B, T, NH * hs)
    k_cache, v_cache = np.zeros((B, NH, T, hs)), np.zeros((B, NH, T, hs))
    pos = 0
    for Tn in steps:
        y = kernels.attention_cached(qkv[:, pos:pos + Tn], k_cache, v_cache, pos)
        np.testing.assert_allclose(y, full[:, pos:pos + Tn], rtol=1e-12, atol=1e-12)
        pos += Tn
    np.testing.assert_array_equal(k_cache, k)  # the cache now holds every key and value
    np.testing.assert_array_equal(v_cache, v)


# ----------------------------------------------------------------------------- _core against the reference

# (B, Tn, NH, hs, Tmax, pos): one key; head sizes 1, 24, 80, 128; several new positions; the last slot
SHAPES = [(1, 1, 1, 1, 4, 0), (1, 1, 12, 64, 1024, 128), (2, 3, 3, 24, 9, 4), (1, 7, 2, 80, 7, 0),
          (3, 1, 1, 128, 40, 39), (1, 5, 4, 17, 300, 200)]


def assert_core_matches_reference(B, Tn, NH, hs, Tmax, pos):
    qkv, k_cache, v_cache = random_step(np.random.default_rng(Tmax + pos), B, Tn, NH, hs, Tmax, pos)
    k64, v64 = k_cache.astype(np.float64), v_cache.astype(np.float64)
    expected = kernels.attention_cached(qkv.astype(np.float64), k64, v64, pos)
    y = kernels.attention_cached(qkv, k_cache, v_cache, pos, backend="cpu")
    assert y.dtype == np.float32 and y.shape == (B, Tn, NH * hs)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
    # the new keys and values are in the cache, and nothing else in it changed
    np.testing.assert_array_equal(k_cache, k64.astype(np.float32))
    np.testing.assert_array_equal(v_cache, v64.astype(np.float32))


@requires_core
@pytest.mark.parametrize("shape", SHAPES)
def test_core_matches_reference(shape):
    assert_core_matches_reference(*shape)


@pytest.fixture(params=["avx512", "avx2", "portable"])
def simd(request, monkeypatch):
    monkeypatch.setenv("MINIGPT_SIMD", request.param)
    try:
        assert kernels.core_info()["attention_simd"] == request.param
    except ValueError as error:
        if "lacks" not in str(error):  # only a CPU without the instructions is a reason to skip
            raise
        pytest.skip(f"this CPU cannot run the {request.param} path")
    return request.param


@requires_core
@pytest.mark.parametrize("shape", [SHAPES[2], SHAPES[3], SHAPES[4]])
def test_every_simd_path_matches_reference(simd, shape):
    assert_core_matches_reference(*shape)


@requires_core
@pytest.mark.parametrize("bad", [0, 4, 7, 8])
def test_every_simd_path_passes_a_nan_key_on_to_every_query_that_sees_it(simd, bad):
    # A NaN (a diverged model) must reach every output whose weights it touches, never vanish into a weight
    # of 0. Cached positions 0..6, new positions 7..9: a NaN key at position `bad` of head 1 reaches the new
    # queries at positions >= bad; the queries before it and head 0 come out as if it were not there.
    B, Tn, NH, hs, Tmax, pos = 1, 3, 2, 16, 12, 7
    qkv, k_cache, v_cache = random_step(np.random.default_rng(bad), B, Tn, NH, hs, Tmax, pos)
    clean = kernels.attention_cached(qkv, k_cache.copy(), v_cache.copy(), pos, backend="cpu").reshape(B, Tn, NH, hs)
    if bad < pos:
        k_cache[0, 1, bad, 5] = np.nan
    else:  # a new key: in qkv's (3, NH, hs) layout, k is the second third
        qkv[0, bad - pos, NH * hs + hs + 5] = np.nan
    y = kernels.attention_cached(qkv, k_cache, v_cache, pos, backend="cpu").reshape(B, Tn, NH, hs)
    sees = np.arange(pos, pos + Tn) >= bad
    assert np.isnan(y[0, sees, 1]).all()
    np.testing.assert_array_equal(y[0, ~sees, 1], clean[0, ~sees, 1])
    np.testing.assert_array_equal(y[0, :, 0], clean[0, :, 0])


@requires_core
def test_core_huge_scores_do_not_overflow():
    B, Tn, NH, hs, Tmax, pos = 1, 1, 2, 16, 10, 6
    qkv, k_cache, v_cache = random_step(np.random.default_rng(5), B, Tn, NH, hs, Tmax, pos)
    qkv *= 30.0  # scores in the thousands: exp without the max subtracted would overflow
    k_cache *= 30.0
    expected = kernels.attention_cached(qkv.astype(np.float64), k_cache.astype(np.float64),
                                        v_cache.astype(np.float64), pos)
    y = kernels.attention_cached(qkv, k_cache, v_cache, pos, backend="cpu")
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


@requires_core
def test_every_simd_path_scores_far_below_zero_do_not_underflow(simd):
    # Every score near -250: exp(score - max) needs the true max of the row, not a max that starts at 0,
    # which would underflow every weight to 0 and leave 0 / 0.
    B, Tn, NH, hs, Tmax, pos = 1, 2, 2, 16, 10, 6
    qkv, k_cache, v_cache = random_step(np.random.default_rng(6), B, Tn, NH, hs, Tmax, pos)
    C = NH * hs
    qkv[..., :C] = 8.0 + qkv[..., :C]  # q > 0
    qkv[..., C:2 * C] = -8.0 - qkv[..., C:2 * C]  # new keys < 0
    k_cache[:] = -8.0 - k_cache  # cached keys < 0
    expected = kernels.attention_cached(qkv.astype(np.float64), k_cache.astype(np.float64),
                                        v_cache.astype(np.float64), pos)
    y = kernels.attention_cached(qkv, k_cache, v_cache, pos, backend="cpu")
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, expected, rtol=1e-4, atol=1e-4)


# ----------------------------------------------------------------------------- threads

THREADS_SCRIPT = """
import sys
import numpy as np
from minigpt import kernels
rng = np.random.default_rng(3)
B, Tn, NH, hs, Tmax, pos = 2, 3, 5, 40, 300, 250
qkv = rng.standard_normal((B, Tn, 3 * NH * hs)).astype(np.float32)
k_cache, v_cache = (rng.standard_normal((B, NH, Tmax, hs)).astype(np.float32) for _ in range(2))
k0, v0 = k_cache.copy(), v_cache.copy()
y = kernels.attention_cached(qkv, k_cache, v_cache, pos, backend="cpu")
np.savez(sys.argv[1], num_threads=kernels.core_info()["num_threads"], qkv=qkv, k0=k0, v0=v0, y=y, k=k_cache,
         v=v_cache)
"""


@requires_core
def test_core_same_result_on_1_and_2_threads(tmp_path):
    one, two = (run_with_threads(THREADS_SCRIPT, threads, tmp_path) for threads in (1, 2))
    if kernels.core_info()["openmp"]:
        assert (int(one["num_threads"]), int(two["num_threads"])) == (1, 2)
    k64, v64 = one["k0"].astype(np.float64), one["v0"].astype(np.float64)
    expected = kernels.attention_cached(one["qkv"].astype(np.float64), k64, v64, 250)
    np.testing.assert_allclose(one["y"], expected, rtol=1e-5, atol=1e-5)
    for name in ("y", "k", "v"):  # each (batch, head, query) row is summed by one thread in one order
        np.testing.assert_array_equal(two[name], one[name], err_msg=name)


# ----------------------------------------------------------------------------- bad input

QKV = np.ones((1, 2, 3 * 2 * 4), dtype=np.float32)  # (B, Tn, 3C) with NH = 2, hs = 4
CACHE = np.ones((1, 2, 5, 4), dtype=np.float32)  # (B, NH, Tmax, hs)

BAD_INPUTS = [  # (qkv, k_cache, v_cache, pos), the error, words the message must contain
    ((QKV.astype(np.float64), CACHE, CACHE, 0), TypeError, "qkv must be float32, got float64"),
    ((QKV, CACHE.astype(np.float64), CACHE, 0), TypeError, "k_cache must be float32"),
    ((QKV, CACHE, CACHE.transpose(0, 1, 3, 2), 0), TypeError, "v_cache must be C-contiguous"),
    ((QKV[0], CACHE, CACHE, 0), ValueError, r"qkv must be 3-D \(B, Tn, 3C\)"),
    ((QKV, CACHE[0], CACHE[0], 0), ValueError, r"k_cache must be 4-D \(B, NH, Tmax, hs\)"),
    ((QKV, CACHE, CACHE[:, :, :4].copy(), 0), ValueError, "v_cache must have the shape of k_cache"),
    ((QKV[..., :12].copy(), CACHE, CACHE, 0), ValueError, r"must be \(B, Tn, 3 \* NH \* hs\)"),
    ((np.ones((2, 2, 24), np.float32), CACHE, CACHE, 0), ValueError, r"must be \(B, Tn, 3 \* NH \* hs\)"),
    ((QKV, CACHE, CACHE, 4), ValueError, r"positions pos .. pos\+Tn-1 \(pos = 4, Tn = 2\) must lie inside"),
    ((QKV, CACHE, CACHE, -1), ValueError, "must lie inside the cache's 5 positions"),
    ((QKV, CACHE, CACHE, 2**63 - 1), ValueError, "must lie inside"),  # pos + Tn would overflow (it wrote out of bounds)
]


@pytest.mark.parametrize("pos", [-1, 4, 2**63 - 1])
def test_numpy_reference_rejects_positions_outside_the_cache(pos):
    with pytest.raises(ValueError, match="must lie inside the cache's 5 positions"):
        kernels.attention_cached(QKV, CACHE.copy(), CACHE.copy(), pos)


@requires_core
@pytest.mark.parametrize("args, error, message", BAD_INPUTS)
def test_core_rejects_bad_input(args, error, message):
    with pytest.raises(error, match=message):  # raised before anything is written into the caches
        kernels.attention_cached(*args, backend="cpu")
    k_cache, v_cache = CACHE.copy(), CACHE.copy()  # the process survives and the next call works
    y = kernels.attention_cached(QKV, k_cache, v_cache, 3, backend="cpu")
    np.testing.assert_allclose(y, np.ones((1, 2, 8)))


@requires_core
@pytest.mark.parametrize("read_only", ["k", "v"])
def test_core_rejects_read_only_cache(read_only):
    caches = {"k": CACHE.copy(), "v": CACHE.copy()}
    caches[read_only].flags.writeable = False
    with pytest.raises(ValueError, match="must be writeable"):
        kernels.attention_cached(QKV, caches["k"], caches["v"], 0, backend="cpu")
    np.testing.assert_array_equal(caches[read_only], CACHE)  # nothing was written into it

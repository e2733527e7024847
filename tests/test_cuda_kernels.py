"""The CUDA kernels (minigpt._cuda, backend="cuda") against the NumPy reference in float64.

Every op on random and awkward shapes: sizes that divide no tile (the matmul's 128 x 128 x 8, the
attention's 64), head sizes the flash kernels pad (5, 8, 80, 96) and fill (32, 64, 128), rows of
-inf, ignored targets, repeated ids; the teaching versions too; the attention-dropout mask bit for
bit; and the errors for bad input, after which the process still works.

Skipped where backend="cuda" cannot run (no minigpt._cuda, no CuPy, or no GPU); with
MINIGPT_REQUIRE_CUDA=1 (the GPU check script sets it) that is an error instead.
"""
import os

import numpy as np
import pytest
from conftest import cupy_or_skip_module, dropout_hash_top24

from minigpt import kernels

cupy = cupy_or_skip_module()
_cuda = kernels._cuda


def dev(x):
    return cupy.asarray(np.asarray(x, dtype=np.float32))


def host(x):
    return cupy.asnumpy(x).astype(np.float64)


# ||got - ref|| / ||ref|| against a float64 reference: float32 arithmetic lands at 1e-7 .. 1e-5 (longer
# sums, more rounding); an indexing or masking error lands near 1.
FWD, GRAD = 2e-5, 1e-4


def rel(got, ref, floor=1e-30):
    """floor: the smallest norm to divide by, for references that are zero but for rounding."""
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.linalg.norm(host(got) - ref) / max(np.linalg.norm(ref), floor))


@pytest.fixture
def rng():
    return np.random.default_rng(2024)


# ----------------------------------------------------------------------------- matmul

MATMUL_SHAPES = [(1, 1, 1), (7, 13, 5), (64, 64, 64), (127, 129, 131), (130, 257, 8), (300, 17, 45),
                 (33, 1000, 65), (256, 384, 512)]
TRANS = [(False, False), (False, True), (True, False), (True, True)]
MATMULS = {"matmul": lambda *a: kernels.matmul(*a, backend="cuda"), "matmul_staged": lambda *a: _cuda.matmul_staged(*a),
           "matmul_tiled": lambda *a: _cuda.matmul_tiled(*a), "matmul_naive": lambda *a: _cuda.matmul_naive(*a)}
TUNED = ["matmul", "matmul_staged"]  # the cp.async kernel and the one double-buffered through registers


def matmul_case(rng, M, K, N, trans_a, trans_b, with_bias=True):
    a = rng.standard_normal((K, M) if trans_a else (M, K))
    b = rng.standard_normal((N, K) if trans_b else (K, N))
    bias = rng.standard_normal(N) if with_bias else None
    ref = (a.T if trans_a else a) @ (b.T if trans_b else b) + (0.0 if bias is None else bias)
    return a, b, bias, ref


@pytest.mark.parametrize("variant", list(MATMULS))
@pytest.mark.parametrize("M,K,N", MATMUL_SHAPES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matmul_matches_numpy(rng, variant, M, K, N, trans_a, trans_b):
    a, b, bias, ref = matmul_case(rng, M, K, N, trans_a, trans_b, with_bias=(M + N) % 2 == 0)
    out = MATMULS[variant](dev(a), dev(b), trans_a, trans_b, None if bias is None else dev(bias))
    assert out.shape == (M, N) and isinstance(out, cupy.ndarray)
    assert rel(out, ref) < FWD


@pytest.mark.parametrize("variant", TUNED)
@pytest.mark.parametrize("M,K,N", [(100, 5000, 70), (64, 8192, 128), (384, 4096, 1152)])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matmul_split_k_matches_numpy(rng, variant, M, K, N, trans_a, trans_b):
    # few output tiles and a long k: the launch splits K across blocks and adds with atomicAdd
    a, b, bias, ref = matmul_case(rng, M, K, N, trans_a, trans_b)
    out = MATMULS[variant](dev(a), dev(b), trans_a, trans_b, dev(bias))
    assert rel(out, ref) < FWD


@pytest.mark.parametrize("M,K,N", [(7, 13, 5), (127, 129, 131), (300, 17, 45), (256, 200, 512)])
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matmul_tuned_and_staged_agree_bit_for_bit(rng, M, K, N, trans_a, trans_b):
    # the two kernels differ only in how the tiles reach shared memory (cp.async or through registers):
    # each thread then does the same multiply-adds in the same order (K < 256: no split, no atomics)
    a, b, bias, _ = matmul_case(rng, M, K, N, trans_a, trans_b)
    args = (dev(a), dev(b), trans_a, trans_b, dev(bias))
    assert cupy.array_equal(MATMULS["matmul"](*args), MATMULS["matmul_staged"](*args))


@pytest.fixture
def tf32():
    """TF32 tensor cores on for one test, off again after it (they are off by default)."""
    assert not kernels.cuda_info()["tf32"], "TF32 must be off by default (is MINIGPT_TF32 set?)"
    kernels.set_cuda_tf32(True)
    yield
    kernels.set_cuda_tf32(False)


# The TF32 kernels: the one matmul runs with TF32 on (wgmma on an H100 or H200 built for sm_90a, and in
# the emulator; else mma.sync), the mma.sync one called by name, and the wgmma one with a fourth stage.
TF32_MATMULS = {"matmul": lambda *a: kernels.matmul(*a, backend="cuda"),
                "matmul_tf32_mma": lambda *a: _cuda.matmul_tf32_mma(*a),
                "matmul_tf32_wgmma_overlapped": lambda *a: _cuda.matmul_tf32_wgmma_overlapped(*a)}


# every shape for the kernel matmul runs; the other two (the mma.sync one is matmul's on other GPUs,
# checked there by all of them) without the two largest, which take the emulator a minute
TF32_SHAPES = MATMUL_SHAPES + [(100, 5000, 70), (384, 4096, 1152), (1000, 999, 1001)]
TF32_CASES = [("matmul", *shape) for shape in TF32_SHAPES] + \
    [(variant, *shape) for variant in ("matmul_tf32_mma", "matmul_tf32_wgmma_overlapped") for shape in TF32_SHAPES[:-2]]


@pytest.mark.parametrize("variant,M,K,N", TF32_CASES)
@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matmul_tf32_matches_numpy_to_tf32_precision(rng, tf32, variant, M, K, N, trans_a, trans_b):
    if variant == "matmul_tf32_wgmma_overlapped" and not kernels.cuda_info()["wgmma"]:
        pytest.skip("wgmma needs an H100 or H200 and a build for sm_90a")
    # inputs cut to 10 bits of mantissa (relative 2^-11 rounded, 2^-10 truncated), float32 sums: errors
    # near 1e-4 .. 1e-3
    a, b, bias, ref = matmul_case(rng, M, K, N, trans_a, trans_b, with_bias=(M + K) % 2 == 0)
    out = TF32_MATMULS[variant](dev(a), dev(b), trans_a, trans_b, None if bias is None else dev(bias))
    assert out.shape == (M, N) and rel(out, ref) < 3e-3


def tf32_truncated(x):
    """x as the tensor cores read a float32 they are handed unrounded: the 13 low mantissa bits dropped."""
    return (np.asarray(x, np.float32).view(np.uint32) & np.uint32(0xFFFFE000)).view(np.float32).astype(np.float64)


def test_tf32_kernel_is_wgmma_on_hopper_built_for_sm90a(monkeypatch):
    monkeypatch.delenv("MINIGPT_CUDA_TF32_KERNEL", raising=False)
    info = kernels.cuda_info()
    # compute capability 9.0 (H100, H200) and a build for sm_90a (the emulator counts as one)
    hopper = info["compute_capability"] == "9.0" and ("90a" in info["built_for"] or info["built_for"] == "emulated")
    assert info["wgmma"] == hopper and info["tf32_kernel"] == ("wgmma" if hopper else "mma.sync")


# Each of matmul's kernel choices the environment may override: (its variable, the kernel it prefers
# where that runs, the other one, the other called by name, with TF32 on).
KERNEL_SWITCHES = {"float32": ("MINIGPT_CUDA_FLOAT32_KERNEL", "cp.async", "staged", "matmul_staged", False),
                   "tf32": ("MINIGPT_CUDA_TF32_KERNEL", "wgmma", "mma.sync", "matmul_tf32_mma", True)}


@pytest.mark.parametrize("precision", list(KERNEL_SWITCHES))
def test_matmul_kernel_from_the_environment(rng, request, monkeypatch, precision):
    variable, preferred, other, other_by_name, use_tf32 = KERNEL_SWITCHES[precision]
    info_key, tolerance = f"{precision}_kernel", 3e-3 if use_tf32 else FWD
    monkeypatch.delenv(variable, raising=False)
    # asked before the variable is set: cuda_info() too refuses a kernel that cannot run here
    info = kernels.cuda_info()
    preferred_runs = info["wgmma"] if use_tf32 else float(info["compute_capability"]) >= 8.0
    assert kernels.cuda_info()[info_key] == (preferred if preferred_runs else other)
    if use_tf32:
        request.getfixturevalue("tf32")
    # K < 256: no split of K, so the same kernel gives the same bits whichever way it is picked
    a, b, bias, ref = matmul_case(rng, 130, 200, 72, use_tf32, not use_tf32)
    args = (dev(a), dev(b), use_tf32, not use_tf32, dev(bias))
    monkeypatch.setenv(variable, other)
    assert kernels.cuda_info()[info_key] == other
    assert cupy.array_equal(kernels.matmul(*args, backend="cuda"), getattr(_cuda, other_by_name)(*args))
    monkeypatch.setenv(variable, preferred)
    if preferred_runs:
        assert kernels.cuda_info()[info_key] == preferred
        assert rel(kernels.matmul(*args, backend="cuda"), ref) < tolerance
    else:
        with pytest.raises(ValueError, match=f"{variable}={preferred}, but {preferred} needs compute capability"):
            kernels.matmul(*args, backend="cuda")
    monkeypatch.setenv(variable, "fastest")
    with pytest.raises(ValueError, match=f"{variable} must be {preferred} or {other}"):
        kernels.matmul(*args, backend="cuda")
    if use_tf32:
        kernels.set_cuda_tf32(False)  # float32 matmuls never ask which TF32 kernel
        assert rel(kernels.matmul(*args, backend="cuda"), ref) < FWD


@pytest.mark.parametrize("trans_a,trans_b", TRANS)
def test_matmul_wgmma_reads_tf32_by_truncation(rng, tf32, trans_a, trans_b):
    # wgmma reads its operands from shared memory as they are (no rounding instruction in between), and
    # the tensor core uses their TF32 part: the product of truncated inputs, to float32 sums. Pinned here
    # so that a GPU tells whether the emulator's model of it holds: a failure on a GPU says that model is
    # wrong, not the kernel, which the TF32 tests hold to TF32's tolerance.
    if kernels.cuda_info()["tf32_kernel"] != "wgmma":
        pytest.skip("the TF32 kernel here is mma.sync, which rounds its inputs")
    M, K, N = 200, 96, 136
    a, b, _, _ = matmul_case(rng, M, K, N, trans_a, trans_b, with_bias=False)
    a, b = a.astype(np.float32), b.astype(np.float32)
    a_cut, b_cut = tf32_truncated(a), tf32_truncated(b)
    ref = (a_cut.T if trans_a else a_cut) @ (b_cut.T if trans_b else b_cut)
    out = kernels.matmul(dev(a), dev(b), trans_a, trans_b, backend="cuda")
    assert rel(out, ref) < FWD  # rounding instead would be near 5e-4 off


def test_matmul_tf32_is_a_switch(rng, tf32):
    a, b, _, ref = matmul_case(rng, 256, 384, 512, False, False, with_bias=False)
    assert rel(kernels.matmul(dev(a), dev(b), backend="cuda"), ref) > 2e-5  # the tensor cores did run
    kernels.set_cuda_tf32(False)
    assert rel(kernels.matmul(dev(a), dev(b), backend="cuda"), ref) < 2e-6  # float32 again


def test_tf32_from_the_environment():
    import subprocess
    import sys
    code = "from minigpt import kernels; kernels.check_backend('cuda'); print(kernels.cuda_info()['tf32'])"
    for value, expected in (("1", "True"), ("0", "False")):
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "MINIGPT_TF32": value})
        assert done.returncode == 0 and done.stdout.strip() == expected, done.stderr
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, "MINIGPT_TF32": "yes"})
    assert bad.returncode != 0 and "MINIGPT_TF32 must be 0 or 1" in bad.stderr


@pytest.mark.parametrize("use_tf32", [False, True], ids=["fp32", "tf32"])
def test_matmul_reads_unaligned_views(rng, request, use_tf32):
    # contiguous views that start 4 bytes into their buffers: no float4 loads (or 16-byte copies) may be
    # used on them
    if use_tf32:
        request.getfixturevalue("tf32")
    M, K, N = 67, 132, 36
    a = dev(rng.standard_normal(M * K + 1))[1:].reshape(M, K)
    b = dev(rng.standard_normal(K * N + 1))[1:].reshape(K, N)
    assert a.flags.c_contiguous and a.data.ptr % 16 != 0 and b.data.ptr % 16 != 0
    tolerance = 3e-3 if use_tf32 else FWD
    assert rel(kernels.matmul(a, b, backend="cuda"), host(a) @ host(b)) < tolerance


@pytest.mark.parametrize("use_tf32", [False, True], ids=["fp32", "tf32"])
def test_matmul_keeps_nan_and_inf(rng, request, use_tf32):
    # a NaN in row 0 of a (with every mantissa bit set, as a GPU makes them) and an inf in row 1 reach every
    # output of their rows, and only those: rounding to TF32 must not carry a NaN's mantissa into its sign
    if use_tf32:
        request.getfixturevalue("tf32")
    M, K, N = 130, 70, 140
    a = rng.standard_normal((M, K)).astype(np.float32)
    a[0, 3] = np.array(0x7FFFFFFF, dtype=np.uint32).view(np.float32)
    a[1, 5] = np.inf
    b = np.abs(rng.standard_normal((K, N))).astype(np.float32) + 0.1  # positive: row 1 sums to +inf, not NaN
    out = cupy.asnumpy(kernels.matmul(cupy.asarray(a), cupy.asarray(b), backend="cuda"))
    assert np.isnan(out[0]).all() and np.isposinf(out[1]).all() and np.isfinite(out[2:]).all()


@pytest.mark.parametrize("variant", [*TUNED, "tf32"])
def test_matmul_split_k_keeps_nan_and_inf_in_their_rows(rng, request, variant):
    # K split across blocks (outputs added with atomicAdd) and N = 71: the last group of 4 columns (of 2 with
    # TF32) reaches past the row. Its outputs past N are NaN (inf * a zero of the padding) in a row that holds an
    # inf, and must not be added into the start of the next row.
    M, K, N = 100, 5000, 71
    if variant == "tf32":
        request.getfixturevalue("tf32")  # the tuned matmul, on the tensor cores
        variant = "matmul"
    a = rng.standard_normal((M, K)).astype(np.float32)
    a[0, 3], a[1, 5] = np.nan, np.inf
    b = np.abs(rng.standard_normal((K, N))).astype(np.float32) + 0.1  # positive: row 1 sums to +inf, not NaN
    out = cupy.asnumpy(MATMULS[variant](cupy.asarray(a), cupy.asarray(b), False, False, None))
    assert np.isnan(out[0]).all() and np.isposinf(out[1]).all() and np.isfinite(out[2:]).all()


@pytest.mark.parametrize("use_tf32", [False, True], ids=["fp32", "tf32"])
def test_matmul_empty_and_zero_k(rng, request, use_tf32):
    if use_tf32:
        request.getfixturevalue("tf32")
    assert kernels.matmul(dev(np.ones((0, 3))), dev(np.ones((3, 4))), backend="cuda").shape == (0, 4)
    bias = rng.standard_normal(4)
    out = kernels.matmul(dev(np.ones((5, 0))), dev(np.ones((0, 4))), bias=dev(bias), backend="cuda")
    np.testing.assert_allclose(host(out), np.tile(bias, (5, 1)), rtol=1e-6)


# ----------------------------------------------------------------------------- bias gradient

# N = 1, 7: a single chunk, which adds into db directly; 256 + 1, 1000, 16384: several chunks of 256 rows
# and a ragged last one; C = 1, 33 (a strip of 32 and one more), 384, 3072; (64, 98304): wpe's gradient of
# "small" (B, T * C); (300_001, 3): more than 1024 chunks of 256 rows, so each chunk grows.
BIAS_GRAD_SHAPES = [(1, 1), (1, 384), (7, 33), (7, 1), (257, 1), (257, 33), (1000, 384), (4097, 1152),
                    (16384, 3072), (64, 98304), (300_001, 3)]
BIAS_GRADS = {"bias_grad": lambda *a: kernels.bias_grad(*a, backend="cuda"), "bias_grad_naive": _cuda.bias_grad_naive}


@pytest.mark.parametrize("variant", list(BIAS_GRADS))
@pytest.mark.parametrize("N,C", BIAS_GRAD_SHAPES)
def test_bias_grad_matches_numpy(rng, variant, N, C):
    # the naive version adds a column up in one chain of N float32 adds: its rounding grows with N
    tolerance = FWD if variant == "bias_grad" else GRAD
    dout = rng.standard_normal((N, C))
    db = BIAS_GRADS[variant](dev(dout))
    assert db.shape == (C,) and db.dtype == cupy.float32
    assert rel(db, dout.sum(axis=0)) < tolerance
    start = rng.standard_normal(C)  # with db given, the sums are added into it, in place
    given = dev(start)
    assert BIAS_GRADS[variant](dev(dout), given) is given
    assert rel(given, start + dout.sum(axis=0)) < tolerance


def test_bias_grad_is_deterministic_and_adds_into_a_flat_view(rng):
    dout = dev(rng.standard_normal((16384, 384)) * 10)
    assert cupy.array_equal(kernels.bias_grad(dout, backend="cuda"), kernels.bias_grad(dout, backend="cuda"))
    flat = dev(np.zeros(1000))
    view = flat[64:64 + 384]  # a layer's grads["bias"] in the flat gradient buffer
    kernels.bias_grad(dout, view, backend="cuda")
    assert rel(flat[64:448], host(dout).sum(axis=0)) < FWD
    assert not cupy.any(flat[:64]) and not cupy.any(flat[448:])  # nothing outside the slice


@pytest.mark.parametrize("variant", list(BIAS_GRADS))
def test_bias_grad_adds_into_a_flat_view_and_nowhere_else(rng, variant):
    # C = 384 columns: not a multiple of the 256 threads of a block, so threads past the last column exist and
    # must write nothing (a layer's bias gradient is a view of the flat buffer: its neighbours follow it)
    dout = dev(rng.standard_normal((100, 384)))
    flat = dev(np.zeros(1000))
    BIAS_GRADS[variant](dout, flat[64:448])
    assert rel(flat[64:448], host(dout).sum(axis=0)) < GRAD
    assert not cupy.any(flat[:64]) and not cupy.any(flat[448:])


def test_bias_grad_empty_and_bad_input(rng):
    assert np.array_equal(host(kernels.bias_grad(dev(np.ones((0, 5))), backend="cuda")), np.zeros(5))
    assert kernels.bias_grad(dev(np.ones((4, 0))), backend="cuda").shape == (0,)
    with pytest.raises(ValueError, match="2-D"):
        kernels.bias_grad(dev(np.ones((2, 3, 4))), backend="cuda")
    with pytest.raises(ValueError, match="db must have shape"):
        kernels.bias_grad(dev(np.ones((2, 3))), dev(np.ones(4)), backend="cuda")
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.bias_grad(dev(np.ones((3, 2))).T, backend="cuda")
    with pytest.raises(TypeError, match="float32"):
        kernels.bias_grad(cupy.ones((2, 3)), backend="cuda")


# ----------------------------------------------------------------------------- softmax

@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (7, 33), (4, 6, 257), (2, 1000), (5, 4099)])
def test_softmax_matches_numpy(rng, shape):
    x = rng.standard_normal(shape) * 3
    x[..., 1::3] = -np.inf  # masked entries, as attention scores have them
    y_ref = kernels.softmax_forward(x)
    y = kernels.softmax_forward(dev(x), backend="cuda")
    assert rel(y, y_ref) < FWD
    assert rel(_cuda.softmax_forward_naive(dev(x)), y_ref) < FWD  # the teaching version
    dy = rng.standard_normal(shape)
    assert rel(kernels.softmax_backward(dev(dy), y, backend="cuda"), kernels.softmax_backward(dy, y_ref)) < GRAD


# ----------------------------------------------------------------------------- layernorm, gelu

@pytest.mark.parametrize("shape", [(1, 1), (5, 7), (3, 4, 384), (17, 768), (2, 1000), (130, 33)])
def test_layernorm_matches_numpy(rng, shape):
    C = shape[-1]
    x, w, b = rng.standard_normal(shape) * 2 + 0.5, rng.standard_normal(C), rng.standard_normal(C)
    ref = kernels.layernorm_forward(x, w, b)
    got = kernels.layernorm_forward(dev(x), dev(w), dev(b), backend="cuda")
    for g, r in zip(got, ref):
        assert g.shape == r.shape and rel(g, r) < FWD
    for g, r in zip(_cuda.layernorm_forward_naive(dev(x), dev(w), dev(b)), ref):  # the teaching version
        assert g.shape == r.shape and rel(g, r) < FWD
    dout = rng.standard_normal(shape)
    ref_grads = kernels.layernorm_backward(dout, x, ref[1], ref[2], w)
    got_grads = kernels.layernorm_backward(dev(dout), dev(x), got[1], got[2], dev(w), backend="cuda")
    # With C = 1 every x-hat is 0 and the exact dx is 0: float32 rounding times rstd = 1/sqrt(eps) is all
    # that is left, so errors are measured against the size gradients have, |dout| |w|, not against 0.
    scale = np.linalg.norm(dout) * np.abs(w).max()
    for g, r in zip(got_grads, ref_grads):
        assert g.shape == r.shape and rel(g, r, floor=scale) < GRAD


@pytest.mark.parametrize("n", [1, 7, 1000, 100_003])
def test_gelu_matches_numpy(rng, n):
    x, dout = rng.standard_normal(n) * 3, rng.standard_normal(n)
    assert rel(kernels.gelu_forward(dev(x), backend="cuda"), kernels.gelu_forward(x)) < FWD
    assert rel(kernels.gelu_backward(dev(dout), dev(x), backend="cuda"), kernels.gelu_backward(dout, x)) < FWD



def test_gelu_far_ends_give_the_limits():
    # x^3 overflowed past 7e12: the backward was 0 * inf = NaN there, and gelu(-inf) NaN (as in csrc/gelu.cpp,
    # the formulas take x clamped to [-10, 10], where tanh(u) is already +-1)
    left, right = [-np.inf, -3e38, -1e30, -1e19, -20.0], [20.0, 1e19, 1e30, 3e38, np.inf]
    x = dev(np.array(left + right + [np.nan]))
    out = host(kernels.gelu_forward(x, backend="cuda"))
    dx = host(kernels.gelu_backward(cupy.full_like(x, 2.0), x, backend="cuda"))
    n, m = len(left), len(left) + len(right)
    assert (out[:n] == 0).all() and (dx[:n] == 0).all()
    assert np.array_equal(out[n:m], host(x)[n:m]) and (dx[n:m] == 2.0).all()
    assert np.isnan(out[m]) and np.isnan(dx[m])


# ----------------------------------------------------------------------------- cross-entropy

@pytest.mark.parametrize("N,V", [(1, 2), (7, 65), (33, 1000), (4, 50257)])
def test_cross_entropy_matches_numpy(rng, N, V):
    z = rng.standard_normal((N, V)) * 4
    t = rng.integers(0, V, N)
    t[::3] = -1  # ignored rows: no loss, no gradient
    losses, lse = kernels.cross_entropy_forward(z, t)
    got = kernels.cross_entropy_forward(dev(z), cupy.asarray(t), backend="cuda")
    assert rel(got[0], losses) < FWD and rel(got[1], lse) < FWD
    naive = _cuda.cross_entropy_forward_naive(dev(z), cupy.asarray(t))  # the teaching version
    assert rel(naive[0], losses) < FWD and rel(naive[1], lse) < FWD
    dz = kernels.cross_entropy_backward(dev(z), got[1], cupy.asarray(t), 0.25, backend="cuda")
    assert rel(dz, kernels.cross_entropy_backward(z, lse, t, 0.25)) < FWD
    assert np.all(host(dz)[t < 0] == 0)



@pytest.mark.parametrize("V", [4, 100])
def test_a_nan_logit_gives_a_nan_row_as_in_numpy(rng, V):
    # The online max-and-sum skipped the first value a lane read when it was NaN (fmaxf drops NaN): a NaN
    # logit gave a finite loss and softmax. Rows: NaN first, NaN second, NaN after -inf, and a clean row.
    z = rng.standard_normal((4, V))
    z[0, 0], z[1, 1], z[2, :2] = np.nan, np.nan, [-np.inf, np.nan]
    t = np.array([1, 0, 3, 2])
    losses, lse = kernels.cross_entropy_forward(dev(z), cupy.asarray(t), backend="cuda")
    naive = _cuda.cross_entropy_forward_naive(dev(z), cupy.asarray(t))
    y = kernels.softmax_forward(dev(z), backend="cuda")
    for got in (losses, lse, naive[0], naive[1]):
        assert np.isnan(host(got)[:3]).all() and np.isfinite(host(got)[3])
    assert np.isnan(host(y)[:3]).all() and rel(y[3], kernels.softmax_forward(z[3])) < FWD


def test_softmax_and_cross_entropy_of_rows_far_below_zero(rng):
    # Shifting by any number leaves a softmax unchanged in exact arithmetic, but in float32 only the row's own
    # max keeps the exps in range: rows of logits near -200 have every exp(x - 0) underflow to 0, so a max
    # that started at 0 instead of -inf would give 0 / 0.
    x = (rng.standard_normal((5, 37)) * 3 - 200).astype(np.float32).astype(np.float64)  # as the kernels see it
    y_ref = kernels.softmax_forward(x)
    assert rel(kernels.softmax_forward(dev(x), backend="cuda"), y_ref) < FWD
    assert rel(_cuda.softmax_forward_naive(dev(x)), y_ref) < FWD  # the teaching version
    t = rng.integers(0, 37, 5)
    losses, lse = kernels.cross_entropy_forward(x, t)
    for got in (kernels.cross_entropy_forward(dev(x), cupy.asarray(t), backend="cuda"),
                _cuda.cross_entropy_forward_naive(dev(x), cupy.asarray(t))):
        assert rel(got[0], losses) < FWD and rel(got[1], lse) < FWD


# ----------------------------------------------------------------------------- adamw, embedding

def test_adamw_matches_numpy(rng):
    shape = (37, 65)
    p, g = rng.standard_normal(shape), rng.standard_normal(shape)
    m, v = np.zeros(shape), np.zeros(shape)
    p_d, m_d, v_d = dev(p), dev(m), dev(v)
    for t in range(1, 4):
        args = (1e-2, 0.9, 0.95, 1e-8, 0.1, 1 - 0.9**t, 1 - 0.95**t)
        kernels.adamw_update(p, m, v, g * t, *args)
        kernels.adamw_update(p_d, m_d, v_d, dev(g * t), *args, backend="cuda")
    assert rel(p_d, p) < FWD and rel(m_d, m) < FWD and rel(v_d, v) < FWD


def test_embedding_matches_numpy(rng):
    V, C = 11, 70
    w = rng.standard_normal((V, C)).astype(np.float32)
    idx = np.array([[0, 10, 3, 3], [3, 5, 0, 7]])  # 3 three times, 0 twice
    out = kernels.embedding_forward(cupy.asarray(idx), dev(w), backend="cuda")
    assert out.shape == (2, 4, C) and np.array_equal(cupy.asnumpy(out), w[idx])  # a copy: exact
    dout = rng.standard_normal((2, 4, C))
    dw_ref = np.ones((V, C))
    kernels.embedding_backward(dw_ref, dout, idx)
    dw = dev(np.ones((V, C)))
    kernels.embedding_backward(dw, dev(dout), cupy.asarray(idx), backend="cuda")  # adds in place
    assert rel(dw, dw_ref) < FWD


def test_embedding_backward_loses_no_update_to_a_shared_row():
    # Every id names row 2: thousands of blocks add into the same C floats at once, and only atomic adds keep
    # them all (a plain += loses updates on a GPU; the emulator, which runs blocks one after another, cannot
    # tell). Ones added 4,096 times are exact in float32, so the sum must be exact too.
    N, V, C = 4096, 3, 4
    dw = dev(np.zeros((V, C)))
    kernels.embedding_backward(dw, dev(np.ones((N, C))), cupy.asarray(np.full(N, 2)), backend="cuda")
    np.testing.assert_array_equal(host(dw), [[0.0] * C, [0.0] * C, [float(N)] * C])


# ----------------------------------------------------------------------------- attention

ATTENTION_SHAPES = [(1, 1, 1, 32), (2, 3, 17, 64), (1, 2, 64, 64), (2, 2, 65, 80), (1, 2, 130, 128),
                    (2, 1, 200, 32), (1, 1, 100, 8), (1, 2, 70, 5), (1, 1, 129, 96), (1, 3, 300, 64)]
FLASH = (lambda *a: kernels.attention_forward(*a, backend="cuda"),
         lambda *a: kernels.attention_backward(*a, backend="cuda"))
NAIVE = (_cuda.attention_forward_naive, _cuda.attention_backward_naive)
MMA = (_cuda.attention_forward_mma, FLASH[1])  # the tensor-core forward; the backward takes its out and lse
ATTENTIONS = {"flash": FLASH, "naive": NAIVE, "attention_forward_mma": MMA}  # (forward, backward) by version


@pytest.mark.parametrize("version", ["flash", "naive", "attention_forward_mma"])
@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES, ids=lambda s: "B{}H{}T{}hs{}".format(*s))
def test_attention_matches_numpy(rng, version, dropout, shape):
    forward, backward = ATTENTIONS[version]
    seed = int(rng.integers(2**63))
    q, k, v, dout = (rng.standard_normal(shape) for _ in range(4))
    out_ref, lse_ref = kernels.attention_forward(q, k, v, dropout, seed)
    grads_ref = kernels.attention_backward(dout, q, k, v, out_ref, lse_ref, dropout, seed)
    out, lse = forward(dev(q), dev(k), dev(v), dropout, seed)
    assert out.shape == shape and lse.shape == shape[:3]
    assert rel(out, out_ref) < FWD and rel(lse, lse_ref) < FWD
    grads = backward(dev(dout), dev(q), dev(k), dev(v), out, lse, dropout, seed)
    for name, g, r in zip(("dq", "dk", "dv"), grads, grads_ref):  # (dq, dk are 0 at T = 1: one key, weight 1)
        assert rel(g, r, floor=1e-3 * np.sqrt(r.size)) < GRAD, name


@pytest.mark.parametrize("T,hs", [(64, 64), (100, 128)])
@pytest.mark.parametrize("version", ["flash", "attention_forward_mma"])
def test_attention_dropout_mask_is_the_numpy_mask_bit_for_bit(rng, T, hs, version):
    # With v = the identity, out[i, j] = P_ij * keep_ij / (1 - p): zero exactly where a weight was dropped
    B, NH, p, seed = 2, 2, 0.5, 2**62 + 12345  # a large seed: the 64-bit sums wrap, as in NumPy
    q, k = dev(rng.standard_normal((B, NH, T, hs)) * 0.3), dev(rng.standard_normal((B, NH, T, hs)) * 0.3)
    v = dev(np.ascontiguousarray(np.broadcast_to(np.eye(T, hs), (B, NH, T, hs))))
    out, _ = ATTENTIONS[version][0](q, k, v, p, seed)
    kept = host(out)[..., :T] != 0
    expected = kernels.dropout_keep_mask(seed, (B, NH, T, T), p) & np.tril(np.ones((T, T), bool))
    assert np.array_equal(kept, expected)
    assert 0.4 < expected.sum() / np.tril(np.ones((T, T))).sum() / (B * NH) < 0.6
    # and the mask made on the GPU by the NumPy function (as Dropout does for CuPy arrays) is the same
    assert np.array_equal(cupy.asnumpy(kernels.dropout_keep_mask(seed, (B, NH, T, T), p, cupy)),
                          kernels.dropout_keep_mask(seed, (B, NH, T, T), p))


@pytest.mark.parametrize("version", ["flash", "naive", "attention_forward_mma"])
def test_attention_dropout_keeps_a_weight_whose_hash_is_the_threshold(rng, version):
    # kept iff hash >> 40 >= p * 2^24. A random p meets the equality once in 2^24 weights, so the bit-for-bit
    # test above cannot tell >= from >: here p makes the threshold exactly the hash of weight (i, j)
    B, NH, T, hs, seed, i, j = 1, 1, 64, 64, 2024, 40, 17
    p = dropout_hash_top24(seed, i * T + j + 1) / 2**24  # exact in binary: p * 2^24 is that integer
    assert 0 < p < 1
    expected = kernels.dropout_keep_mask(seed, (B, NH, T, T), p) & np.tril(np.ones((T, T), bool))
    assert expected[0, 0, i, j]
    q, k = dev(rng.standard_normal((B, NH, T, hs)) * 0.3), dev(rng.standard_normal((B, NH, T, hs)) * 0.3)
    v = dev(np.eye(T, hs)[None, None])  # out[i, j] = P_ij keep_ij / (1 - p): zero exactly where dropped
    out, _ = ATTENTIONS[version][0](q, k, v, p, seed)
    assert np.array_equal(host(out) != 0, expected)


@pytest.mark.parametrize("version", ["flash", "attention_forward_mma"])
def test_attention_keeps_nan_in_its_rows(rng, version):
    # a NaN in query row 5 reaches every output of row 5 (its scores, then its softmax) and nothing else;
    # one in key 70 reaches every row that sees key 70, as in the NumPy reference. The NaNs have every
    # mantissa bit set, as a GPU makes them: splitting them into TF32 parts must not turn them into zeros.
    q, k, v = (rng.standard_normal((1, 2, 130, 64)).astype(np.float32) for _ in range(3))
    q[0, 0, 5, 3] = k[0, 1, 70, 0] = np.array(0x7FFFFFFF, dtype=np.uint32).view(np.float32)
    out = host(ATTENTIONS[version][0](dev(q), dev(k), dev(v))[0])
    ref = kernels.attention_forward(q, k, v)[0]
    assert np.array_equal(np.isnan(out), np.isnan(ref))
    assert np.isnan(out[0, 0, 5]).all() and np.isnan(out[0, 1, 70:]).all() and np.isfinite(out[0, 1, :70]).all()


@pytest.mark.parametrize("version", ["flash", "naive", "attention_forward_mma"])
def test_attention_rows_of_very_different_scale(rng, version):
    # Alternate groups of 4 queries point straight at key 0, with scores near 110 (natural-log units); the rows
    # between keep scores near 1. Each row's softmax must be shifted by its own max: shifted by a neighbour's
    # (150 more in log2 units) every exp of a small row underflows to 0, and 0 / 0 is NaN.
    B, NH, T, hs = 1, 2, 64, 64
    q, k, v = (rng.standard_normal((B, NH, T, hs)).astype(np.float32).astype(np.float64) for _ in range(3))
    key0 = k[:, :, :1]
    big = (np.arange(T) // 4) % 2 == 1
    q[:, :, big] = (110 * np.sqrt(hs) * key0 / np.sum(key0 * key0, axis=-1, keepdims=True)).astype(np.float32)
    out_ref, lse_ref = kernels.attention_forward(q, k, v)
    out, lse = ATTENTIONS[version][0](dev(q), dev(k), dev(v), 0.0, 0)
    assert np.isfinite(host(out)).all() and np.isfinite(host(lse)).all()
    assert rel(out, out_ref) < 1e-4 and rel(lse, lse_ref) < FWD  # scores of 110 carry float32's 1e-5 into exp


def test_attention_long_sequence_gpt2_shape(rng):
    shape = (1, 2, 1024, 64)
    q, k, v, dout = (rng.standard_normal(shape) for _ in range(4))
    out_ref, lse_ref = kernels.attention_forward(q, k, v)
    out, lse = kernels.attention_forward(dev(q), dev(k), dev(v), backend="cuda")
    assert rel(out, out_ref) < FWD
    grads = kernels.attention_backward(dev(dout), dev(q), dev(k), dev(v), out, lse, backend="cuda")
    for g, r in zip(grads, kernels.attention_backward(dout, q, k, v, out_ref, lse_ref)):
        assert rel(g, r) < GRAD


@pytest.mark.parametrize("dropout", [0.0, 0.1])
@pytest.mark.parametrize("shape", ATTENTION_SHAPES, ids=lambda s: "B{}H{}T{}hs{}".format(*s))
def test_attention_on_the_fused_qkv_is_the_split_attention(rng, dropout, shape):
    # The heads read in place from (B, T, 3C) and y written (B, T, C) give the bits of split-attend-merge:
    # the same arithmetic at other addresses. dq is summed with atomics, in an order the GPU may vary, so
    # it is compared to the float64 reference; the rest must be equal bit for bit.
    B, NH, T, hs = shape
    seed = int(rng.integers(2**63))
    qkv, dy = rng.standard_normal((B, T, 3 * NH * hs)), rng.standard_normal((B, T, NH * hs))
    heads = np.ascontiguousarray(qkv.reshape(B, T, 3, NH, hs).transpose(2, 0, 3, 1, 4))  # (3, B, NH, T, hs)
    dy_heads = np.ascontiguousarray(dy.reshape(B, T, NH, hs).transpose(0, 2, 1, 3))
    y, lse = kernels.attention_forward_fused(dev(qkv), NH, dropout, seed, backend="cuda")
    out, lse_split = kernels.attention_forward(*(dev(h) for h in heads), dropout, seed, backend="cuda")
    assert y.shape == (B, T, NH * hs) and lse.shape == (B, NH, T)
    assert np.array_equal(host(y), host(out).transpose(0, 2, 1, 3).reshape(B, T, NH * hs))
    assert np.array_equal(host(lse), host(lse_split))
    dqkv = kernels.attention_backward_fused(dev(dy), dev(qkv), y, lse, NH, dropout, seed, backend="cuda")
    grads = kernels.attention_backward(dev(dy_heads), *(dev(h) for h in heads), out, lse_split, dropout, seed,
                                       backend="cuda")
    assert dqkv.shape == qkv.shape
    dq, dk, dv = host(dqkv).reshape(B, T, 3, NH, hs).transpose(2, 0, 3, 1, 4)
    assert np.array_equal(dk, host(grads[1])) and np.array_equal(dv, host(grads[2]))
    out_ref, lse_ref = kernels.attention_forward(*heads, dropout, seed)
    dq_ref = kernels.attention_backward(dy_heads, *heads, out_ref, lse_ref, dropout, seed)[0]
    assert rel(dev(dq), dq_ref, floor=1e-3 * np.sqrt(dq_ref.size)) < GRAD


@pytest.mark.parametrize("which", ["q", "k", "v", "dout"])
def test_attention_reads_unaligned_views(rng, which):
    # one of the arrays a contiguous view that starts 4 bytes into its buffer: the kernels may then copy none
    # of them 16 bytes at a time (as test_matmul_reads_unaligned_views for matmul)
    shape = (1, 2, 70, 64)
    arrays = {name: rng.standard_normal(shape) for name in ("q", "k", "v", "dout")}
    out_ref, lse_ref = kernels.attention_forward(arrays["q"], arrays["k"], arrays["v"])
    grads_ref = kernels.attention_backward(arrays["dout"], arrays["q"], arrays["k"], arrays["v"], out_ref, lse_ref)
    d = {name: dev(x) for name, x in arrays.items()}
    d[which] = dev(np.concatenate([[0.0], arrays[which].ravel()]))[1:].reshape(shape)
    assert d[which].flags.c_contiguous and d[which].data.ptr % 16 != 0
    out, lse = kernels.attention_forward(d["q"], d["k"], d["v"], backend="cuda")
    assert rel(out, out_ref) < FWD and rel(lse, lse_ref) < FWD
    grads = kernels.attention_backward(d["dout"], d["q"], d["k"], d["v"], out, lse, backend="cuda")
    for name, g, r in zip(("dq", "dk", "dv"), grads, grads_ref):
        assert rel(g, r) < GRAD, name


def test_bad_fused_attention_input_raises(rng):
    qkv = dev(rng.standard_normal((2, 5, 24)))
    with pytest.raises(ValueError, match="3 \\* n_head \\* hs"):
        kernels.attention_forward_fused(qkv, 5, backend="cuda")
    with pytest.raises(ValueError, match="head size hs = 129"):
        kernels.attention_forward_fused(dev(np.ones((1, 2, 3 * 129))), 1, backend="cuda")
    with pytest.raises(ValueError, match="\\(B, T, 3C\\)"):
        kernels.attention_forward_fused(qkv[0], 2, backend="cuda")
    with pytest.raises(TypeError, match="must be a CuPy array"):
        kernels.attention_forward_fused(cupy.asnumpy(qkv), 2, backend="cuda")
    y, lse = kernels.attention_forward_fused(qkv, 2, backend="cuda")
    with pytest.raises(ValueError, match="y must have shape"):
        kernels.attention_backward_fused(y[:, :4].copy(), qkv, y[:, :4].copy(), lse, 2, backend="cuda")
    with pytest.raises(ValueError, match="lse must have shape"):
        kernels.attention_backward_fused(y, qkv, y, lse[:, :1].copy(), 2, backend="cuda")
    with pytest.raises(ValueError, match="dropout_p must be in"):
        kernels.attention_backward_fused(y, qkv, y, lse, 2, -0.5, backend="cuda")
    assert np.isfinite(host(kernels.attention_backward_fused(y, qkv, y, lse, 2, backend="cuda"))).all()


# ----------------------------------------------------------------------------- bad input

def test_bad_arrays_raise_clear_errors_and_the_process_survives(rng):
    A = dev(np.ones((4, 3)))
    with pytest.raises(TypeError, match="must be a CuPy array.*cupy.asarray"):
        kernels.matmul(np.ones((4, 3), np.float32), A.T.copy(), backend="cuda")
    with pytest.raises(TypeError, match="must be float32, got float64"):
        kernels.matmul(A.astype(cupy.float64), A.T.copy(), backend="cuda")
    with pytest.raises(TypeError, match="C-contiguous"):
        kernels.matmul(A, A.T, backend="cuda")
    with pytest.raises(ValueError, match="inner sizes differ"):
        kernels.matmul(A, A, backend="cuda")
    with pytest.raises(ValueError, match="bias must have shape"):
        kernels.matmul(A, A.T.copy(), bias=dev(np.ones(3)), backend="cuda")
    with pytest.raises(ValueError, match="shape of x"):
        kernels.gelu_backward(dev(np.ones(5)), dev(np.ones(4)), backend="cuda")
    with pytest.raises(TypeError, match="softmax_forward_naive: x must be a CuPy array"):
        _cuda.softmax_forward_naive(np.ones((4, 3), np.float32))
    with pytest.raises(ValueError, match="one value per row"):
        kernels.layernorm_backward(A, A, dev(np.ones(3)), dev(np.ones(4)), dev(np.ones(3)), backend="cuda")
    np.testing.assert_allclose(host(kernels.matmul(A, A.T.copy(), backend="cuda")), np.full((4, 4), 3.0))


def test_bad_attention_input_raises(rng):
    q = dev(rng.standard_normal((1, 1, 4, 8)))
    with pytest.raises(ValueError, match="head size hs = 129"):
        kernels.attention_forward(*(dev(np.ones((1, 1, 4, 129))),) * 3, backend="cuda")
    with pytest.raises(ValueError, match="dropout_p must be in"):
        kernels.attention_forward(q, q, q, 1.0, 0, backend="cuda")
    with pytest.raises(ValueError, match="k must have the shape of q"):
        kernels.attention_forward(q, q[:, :, :3].copy(), q, backend="cuda")
    with pytest.raises(ValueError, match="4-D"):
        kernels.attention_forward(q[0], q[0], q[0], backend="cuda")
    out, lse = kernels.attention_forward(q, q, q, backend="cuda")
    with pytest.raises(ValueError, match="lse must have shape"):
        kernels.attention_backward(q, q, q, q, out, lse[..., :3].copy(), backend="cuda")
    assert np.isfinite(host(kernels.attention_backward(q, q, q, q, out, lse, backend="cuda")[0])).all()


def test_bad_ids_and_targets_raise(rng):
    z = dev(rng.standard_normal((2, 3)))
    with pytest.raises(ValueError, match="target 3 is out of range for 3 classes"):
        kernels.cross_entropy_forward(z, cupy.asarray([0, 3]), backend="cuda")
    with pytest.raises(TypeError, match="targets must be int64"):
        kernels.cross_entropy_forward(z, cupy.asarray([0, 1], dtype=cupy.int32), backend="cuda")
    with pytest.raises(ValueError, match="one per row"):
        kernels.cross_entropy_forward(z, cupy.asarray([0, 1, 2]), backend="cuda")
    w = dev(np.ones((5, 2)))
    with pytest.raises(ValueError, match="index 5 out of range"):
        kernels.embedding_forward(cupy.asarray([1, 5]), w, backend="cuda")
    with pytest.raises(ValueError, match="index -1 out of range"):
        kernels.embedding_backward(w, dev(np.ones((2, 2))), cupy.asarray([-1, 0]), backend="cuda")
    losses, _ = kernels.cross_entropy_forward(z, cupy.asarray([0, -1]), backend="cuda")
    assert host(losses)[1] == 0.0


def test_info_names_the_gpu(capsys):
    info = kernels.cuda_info()
    assert info["multiprocessors"] > 0 and "." in info["compute_capability"] and info["built_for"]
    from minigpt.cli import main
    main(["info"])
    assert f"'device': '{info['device']}'" in capsys.readouterr().out

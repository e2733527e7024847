"""A first look at every CUDA kernel on a GPU, in processes of their own, before the long tests and timings.

A kernel that faults on the GPU (an illegal address, a trap, a misaligned access) leaves its process's
CUDA context unusable: every later call there fails as well, so one broken kernel would fail every test
and timing after it. This script calls every kernel of minigpt._cuda on a few small shapes, against the
NumPy reference in float64, in eleven checks: each of matmul's kernels and each attention alone, the
rest in groups (row ops, loss and update, the teaching versions). Each check runs in a fresh process
with a time limit, and gets one line as it ends:
  ok      within the kernel's tolerance (float32 1e-4, TF32 3e-3, relative to the norm of the reference)
  WRONG   it ran, but its error is above that
  FAILED  it raised, or its process died (the last line of what it printed)
  HUNG    it did not finish in the time limit
  n/a     not a kernel this GPU or build runs (wgmma off Hopper, tensor cores before Ampere)
With --routes FILE it also writes shell lines for benchmarks/cuda_check.sh that route the rest of the
check around what failed: MINIGPT_CUDA_TF32_KERNEL=mma.sync when Hopper's wgmma fails and mma.sync works
(likewise MINIGPT_CUDA_FLOAT32_KERNEL=staged), a pytest -k expression that leaves out the tests of the
other failed kernels, and the names for bench_cuda.py --skip. The kernels the model cannot do without
(attention, LayerNorm, ...) have no way around: their failures stay failures.

usage: python benchmarks/cuda_smoke.py [--routes FILE] [--timeout SECONDS] [--jobs N]
       python benchmarks/cuda_smoke.py --one NAME      (one check, in this process: what the others run)
"""
import argparse
import concurrent.futures
import json
import os
import shlex
import subprocess
import sys

import numpy as np

from minigpt import kernels

FLOAT32, TF32 = 1e-4, 3e-3


def relative_error(got, ref):
    got, ref = kernels.to_host(got).astype(np.float64), np.asarray(ref, np.float64)
    return float(np.linalg.norm(got - ref) / max(np.linalg.norm(ref), 1e-30))


def worst(pairs):
    """The largest relative error over (ours, reference) pairs."""
    return max(relative_error(got, ref) for got, ref in pairs)


def on_gpu(*arrays):
    import cupy
    return [cupy.asarray(x if x.dtype.kind in "iu" else x.astype(np.float32)) for x in arrays]


# ----------------------------------------------------------------------------- the checks

MATMUL_SHAPES = [(127, 129, 131), (256, 384, 512), (64, 4096, 128)]  # the last one splits K across blocks
TRANSPOSES = [(False, False), (False, True), (True, False), (True, True)]


def matmul_pairs(rng, call):
    """(ours, reference) for every shape and transpose, with a bias; call(a, b, trans_a, trans_b, bias)."""
    pairs = []
    for M, K, N in MATMUL_SHAPES:
        for ta, tb in TRANSPOSES:
            a = rng.standard_normal((K, M) if ta else (M, K))
            b = rng.standard_normal((N, K) if tb else (K, N))
            bias = rng.standard_normal(N)
            pairs.append((call(*on_gpu(a, b), ta, tb, *on_gpu(bias)), kernels.matmul(a, b, ta, tb, bias)))
    return pairs


def with_tf32(call):
    """call with matmul's TF32 switch on for its duration (off by default)."""
    def tf32_call(*args):
        kernels.set_cuda_tf32(True)
        try:
            return call(*args)
        finally:
            kernels.set_cuda_tf32(False)
    return tf32_call


def cuda_matmul(a, b, ta, tb, bias):
    return kernels.matmul(a, b, ta, tb, bias, backend="cuda")


def named(name):
    """A kernel of minigpt._cuda called by name, e.g. matmul_staged."""
    return lambda *args: getattr(kernels._cuda, name)(*args)


ATTENTION_SHAPES = [((2, 3, 130, 64), 0.0), ((1, 2, 65, 128), 0.1), ((1, 2, 70, 5), 0.0)]


def attention_pairs(rng, forward):
    """forward (q, k, v, dropout, seed) -> (out, lse), then the CUDA backward from its out and lse."""
    pairs = []
    for shape, dropout in ATTENTION_SHAPES:
        q, k, v, dout = (rng.standard_normal(shape) for _ in range(4))
        out_ref, lse_ref = kernels.attention_forward(q, k, v, dropout, 7)
        out, lse = forward(*on_gpu(q, k, v), dropout, 7)
        grads = kernels.attention_backward(*on_gpu(dout, q, k, v), out, lse, dropout, 7, backend="cuda")
        pairs += [(out, out_ref), (lse, lse_ref)]
        pairs += zip(grads, kernels.attention_backward(dout, q, k, v, out_ref, lse_ref, dropout, 7))
    return pairs


def fused_attention_pairs(rng):
    """The attention that reads q, k, v inside the (B, T, 3C) projection, against the split heads' reference."""
    pairs = []
    for (B, H, T, D), dropout in ATTENTION_SHAPES:
        qkv, dy = rng.standard_normal((B, T, 3 * H * D)), rng.standard_normal((B, T, H * D))
        heads = np.ascontiguousarray(qkv.reshape(B, T, 3, H, D).transpose(2, 0, 3, 1, 4))
        out_ref, lse_ref = kernels.attention_forward(*heads, dropout, 7)
        dy_heads = np.ascontiguousarray(dy.reshape(B, T, H, D).transpose(0, 2, 1, 3))
        grads_ref = kernels.attention_backward(dy_heads, *heads, out_ref, lse_ref, dropout, 7)
        qkv_c, dy_c = on_gpu(qkv, dy)
        y, lse = kernels.attention_forward_fused(qkv_c, H, dropout, 7, backend="cuda")
        dqkv = kernels.attention_backward_fused(dy_c, qkv_c, y, lse, H, dropout, 7, backend="cuda")
        pairs += [(y, out_ref.transpose(0, 2, 1, 3).reshape(B, T, H * D)), (lse, lse_ref),
                  (dqkv, np.stack(grads_ref).transpose(1, 3, 0, 2, 4).reshape(B, T, 3 * H * D))]
    return pairs


def row_op_pairs(rng):
    """LayerNorm, GELU, softmax: forward and backward, on rows of 384 and of 65."""
    pairs = []
    for shape in [(37, 384), (5, 3, 65)]:
        x, dout = rng.standard_normal(shape), rng.standard_normal(shape)
        w, b = rng.standard_normal(shape[-1]), rng.standard_normal(shape[-1])
        x_c, dout_c, w_c, b_c = on_gpu(x, dout, w, b)
        y, mean, rstd = kernels.layernorm_forward(x_c, w_c, b_c, backend="cuda")
        y_ref, mean_ref, rstd_ref = kernels.layernorm_forward(x, w, b)
        pairs += [(y, y_ref), (mean, mean_ref), (rstd, rstd_ref)]
        pairs += zip(kernels.layernorm_backward(dout_c, x_c, mean, rstd, w_c, backend="cuda"),
                     kernels.layernorm_backward(dout, x, mean_ref, rstd_ref, w))
        pairs += [(kernels.gelu_forward(x_c, backend="cuda"), kernels.gelu_forward(x)),
                  (kernels.gelu_backward(dout_c, x_c, backend="cuda"), kernels.gelu_backward(dout, x))]
        s, s_ref = kernels.softmax_forward(x_c, backend="cuda"), kernels.softmax_forward(x)
        pairs += [(s, s_ref),
                  (kernels.softmax_backward(dout_c, s, backend="cuda"), kernels.softmax_backward(dout, s_ref))]
    return pairs


def loss_and_update_pairs(rng):
    """Cross-entropy (an ignored target among them), AdamW, the embedding both ways, the bias gradient."""
    logits, targets = rng.standard_normal((70, 50257)), rng.integers(0, 50257, 70)
    targets[3] = -1
    logits_c, targets_c = on_gpu(logits, targets)
    losses, lse = kernels.cross_entropy_forward(logits_c, targets_c, backend="cuda")
    losses_ref, lse_ref = kernels.cross_entropy_forward(logits, targets)
    pairs = [(losses, losses_ref), (lse, lse_ref),
             (kernels.cross_entropy_backward(logits_c, lse, targets_c, 1 / 69, backend="cuda"),
              kernels.cross_entropy_backward(logits, lse_ref, targets, 1 / 69))]
    p, m, v, g = (rng.standard_normal(1000) for _ in range(4))
    v = np.abs(v)
    state = on_gpu(p, m, v)
    kernels.adamw_update(*state, *on_gpu(g), 3e-4, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05, backend="cuda")
    kernels.adamw_update(p, m, v, g, 3e-4, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.05)
    pairs += zip(state, (p, m, v))
    w, idx, dout = rng.standard_normal((65, 384)), rng.integers(0, 65, (4, 33)), rng.standard_normal((4, 33, 384))
    w_c, idx_c, dout_c = on_gpu(w, idx, dout)
    pairs.append((kernels.embedding_forward(idx_c, w_c, backend="cuda"), kernels.embedding_forward(idx, w)))
    dw, dw_c = np.zeros_like(w), on_gpu(np.zeros_like(w))[0]
    kernels.embedding_backward(dw_c, dout_c, idx_c, backend="cuda")
    kernels.embedding_backward(dw, dout, idx)
    pairs.append((dw_c, dw))
    rows = rng.standard_normal((3000, 129))
    pairs.append((kernels.bias_grad(*on_gpu(rows), backend="cuda"), kernels.bias_grad(rows)))
    return pairs


def teaching_version_pairs(rng):
    """The teaching versions (one thread per output or row; 16 x 16 tiles), which the tests and tutorial 13 call."""
    cuda = kernels._cuda
    pairs = matmul_pairs(rng, named("matmul_naive")) + matmul_pairs(rng, named("matmul_tiled"))
    q, k, v, dout = (rng.standard_normal((2, 3, 70, 64)) for _ in range(4))
    out_ref, lse_ref = kernels.attention_forward(q, k, v, 0.1, 7)
    out, lse = cuda.attention_forward_naive(*on_gpu(q, k, v), 0.1, 7)
    pairs += [(out, out_ref), (lse, lse_ref)]
    pairs += zip(cuda.attention_backward_naive(*on_gpu(dout, q, k, v), out, lse, 0.1, 7),
                 kernels.attention_backward(dout, q, k, v, out_ref, lse_ref, 0.1, 7))
    x, w, b = rng.standard_normal((37, 384)), rng.standard_normal(384), rng.standard_normal(384)
    pairs += zip(cuda.layernorm_forward_naive(*on_gpu(x, w, b)), kernels.layernorm_forward(x, w, b))
    pairs.append((cuda.softmax_forward_naive(*on_gpu(x)), kernels.softmax_forward(x)))
    pairs.append((cuda.bias_grad_naive(*on_gpu(x)), kernels.bias_grad(x)))
    targets = rng.integers(0, 384, 37)
    pairs += zip(cuda.cross_entropy_forward_naive(*on_gpu(x, targets)), kernels.cross_entropy_forward(x, targets))
    return pairs


def runs_here(needs_wgmma=False):
    """Whether this GPU and build run a kernel that needs the tensor cores (compute capability 8.0 or newer),
    and, with needs_wgmma, Hopper's wgmma (cuda_info's wgmma: compute capability 9.0, a build for sm_90a)."""
    info = kernels.cuda_info()
    return info["wgmma"] if needs_wgmma else float(info["compute_capability"]) >= 8.0


def only_where_it_runs(check, needs_wgmma=False):
    """check, or None (n/a) on a GPU or build that lacks what it needs (see runs_here)."""
    return lambda rng: check(rng) if runs_here(needs_wgmma) else None


# name: (what it runs, tolerance, check(rng) -> the worst relative error, or None where it does not run here)
CHECKS = {
    "matmul": ("float32 matmul as the model runs it (cuda_info's float32_kernel)", FLOAT32,
               lambda rng: worst(matmul_pairs(rng, cuda_matmul))),
    "matmul_staged": ("the float32 kernel before Ampere, called by name", FLOAT32,
                      lambda rng: worst(matmul_pairs(rng, named("matmul_staged")))),
    "matmul_tf32": ("matmul with TF32 on (cuda_info's tf32_kernel)", TF32, only_where_it_runs(
        lambda rng: worst(matmul_pairs(rng, with_tf32(cuda_matmul))))),
    "matmul_tf32_mma": ("the mma.sync TF32 kernel, called by name", TF32, only_where_it_runs(
        lambda rng: worst(matmul_pairs(rng, named("matmul_tf32_mma"))))),
    "matmul_tf32_wgmma_overlapped": ("wgmma with a group in flight, called by name", TF32, only_where_it_runs(
        lambda rng: worst(matmul_pairs(rng, named("matmul_tf32_wgmma_overlapped"))), needs_wgmma=True)),
    "attention": ("flash attention forward + backward on split heads", FLOAT32,
                  lambda rng: worst(attention_pairs(rng, lambda *a: kernels.attention_forward(*a, backend="cuda")))),
    "attention_fused": ("the same, reading the heads in the fused qkv", FLOAT32,
                        lambda rng: worst(fused_attention_pairs(rng))),
    "attention_forward_mma": ("the forward on the tensor cores (3xTF32), called by name", FLOAT32, only_where_it_runs(
        lambda rng: worst(attention_pairs(rng, named("attention_forward_mma"))))),
    "row_ops": ("LayerNorm, GELU and softmax, forward and backward", FLOAT32, lambda rng: worst(row_op_pairs(rng))),
    "loss_and_update": ("cross-entropy, AdamW, embedding, bias gradient", FLOAT32,
                        lambda rng: worst(loss_and_update_pairs(rng))),
    "teaching_versions": ("the naive and tiled kernels the tests and tutorial 13 call", FLOAT32,
                          lambda rng: worst(teaching_version_pairs(rng))),
}


def run_one(name):
    """The check `name` in this process: prints one JSON line, {"error": x} or {"error": null} (n/a)."""
    kernels.check_backend("cuda")  # (which also applies MINIGPT_CUPY_NO_POOL, before the check allocates)
    error = CHECKS[name][2](np.random.default_rng(0))
    import cupy
    cupy.cuda.Device().synchronize()  # a fault of the last launch shows here, not after the line is out
    print(json.dumps({"error": error}))


# ----------------------------------------------------------------------------- in fresh processes

def run_isolated(name, timeout):
    """(outcome, detail) of one check in a fresh process."""
    command = [sys.executable, os.path.abspath(__file__), "--one", name]
    # Launches that wait for their kernel: a kernel that faults is then reported by the check after its own
    # launch (check_launch names it), not by whichever CUDA call comes next. Small shapes: it costs little.
    env = {**os.environ, "CUDA_LAUNCH_BLOCKING": "1"}
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return "HUNG", f"no answer in {timeout:g} s"
    lines = (done.stdout + done.stderr).strip().splitlines()
    if done.returncode < 0:  # a crash, where a Python exception would have left an exit status of 1
        return "FAILED", f"killed by signal {-done.returncode}" + (f" after: {lines[-1][:120]}" if lines else "")
    if done.returncode != 0 or not done.stdout.strip():
        return "FAILED", (lines[-1] if lines else f"exit status {done.returncode}")[:160]
    try:
        error = json.loads(done.stdout.strip().splitlines()[-1])["error"]
    except (ValueError, KeyError, TypeError):
        return "FAILED", f"no result line, last printed: {lines[-1][:120]}"
    if error is None:
        return "n/a", "not on this GPU or build"
    tolerance = CHECKS[name][1]
    if not error <= tolerance:  # a NaN error is wrong too
        return "WRONG", f"relative error {error:.2e} > {tolerance:g}"
    return "ok", f"relative error {error:.2e}"


# For each kernel called by name: the pytest -k words of its tests, and bench_cuda.py's --skip name.
BY_NAME = {"matmul_staged": ("staged or kernel_from_the_environment and float32", "matmul_staged"),
           "matmul_tf32_mma": ("matmul_tf32_mma or kernel_from_the_environment and tf32", "matmul_tf32_mma"),
           "matmul_tf32_wgmma_overlapped": ("wgmma_overlapped", "matmul_tf32_wgmma_overlapped"),
           "attention_forward_mma": ("attention_forward_mma", "attention_forward_mma"),
           # (softmax's, LayerNorm's and cross-entropy's teaching versions are tested inside the main tests)
           "teaching_versions": ("naive or tiled or softmax_matches or layernorm_matches or cross_entropy_matches",
                                 None)}


def routes(outcomes, kernels_used):
    """What the rest of the check should do about the failures in outcomes ({name: outcome}), given the
    matmul kernels this GPU runs by default (cuda_info's float32_kernel and tf32_kernel):
    (environment {variable: value}, pytest -k words to leave out, bench_cuda.py --skip names, notes)."""
    broken = {name for name, outcome in outcomes.items() if outcome in ("WRONG", "FAILED", "HUNG")}
    env, leave_out, skip, notes = {}, [], [], []
    if "matmul_tf32" in broken:
        if kernels_used.get("tf32_kernel") == "wgmma" and outcomes.get("matmul_tf32_mma") == "ok":
            env["MINIGPT_CUDA_TF32_KERNEL"] = "mma.sync"
            leave_out.append("kernel_from_the_environment and tf32")  # it asks for wgmma by name
            notes.append("wgmma failed: matmul's TF32 runs on mma.sync for the rest of the check")
        else:
            leave_out.append("tf32")
            skip.append("tf32")
            notes.append("no TF32 kernel works: the TF32 tests and timings are left out")
    if "matmul" in broken:
        if kernels_used.get("float32_kernel") == "cp.async" and outcomes.get("matmul_staged") == "ok":
            env["MINIGPT_CUDA_FLOAT32_KERNEL"] = "staged"
            leave_out.append("kernel_from_the_environment and float32")  # it asks for cp.async by name
            notes.append("the cp.async float32 matmul failed: matmul runs the staged kernel for the rest of the check")
        else:
            notes.append("no float32 matmul works: nothing can go around that")
    for name in sorted(broken & set(BY_NAME)):
        words, bench_name = BY_NAME[name]
        leave_out.append(words)
        if bench_name:  # bench_cuda.py times no teaching version
            skip.append(bench_name)
        notes.append(f"{name} failed: its tests and timings are left out")
    for name in sorted(broken - set(BY_NAME) - {"matmul", "matmul_tf32"}):
        notes.append(f"{name} failed, and the model needs it: its tests and the timings that use it will fail")
    return env, leave_out, skip, notes


def shell_lines(env, leave_out, skip):
    """Lines for `source`: the exports, PYTEST_LEAVE_OUT (a -k expression or empty) and BENCH_SKIP."""
    lines = [f"export {key}={shlex.quote(value)}" for key, value in env.items()]
    expression = "not (" + " or ".join(f"({words})" for words in leave_out) + ")" if leave_out else ""
    lines.append(f"PYTEST_LEAVE_OUT={shlex.quote(expression)}")
    lines.append(f"BENCH_SKIP={shlex.quote(' '.join(skip))}")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one", choices=list(CHECKS), help="run one check in this process")
    parser.add_argument("--routes", help="write the shell lines that route the GPU check around failures here")
    parser.add_argument("--timeout", type=float, default=40.0, help="seconds each check may take (default 40)")
    parser.add_argument("--jobs", type=int, default=4, help="checks run at the same time (default 4)")
    args = parser.parse_args()
    if args.one:
        run_one(args.one)
        return 0
    kernels.check_backend("cuda")  # a clear error here if minigpt._cuda, CuPy or the GPU is missing
    info = kernels.cuda_info()  # reads attributes only: this process runs no kernel
    print(f"{info['device']} (compute capability {info['compute_capability']}, built for {info['built_for']}): "
          f"float32 matmul {info['float32_kernel']}, TF32 matmul {info['tf32_kernel']}")
    width, results = max(map(len, CHECKS)), {}
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
        futures = {pool.submit(run_isolated, name, args.timeout): name for name in CHECKS}
        for future in concurrent.futures.as_completed(futures):  # each line as soon as it is known
            name = futures[future]
            outcome, detail = results[name] = future.result()
            print(f"{name.ljust(width)}  {outcome.ljust(6)}  {detail}   ({CHECKS[name][0]})", flush=True)
    env, leave_out, skip, notes = routes({name: r[0] for name, r in results.items()}, info)
    for note in notes:
        print("route:", note)
    if args.routes:
        with open(args.routes, "w") as f:
            f.write(shell_lines(env, leave_out, skip))
    return 0 if all(r[0] in ("ok", "n/a") for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

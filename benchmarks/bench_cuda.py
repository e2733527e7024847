"""Time minigpt's CUDA kernels against PyTorch eager on the same GPU, in one process; print ratios.

usage: python benchmarks/bench_cuda.py [--quick] [--parts PART ...] [--configs CONFIG ...] [--json results.json]
  e.g. only the training steps of both models, in well under a minute on an H100:
       python benchmarks/bench_cuda.py --parts training

Four parts, each against the PyTorch call that does the same work, in float32 with TF32 off on both
sides, then with TF32 on on both sides (our matmul's optional tensor-core path, kernels.set_cuda_tf32;
PyTorch's allow_tf32) for matmul and training:
  matmul     GFLOP/s against torch.matmul (cuBLAS), all three transpose variants a Linear layer uses;
             also our staged kernel (loads through registers, the pre-Ampere path) beside the tuned one
             (cp.async), as the ratio staged_vs_tuned (> 1: the staged one is faster); and the TF32 mma.sync
             kernel beside the TF32 kernel matmul runs (wgmma on an H100 built for sm_90a: info's
             tf32_kernel), as mma_vs_tf32_kernel (> 1: mma.sync is faster); on Hopper also the wgmma
             kernel with a fourth stage and a group of products in flight, as overlapped_vs_tf32_kernel
             (> 1: the overlapped one is faster)
  attention  causal forward + backward against torch's scaled_dot_product_attention (and our forward on the
             tensor cores, attention_forward_mma, beside the CUDA-core one the model uses); then as the model
             calls it, from the fused (B, T, 3C) projection back to its gradient: ours reading the heads
             in place, ours splitting and merging copies, and torch's SDPA on views of its qkv
  training   tokens/s of a whole step (zero_grad, forward, loss, backward, clip, AdamW) for "small"
             (6L/6H/384, T=256, B=64, V=65) and GPT-2 124M (12L/12H/768, T=1024, B=8, V=50257)
             against the same model in PyTorch (benchmarks/torch_reference.py); for ours also the
             milliseconds of forward, backward and clip + AdamW, each timed alone
  profile    GPU milliseconds per "small" training step by kernel, ours and PyTorch's (torch.profiler), in
             float32 and with TF32 on on both sides
Times come from the host clock around many calls, with the GPU synchronised before and after, after
a warm-up; the median of three such batches. A part that fails prints its error and the script
exits non-zero at the end, after the other parts have run. This is a measurement, not a test.
"""
import argparse
import functools
import json
import os
import signal
import statistics
import sys
import time
import traceback

import numpy as np

import minigpt
from minigpt import kernels

HERE = os.path.dirname(os.path.abspath(__file__))


def seconds(fn, sync, min_time=0.25, max_reps=200):
    """Median seconds per call of fn over three batches of calls, after a warm-up."""
    fn()
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    reps = max(2, min(max_reps, int(min_time / max(time.perf_counter() - t0, 1e-6))))
    samples = []
    for _ in range(3):
        sync()
        t0 = time.perf_counter()
        for _ in range(reps):
            fn()
        sync()
        samples.append((time.perf_counter() - t0) / reps)
    return statistics.median(samples)


# Kernels left out of the timings (--skip): cuda_check.sh names those its first look found broken on this GPU,
# since a kernel that faults leaves the process's CUDA context unusable for every timing after it.
SKIPPABLE = ("tf32", "matmul_staged", "matmul_tf32_mma", "matmul_tf32_wgmma_overlapped", "attention_forward_mma")
SKIPPED = set()
NOT_TIMED = float("nan")


class Rows(list):
    """A part's rows, kept as they are measured: a part stopped by its time limit (cuda_check.sh's timeout sends
    SIGTERM) still prints and writes what it measured, instead of losing the whole part; and with --json, each
    row is also appended at once to JSON.rows.jsonl, which even a kill without warning leaves behind."""

    def append(self, row):
        super().append(row)
        if RUNNING["path"]:
            with open(RUNNING["path"], "a") as f:
                f.write(json.dumps(row, default=str) + "\n")


RUNNING = {"rows": None, "path": None}  # the Rows of the part running now, and the file they go to


def started_rows():
    RUNNING["rows"] = Rows()
    return RUNNING["rows"]


class Stopped(BaseException):
    """SIGTERM: raised where the part is, so that main() still prints and writes what was measured."""


def timed_unless_skipped(name, fn, sync):
    """seconds(fn), or NaN (printed as nan, ratios with it nan too) when --skip names it."""
    return NOT_TIMED if name in SKIPPED else seconds(fn, sync)


def set_tf32(torch, on):
    torch.backends.cuda.matmul.allow_tf32 = on
    torch.backends.cudnn.allow_tf32 = on
    torch.set_float32_matmul_precision("high" if on else "highest")


def rel_diff(ours, theirs):
    ours, theirs = np.asarray(ours, np.float64), np.asarray(theirs, np.float64)
    return float(np.linalg.norm(ours - theirs) / max(np.linalg.norm(theirs), 1e-30))


# ----------------------------------------------------------------------------- matmul

def matmul_shapes(quick):
    """(label, M, K, N, trans_a, trans_b): the products of a GPT-2 training step and a square one."""
    shapes = [("square", 4096, 4096, 4096, False, False),
              ("c_fc fwd 124M", 8192, 768, 3072, False, False),
              ("c_fc dx (NT)", 8192, 3072, 768, False, True),
              ("c_fc dW (TN)", 768, 8192, 3072, True, False)]
    if not quick:
        shapes += [("c_proj fwd 124M", 8192, 3072, 768, False, False),
                   ("logits 124M (NT)", 8192, 768, 50257, False, True),
                   ("c_fc fwd small", 16384, 384, 1536, False, False),
                   ("c_attn dW small (TN)", 384, 16384, 1152, True, False),
                   ("odd sizes", 1000, 999, 1001, False, False)]
    return shapes


def bench_matmul(torch, cupy, sync, quick):
    rows = started_rows()
    rng = np.random.default_rng(0)
    for label, M, K, N, ta, tb in matmul_shapes(quick):
        a = rng.standard_normal((K, M) if ta else (M, K), dtype=np.float32)
        b = rng.standard_normal((N, K) if tb else (K, N), dtype=np.float32)
        a_c, b_c = cupy.asarray(a), cupy.asarray(b)
        a_t, b_t = torch.from_numpy(a).cuda(), torch.from_numpy(b).cuda()
        op_a, op_b = (a_t.T if ta else a_t), (b_t.T if tb else b_t)  # cuBLAS reads the transposes in place
        flops = 2.0 * M * N * K
        ours = seconds(lambda: kernels.matmul(a_c, b_c, ta, tb, backend="cuda"), sync)
        staged = timed_unless_skipped("matmul_staged", lambda: kernels._cuda.matmul_staged(a_c, b_c, ta, tb), sync)
        set_tf32(torch, False)
        theirs = seconds(lambda: torch.matmul(op_a, op_b), sync)
        ours_out = torch.from_dlpack(kernels.matmul(a_c, b_c, ta, tb, backend="cuda")).double()
        ref = torch.matmul(op_a.double(), op_b.double())  # float64 on the GPU, compared there
        diff = float(torch.linalg.norm(ours_out - ref) / torch.linalg.norm(ref))
        del ours_out, ref
        set_tf32(torch, True)
        theirs_tf32 = seconds(lambda: torch.matmul(op_a, op_b), sync)
        set_tf32(torch, False)
        kernels.set_cuda_tf32(True)
        try:
            ours_tf32 = timed_unless_skipped("tf32", lambda: kernels.matmul(a_c, b_c, ta, tb, backend="cuda"), sync)
        finally:
            kernels.set_cuda_tf32(False)
        mma_tf32 = timed_unless_skipped("matmul_tf32_mma", lambda: kernels._cuda.matmul_tf32_mma(a_c, b_c, ta, tb),
                                        sync)
        overlapped = timed_unless_skipped(
            "matmul_tf32_wgmma_overlapped", lambda: kernels._cuda.matmul_tf32_wgmma_overlapped(a_c, b_c, ta, tb),
            sync) if kernels.cuda_info()["wgmma"] else NOT_TIMED
        rows.append({"shape": f"{label} {M}x{K}x{N}", "ours_gflops": flops / ours / 1e9,
                     "torch_gflops": flops / theirs / 1e9, "ratio": theirs / ours, "staged_vs_tuned": ours / staged,
                     "rel_err_vs_fp64": diff,
                     "ours_tf32_gflops": flops / ours_tf32 / 1e9, "torch_tf32_gflops": flops / theirs_tf32 / 1e9,
                     "ratio_tf32": theirs_tf32 / ours_tf32, "mma_vs_tf32_kernel": ours_tf32 / mma_tf32,
                     "overlapped_vs_tf32_kernel": ours_tf32 / overlapped})
    return rows


# ----------------------------------------------------------------------------- attention

def attention_shapes(quick):
    """(B, NH, T, hs): the "small" model's attention, GPT-2 124M's at T = 1024, and a head of 128."""
    return [(8, 6, 256, 64)] + ([] if quick else [(8, 12, 1024, 64), (4, 16, 1024, 128)])


def bench_attention(torch, cupy, sync, quick):
    import torch.nn.functional as F
    rows = started_rows()
    rng = np.random.default_rng(0)
    for B, H, T, D in attention_shapes(quick):
        q, k, v, dout = (rng.standard_normal((B, H, T, D), dtype=np.float32) for _ in range(4))
        qc, kc, vc, dc = (cupy.asarray(x) for x in (q, k, v, dout))
        qt, kt, vt = (torch.from_numpy(x).cuda().requires_grad_() for x in (q, k, v))
        dt = torch.from_numpy(dout).cuda()

        def ours_fwd():
            return kernels.attention_forward(qc, kc, vc, backend="cuda")

        def ours_step():
            out, lse = kernels.attention_forward(qc, kc, vc, backend="cuda")
            return kernels.attention_backward(dc, qc, kc, vc, out, lse, backend="cuda")

        def torch_step():
            qt.grad = kt.grad = vt.grad = None
            F.scaled_dot_product_attention(qt, kt, vt, is_causal=True).backward(dt)

        set_tf32(torch, False)
        t_fwd = seconds(ours_fwd, sync)
        t_mma_fwd = timed_unless_skipped("attention_forward_mma",
                                         lambda: kernels._cuda.attention_forward_mma(qc, kc, vc), sync)
        t_ours = seconds(ours_step, sync)
        t_torch_fwd = seconds(lambda: F.scaled_dot_product_attention(qt.detach(), kt.detach(), vt.detach(),
                                                                     is_causal=True), sync)
        t_torch = seconds(torch_step, sync)
        out, lse = ours_fwd()
        dq = ours_step()[0]
        torch_step()
        ref = F.scaled_dot_product_attention(qt, kt, vt, is_causal=True)
        flops = 4.0 * B * H * T * T * D / 2  # forward: two products over the causal half
        layer_ms = layer_attention_ms(torch, cupy, sync, rng, B, H, T, D)
        mma_diff = NOT_TIMED if "attention_forward_mma" in SKIPPED else \
            rel_diff(cupy.asnumpy(kernels._cuda.attention_forward_mma(qc, kc, vc)[0]), ref.detach().cpu().numpy())
        rows.append({"shape": f"B{B} H{H} T{T} D{D}", "ours_fwd_ms": t_fwd * 1e3, "mma_fwd_ms": t_mma_fwd * 1e3,
                     "mma_out_rel_diff": mma_diff,
                     "ours_ms": t_ours * 1e3,
                     "torch_fwd_ms": t_torch_fwd * 1e3, "torch_ms": t_torch * 1e3, "ratio": t_torch / t_ours,
                     "ours_tflops": 3.5 * flops / t_ours / 1e12,  # backward ~ 2.5x the forward
                     "out_rel_diff": rel_diff(cupy.asnumpy(out), ref.detach().cpu().numpy()),
                     "dq_rel_diff": rel_diff(cupy.asnumpy(dq), qt.grad.cpu().numpy()), **layer_ms})
    return rows


def layer_attention_ms(torch, cupy, sync, rng, B, H, T, D):
    """Forward + backward from qkv (B, T, 3C) to dqkv, as the layers call it: ours with the heads read in
    place, ours with split/merge copies, and PyTorch's SDPA on views of qkv (as nanoGPT writes it)."""
    import torch.nn.functional as F
    from minigpt.layers.attention import self_attention_backward, self_attention_forward
    C = H * D
    qkv, dy = rng.standard_normal((B, T, 3 * C), dtype=np.float32), rng.standard_normal((B, T, C), dtype=np.float32)
    qkv_c, dy_c = cupy.asarray(qkv), cupy.asarray(dy)
    qkv_t, dy_t = torch.from_numpy(qkv).cuda().requires_grad_(), torch.from_numpy(dy).cuda()

    def ours(in_place):
        y, cache = self_attention_forward(qkv_c, H, backend="cuda", in_place=in_place)
        return self_attention_backward(dy_c, cache)

    def theirs():
        qkv_t.grad = None
        q, k, v = (x.view(B, T, H, D).transpose(1, 2) for x in qkv_t.split(C, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True).transpose(1, 2).contiguous().view(B, T, C)
        y.backward(dy_t)

    set_tf32(torch, False)
    return {"layer_in_place_ms": seconds(lambda: ours(True), sync) * 1e3,
            "layer_split_ms": seconds(lambda: ours(False), sync) * 1e3,
            "torch_layer_ms": seconds(theirs, sync) * 1e3}


# ----------------------------------------------------------------------------- training

TRAIN_CONFIGS = {  # n_layer, n_head, n_embd, T, B, V
    "small": (6, 6, 384, 256, 64, 65),
    "gpt2-124M": (12, 12, 768, 1024, 8, 50257),
}


def torch_model(torch, L, H, C, T, V):
    """benchmarks/torch_reference.py's model, with its positions made on the input's device."""
    sys.path.insert(0, HERE)
    from torch_reference import TorchGPT

    class TorchGPTOnDevice(TorchGPT):
        def forward(self, idx, targets):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1], device=idx.device))
            for block in self.h:
                x = block(x)
            logits = self.lm_head(self.ln_f(x))
            return logits, torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    torch.manual_seed(0)
    return TorchGPTOnDevice(L, H, C, T, V).cuda()


def tokens_per_second(step, B, T, sync, steps, warmup=3):
    for i in range(warmup):
        step(i)
    sync()
    t0 = time.perf_counter()
    for i in range(steps):
        step(i)
    sync()
    return B * T * steps / (time.perf_counter() - t0)


def train_ours(data, L, H, C, T, B, V, sync, steps, tf32=False):
    """tokens/s of minigpt with backend="cuda", and its first losses."""
    kernels.set_cuda_tf32(tf32)
    try:
        return train_ours_steps(data, L, H, C, T, B, V, sync, steps)  # tokens/s, first losses, phases
    finally:
        kernels.set_cuda_tf32(False)


def ours_trainer(data, L, H, C, T, V):
    """(model, optimizer, step(i), losses) of minigpt with backend="cuda"; step i trains on batch i % 4."""
    cfg = minigpt.GPTConfig(vocab_size=V, block_size=T, n_layer=L, n_head=H, n_embd=C, dropout=0.0)
    model = minigpt.GPT(cfg, seed=0, backend="cuda")
    opt = minigpt.AdamW(model, lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    losses = []

    def step(i):
        d = data[i % 4]
        model.zero_grad()
        losses.append(model.forward(d[:, :-1], d[:, 1:])[1])  # the batch in, the loss out
        model.backward()
        minigpt.clip_grad_norm(model.grads, 1.0, flat=model.flat)
        opt.step()

    return model, opt, step, losses


def train_ours_steps(data, L, H, C, T, B, V, sync, steps):
    model, opt, step, losses = ours_trainer(data, L, H, C, T, V)
    tps = tokens_per_second(step, B, T, sync, steps)
    return tps, losses[:3], step_phases(model, opt, data, sync)


def step_phases(model, opt, data, sync, repeats=3):
    """Milliseconds of each part of a step, each timed alone (the GPU synchronised around it, so the host's
    launch overhead shows): forward with the loss, backward, and clipping with AdamW. The medians."""
    times = {"fwd_ms": [], "bwd_ms": [], "opt_ms": []}
    for i in range(repeats):
        d = data[i % 4]
        model.zero_grad()
        sync()
        t0 = time.perf_counter()
        model.forward(d[:, :-1], d[:, 1:])
        sync()
        t1 = time.perf_counter()
        model.backward()
        sync()
        t2 = time.perf_counter()
        minigpt.clip_grad_norm(model.grads, 1.0, flat=model.flat)
        opt.step()
        sync()
        t3 = time.perf_counter()
        for name, dt in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
            times[name].append(dt * 1e3)
    return {name: statistics.median(v) for name, v in times.items()}


def torch_trainer(torch, data, L, H, C, T, V):
    """(step(i), losses) of the same model and step in PyTorch eager."""
    model = torch_model(torch, L, H, C, T, V)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.95), weight_decay=0.1)
    tdata = torch.from_numpy(data).cuda()
    losses = []

    def step(i):
        d = tdata[i % 4]
        opt.zero_grad(set_to_none=True)
        _, loss = model(d[:, :-1], d[:, 1:])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())

    return step, losses


def train_torch(torch, data, L, H, C, T, B, V, sync, steps, tf32):
    """tokens/s of the same model and step in PyTorch eager, and its first losses."""
    step, losses = torch_trainer(torch, data, L, H, C, T, V)
    set_tf32(torch, tf32)
    tps = tokens_per_second(step, B, T, sync, steps)
    set_tf32(torch, False)
    return tps, losses[:3]


def bench_training(torch, cupy, sync, quick, configs=tuple(TRAIN_CONFIGS)):
    rows = started_rows()
    for name in configs:
        L, H, C, T, B, V = TRAIN_CONFIGS[name]
        steps = 5 if quick else (20 if name == "small" else 8)
        data = np.random.default_rng(0).integers(0, V, (4, B, T + 1))
        ours_tps, ours_losses, phases = train_ours(data, L, H, C, T, B, V, sync, steps)
        ours_tf32_tps = NOT_TIMED if "tf32" in SKIPPED else \
            train_ours(data, L, H, C, T, B, V, sync, steps, tf32=True)[0]
        cupy.get_default_memory_pool().free_all_blocks()  # the GPU's memory back for PyTorch's runs
        torch_tps, torch_losses = train_torch(torch, data, L, H, C, T, B, V, sync, steps, tf32=False)
        torch_tf32_tps, _ = train_torch(torch, data, L, H, C, T, B, V, sync, steps, tf32=True)
        torch.cuda.empty_cache()
        rows.append({"config": f"{name} B{B} T{T}", "ours_tokens_per_s": ours_tps, "torch_tokens_per_s": torch_tps,
                     "ratio": ours_tps / torch_tps, "ours_tf32_tokens_per_s": ours_tf32_tps,
                     "torch_tf32_tokens_per_s": torch_tf32_tps, "ratio_tf32": ours_tf32_tps / torch_tf32_tps,
                     "ours_first_losses": ours_losses, "torch_first_losses": torch_losses,
                     "ours_step_ms": B * T / ours_tps * 1e3, **{f"ours_{k}": v for k, v in phases.items()}})
    return rows


def bench_profile(torch, cupy, sync, quick):
    """GPU time per training step of "small" by kernel, ours and PyTorch's, in float32 and then with TF32
    on on both sides, from PyTorch's profiler: CUPTI records every kernel of the process, CuPy's and
    minigpt._cuda's included. Where the milliseconds go, kernel by kernel; the top ones of each side
    (fewer with TF32) and the totals."""
    from torch.profiler import ProfilerActivity, profile
    L, H, C, T, B, V = TRAIN_CONFIGS["small"]
    data = np.random.default_rng(0).integers(0, V, (4, B, T + 1))
    rows = started_rows()
    for side, tf32 in (("ours", False), ("torch", False), ("ours tf32", True), ("torch tf32", True)):
        if tf32 and side.startswith("ours") and "tf32" in SKIPPED:
            continue
        ours = side.startswith("ours")
        step = ours_trainer(data, L, H, C, T, V)[2] if ours else torch_trainer(torch, data, L, H, C, T, V)[0]
        kernels.set_cuda_tf32(tf32 and ours)
        set_tf32(torch, tf32 and not ours)
        try:
            for i in range(2):  # warm-up: allocations, kernel caches
                step(i)
            sync()
            with profile(activities=[ProfilerActivity.CUDA]) as prof:
                for i in range(2):
                    step(i)
                sync()
        finally:
            kernels.set_cuda_tf32(False)
            set_tf32(torch, False)
        events = [e for e in prof.key_averages() if device_us(e) > 0]
        total = sum(device_us(e) for e in events) / 2e3  # ms per step
        rows.append({"side": side, "kernel": "ALL KERNELS", "ms_per_step": total, "calls_per_step":
                     sum(e.count for e in events) / 2, "share": 1.0})
        for e in sorted(events, key=device_us, reverse=True)[:8 if tf32 else 12]:
            rows.append({"side": side, "kernel": e.key[:70], "ms_per_step": device_us(e) / 2e3,
                         "calls_per_step": e.count / 2, "share": device_us(e) / 2e3 / total})
        del step
        cupy.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
    return rows


def device_us(event):
    """Microseconds of GPU time of a profiler entry (the attribute was renamed in PyTorch 2.4)."""
    return getattr(event, "device_time_total", None) or getattr(event, "cuda_time_total", 0.0)


# ----------------------------------------------------------------------------- report

PARTS = ("matmul", "attention", "training", "profile")

def print_table(title, rows, columns):
    print(f"\n{title}")
    if not rows:
        print("(no rows)")
        return
    widths = [max(len(c), *(len(fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in rows:
        print("  ".join(fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def fmt(v):
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e-2 or abs(v) >= 1e5 else f"{v:,.2f}"
    if isinstance(v, list):
        return "[" + ", ".join(f"{x:.3f}" for x in v) + "]"
    return str(v)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer shapes and steps")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS), help="run only these parts")
    parser.add_argument("--configs", nargs="+", choices=list(TRAIN_CONFIGS), default=list(TRAIN_CONFIGS),
                        help="the models the training part runs")
    parser.add_argument("--json", default=os.path.join(os.environ["OUT"], "cuda_results.json") if os.environ.get("OUT")
                        else "", help="write all figures here (default: $OUT/cuda_results.json when OUT is set)")
    parser.add_argument("--skip", nargs="*", choices=SKIPPABLE, default=[],
                        help="leave these kernels out (tf32: every TF32 timing of ours); their columns read nan")
    args = parser.parse_args()
    SKIPPED.update(args.skip)
    kernels.check_backend("cuda")  # a clear error here if minigpt._cuda, CuPy or the GPU is missing
    import cupy
    import torch
    sync = cupy.cuda.Device().synchronize  # cudaDeviceSynchronize: waits for CuPy's, ours and PyTorch's work
    results = {"gpu": kernels.cuda_info(), "torch": torch.__version__, "cupy": cupy.__version__,
               "torch_device": torch.cuda.get_device_name()}
    print(f"minigpt._cuda on {results['gpu']}; torch {torch.__version__}, cupy {cupy.__version__}")
    parts = {"matmul": (bench_matmul, ["shape", "ours_gflops", "torch_gflops", "ratio", "staged_vs_tuned",
                                       "rel_err_vs_fp64", "ours_tf32_gflops", "torch_tf32_gflops", "ratio_tf32",
                                       "mma_vs_tf32_kernel", "overlapped_vs_tf32_kernel"]),
             "attention": (bench_attention, ["shape", "ours_ms", "torch_ms", "ratio", "ours_fwd_ms", "torch_fwd_ms",
                                             "mma_fwd_ms", "mma_out_rel_diff", "ours_tflops", "out_rel_diff",
                                             "dq_rel_diff", "layer_in_place_ms", "layer_split_ms", "torch_layer_ms"]),
             "training": (functools.partial(bench_training, configs=args.configs),
                          ["config", "ours_tokens_per_s", "torch_tokens_per_s", "ratio", "ours_tf32_tokens_per_s",
                           "torch_tf32_tokens_per_s", "ratio_tf32", "ours_first_losses", "torch_first_losses",
                           "ours_step_ms", "ours_fwd_ms", "ours_bwd_ms", "ours_opt_ms"]),
             "profile": (bench_profile, ["side", "kernel", "ms_per_step", "calls_per_step", "share"])}
    parts = {name: parts[name] for name in PARTS if name in args.parts}
    failed, stopped = [], None
    if args.json:
        RUNNING["path"] = args.json + ".rows.jsonl"
        open(RUNNING["path"], "w").close()

    def stop(signum, frame):
        raise Stopped()
    signal.signal(signal.SIGTERM, stop)
    name = None
    try:
        for name, (bench, _) in parts.items():
            RUNNING["rows"], t0 = None, time.perf_counter()  # (a part's rows start with its first shape)
            try:
                results[name] = bench(torch, cupy, sync, args.quick)
            except Exception:  # report and go on: one broken part must not hide the others' figures
                failed.append(name)
                results[name + "_error"] = traceback.format_exc()
                print(f"\n{name}: FAILED\n{results[name + '_error']}", file=sys.stderr)
            print(f"[{name}: {time.perf_counter() - t0:.1f} s]", flush=True)
    except Stopped:  # in a part, or between two: what was measured is printed and written below
        stopped = name
        if name is not None and name not in results:
            results[name] = list(RUNNING["rows"] or [])
        rows = len(results.get(name, []))
        results[f"{name}_stopped"] = f"stopped by its time limit after {rows} rows"
        print(f"\n{name}: STOPPED by its time limit after {rows} rows", file=sys.stderr)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the tables and the JSON below are written whole
    print("\nratio: float32, TF32 off on both sides; ratio_tf32: TF32 on on both sides; ours / torch in speed "
          "(> 1: ours is faster)")
    for name, (_, columns) in parts.items():
        if name in results:
            print_table(name, results[name], columns)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(results, f, indent=1)
        os.replace(args.json + ".tmp", args.json)  # whole or not at all
        print(f"\nwrote {args.json}")
    if failed:
        print(f"\nFAILED parts: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 124 if stopped else 0


if __name__ == "__main__":
    sys.exit(main())

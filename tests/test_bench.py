"""`minigpt bench`'s table: speed-ups point the same way whatever the unit; the benchmarks' environment; the
comparisons with other engines hand them the same model."""
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
from test_model_written_out import gelu, layer_norm

from minigpt import bench
from minigpt.cli import build_parser
from minigpt.config import GPTConfig
from minigpt.model import GPT


def import_benchmark(name):
    """A script of benchmarks/ as a module (the scripts import one another by name, so their folder goes on
    sys.path while it loads)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def causal_self_attention(qkv, n_head):
    """(T, 3C), q, k and v side by side -> (T, C): each head's softmax(q k^T / sqrt(hs)) v over keys up to its
    query, the heads side by side again. In float64, as both layout tests below read it."""
    T, C = qkv.shape[0], qkv.shape[1] // 3
    q, k, v = (qkv[:, i * C:(i + 1) * C].reshape(T, n_head, -1).transpose(1, 0, 2) for i in range(3))
    scores = q @ k.transpose(0, 2, 1) / np.sqrt(C // n_head) + np.triu(np.full((T, T), -np.inf), 1)
    weights = np.exp(scores - scores.max(-1, keepdims=True))
    return ((weights / weights.sum(-1, keepdims=True)) @ v).transpose(1, 0, 2).reshape(T, C)


def test_speedup_is_above_one_when_minigpt_is_faster():
    rate = {"minigpt": 30.0, "numpy": 10.0, "torch": None, "better": "higher"}  # e.g. tokens/s
    time = {"minigpt": 2.0, "numpy": 6.0, "torch": 1.0, "better": "lower"}  # ms
    assert bench.speedup(rate, "numpy") == pytest.approx(3.0)
    assert bench.speedup(rate, "torch") is None  # no figure, no ratio
    assert bench.speedup(time, "numpy") == pytest.approx(3.0)
    assert bench.speedup(time, "torch") == pytest.approx(0.5)


def test_table_has_one_line_per_row_and_every_column():
    rows = [{"bench": "kernels", "case": "gelu fwd", "unit": "GB/s", "minigpt": 12.5, "numpy": 2.5, "torch": None,
             "better": "higher", "of_peak": 0.6}]
    header, line = bench.format_table(rows).splitlines()
    assert header.split() == ["case", "unit", "minigpt", "NumPy", "PyTorch", "vs", "NumPy", "vs", "PyTorch", "of",
                              "peak"]
    assert line.split() == ["gelu", "fwd", "GB/s", "12.5", "2.5", "-", "5.00x", "-", "60%"]


def test_benchmarks_run_without_the_openblas_variables(monkeypatch):
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1000")
    env = bench.benchmark_environment()
    assert "OPENBLAS_CORETYPE" not in env and "OPENBLAS_L2_SIZE" not in env and "PATH" in env


def test_each_kernel_case_times_the_shapes_its_label_names():
    # the cases hand out functions closing over their loop's arrays: taken out of turn (a list made first),
    # every function ran on the last loop pass's arrays, and the "small" cross-entropy row timed GPT-2's logits
    import re
    bench_kernels = import_benchmark("bench_kernels")
    for (label, n_bytes, fn), _ in bench_kernels.all_cases(quick=False):
        shape = re.search(r"\((\d+)x(\d+)\)", label)
        if label.startswith(("gelu", "softmax", "layernorm fwd", "cross-entropy bwd")) and shape:
            out = fn("numpy")
            out = out[0] if isinstance(out, tuple) else out
            assert out.shape == (int(shape[1]), int(shape[2])), label


def test_cli_knows_the_benchmarks():
    args = build_parser().parse_args(["bench", "--quick", "--only", "kernels", "matmul"])
    assert args.quick and args.only == ["kernels", "matmul"]
    with pytest.raises(ValueError, match="unknown benchmark nope"):
        bench.run_benchmarks(["nope"])


@pytest.mark.parametrize("config", ["baby", "gpt1-small"])
def test_the_transformers_engine_runs_the_same_model_as_minigpt(config):
    """benchmarks/bench_train_step.py's `transformers` engine loads minigpt's seed-0 weights into Hugging Face's
    GPT2LMHeadModel / OpenAIGPTLMHeadModel and trains on minigpt's tokens: their first losses agree, so the
    benchmark compares two implementations of one model, not two models."""
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    bench_train_step = import_benchmark("bench_train_step")
    _, ours = bench_train_step.run_minigpt(config, "numpy", steps=1, warmup=0)
    _, theirs = bench_train_step.run_transformers(config, steps=1, warmup=0)
    assert theirs == pytest.approx(ours, rel=1e-5)
    assert 3.5 < ours < 6.0  # about ln(65) = 4.17 for random weights: a real loss, not a zero or a NaN


def test_picogpt_params_put_each_weight_where_picogpts_forward_reads_it():
    """benchmarks/bench_picogpt.py hands minigpt's weights to picoGPT in its nested layout. A forward written
    here the way picoGPT's reads that layout (pre-LN blocks, tanh GELU, tied head; float64) must give minigpt's
    logits: a swapped ln_1/ln_2 or c_fc/c_proj would not (the LayerNorms are randomised so that they differ)."""
    bench_picogpt = import_benchmark("bench_picogpt")
    model = GPT(GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=8), seed=0, backend="numpy")
    rng = np.random.default_rng(1)
    for name, value in model.params.items():
        if ".ln_" in name or name.startswith("ln_f") or name.endswith(".bias"):
            value[...] = rng.normal(1.0 if name.endswith("weight") else 0.0, 0.3, value.shape)
    p = bench_picogpt.picogpt_params(model)

    def norm(x, ln):
        return layer_norm(x, ln["g"], ln["b"])

    tokens = [3, 1, 4, 1, 5, 9, 2, 6]
    x = p["wte"][tokens].astype(np.float64) + p["wpe"][:len(tokens)]
    for block in p["blocks"]:
        qkv = norm(x, block["ln_1"]) @ block["attn"]["c_attn"]["w"] + block["attn"]["c_attn"]["b"]
        x = x + causal_self_attention(qkv, 2) @ block["attn"]["c_proj"]["w"] + block["attn"]["c_proj"]["b"]
        hidden = gelu(norm(x, block["ln_2"]) @ block["mlp"]["c_fc"]["w"] + block["mlp"]["c_fc"]["b"])
        x = x + hidden @ block["mlp"]["c_proj"]["w"] + block["mlp"]["c_proj"]["b"]
    expected = norm(x, p["ln_f"]) @ p["wte"].T
    got = model.forward(np.array([tokens]), train=False)[0][0]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_llmc_checkpoint_holds_the_model_in_llmcs_layout(tmp_path):
    """benchmarks/bench_llmc.py writes minigpt's model as an llm.c checkpoint. Read back the way llm.c's
    gpt2_build_from_checkpoint reads it (a 256-int header, then the 16 tensors in the sizes of its
    fill_in_parameter_sizes) and run llm.c's forward in NumPy, Linear weights (out, in): minigpt's logits."""
    bench_llmc = import_benchmark("bench_llmc")
    model = bench_llmc.minigpt_model("baby")  # LayerNorm gains and biases random, so their order shows
    bench_llmc.write_llmc_checkpoint(model, tmp_path / "model.bin")
    raw = np.fromfile(tmp_path / "model.bin", dtype=np.int32)
    magic, version, max_T, V, L, NH, C, Vp = raw[:8]
    assert (magic, version, max_T, V, L, NH, C, Vp) == (20240326, 3, 64, 65, 4, 4, 128, 128)
    sizes = [Vp * C, max_T * C, L * C, L * C, L * 3 * C * C, L * 3 * C, L * C * C, L * C, L * C, L * C,
             L * 4 * C * C, L * 4 * C, L * C * 4 * C, L * C, C, C]
    floats = raw[256:].view(np.float32).astype(np.float64)
    assert floats.size == sum(sizes)
    (wte, wpe, ln1w, ln1b, qkvw, qkvb, attprojw, attprojb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb, lnfw,
     lnfb) = np.split(floats, np.cumsum(sizes)[:-1])
    wte = wte.reshape(Vp, C)

    def linear(x, w, b, out_features):  # llm.c's matmul_forward: weight (OC, C)
        return x @ w.reshape(out_features, -1).T + b

    tokens = np.array([5, 17, 3, 64, 0, 9, 9, 41])
    x = wte[tokens] + wpe.reshape(max_T, C)[:len(tokens)]
    for layer in range(L):
        def at(a, width):  # this layer's slice of a stacked (L, ...) tensor
            return a.reshape(L, -1)[layer] if width is None else a.reshape(L, width)[layer]
        qkv = linear(layer_norm(x, at(ln1w, C), at(ln1b, C)), at(qkvw, None), at(qkvb, 3 * C), 3 * C)
        x = x + linear(causal_self_attention(qkv, NH), at(attprojw, None), at(attprojb, C), C)
        h = gelu(linear(layer_norm(x, at(ln2w, C), at(ln2b, C)), at(fcw, None), at(fcb, 4 * C), 4 * C))
        x = x + linear(h, at(fcprojw, None), at(fcprojb, C), C)
    logits = layer_norm(x, lnfw, lnfb) @ wte.T
    assert not logits[:, V:].any()  # the padding rows of wte are zero
    ours = model.forward(tokens[None], train=False)[0][0]
    np.testing.assert_allclose(ours, logits[:, :V], rtol=1e-4, atol=1e-5)

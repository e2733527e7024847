"""Zero-shot language modelling (minigpt.prompting.perplexity): every token scored once, in sliding windows,
against a slow per-token reference."""
import json
import math

import numpy as np
import pytest
from conftest import requires_core

from minigpt.cli import main
from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.prompting.evaluate import UnencodableText
from minigpt.prompting.perplexity import score_text, score_tokens, window_starts
from minigpt.tokenizer import BPETokenizer, CharTokenizer

V, T = 23, 8


def spread_model(backend="numpy", dtype="float64", vocab_size=V):
    """A tiny model whose predictions depend on the whole context (weights scaled up, as in
    test_prompting_scoring): a window that gave a token the wrong context would change its score."""
    model = GPT(GPTConfig(vocab_size=vocab_size, block_size=T, n_layer=2, n_head=2, n_embd=16), seed=5, dtype=dtype,
                backend=backend)
    for p in model.params.values():
        if p.ndim == 2:
            p *= 6.0
    return model


def log_prob(model, context, token):
    """log P(token | context) from one forward over the context alone, in float64."""
    logits, _ = model.forward(np.array([context]), train=False)
    row = logits[0, -1].astype(np.float64)
    return row[token] - row.max() - np.log(np.exp(row - row.max()).sum())


IDS = list(np.random.default_rng(0).integers(0, V, 30))  # 29 targets: several windows of T = 8


def test_stride_one_gives_every_token_a_full_context():
    # the definition itself: token j is predicted from the (up to) T tokens right before it
    model = spread_model()
    want = -sum(log_prob(model, IDS[max(0, j - T):j], IDS[j]) for j in range(1, len(IDS)))
    got = score_tokens(model, IDS, stride=1)
    assert got["tokens"] == len(IDS) - 1 and got["windows"] == len(IDS) - T
    assert got["nats"] == pytest.approx(want, rel=1e-10)
    assert got["loss"] == pytest.approx(want / (len(IDS) - 1), rel=1e-10)
    assert got["perplexity"] == pytest.approx(math.exp(got["loss"]))
    assert got["bits_per_token"] == pytest.approx(got["loss"] / math.log(2))


def test_stride_of_a_whole_context_reads_the_text_in_chunks():
    # 33 tokens = 32 targets = 4 windows of 8, no overlap: the sum of four ordinary training losses
    model = spread_model()
    ids = np.random.default_rng(1).integers(0, V, 4 * T + 1)
    want = sum(model.forward(ids[None, s:s + T], ids[None, s + 1:s + 1 + T], train=False)[1] * T
               for s in range(0, 4 * T, T))
    got = score_tokens(model, ids, stride=T)
    assert got["windows"] == 4 and got["nats"] == pytest.approx(want, rel=1e-10)


def test_the_default_stride_is_half_the_context_and_progress_counts_windows():
    from minigpt.prompting.perplexity import default_stride
    assert [default_stride(t) for t in (1, 2, 8, 9, 1024)] == [1, 1, 4, 4, 512]
    model, ids, calls = spread_model(), np.random.default_rng(2).integers(0, V, 6 * T), []
    assert score_tokens(model, ids)["stride"] == T // 2
    got = score_tokens(model, ids, stride=2, batch_size=3, progress=lambda done, total: calls.append((done, total)))
    n = got["windows"]
    assert calls == [(min(k, n), n) for k in range(3, n + 3, 3)]  # windows done after each batch of 3, of all


@pytest.mark.parametrize("stride", [1, 2, 3, 5, 7, 8])
@pytest.mark.parametrize("n_ids", [2, 5, 9, 10, 30])
def test_any_stride_scores_each_token_once_with_at_least_its_promised_context(stride, n_ids):
    # the reference follows the windows one by one: the tokens each scores are the ones after the previous
    # window's end, each with the context its window gives it
    model = spread_model()
    ids = IDS[:n_ids]
    starts = window_starts(n_ids - 1, T, stride)
    want, scored_until = 0.0, 0
    for s in starts:
        end = min(s + T, n_ids - 1)
        for j in range(scored_until + 1, end + 1):
            assert j - s >= min(j, T - stride + 1)  # at least T - stride + 1 tokens before it, or all there are
            want -= log_prob(model, ids[s:j], ids[j])
        scored_until = end
    assert scored_until == n_ids - 1  # every target, and each once (the loop starts after the last one scored)
    for batch_size in (None, 1, 2):
        got = score_tokens(model, ids, stride=stride, batch_size=batch_size)
        assert got["tokens"] == n_ids - 1 and got["nats"] == pytest.approx(want, rel=1e-10)


def test_window_starts_cover_the_text_and_end_at_its_end():
    for n_targets in range(1, 40):
        for stride in range(1, T + 1):
            starts = window_starts(n_targets, T, stride)
            assert starts[0] == 0 and starts == sorted(set(starts))
            assert starts[-1] + min(T, n_targets) == n_targets  # the last window ends with the last target
            assert all(b - a <= stride for a, b in zip(starts, starts[1:]))


def test_a_character_text_scores_all_but_its_first_character():
    text = "to be or not to be, that is the question\n" * 3
    tok = CharTokenizer.train(text)
    model = spread_model(vocab_size=tok.vocab_size)
    got = score_text(model, tok, text, stride=3)
    ids = tok.encode(text)
    assert got["tokens"] == len(text) - 1 and got["chars"] == len(text) - 1 and not got["first_token_scored"]
    assert got["nats"] == pytest.approx(score_tokens(model, ids, stride=3)["nats"], rel=1e-12)
    assert got["bits_per_char"] == pytest.approx(got["loss"] / math.log(2))  # one token is one character
    assert got["bytes"] == len(text) - 1 and got["bits_per_byte"] == pytest.approx(got["bits_per_char"])


def test_a_bpe_text_after_end_of_text_has_every_character_scored():
    text = "Héllo wörld, héllo again. " * 6  # two-byte characters: bits per byte < bits per character
    tok = BPETokenizer.train(text, 270)
    model = spread_model(vocab_size=tok.vocab_size)
    ids = tok.encode(text)
    plain = score_text(model, tok, text)  # by default the first token is context, as for characters
    first = tok.decode(ids[:1])
    assert not plain["first_token_scored"] and plain["tokens"] == len(ids) - 1 and len(first) > 1
    assert plain["chars"] == len(text) - len(first) and plain["bytes"] == len(text.encode()) - len(first.encode())
    got = score_text(model, tok, text, eot_prefix=True)  # for a model trained with document boundaries
    assert got["first_token_scored"] and got["tokens"] == len(ids)
    assert got["nats"] == pytest.approx(score_tokens(model, [tok.eot_token] + ids)["nats"], rel=1e-12)
    assert got["chars"] == len(text) and got["bytes"] == len(text.encode())
    assert got["bits_per_char"] == pytest.approx(got["nats"] / math.log(2) / len(text))
    assert got["bits_per_byte"] < got["bits_per_char"]
    with pytest.raises(ValueError, match="no <|endoftext|> token"):
        score_text(spread_model(vocab_size=3), CharTokenizer.train("abc"), "abcab", eot_prefix=True)


@requires_core
def test_cpu_backend_matches_the_numpy_reference():
    ids = np.random.default_rng(2).integers(0, V, 50)
    ref = score_tokens(spread_model("numpy", "float32"), ids, stride=3)
    got = score_tokens(spread_model("cpu", "float32"), ids, stride=3)
    assert got["nats"] == pytest.approx(ref["nats"], rel=1e-5)


def test_bad_input_gets_a_clear_error():
    model = spread_model()
    with pytest.raises(ValueError, match="stride must be an integer from 1 to the context length 8, got 0"):
        score_tokens(model, IDS, stride=0)
    with pytest.raises(ValueError, match="got 9"):
        score_tokens(model, IDS, stride=9)
    with pytest.raises(ValueError, match="1 token"):
        score_tokens(model, IDS[:1])
    tok = CharTokenizer.train("abc")
    with pytest.raises(ValueError, match="empty"):
        score_text(spread_model(vocab_size=3), tok, "")
    with pytest.raises(UnencodableText, match="'z'"):
        score_text(spread_model(vocab_size=3), tok, "abz")
    with pytest.raises(ValueError, match=r"out of range|\[0, 3\)"):  # ids beyond the vocabulary
        score_tokens(spread_model(vocab_size=3), [0, 1, 7])


TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET:\nAy me.\n" * 30


def test_cli_perplexity_prints_and_writes_the_results(tmp_path, capsys, monkeypatch):
    (tmp_path / "text.txt").write_text(TEXT)
    assert main(["pretrain", "--data", str(tmp_path / "text.txt"), "--n-layer", "1", "--n-head", "2", "--n-embd",
                 "16", "--block-size", "16", "--batch-size", "4", "--max-iters", "4", "--eval-interval", "4",
                 "--eval-iters", "1", "--warmup-iters", "1", "--lr-decay-iters", "4", "--backend", "numpy",
                 "--out", str(tmp_path / "out"), "--no-progress", "--sample-tokens", "0"]) == 0
    (tmp_path / "held_out.txt").write_text("JULIET:\nBut soft, ROMEO.\n" * 4)
    capsys.readouterr()
    assert main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--text", str(tmp_path / "held_out.txt"),
                 "--stride", "4", "--backend", "numpy", "--no-progress",
                 "--metrics-out", str(tmp_path / "ppl.json")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "ppl.json").read_text())
    assert result["tokens"] == result["chars"] == 4 * 25 - 1 and result["stride"] == 4 and result["step"] == 4
    assert f"perplexity {result['perplexity']:.3f}" in out and "bits per character" in out
    assert result["bits_per_char"] == pytest.approx(result["loss"] / math.log(2))  # characters: a token each
    # --max-chars: the first characters exactly (all scored but the first); the default text: the held-out
    # plays, never the training ones
    assert main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--text", str(tmp_path / "held_out.txt"),
                 "--max-chars", "30", "--backend", "numpy", "--no-progress",
                 "--metrics-out", str(tmp_path / "p.json")]) == 0
    assert json.loads((tmp_path / "p.json").read_text())["chars"] == 30 - 1
    import minigpt.corpus
    monkeypatch.setattr(minigpt.corpus, "shakespeare_splits", lambda: ("ROMEO:\n" * 20, "JULIET:\nAy me.\n" * 3))
    assert main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--backend", "numpy", "--no-progress",
                 "--metrics-out", str(tmp_path / "p.json")]) == 0
    default = json.loads((tmp_path / "p.json").read_text())
    assert default["text"] == "shakespeare" and default["chars"] == len("JULIET:\nAy me.\n" * 3) - 1
    capsys.readouterr()
    # bad input names the flag, the file or the character
    assert main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--text", str(tmp_path / "held_out.txt"),
                 "--stride", "17", "--backend", "numpy"]) == 1
    assert "--stride must be at most the context length 16, got 17" in capsys.readouterr().err
    (tmp_path / "odd.txt").write_text("JULIET~\n")
    assert main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--text", str(tmp_path / "odd.txt"),
                 "--backend", "numpy", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "odd.txt" in err and "'~'" in err
    with pytest.raises(SystemExit):
        main(["perplexity", "--checkpoint", str(tmp_path / "out"), "--stride", "0"])
    assert "argument --stride: must be an integer >= 1, got 0" in capsys.readouterr().err


def test_a_first_token_that_ends_inside_a_character_leaves_that_character_uncounted():
    text = "🙂 the cat sat on the mat, the cat sat. " * 4  # the BPE below never merges the emoji's 4 bytes
    tok = BPETokenizer.train(text.replace("🙂", ""), 268)
    model = spread_model(vocab_size=tok.vocab_size)
    ids = tok.encode(text)
    first = tok.decode_bytes(ids[:1])
    assert first == "🙂".encode()[:1]  # one byte of four: decode would show it as U+FFFD
    got = score_text(model, tok, text)
    assert got["bytes"] == len(text.encode()) - 1  # every byte after the first token
    assert got["chars"] == len(text) - 1  # the emoji was cut: its characters start after it


def test_a_tokenizer_that_lowercases_counts_the_same_characters_whatever_the_case():
    # GPT-1's tokenizer writes "the" for "The": the scored characters were the decoded text's for a capital
    # first letter and the original's otherwise, so the same tokens gave two bits-per-character figures
    from minigpt.tokenizer import OpenAIGPTTokenizer
    letters = "abcdefghijklmnopqrstuvwxyz"
    tok = OpenAIGPTTokenizer(list(letters) + [c + "</w>" for c in letters] + [",</w>", ".</w>"], [])
    model = spread_model(vocab_size=tok.vocab_size)
    lower, upper = (score_text(model, tok, first + "he cat sat on the mat, the dog too.") for first in "tT")
    assert lower["nats"] == upper["nats"] and lower["tokens"] == upper["tokens"]
    assert lower["chars"] == upper["chars"] == len("he cat sat on the mat, the dog too.")  # all but "t"/"T"
    assert lower["bits_per_char"] == upper["bits_per_char"]


def test_perplexity_command_guards_its_inputs(tmp_path, capsys):
    tok = CharTokenizer.train("abcdefgh \n")
    from minigpt.checkpoint import save_checkpoint
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=1, n_layer=1, n_head=1, n_embd=8), seed=0)
    save_checkpoint(tmp_path / "run", model, 1, tok)
    (tmp_path / "t.txt").write_text("abc abd\n")
    assert main(["perplexity", "--checkpoint", str(tmp_path / "run"), "--text", str(tmp_path / "t.txt"),
                 "--backend", "numpy", "--no-progress", "--metrics-out", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["stride"] == 1  # a context of 1: stride 1, not 0
    for target in (tmp_path / "t.txt", tmp_path / "run" / "ckpt-0000001" / "checkpoint.json"):
        assert main(["perplexity", "--checkpoint", str(tmp_path / "run"), "--text", str(tmp_path / "t.txt"),
                     "--backend", "numpy", "--metrics-out", str(target)]) == 1
        assert "which this command reads" in capsys.readouterr().err
    assert (tmp_path / "t.txt").read_text() == "abc abd\n"
    assert main(["perplexity", "--checkpoint", str(tmp_path / "run"), "--text", ""]) == 1
    assert "--text must name a file or folder" in capsys.readouterr().err
    assert main(["perplexity", "--checkpoint", str(tmp_path / "run"), "--text", str(tmp_path / "t.txt"),
                 "--backend", "numpy", "--eot-prefix"]) == 1  # a char tokenizer has no <|endoftext|>
    assert "--eot-prefix: the tokenizer of" in capsys.readouterr().err


def test_commands_that_do_not_train_refuse_to_run_once_per_mpi_rank(monkeypatch, capsys):
    monkeypatch.setenv("PMI_SIZE", "2")
    assert main(["params"]) == 1
    assert "only pretrain and finetune run on several MPI ranks" in capsys.readouterr().err

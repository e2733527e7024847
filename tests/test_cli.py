"""The `minigpt` command as a user runs it."""
import subprocess
import sys

import pytest

from conftest import requires_core
from minigpt.cli import main
from minigpt.runlock import LOCK_NAME, claim_run_folder


def test_params_prints_the_statistics_table(capsys):
    assert main(["params"]) == 0
    out = capsys.readouterr().out
    assert "gpt3-175b" in out and "174,604,259,328" in out and "116,534,784" in out and "1,557,611,200" in out


def test_params_single_preset(capsys):
    main(["params", "--preset", "gpt2-xl"])
    assert "1,557,611,200" in capsys.readouterr().out


def test_info_names_the_backends(capsys):
    main(["info"])
    out = capsys.readouterr().out
    assert "numpy" in out and ("cpu {" in out or "cpu NOT built" in out)
    # the GPU, or why not: no minigpt._cuda build ("needs ..."), no CuPy, no GPU
    assert "cuda: {" in out or "cuda: not available: backend='cuda' " in out


def test_module_entry_point_and_help():
    for module in ("minigpt", "minigpt.cli"):
        result = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
        assert result.returncode == 0 and "params" in result.stdout, module
    bad = subprocess.run([sys.executable, "-m", "minigpt", "params", "--preset", "gpt9"],
                         capture_output=True, text=True)
    assert bad.returncode != 0 and "invalid choice" in bad.stderr


TEXT = "ROMEO:\nBut soft, what light through yonder window breaks?\nJULIET:\nAy me.\n" * 30


def pretrain_tiny(tmp_path, *extra):
    (tmp_path / "text.txt").write_text(TEXT)
    (tmp_path / "run.toml").write_text('n_layer = 1\nn_head = 2\nn_embd = 16\nblock_size = 16\nbatch_size = 4\n'
                                       'eval_iters = 2\nbackend = "numpy"\nwarmup_iters = 2\n')
    return main(["pretrain", "--config", str(tmp_path / "run.toml"), "--data", str(tmp_path / "text.txt"),
                 "--max-iters", "6", "--eval-interval", "3", "--lr-decay-iters", "6", "--out", str(tmp_path / "out"),
                 "--metrics-out", str(tmp_path / "m.json"), "--no-progress", "--sample-tokens", "20", *extra])


def test_pretrain_with_a_toml_file_then_generate(tmp_path, capsys):
    assert pretrain_tiny(tmp_path) == 0
    out = capsys.readouterr().out
    assert "backend numpy" in out and "1 layers" in out and "a sample of 20 tokens" in out
    assert (tmp_path / "out" / "ckpt-0000006" / "model.safetensors").exists()
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO:", "--max-new-tokens", "10",
                 "--backend", "numpy", "--top-k", "5", "--top-p", "0.9", "--seed", "1"]) == 0
    assert capsys.readouterr().out.startswith("ROMEO:")


def test_generate_bad_inputs(tmp_path, capsys):
    assert pretrain_tiny(tmp_path) == 0
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO " * 5,
                 "--backend", "numpy"]) == 1
    assert "longer than the model's context" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO~", "--backend", "numpy"]) == 1
    assert "'~'" in capsys.readouterr().err  # a character the char tokenizer never saw
    assert main(["generate", "--checkpoint", str(tmp_path / "nothing"), "--backend", "numpy"]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO:", "--greedy",
                 "--max-new-tokens", "0"]) == 0
    assert capsys.readouterr().out == "ROMEO:\n"


def test_generate_several_samples_each_reproducible_by_its_seed(tmp_path, capsys):
    assert pretrain_tiny(tmp_path) == 0
    capsys.readouterr()
    base = ["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO:", "--max-new-tokens", "12",
            "--backend", "numpy"]
    assert main(base + ["--seed", "5", "--num-samples", "3"]) == 0
    samples = capsys.readouterr().out[:-1].split("\n" + "-" * 16 + "\n")  # each ends in a newline
    assert len(samples) == 3 and all(s.startswith("ROMEO:") for s in samples)
    assert len(set(samples)) > 1  # different seeds, different text (12 characters of a barely trained model)
    assert main(base + ["--seed", "7"]) == 0  # the third sample alone: seed 5 + 2
    assert capsys.readouterr().out == samples[2] + "\n"  # (the tokens printed after ROMEO: hold newlines too)
    assert main(base + ["--greedy", "--num-samples", "2"]) == 1
    assert "would be one text repeated" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [
    ("--top-k", "0", "argument --top-k: must be an integer >= 1, got 0"),
    ("--top-p", "1.5", "argument --top-p: must be a number in (0, 1], got 1.5"),
    ("--top-p", "nan", "argument --top-p: must be a number in (0, 1], got nan"),
    ("--temperature", "0", "argument --temperature: must be a finite number > 0 (--greedy takes the most likely "
                           "token), got 0"),
    ("--temperature", "inf", "argument --temperature: must be a finite number > 0"),
    ("--max-new-tokens", "-3", "argument --max-new-tokens: must be an integer >= 0, got -3"),
    ("--seed", "-1", "argument --seed: must be an integer >= 0, got -1"),
    ("--num-samples", "0", "argument --num-samples: must be an integer >= 1, got 0"),
    ("--top-k", "x", "argument --top-k: invalid int value: 'x'")])
def test_generate_refuses_bad_sampling_options_by_their_flag(option, value, message, tmp_path, capsys):
    # Checked before the checkpoint is read, so a missing one does not hide the message; nothing is printed.
    with pytest.raises(SystemExit) as stop:
        main(["generate", "--checkpoint", str(tmp_path / "nothing"), option, value])
    captured = capsys.readouterr()
    assert stop.value.code == 2 and message in captured.err and captured.out == ""


@requires_core
def test_generate_prints_nothing_when_its_first_step_fails(tmp_path, capsys, monkeypatch):
    assert pretrain_tiny(tmp_path) == 0
    capsys.readouterr()
    monkeypatch.setenv("MINIGPT_SIMD", "bogus")  # read by the C++ kernels at their first call
    assert main(["generate", "--checkpoint", str(tmp_path / "out"), "--prompt", "ROMEO:", "--backend", "cpu"]) == 1
    captured = capsys.readouterr()
    assert "MINIGPT_SIMD" in captured.err and captured.out == ""


def test_pretrain_bad_inputs(tmp_path, capsys):
    assert main(["pretrain", "--data", str(tmp_path / "missing.txt"), "--out", str(tmp_path / "o"),
                 "--backend", "numpy", "--no-progress"]) == 1
    assert "no such file" in capsys.readouterr().err
    (tmp_path / "bad.toml").write_text("n_layers = 2\n")
    assert main(["pretrain", "--config", str(tmp_path / "bad.toml"), "--out", str(tmp_path / "o")]) == 1
    assert "unknown training settings: n_layers" in capsys.readouterr().err


@pytest.mark.parametrize("options, message", [
    (["--tokenizer", "char", "--vocab-size", "100"], "--vocab-size is for --tokenizer bpe"),
    (["--val-fraction", "0.5"], "--val-fraction is for --data; the Shakespeare data holds out its last six plays"),
    (["--preset", "gpt2", "--n-layer", "2"], "--preset gpt2 sets the model's shape; leave out --n-layer"),
])
def test_pretrain_refuses_options_it_would_ignore(options, message, tmp_path, capsys):
    # refused before any data is read or written
    assert main(["pretrain", *options, "--out", str(tmp_path / "o"), "--no-progress"]) == 1
    assert message in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_pretrain_preset_brings_its_context_and_dropout():
    from minigpt.cli.pretrain import check_new_run_settings
    settings = {"preset": "gpt1"}
    check_new_run_settings(settings)
    assert settings == {"preset": "gpt1", "block_size": 512, "dropout": 0.1}
    settings = {"preset": "gpt2", "block_size": 64, "dropout": 0.0}  # given: kept
    check_new_run_settings(settings)
    assert settings == {"preset": "gpt2", "block_size": 64, "dropout": 0.0}
    with pytest.raises(SystemExit):  # an unknown preset: argparse lists the choices at once
        main(["pretrain", "--preset", "gpt4"])


def test_a_folder_in_use_by_another_run_is_refused_and_left_alone(tmp_path, capsys):
    assert pretrain_tiny(tmp_path) == 0
    assert not (tmp_path / "out" / LOCK_NAME).exists()  # a finished run frees its folder
    before = sorted(p.name for p in (tmp_path / "out").iterdir())
    with claim_run_folder(tmp_path / "out", "finetune"):  # as another process would
        assert main(["pretrain", "--resume", "--max-iters", "8", "--out", str(tmp_path / "out"), "--no-progress",
                     "--sample-tokens", "0"]) == 1
        assert f"--out {tmp_path / 'out'} is in use by `minigpt finetune`, process " in capsys.readouterr().err
        assert pretrain_tiny(tmp_path) == 1  # a new run too, before it looks for checkpoints
        assert "is in use by" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == before


def test_pretrain_resume_takes_the_runs_own_settings(tmp_path, capsys):
    assert pretrain_tiny(tmp_path) == 0
    out = ["--out", str(tmp_path / "out"), "--no-progress", "--sample-tokens", "0"]
    assert main(["pretrain", "--resume", *out]) == 1  # the run finished its 6 steps
    assert "is at step 6 already; give a larger --max-iters (now 6)" in capsys.readouterr().err
    assert main(["pretrain", "--resume", "--max-iters", "8", "--learning-rate", "0.5", *out]) == 1
    assert "these differ from them: --learning-rate 0.5 (the run's: 0.001)" in capsys.readouterr().err
    assert main(["pretrain", "--resume", "--max-iters", "8", *out]) == 0  # data, model, batch: all the run's own
    assert "resumed from" in capsys.readouterr().out and (tmp_path / "out" / "ckpt-0000008").exists()
    assert pretrain_tiny(tmp_path) == 1  # the same command again, without --resume
    assert "already holds a run's checkpoints (latest: ckpt-0000008)" in capsys.readouterr().err


def test_generate_prints_the_space_gpt1_writes_from_the_prompts_last_word(capsys):
    # GPT-1's tokenizer writes the space after a word from its '</w>' ending: decoding the new tokens alone
    # printed "low newlower"
    from minigpt.cli.generate import print_stream
    from test_pretrained_openai_gpt_tokenizer import toy_tokenizer
    tok = toy_tokenizer()
    prompt = tok.encode("low new")
    print_stream(tok, iter(tok.encode("lower low")), prompt, prompt_text="Low new")
    assert capsys.readouterr().out == "Low new lower low\n"
    print_stream(tok, iter(tok.encode("lower low")), prompt, prompt_text="Low new ")  # its own space, once
    assert capsys.readouterr().out == "Low new lower low\n"
    # from <|endoftext|> (an empty --prompt): no space follows a special token, so none starts the text
    eot = tok.add_special_tokens(["<|endoftext|>"])[0]
    print_stream(tok, iter(tok.encode("lower low")), [eot])
    assert capsys.readouterr().out == "lower low\n"


def save_model_with_tokenizer(folder, tokenizer):
    from minigpt.checkpoint import save_checkpoint
    from minigpt.config import GPTConfig
    from minigpt.model import GPT
    model = GPT(GPTConfig(vocab_size=tokenizer.vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8), seed=0)
    return save_checkpoint(folder, model, 0, tokenizer=tokenizer)


def test_generate_checks_the_prompt_against_the_context_and_the_tokenizer_against_the_model(tmp_path, capsys,
                                                                                             monkeypatch):
    from minigpt.checkpoint import save_checkpoint
    from minigpt.config import GPTConfig
    from minigpt.model import GPT
    from minigpt.tokenizer import CharTokenizer
    tok = CharTokenizer.train("abcdefgh")
    ckpt = save_model_with_tokenizer(tmp_path / "ok", tok)  # a context of 8 tokens
    args = ["generate", "--checkpoint", str(ckpt), "--max-new-tokens", "1", "--greedy", "--backend", "numpy"]
    assert main(args + ["--prompt", "abcdefgh"]) == 0  # the whole context
    assert main(args + ["--prompt", "abcdefgha"]) == 1
    assert "the prompt is 9 tokens, longer than the model's context of 8" in capsys.readouterr().err
    import minigpt.generate  # --no-cache reaches generate (whose two paths give the same tokens, see test_generate)
    calls, generate = [], minigpt.generate.generate
    recorded = lambda *args, **kwargs: calls.append(kwargs["use_cache"]) or generate(*args, **kwargs)
    monkeypatch.setattr(minigpt.generate, "generate", recorded)
    assert main(args + ["--prompt", "ab"]) == main(args + ["--prompt", "ab", "--no-cache"]) == 0
    assert calls == [True, False]
    # a tokenizer with one id more than the embedding has rows: that id would index past the table
    model = GPT(GPTConfig(vocab_size=tok.vocab_size - 1, block_size=8, n_layer=1, n_head=1, n_embd=8), seed=0)
    save_checkpoint(tmp_path / "bad", model, 0, tokenizer=tok)
    assert main(["generate", "--checkpoint", str(tmp_path / "bad"), "--backend", "numpy"]) == 1
    assert "the tokenizer has 8 tokens, the model's embedding only 7 rows" in capsys.readouterr().err


def test_generate_from_an_empty_prompt(tmp_path, capsys):
    from minigpt.tokenizer import BPETokenizer
    from test_pretrained_openai_gpt_tokenizer import toy_tokenizer
    bpe = BPETokenizer.train(TEXT, 260)
    bpe.add_special_tokens(["<|endoftext|>"])
    ckpt = save_model_with_tokenizer(tmp_path / "bpe", bpe)
    # GPT-2's unconditional samples: from <|endoftext|>, which is not printed
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "", "--max-new-tokens", "5", "--greedy",
                 "--backend", "numpy"]) == 0
    from minigpt.checkpoint import load_model
    from minigpt.generate import generate
    tokens = list(generate(load_model(ckpt)[0], [bpe.eot_token], 5, greedy=True, stop_token=bpe.eot_token))
    assert capsys.readouterr().out == bpe.decode(tokens) + "\n"
    # GPT-1's tokenizer drops whitespace and has no <|endoftext|>: the default newline prompt encodes to nothing
    ckpt = save_model_with_tokenizer(tmp_path / "gpt1", toy_tokenizer())
    assert main(["generate", "--checkpoint", str(ckpt), "--max-new-tokens", "5", "--backend", "numpy"]) == 1
    assert "the default prompt, a newline, encodes to no tokens" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", " ", "--backend", "numpy"]) == 1
    assert "--prompt ' ' encodes to no tokens" in capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "", "--backend", "numpy"]) == 1
    assert "an empty --prompt starts from <|endoftext|>, which this checkpoint's tokenizer does not have" in \
        capsys.readouterr().err

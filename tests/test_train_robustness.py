"""What a user's mistakes and a machine's signals do to a pre-training run (found by fuzzing the command): the run's
own files are never overwritten, SIGTERM and SIGHUP save like Ctrl-C, a killed save is cleaned up, a relative
--data resumes from anywhere, and settings that cannot mean what they say are refused."""
import json
import signal
import subprocess
import sys
import time

import pytest
from test_train import TEXT, config

import minigpt
from minigpt.checkpoint import list_checkpoints
from minigpt.cli import main
from minigpt.data import read_text
from minigpt.train import TrainConfig, train


@pytest.mark.parametrize("target", ["metrics.jsonl", "loss.png", "run.lock", "ckpt-0000004/checkpoint.json",
                                    "data/train.bin"])
def test_metrics_out_may_not_overwrite_the_runs_own_files(tmp_path, target):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    history = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match="would overwrite one of the run's own files"):
        train(config(tmp_path, "run", max_iters=8, metrics_out=str(tmp_path / "run" / target)), resume=True,
              progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == history
    cfg = config(tmp_path, "other")
    with pytest.raises(ValueError, match="would overwrite"):  # nor the text it trains on
        train(TrainConfig(**{**cfg.__dict__, "metrics_out": cfg.data}), progress=False)
    train(config(tmp_path, "run", max_iters=8, metrics_out=str(tmp_path / "run" / "final.json")), resume=True,
          progress=False)  # a new name beside them is fine
    assert json.loads((tmp_path / "run" / "final.json").read_text())["iters"] == 8


SCRIPT = """
import sys
from minigpt.cli import main
sys.exit(main(["pretrain", "--data", sys.argv[1], "--out", sys.argv[2], "--n-layer", "1", "--n-head", "2",
               "--n-embd", "16", "--block-size", "16", "--batch-size", "4", "--max-iters", "100000",
               "--eval-interval", "100000", "--eval-iters", "1", "--backend", "numpy", "--no-progress"]))
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_sigterm_and_sighup_finish_the_step_and_save(tmp_path, signum):
    (tmp_path / "text.txt").write_text(TEXT)
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "text.txt"), str(out)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():  # a step is done
        assert time.time() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.05)
    child.send_signal(signum)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 128 + signum, stderr  # saved, but a script's `&&` must not go on
    assert signal.Signals(signum).name in stdout and '"interrupted": true' in stdout
    step, path = list_checkpoints(out)[-1]
    assert step >= 1 and "a sample of" not in stdout  # stopped: no sample of 500 tokens after it


def test_a_run_started_with_sighup_ignored_keeps_running_when_the_terminal_closes(tmp_path):
    (tmp_path / "text.txt").write_text(TEXT)
    out = tmp_path / "run"
    child = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "text.txt"), str(out)], cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))  # as nohup does
    deadline = time.time() + 60
    while not (out / "metrics.jsonl").exists() or not (out / "metrics.jsonl").read_text():
        assert time.time() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGHUP)
    steps = len((out / "metrics.jsonl").read_text().splitlines())
    while len((out / "metrics.jsonl").read_text().splitlines()) < steps + 3:  # it goes on training
        assert time.time() < deadline and child.poll() is None, child.communicate()
        time.sleep(0.05)
    child.send_signal(signal.SIGTERM)
    stdout, stderr = child.communicate(timeout=60)
    assert child.returncode == 128 + signal.SIGTERM and "SIGHUP" not in stdout and "SIGTERM" in stdout, stderr


def test_a_rank_stopped_by_a_signal_sent_to_another_exits_as_interrupted():
    from minigpt.stopping import stopped_exit_code
    assert stopped_exit_code({"interrupted": False, "stop_signal": None}) == 0
    assert stopped_exit_code({"interrupted": True, "stop_signal": signal.SIGTERM}) == 143
    assert stopped_exit_code({"interrupted": True, "stop_signal": None}) == 130  # was 128 + None: a TypeError


def test_a_save_killed_midway_is_cleaned_up_and_a_moved_aside_checkpoint_restored(tmp_path, capsys):
    train(config(tmp_path, "run", max_iters=8), progress=False)
    out = tmp_path / "run"
    (out / ".tmp-ckpt-0000012-999").mkdir()  # a save killed while writing
    (out / ".tmp-ckpt-0000012-999" / "model.safetensors").write_bytes(b"\0" * 1000)
    (out / "ckpt-0000008").rename(out / ".old-ckpt-0000008-999")  # killed between moving a step aside and its copy
    capsys.readouterr()
    train(config(tmp_path, "run", max_iters=12), resume=True, progress=False)
    printed = capsys.readouterr().out
    assert ".tmp-ckpt-0000012-999: left by a save that was killed midway; removed" in printed
    assert ".old-ckpt-0000008-999: left by a save that was killed midway; restored as ckpt-0000008" in printed
    assert not list(out.glob(".tmp-*")) and not list(out.glob(".old-*"))
    assert [step for step, _ in list_checkpoints(out)] == [4, 8, 12]  # step 8 came back and was resumed from


def test_a_runs_only_checkpoint_moved_aside_by_a_killed_save_is_not_overwritten_by_a_new_run(tmp_path, capsys):
    train(config(tmp_path, "run", max_iters=4, eval_interval=4), progress=False)
    out = tmp_path / "run"
    (out / "ckpt-0000004").rename(out / ".old-ckpt-0000004-999")  # the only checkpoint, moved aside
    assert main(["pretrain", "--out", str(out), "--resume", "--max-iters", "8", "--no-progress"]) == 1
    assert "rename " in capsys.readouterr().err  # says where the checkpoint went
    with pytest.raises(ValueError, match="already holds a run's checkpoints"):  # restored first, then refused
        train(config(tmp_path, "run", max_iters=4), progress=False)
    assert [step for step, _ in list_checkpoints(out)] == [4]


def test_a_relative_data_path_resumes_from_another_folder(tmp_path, monkeypatch):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "text.txt").write_text(TEXT)
    monkeypatch.chdir(tmp_path / "a")
    cfg = config(tmp_path, "run", max_iters=4)
    train(TrainConfig(**{**cfg.__dict__, "data": "text.txt"}), progress=False)
    monkeypatch.chdir(tmp_path)  # elsewhere: the run's own settings, or the same file by another path
    assert main(["pretrain", "--out", str(tmp_path / "run"), "--resume", "--max-iters", "8", "--no-progress"]) == 0
    train(TrainConfig(**{**cfg.__dict__, "data": "a/text.txt", "max_iters": 12}), resume=True, progress=False)
    assert [step for step, _ in list_checkpoints(tmp_path / "run")] == [4, 8, 12]


def test_a_preset_with_shape_options_and_empty_paths_are_refused(tmp_path, capsys):
    assert main(["pretrain", "--preset", "gpt1", "--n-layer", "1", "--out", str(tmp_path / "x")]) == 1
    assert "--preset gpt1 sets the model's shape; leave out --n-layer" in capsys.readouterr().err
    for option in ("--out", "--data"):
        assert main(["pretrain", option, "", "--max-iters", "1"]) == 1
        assert f"{option} must name" in capsys.readouterr().err
    with pytest.raises(ValueError, match=r"--min-lr \(0.01\) must not exceed --learning-rate \(0.001\)"):
        TrainConfig(min_lr=1e-2, learning_rate=1e-3)


def test_a_text_without_a_newline_is_sampled_from_its_first_character(tmp_path, capsys):
    (tmp_path / "one_line.txt").write_text("to be or not to be, that is the question. " * 40)
    assert main(["pretrain", "--data", str(tmp_path / "one_line.txt"), "--out", str(tmp_path / "run"),
                 "--n-layer", "1", "--n-head", "2", "--n-embd", "16", "--block-size", "16", "--batch-size", "4",
                 "--max-iters", "2", "--eval-iters", "1", "--backend", "numpy", "--no-progress",
                 "--sample-tokens", "10"]) == 0
    assert "a sample of 10 tokens" in capsys.readouterr().out
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--backend", "numpy"]) == 1
    assert "the default prompt is a newline, which this checkpoint's tokenizer cannot encode" in \
        capsys.readouterr().err
    assert main(["generate", "--checkpoint", str(tmp_path / "run"), "--prompt", "to\udcff", "--backend", "numpy"]) == 1
    assert "--prompt is not valid UTF-8" in capsys.readouterr().err


def test_empty_text_files_in_a_data_folder_are_left_out(tmp_path):
    (tmp_path / "a.txt").write_text("one")
    (tmp_path / "b.txt").write_text("")
    (tmp_path / "c.txt").write_text("  \n")
    (tmp_path / "d.txt").write_text("two")
    assert read_text(tmp_path) == "one\n\ntwo"
    for name in ("a.txt", "d.txt"):
        (tmp_path / name).write_text("")
    with pytest.raises(ValueError, match="every .txt file in it is empty"):
        read_text(tmp_path)


def test_a_model_larger_than_the_machine_is_refused_before_allocating(monkeypatch):
    # on a machine of 1 MiB, the default model's 6.7 MB of weights and gradients: a guard that broke fails here,
    # cleanly, before the real check below would allocate 175B parameters until the system kills the process
    monkeypatch.setattr(minigpt.model, "physical_memory", lambda: 2**20)
    with pytest.raises(ValueError, match=r"a GPT of 834,432 parameters needs 0.0 GiB .* this machine has 0.0 GiB"):
        minigpt.GPT(minigpt.GPTConfig(vocab_size=65, block_size=256, n_layer=4, n_head=4, n_embd=128))
    monkeypatch.undo()
    with pytest.raises(ValueError, match=r"a GPT of 174,604,259,328 parameters needs [\d,.]+ GiB for its weights and "
                                         r"gradients in float32; this machine has"):
        minigpt.GPT(minigpt.GPTConfig.preset("gpt3-175b", vocab_size=50257))
    huge = minigpt.GPTConfig(vocab_size=10, block_size=8, n_layer=10**20, n_head=2, n_embd=8)
    with pytest.raises(ValueError, match="needs"):  # would loop over 10^20 blocks, allocating until killed
        minigpt.GPT(huge)


def test_an_integer_label_that_would_make_millions_of_classes_is_refused(tmp_path):
    from minigpt.tasks import load_task
    for split, label in (("train", 100_000_000), ("dev", 1)):
        (tmp_path / f"{split}.jsonl").write_text(json.dumps({"text": "a", "label": 0}) + "\n" +
                                                 json.dumps({"text": "b", "label": label}) + "\n")
    with pytest.raises(ValueError, match=r"train.jsonl:2.*label 100000000 would make 100,000,001 classes"):
        load_task("classification", str(tmp_path))


def test_hand_edited_run_files_are_named(tmp_path, capsys):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    meta = tmp_path / "run" / "data" / "train.bin.json"
    saved = meta.read_text()
    meta.write_text(json.dumps({**json.loads(saved), "dtype": "float32"}))  # would read the tokens as floats
    train(config(tmp_path, "run", max_iters=6), resume=True, progress=False)  # derived data: encoded again
    assert json.loads(meta.read_text()) == json.loads(saved)
    info = tmp_path / "run" / "ckpt-0000006" / "checkpoint.json"
    info.write_text(json.dumps({**json.loads(info.read_text()), "optimizer": {"t": "x"}}))
    with pytest.raises(ValueError, match=r"optimizer.t must be a step count, got 'x'"):
        train(config(tmp_path, "run", max_iters=8), resume=True, progress=False)
    (tmp_path / "bad.toml").write_text("n_layer = = 2\n")
    assert main(["pretrain", "--config", str(tmp_path / "bad.toml")]) == 1
    assert "bad.toml is not valid TOML" in capsys.readouterr().err


def test_a_tokenizer_larger_than_the_models_vocabulary_is_named(tmp_path, capsys):
    from minigpt.checkpoint import save_checkpoint
    from minigpt.tokenizer import CharTokenizer
    model = minigpt.GPT(minigpt.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2, n_embd=8))
    save_checkpoint(tmp_path / "run", model, 1, CharTokenizer.train("abcdefghij"))  # 10 characters, 5 rows
    for command in (["generate", "--prompt", "a"], ["perplexity", "--text", str(tmp_path / "t.txt")]):
        (tmp_path / "t.txt").write_text("abc")
        assert main([*command, "--checkpoint", str(tmp_path / "run"), "--backend", "numpy"]) == 1
        assert "the tokenizer has 10 tokens, the model's embedding only 5 rows" in capsys.readouterr().err


def test_resuming_a_weights_only_checkpoint_says_what_it_is(tmp_path):
    from minigpt.checkpoint import save_checkpoint
    save_checkpoint(tmp_path / "run", minigpt.GPT(minigpt.GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=2,
                                                                    n_embd=8)), 3)  # as minigpt convert writes one
    with pytest.raises(ValueError, match="holds a model's weights only .* no run to resume"):
        train(config(tmp_path, "run", max_iters=8), resume=True, progress=False)


def test_damaged_generator_states_and_deeply_nested_jsonl_are_named(tmp_path):
    from minigpt.tasks import load_task
    train(config(tmp_path, "run", max_iters=4), progress=False)
    info = tmp_path / "run" / "ckpt-0000004" / "checkpoint.json"
    saved = json.loads(info.read_text())
    saved["rng"]["data"] = {"bit_generator": "MT19937", "state": {}}
    info.write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=r"ckpt-0000004/checkpoint.json: its random-generator states \(rng\) are "
                                         "damaged"):
        train(config(tmp_path, "run", max_iters=8), resume=True, progress=False)
    (tmp_path / "train.jsonl").write_text("[" * 100_000 + "]" * 100_000 + "\n")
    (tmp_path / "dev.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"train.jsonl:1.*nested thousands of levels deep"):
        load_task("classification", str(tmp_path))


def test_a_second_signal_stops_at_once_with_its_own_exit_code(tmp_path, monkeypatch):
    from minigpt.stopping import StopRequest
    with StopRequest() as stop:
        stop.handle(signal.SIGTERM, None)  # the first: finish the step and save
        assert stop.requested and stop.signal == signal.SIGTERM
        with pytest.raises(KeyboardInterrupt) as second:
            stop.handle(signal.SIGTERM, None)
    assert second.value.signum == signal.SIGTERM

    def stop_now(args):
        raise second.value
    monkeypatch.setattr("minigpt.cli.cmd_params", stop_now)
    assert main(["params"]) == 143  # 128 + SIGTERM, as the shell reports a process killed by it

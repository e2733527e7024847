"""The fine-tuning loop and `minigpt finetune` end to end, on a tiny checkpoint made here and small
hand-written tasks: the schedule, the metrics JSON, reloading the fine-tuned model, frozen and
random-init runs, and clear errors for bad input."""
import json

import numpy as np
import pytest

import minigpt
from minigpt.checkpoint import save_checkpoint
from minigpt.cli import main
from minigpt.finetune import load_task_model
from minigpt.finetune.config import FineTuneConfig
from minigpt.finetune.batch import collate
from minigpt.finetune.train import FineTuneRun, epoch_means, evaluate, finetune, linear_warmup_decay
from minigpt.runlock import claim_run_folder
from minigpt.tasks.subsets import dev_subset

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,'"


def tiny_checkpoint(tmp_path, arch="gpt2"):
    tokenizer = minigpt.CharTokenizer.train(ALPHABET)
    config = minigpt.GPTConfig(vocab_size=tokenizer.vocab_size, block_size=32, n_layer=2, n_head=2, n_embd=16,
                               arch=arch)
    gpt = minigpt.GPT(config, seed=123)  # unlike the init of any seed the tests fine-tune with
    return save_checkpoint(tmp_path / "pretrained", gpt, 10, tokenizer)


def write_jsonl(folder, train, dev):
    folder.mkdir(parents=True, exist_ok=True)
    for name, rows in (("train.jsonl", train), ("dev.jsonl", dev)):
        (folder / name).write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def sentiment_task(tmp_path, n_train=48, n_dev=16):
    """A task a tiny model can learn: the label is whether 'good' or 'bad' is in the text."""
    rng = np.random.default_rng(0)
    words = ["the", "film", "was", "plot", "very", "quite", "a"]

    def row():
        label = str(rng.choice(["good", "bad"]))
        text = " ".join(rng.choice(words, 3)) + f" {label} " + " ".join(rng.choice(words, 2))
        return {"text": text, "label": "pos" if label == "good" else "neg"}
    return write_jsonl(tmp_path / "sentiment", [row() for _ in range(n_train)], [row() for _ in range(n_dev)])


def test_the_schedule_warms_up_then_decays_to_zero():
    lrs = [linear_warmup_decay(step, 1.0, 4, 20) for step in range(21)]
    assert lrs[:4] == [0.25, 0.5, 0.75, 1.0]
    assert lrs[4] == 1.0 and lrs[12] == 0.5 and lrs[20] == 0.0
    assert all(a >= b for a, b in zip(lrs[3:], lrs[4:]))


def test_finetune_command_writes_metrics_and_a_model_that_reloads(tmp_path, capsys):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path)
    metrics_path = tmp_path / "metrics.json"
    assert main(["finetune", "--checkpoint", str(checkpoint.parent), "--task", "classification", "--data", str(task),
                 "--epochs", "4", "--lr", "3e-3", "--batch", "8", "--backend", "numpy", "--out",
                 str(tmp_path / "ft"), "--metrics-out", str(metrics_path), "--no-progress", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "task classification (classification): 48 train, 16 dev" in out and "epoch 4:" in out
    metrics = json.loads(metrics_path.read_text())
    assert metrics["task"] == "classification" and metrics["n_train"] == 48 and metrics["n_eval"] == 16
    assert metrics["accuracy"] >= 0.75  # the word decides the label: even a tiny model learns it
    for key, value in {"mode": "full", "aux_lm": 0.5, "transfer_layers": -1, "init": "pretrained", "seed": 1,
                       "epochs": 4, "lr": 3e-3, "steps": 24}.items():
        assert metrics[key] == value, key
    assert len(metrics["history"]) == 4 and metrics["dev_lm_loss"] > 0
    # the training losses are the last epoch's means over its 6 steps, the objective and its two parts
    last = metrics["history"][-1]
    assert metrics["train_loss"] == last["train_loss"] == pytest.approx(last["train_task_loss"] +
                                                                         0.5 * last["train_lm_loss"])
    # the saved model, its head and its tokenizer with the task tokens give the same dev metrics
    model, tokenizer, tokens, info = load_task_model(tmp_path / "ft")
    assert info["finetune"]["labels"] == ["neg", "pos"] and tokenizer.vocab_size == model.config.vocab_size
    from minigpt.finetune.train import encode_split
    from minigpt.tasks import load_task
    dev, _, _ = encode_split(load_task("classification", task).dev, tokenizer, tokens, model.config.block_size)
    again = evaluate(model, dev, ("accuracy",), 5)
    assert again["accuracy"] == metrics["accuracy"]
    assert np.isclose(again["dev_lm_loss"], metrics["dev_lm_loss"], rtol=1e-4)
    # a fine-tuned checkpoint is not a starting point
    assert main(["finetune", "--checkpoint", str(tmp_path / "ft"), "--task", "classification", "--data", str(task),
                 "--backend", "numpy", "--out", str(tmp_path / "ft2"), "--no-progress"]) == 1
    assert "already fine-tuned" in capsys.readouterr().err


@pytest.mark.parametrize("shape, rows", [
    ("multiple-choice", lambda i: {"context": "the cat sat on the", "choices": ["mat", "ran", "sky", "a"][:2 + i % 3],
                                   "label": i % 2}),
    ("similarity", lambda i: {"text_a": "a good film", "text_b": ["quite good", "bad plot"][i % 2], "label": i % 2}),
    ("entailment", lambda i: {"premise": "it was very good", "hypothesis": ["good", "bad"][i % 2], "label": i % 2}),
])
@pytest.mark.parametrize("mode, init, aux_lm", [("frozen", "pretrained", 0.5), ("full", "random", 0.0)])
def test_every_shape_and_mode_runs_through_the_loop(tmp_path, shape, rows, mode, init, aux_lm):
    checkpoint = tiny_checkpoint(tmp_path, arch="gpt1")
    task = write_jsonl(tmp_path / shape, [rows(i) for i in range(6)], [rows(i) for i in range(3)])
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task=shape, data=str(task), mode=mode, init=init, aux_lm=aux_lm,
                         epochs=1, batch=4, backend="numpy", out=str(tmp_path / "ft"))
    run, final = finetune(cfg, progress=False)
    assert final["n_train"] == 6 and final["n_eval"] == 3 and final["steps"] == 2 and 0 <= final["accuracy"] <= 1
    pretrained, _ = minigpt.checkpoint.load_model(checkpoint)
    first_layer_same = np.array_equal(run.model.params["h.0.mlp.c_fc.weight"], pretrained.params["h.0.mlp.c_fc.weight"])
    assert first_layer_same == (mode == "frozen")  # frozen: untouched; random init: never the checkpoint's
    reloaded, _, _, info = load_task_model(tmp_path / "ft")  # λ is saved with the head it weighted
    assert reloaded.aux_lm == info["finetune"]["aux_lm"] == aux_lm


def test_transfer_layers_and_subsets(tmp_path):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path)
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task="classification", data=str(task), transfer_layers=1,
                         epochs=1, lr=1e-9, batch=8, max_train=10, max_eval=5, backend="numpy", out=str(tmp_path / "o"))
    run, final = finetune(cfg, progress=False)
    assert final["n_train"] == 10 and final["n_eval"] == 5 and final["transfer_layers"] == 1
    assert final["steps"] == run.total_steps == 2  # 10 examples in batches of 8: the short last batch is a step
    pretrained, _ = minigpt.checkpoint.load_model(checkpoint)
    # lr 1e-9: the weights barely move, so kept layers stay close to the checkpoint and drawn ones do not
    close = {name: np.allclose(run.model.params[name], pretrained.params[name], atol=1e-6)
             for name in ("h.0.attn.c_attn.weight", "h.1.attn.c_attn.weight")}
    assert close == {"h.0.attn.c_attn.weight": True, "h.1.attn.c_attn.weight": False}


def test_examples_the_tokenizer_cannot_encode(tmp_path, capsys):
    checkpoint = tiny_checkpoint(tmp_path)
    rows = [{"text": "good film", "label": 1}, {"text": "bad FILM", "label": 0}, {"text": "bad", "label": 0}]
    task = write_jsonl(tmp_path / "caps", rows, rows)
    args = ["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
            "--backend", "numpy", "--out", str(tmp_path / "o"), "--no-progress", "--epochs", "1"]
    assert main(args) == 1
    error = capsys.readouterr().err
    assert "train.jsonl:2: CharTokenizer.encode: character 'F'" in error and "pass --skip-unencodable" in error
    assert main(args + ["--skip-unencodable", "--metrics-out", str(tmp_path / "m.json")]) == 0
    metrics = json.loads((tmp_path / "m.json").read_text())
    assert metrics["n_train"] == 2 and metrics["skipped_train"] == 1 and metrics["skipped_eval"] == 1
    assert "left out" in capsys.readouterr().out


@pytest.mark.parametrize("extra, message", [
    (["--task", "sentiment"], "unknown task 'sentiment'"),
    (["--aux-lm", "-0.5"], "--aux-lm"),
    (["--aux-lm", "inf"], "--aux-lm (λ) must be a number >= 0, got inf"),
    (["--out", ""], "--out must name a folder"),
    (["--mode", "frozen", "--init", "random"], "--mode full for the random-init baseline"),
    (["--init", "random", "--transfer-layers", "1"], "needs --init pretrained"),
    (["--transfer-layers", "3"], "has only 2 layers to keep"),
    (["--transfer-layers", "-2"], "--transfer-layers must be >= 0 (or -1: keep all), got -2"),
    # frozen fresh blocks: only the head would train, on top of random layers
    (["--mode", "frozen", "--transfer-layers", "1"], "--mode frozen with --transfer-layers 1 of 2 would freeze"),
    (["--epochs", "0"], "--epochs"),
    (["--lr", "0"], "--lr"),
    (["--lr", "inf"], "--lr must be a number > 0, got inf"),
    (["--grad-clip", "-1"], "--grad-clip must be >= 0"),
    (["--weight-decay", "nan"], "--weight-decay must be >= 0"),
    (["--seed", "-1"], "--seed must be >= 0"),
    (["--warmup", "1"], "--warmup is a fraction of the steps in [0, 1), got 1.0"),  # all warmup: no decay left
])
def test_bad_settings_are_clear_errors(tmp_path, capsys, extra, message):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 8, 4)
    args = ["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
            "--backend", "numpy", "--out", str(tmp_path / "o"), "--no-progress"]
    assert main(args + extra) == 1
    assert message in capsys.readouterr().err


def test_missing_or_corrupt_checkpoints(tmp_path, capsys):
    task = sentiment_task(tmp_path, 8, 4)
    args = ["--task", "classification", "--data", str(task), "--backend", "numpy", "--no-progress"]
    assert main(["finetune", "--checkpoint", str(tmp_path / "nothing"), *args]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    checkpoint = tiny_checkpoint(tmp_path)
    (checkpoint / "checkpoint.json").write_text("{not json")
    assert main(["finetune", "--checkpoint", str(checkpoint), *args]) == 1
    assert "corrupted" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # argparse: --task is required
        main(["finetune", "--checkpoint", str(checkpoint)])


def test_ctrl_c_finishes_the_step_evaluates_and_saves(tmp_path, monkeypatch):
    import os
    import signal

    from minigpt.finetune.train import FineTuneRun

    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path)
    real_step = FineTuneRun.train_step

    def step_then_interrupt(run, batch):
        result = real_step(run, batch)
        if run.step == 2:
            os.kill(os.getpid(), signal.SIGINT)  # as if the user pressed Ctrl-C during step 2
        return result
    monkeypatch.setattr(FineTuneRun, "train_step", step_then_interrupt)
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task="classification", data=str(task), epochs=3, batch=8,
                         backend="numpy", out=str(tmp_path / "o"), metrics_out=str(tmp_path / "m.json"))
    # Ctrl-C as a terminal delivers it: a process started in the background without job control (`(pytest &)`
    # in a script, perhaps a CI runner) inherits SIGINT ignored, which StopRequest leaves ignored, as it must
    # for `nohup`; the test passed only where an earlier test in the same process had reset it
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _, final = finetune(cfg, progress=False)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert final["interrupted"] and final["steps"] == 2 and len(final["history"]) == 1
    assert json.loads((tmp_path / "m.json").read_text())["steps"] == 2
    assert (tmp_path / "o" / "ckpt-0000002" / "model.safetensors").exists()


def test_graded_similarity_trains_a_regression_head(tmp_path):
    checkpoint = tiny_checkpoint(tmp_path)
    folder = tmp_path / "STS-B"
    folder.mkdir()
    header = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
    pairs = [("a good film", "a good film", 5.0), ("a good film", "a bad plot", 1.0), ("the plot", "a plot", 3.2),
             ("very good", "quite good", 4.0), ("bad", "good", 0.4), ("a film", "the film", 4.5)]
    rows = [f"{i}\tg\tf\t2012\t{i}\ts\ts\t{a}\t{b}\t{score}\n" for i, (a, b, score) in enumerate(pairs)]
    for name in ("train.tsv", "dev.tsv"):
        (folder / name).write_text(header + "".join(rows))
    cfg = FineTuneConfig(checkpoint=str(checkpoint), task="stsb", data=str(folder), epochs=2, batch=3, lr=1e-3,
                         backend="numpy", out=str(tmp_path / "o"))
    run, final = finetune(cfg, progress=False)
    assert run.model.regression and run.model.head.n_out == 1
    assert final["n_train"] == 6 and -1 <= final["pearson"] <= 1 and -1 <= final["spearman"] <= 1
    first, last = final["history"][0], final["history"][-1]  # the head learns: the dev MSE falls
    assert last["dev_task_loss"] < first["dev_task_loss"] and last["epoch"] == 2
    model, _, _, info = load_task_model(tmp_path / "o")
    assert model.regression and info["finetune"]["metrics"] == ["pearson", "spearman"]


def test_a_diverging_fine_tune_stops_with_a_clear_error(tmp_path, capsys):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 16, 4)
    before = (checkpoint / "model.safetensors").read_bytes()
    # 1e30 sends the trained weights past float32's range in one update, so the second step's loss is NaN
    assert main(["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
                 "--lr", "1e30", "--warmup", "0", "--grad-clip", "0", "--batch", "8", "--backend", "numpy",
                 "--out", str(tmp_path / "ft"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "minigpt finetune: error: step 2: the loss is nan" in err and "nothing was saved" in err
    assert not (tmp_path / "ft").exists() or not any((tmp_path / "ft").iterdir())
    assert (checkpoint / "model.safetensors").read_bytes() == before


def test_the_out_folder_is_checked_before_any_training(tmp_path, capsys):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 8, 4)
    args = ["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
            "--backend", "numpy", "--no-progress"]
    before = (checkpoint / "model.safetensors").read_bytes()
    # the pre-training run's own folder: its checkpoint would be replaced by the fine-tuned model
    assert main(args + ["--out", str(checkpoint.parent)]) == 1
    assert f"--out {checkpoint.parent} already holds a run's checkpoints (latest: ckpt-0000010); choose another " \
           "--out" in capsys.readouterr().err
    assert (checkpoint / "model.safetensors").read_bytes() == before
    (tmp_path / "afile").write_text("")
    assert main(args + ["--out", str(tmp_path / "afile")]) == 1
    assert "is a file, not a folder" in capsys.readouterr().err
    with claim_run_folder(tmp_path / "busy", "pretrain"):  # another run is writing there
        assert main(args + ["--out", str(tmp_path / "busy")]) == 1
        assert f"--out {tmp_path / 'busy'} is in use by `minigpt pretrain`" in capsys.readouterr().err
    assert main(args + ["--out", str(tmp_path / "ft")]) == 0
    assert not (tmp_path / "ft" / "run.lock").exists()  # freed when the run ends



def test_metrics_out_may_not_overwrite_the_checkpoint_or_the_data(tmp_path, capsys):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 8, 4)
    before = (checkpoint / "checkpoint.json").read_text()
    (tmp_path / "o" / "ckpt-0000001").mkdir(parents=True)
    for target in (checkpoint / "checkpoint.json", task / "dev.jsonl", tmp_path / "o" / "ckpt-0000001" / "m.json"):
        assert main(["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
                     "--backend", "numpy", "--out", str(tmp_path / "o"), "--no-progress",
                     "--metrics-out", str(target)]) == 1
        assert "--metrics-out" in capsys.readouterr().err
    assert (checkpoint / "checkpoint.json").read_text() == before


def test_what_a_killed_save_left_is_removed_by_the_next_run(tmp_path, capsys):
    # a second Ctrl-C during the final save leaves .tmp-ckpt-*, up to three times the model's size
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 8, 4)
    left = tmp_path / "o" / ".tmp-ckpt-0000004-999"
    left.mkdir(parents=True)
    (left / "model.safetensors").write_bytes(b"half")
    assert main(["finetune", "--checkpoint", str(checkpoint), "--task", "classification", "--data", str(task),
                 "--epochs", "1", "--backend", "numpy", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    assert not left.exists() and "left by a save that was killed midway; removed" in capsys.readouterr().out


def sources(examples):
    return [e.source for e in examples]


def test_the_run_takes_its_dropout_schedule_and_subsets_from_the_settings(tmp_path):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path)
    make = lambda **kw: FineTuneRun(FineTuneConfig(**{**dict(
        checkpoint=str(checkpoint), task="classification", data=str(task), batch=4, epochs=3, max_train=10,
        max_eval=6, backend="numpy", out=str(tmp_path / "o")), **kw}))
    run = make(dropout=0.3, warmup=0.0, seed=1, data_seed=7)
    assert minigpt.checkpoint.read_info(checkpoint)[1]["config"]["dropout"] != 0.3
    assert run.model.config.dropout == 0.3  # --dropout, not the pre-training run's
    # 10 examples in batches of 4: 3 steps an epoch, the last of 2 examples; no warmup: the peak at step 0
    assert (run.steps_per_epoch, run.total_steps, run.warmup_steps) == (3, 9, 0)
    assert linear_warmup_decay(0, 1.0, run.warmup_steps, run.total_steps) == 1.0
    assert make(warmup=0.01).warmup_steps == 1  # any warmup is at least one step
    # --seed draws the training subset, --data-seed the dev subset: each leaves the other alone
    other_data_seed, other_seed = make(seed=1, data_seed=8), make(seed=2, data_seed=7)
    assert sources(other_data_seed.train_set) == sources(run.train_set) != sources(other_seed.train_set)
    assert sources(other_seed.dev_set) == sources(run.dev_set) != sources(other_data_seed.dev_set)
    # the dev examples `minigpt evaluate --max-eval 6 --seed 7` scores (test_prompting_evaluate checks its side)
    assert sources(run.dev_set) == sources(dev_subset(run.task.dev, 6, 7))


def test_an_epochs_training_losses_are_means_over_its_steps():
    steps = [{"loss": 1.0, "task_loss": 0.5, "lm_loss": 1.0}, {"loss": 3.0, "task_loss": 2.0, "lm_loss": 2.0}]
    assert epoch_means(steps) == {"train_loss": 2.0, "train_task_loss": 1.25, "train_lm_loss": 1.5}
    without_lm = [{**s, "lm_loss": None} for s in steps]
    assert epoch_means(without_lm)["train_lm_loss"] is None


def test_dev_losses_are_per_example_and_per_token_whatever_the_batch(tmp_path):
    checkpoint, task = tiny_checkpoint(tmp_path), sentiment_task(tmp_path, 8, 11)
    run = FineTuneRun(FineTuneConfig(checkpoint=str(checkpoint), task="classification", data=str(task),
                                     backend="numpy", out=str(tmp_path / "o")))
    # one batch of all 11: the model's own means, the task loss over examples and the LM loss over tokens
    _, whole = run.model.forward(collate(run.dev_set, run.model.regression), train=False, with_lm=True)
    for batch_size in (11, 4, 1):  # batches of 4 leave a last one of 3, which must weigh 3/11, not 1/3
        result = evaluate(run.model, run.dev_set, ("accuracy",), batch_size)
        assert result["dev_task_loss"] == pytest.approx(whole["task_loss"], rel=1e-6)  # float32 sums
        assert result["dev_lm_loss"] == pytest.approx(whole["lm_loss"], rel=1e-6)

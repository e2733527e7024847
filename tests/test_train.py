"""Pre-training end to end on a tiny text: the loss falls, checkpoints appear, and a resumed run
matches an uninterrupted one step for step; a run whose loss turns NaN stops before the update."""
import json

import numpy as np
import pytest

import minigpt
from conftest import requires_core
from minigpt.checkpoint import list_checkpoints
from minigpt.cli import main
from minigpt.data import open_token_file
from minigpt.distributed import SingleProcess
from minigpt.optim import NonFiniteStep
from minigpt.prepare import prepare_data
from minigpt.optim import cosine_lr
from minigpt.train import Run, TrainConfig, estimate_loss, flops_per_token, new_run_schedule, train

TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n" * 40


def config(tmp_path, name, **kw):
    data = tmp_path / "text.txt"
    data.write_text(TEXT)
    fields = dict(data=str(data), tokenizer="char", n_layer=1, n_head=2, n_embd=16, block_size=16, batch_size=4,
                  max_iters=12, warmup_iters=2, lr_decay_iters=12, learning_rate=3e-3, eval_interval=4,
                  eval_iters=2, backend="numpy", out=str(tmp_path / name), sample_tokens=0, dropout=0.1)
    return TrainConfig(**{**fields, **kw})


def losses(out):
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in rows}


def test_loss_falls_and_checkpoints_and_metrics_are_written(tmp_path):
    cfg = config(tmp_path, "run", max_iters=40, lr_decay_iters=40, eval_interval=20,
                 metrics_out=str(tmp_path / "final.json"))
    _, final = train(cfg, progress=False)
    assert final["iters"] == 40 and final["val_loss"] < 3.0  # from ln(vocab) = 3.2 at the start
    steps = [s for s, _ in list_checkpoints(tmp_path / "run")]
    assert steps == [20, 40]
    saved = json.loads((tmp_path / "final.json").read_text())
    assert {"train_loss", "val_loss", "iters", "tokens_per_s", "wall_s"} <= set(saved)
    curve = losses(tmp_path / "run")
    assert np.mean([curve[s] for s in range(36, 41)]) < np.mean([curve[s] for s in range(1, 6)])


def test_the_logged_learning_rate_and_flops_follow_the_schedule_and_the_model(tmp_path):
    cfg = config(tmp_path, "run", min_lr=3e-4)
    run, _ = train(cfg, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13))
    # the line of step s is the update from step s - 1: warmup 1/3, 2/3 of the peak, then the cosine to min_lr
    assert [r["lr"] for r in rows] == [cosine_lr(r["step"] - 1, 3e-3, 3e-4, 2, 12) for r in rows]
    assert rows[0]["lr"] == pytest.approx(1e-3) and rows[2]["lr"] == 3e-3 and rows[-1]["lr"] > 3e-4
    # 6 FLOPs per parameter and token + attention's 12 L C T; the position table is only looked up (the token
    # table is also the output head, a product)
    c = run.model.config
    matmul_params = sum(p.size for name, p in run.model.params.items() if name != "wpe.weight")
    assert flops_per_token(run.model) == 6 * matmul_params + 12 * c.n_layer * c.n_embd * c.block_size
    assert all(r["gflops"] == pytest.approx(r["tokens_per_s"] * flops_per_token(run.model) / 1e9) for r in rows)


def test_evaluation_batches_depend_on_the_step_alone(tmp_path):
    run = Run(config(tmp_path, "run"))
    at = lambda step: estimate_loss(run.model, run.val_tokens, run.cfg, step)
    before = run.data_rng.bit_generator.state
    assert at(4) == at(4) != at(8)  # the same batches at one step, other batches at the next evaluation
    assert run.data_rng.bit_generator.state == before  # and none drawn from the training stream


def test_resume_continues_exactly(tmp_path):
    train(config(tmp_path, "straight"), progress=False)
    train(config(tmp_path, "resumed", max_iters=8), progress=False)  # stops at the checkpoint of step 8
    train(config(tmp_path, "resumed"), resume=True, progress=False)
    straight, resumed = losses(tmp_path / "straight"), losses(tmp_path / "resumed")
    assert set(straight) == set(resumed) == set(range(1, 13))
    for step in range(9, 13):
        assert resumed[step] == straight[step]  # same backend, same streams: bit-identical


def test_resume_after_a_kill_forgets_unsaved_steps(tmp_path):
    train(config(tmp_path, "killed", max_iters=8), progress=False)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + json.dumps({"step": 9, "loss": 123.0}) + "\n")  # logged, never saved
    train(config(tmp_path, "killed"), resume=True, progress=False)
    assert losses(tmp_path / "killed")[9] != 123.0 and len(metrics.read_text().splitlines()) == 12


def test_a_kill_between_the_save_and_its_metrics_line_loses_no_line(tmp_path):
    # the checkpoint of step 8 is in place, but the kill came before its line reached metrics.jsonl
    train(config(tmp_path, "killed", max_iters=8), progress=False)
    metrics = tmp_path / "killed" / "metrics.jsonl"
    lines = metrics.read_text().splitlines()
    metrics.write_text("\n".join(lines[:-1]) + "\n")
    train(config(tmp_path, "killed"), resume=True, progress=False)
    rows = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 13)) and json.dumps(rows[7]) == lines[-1]  # as it was


def test_a_new_run_starts_its_metrics_afresh(tmp_path):
    # a run killed before its first checkpoint leaves metrics.jsonl; the next run in that folder is a new run
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text(json.dumps({"step": 1, "loss": 123.0}) + "\n")
    train(config(tmp_path, "run", max_iters=4), progress=False)
    assert list(losses(tmp_path / "run")) == [1, 2, 3, 4] and losses(tmp_path / "run")[1] != 123.0


def test_resume_finds_the_same_text_at_a_new_place(tmp_path):
    cfg = config(tmp_path, "run", max_iters=8)  # (config writes text.txt)
    train(TrainConfig(**{**cfg.__dict__, "max_iters": 4}), progress=False)
    (tmp_path / "text.txt").rename(tmp_path / "moved.txt")
    with pytest.raises(FileNotFoundError, match="text.txt: the run's text is not there any more; put it back, or "
                                                "name its new place with --data"):
        train(cfg, resume=True, progress=False)
    (tmp_path / "other.txt").write_text(TEXT.replace("speak", "SPEAK"))  # not the same text: refused
    with pytest.raises(ValueError, match="these differ from them: --data"):
        Run(TrainConfig(**{**cfg.__dict__, "data": str(tmp_path / "other.txt")}), resume=True)
    with pytest.raises(FileNotFoundError, match="gone.txt: no such file or folder"):
        Run(TrainConfig(**{**cfg.__dict__, "data": str(tmp_path / "gone.txt")}), resume=True)
    run, final = train(TrainConfig(**{**cfg.__dict__, "data": str(tmp_path / "moved.txt")}), resume=True,
                       progress=False)
    assert final["iters"] == 8 and run.cfg.data == str(tmp_path / "moved.txt")
    assert main(["pretrain", "--out", str(tmp_path / "run"), "--resume", "--max-iters", "10", "--no-progress"]) == 0


def test_resume_without_checkpoint_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(config(tmp_path, "empty"), resume=True, progress=False)


def test_bad_data_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        train(config(tmp_path, "x", data=str(tmp_path / "missing.txt")), progress=False)
    with pytest.raises(ValueError, match="val-fraction"):
        train(config(tmp_path, "x", val_fraction=1.5), progress=False)


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_a_nan_loss_stops_the_step_before_the_update(tmp_path, backend):
    run = Run(config(tmp_path, "nan", backend=backend, dropout=0.0))
    run.train_step()
    run.model.params["h.0.mlp.c_fc.weight"][0, 0] = np.nan  # as a diverged update would leave it
    params = {name: p.copy() for name, p in run.model.params.items()}
    moments = [m.copy() for m in run.opt.m.values()]
    with pytest.raises(NonFiniteStep, match="step 2: the loss is nan and the gradient norm is nan, so the weights "
                                            "were not updated"):
        run.train_step()
    assert run.step == 1 and run.opt.t == 1
    for name, p in run.model.params.items():
        np.testing.assert_array_equal(p, params[name])  # NaN where it was, every other weight as it was
    for m, before in zip(run.opt.m.values(), moments):
        np.testing.assert_array_equal(m, before)


def test_a_diverging_run_stops_with_a_clear_error_and_keeps_its_checkpoint(tmp_path, capsys):
    # A learning rate of 1e30 sends the weights past float32's range in one update, so step 2's loss is NaN.
    cfg = config(tmp_path, "diverged", learning_rate=1e30, warmup_iters=0, eval_interval=1, grad_clip=0.0)
    with pytest.raises(NonFiniteStep, match=r"step 2: the loss is nan.*the latest checkpoint is .*ckpt-0*1$"):
        train(cfg, progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "diverged")] == [1]
    assert list(losses(tmp_path / "diverged")) == [1]  # the failed step is not logged as if it had run
    data = tmp_path / "text.txt"
    assert main(["pretrain", "--data", str(data), "--n-layer", "1", "--n-head", "2", "--n-embd", "16",
                 "--block-size", "16", "--batch-size", "4", "--learning-rate", "1e30", "--warmup-iters", "0",
                 "--backend", "numpy", "--out", str(tmp_path / "cli"), "--no-progress", "--sample-tokens", "0"]) == 1
    assert "minigpt pretrain: error: step 2: the loss is nan" in capsys.readouterr().err


def test_a_new_run_refuses_a_folder_that_holds_another_runs_checkpoints(tmp_path):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    before = (tmp_path / "run" / "metrics.jsonl").read_text()
    with pytest.raises(ValueError, match=r"already holds a run's checkpoints \(latest: ckpt-0*4\); continue it "
                                         "with --resume, or choose another --out"):
        train(config(tmp_path, "run", seed=7), progress=False)
    assert (tmp_path / "run" / "metrics.jsonl").read_text() == before
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file"):
        train(config(tmp_path, "file"), progress=False)


def test_resume_refuses_settings_that_would_change_the_run(tmp_path):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    with pytest.raises(ValueError, match=r"these differ from them: --batch-size 7 \(the run's: 4\), "
                                         r"--learning-rate 0.5 \(the run's: 0.003\)"):
        train(config(tmp_path, "run", learning_rate=0.5, batch_size=7), resume=True, progress=False)
    with pytest.raises(ValueError, match="is at step 4 already; give a larger --max-iters"):
        train(config(tmp_path, "run", max_iters=4), resume=True, progress=False)
    # what only decides when to evaluate, how long, and what to print may change
    _, final = train(config(tmp_path, "run", max_iters=6, eval_interval=3, eval_iters=1), resume=True, progress=False)
    assert final["iters"] == 6


def test_resume_refuses_data_whose_tokenizer_changed(tmp_path):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    longer = config(tmp_path, "run", max_iters=8)
    (tmp_path / "text.txt").write_text(TEXT.replace("z", "@"))  # another alphabet: every id would shift
    with pytest.raises(ValueError, match="the tokenizer built from the data now differs"):
        Run(longer, resume=True)


def test_resume_skips_a_metrics_line_cut_short_by_a_kill(tmp_path):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    metrics = tmp_path / "run" / "metrics.jsonl"
    metrics.write_text(metrics.read_text() + '{"step": 5, "lo')
    train(config(tmp_path, "run", max_iters=6), resume=True, progress=False)
    assert list(losses(tmp_path / "run")) == [1, 2, 3, 4, 5, 6]


@pytest.mark.parametrize("setting, message", [
    ({"eval_interval": 0}, "--eval-interval must be at least 1, got 0"),
    ({"max_iters": -5}, "--max-iters must be at least 1"),
    ({"grad_accum": 0}, "--grad-accum must be at least 1"),
    ({"eval_iters": 0}, "--eval-iters must be at least 1"),
    ({"min_lr": -0.5}, "--min-lr must be >= 0"),
    ({"learning_rate": float("nan")}, "--learning-rate must be a number > 0"),
    ({"grad_clip": -1.0}, "--grad-clip must be >= 0"),
    ({"warmup_iters": -5}, "--warmup-iters must be >= 0"),
    ({"batch_size": 0}, "--batch-size must be at least 1"),
    ({"seed": -1}, "--seed must be >= 0"),
    ({"max_iters": "3"}, "training setting max_iters must be an integer, got '3'"),
    ({"batch_size": 2.0}, "training setting batch_size must be an integer, got 2.0"),
    ({"dropout": True}, "training setting dropout must be a number, got True"),
    ({"lr_decay_iters": -2}, "--lr-decay-iters must be >= 0"),
    ({"preset": "gpt4"}, "unknown --preset 'gpt4'; choose one of: gpt1, gpt2, "),
])
def test_settings_that_make_no_sense_are_clear_errors(setting, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(setting)
    assert TrainConfig.from_dict({"learning_rate": 1}).learning_rate == 1.0  # TOML's 1 is a fine float


def test_a_new_run_decays_over_its_whole_length_unless_told():
    # --max-iters 5000 alone decayed to --min-lr by step 1,500 and stayed there
    assert new_run_schedule(TrainConfig(max_iters=5000)).lr_decay_iters == 5000
    assert new_run_schedule(TrainConfig(max_iters=50)).lr_decay_iters == 100  # shorter than its warmup: warms up
    assert new_run_schedule(TrainConfig(max_iters=5000, lr_decay_iters=2000)).lr_decay_iters == 2000
    # warmed up to the peak at step 99, then at --min-lr from step 100: no decay at all
    with pytest.raises(ValueError, match=r"--lr-decay-iters \(50\) must be >= --warmup-iters \(100\)"):
        new_run_schedule(TrainConfig(warmup_iters=100, lr_decay_iters=50))


def test_a_resume_keeps_the_runs_decay_and_takes_an_old_inverted_one(tmp_path):
    # From Python, as from the command line, TrainConfig(max_iters=12) leaves --lr-decay-iters to the run (it was
    # refused as a change: "--lr-decay-iters 12 (the run's: 8)"); a run saved with a decay shorter than its
    # warmup, before that was refused, still resumes (the check is for new runs).
    (tmp_path / "t.txt").write_text("abcdefgh " * 400)
    base = dict(data=str(tmp_path / "t.txt"), n_layer=1, n_head=1, n_embd=8, block_size=8, batch_size=2,
                eval_iters=1, eval_interval=4, sample_tokens=0, backend="numpy", warmup_iters=2, out=str(tmp_path))
    run, _ = train(TrainConfig(**base, max_iters=8), progress=False)
    assert run.cfg.lr_decay_iters == 8
    run, _ = train(TrainConfig(**base, max_iters=12), resume=True, progress=False)
    assert run.step == 12 and run.cfg.lr_decay_iters == 8
    info_path = list_checkpoints(tmp_path)[-1][1] / "checkpoint.json"
    info = json.loads(info_path.read_text())
    info["train_config"].update(warmup_iters=20, lr_decay_iters=10)  # as an older minigpt accepted
    info_path.write_text(json.dumps(info))
    run, _ = train(TrainConfig(**{**base, "warmup_iters": 20}, max_iters=16), resume=True, progress=False)
    assert run.step == 16 and run.cfg.lr_decay_iters == 10


def test_a_validation_split_too_short_for_one_window_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"the validation split holds \d+ tokens, too few for one window of "
                                         "--block-size 16"):
        train(config(tmp_path, "run", val_fraction=0.001), progress=False)


def test_damaged_token_file_metadata_is_encoded_again(tmp_path, capsys):
    cfg = config(tmp_path, "run")
    prepare_data(cfg, cfg.out)
    meta = tmp_path / "run" / "data" / "val.bin.json"
    assert meta.exists()
    capsys.readouterr()
    prepare_data(cfg, cfg.out)
    assert "encoding" not in capsys.readouterr().out  # unchanged text: the token files are reused
    meta.write_text('{"fingerprint": "ab')
    tokenizer, _, val_path = prepare_data(cfg, cfg.out)
    assert "encoding" in capsys.readouterr().out and open_token_file(val_path)[0].size > 0


def test_a_reencode_killed_midway_is_not_mixed_with_the_old_files(tmp_path, monkeypatch, capsys):
    # char settings encoded; a switch to bpe killed while val.bin was written (train.bin and the tokenizer
    # already bpe's); back to char: val.bin alone still carried char's fingerprint, and the run mixed the two
    import minigpt.prepare as prepare
    char = config(tmp_path, "run")
    prepare_data(char, char.out)
    write = prepare.write_token_file

    def killed_at_val(path, *args, **kwargs):
        if path.name == "val.bin":
            raise KeyboardInterrupt
        return write(path, *args, **kwargs)
    monkeypatch.setattr(prepare, "write_token_file", killed_at_val)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(TrainConfig(**{**char.__dict__, "tokenizer": "bpe", "vocab_size": 270}), char.out)
    monkeypatch.setattr(prepare, "write_token_file", write)
    capsys.readouterr()
    tokenizer, train_path, val_path = prepare_data(char, char.out)
    assert "encoding" in capsys.readouterr().out and tokenizer.kind == "char"  # encoded again, as char
    for path in (train_path, val_path):
        assert open_token_file(path)[0].max() < tokenizer.vocab_size
    (tmp_path / "run" / "data" / "train.bin").write_bytes(b"\0" * 6)  # truncated: encoded again, not an error
    assert prepare_data(char, char.out)[0].kind == "char" and "encoding" in capsys.readouterr().out
    assert open_token_file(train_path)[0].size > 3


@pytest.mark.parametrize("damage, message", [
    ({"step": "x"}, "'step' must be a non-negative integer, got 'x'"),
    ({"step": -3}, "'step' must be a non-negative integer, got -3"),
    ({"rng": {"data": 5, "dropout": {}}}, "the random-generator states in rng are not tables"),
    ({"finetune": {"task": "x"}}, "is a fine-tuned task model"),
])
def test_resume_from_a_damaged_checkpoint_names_it(tmp_path, damage, message):
    train(config(tmp_path, "run", max_iters=4), progress=False)
    info_path = tmp_path / "run" / "ckpt-0000004" / "checkpoint.json"
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), **damage}))
    with pytest.raises(ValueError, match=message):
        train(config(tmp_path, "run", max_iters=8), resume=True, progress=False)


def test_a_metrics_file_that_cannot_be_written_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="--metrics-out .* is a folder"):
        train(config(tmp_path, "run", metrics_out=str(tmp_path)), progress=False)
    with pytest.raises(FileNotFoundError, match="the folder .*nowhere does not exist"):
        train(config(tmp_path, "run", metrics_out=str(tmp_path / "nowhere" / "m.json")), progress=False)
    assert not (tmp_path / "run").exists()


def test_a_closed_standard_output_costs_neither_the_checkpoint_nor_its_metrics_line(tmp_path, monkeypatch):
    import tqdm

    def closed(*args, **kwargs):
        raise BrokenPipeError(32, "Broken pipe")  # as `minigpt pretrain | head -3` does once head exits
    monkeypatch.setattr(tqdm.tqdm, "write", closed)
    with pytest.raises(BrokenPipeError):
        train(config(tmp_path, "run"), progress=False)
    assert [s for s, _ in list_checkpoints(tmp_path / "run")] == [4]
    assert list(losses(tmp_path / "run")) == [1, 2, 3, 4]


class FixedRows(SingleProcess):
    """A world that hands out the rows of one fixed batch in order, however they are split into micro-batches."""

    def __init__(self, x, y):
        self.x, self.y, self.next = x, y, 0

    def get_batch(self, tokens, batch_size, block_size, rng):
        rows = slice(self.next, self.next + batch_size)
        self.next += batch_size
        return self.x[rows], self.y[rows]


@pytest.mark.parametrize("backend, dtype, tolerance", [("numpy", "float64", 1e-12),
                                                      pytest.param("cpu", "float32", 1e-5, marks=requires_core)])
def test_accumulated_micro_batches_step_like_one_batch(backend, dtype, tolerance):
    # Run.train_step itself on 8 fixed rows as 8 x 1, 4 x 2 and 1 x 8 micro-batches: the same loss and gradients
    # (the mean over all rows), the LayerNorms' and biases' included, which add over micro-batches
    from types import SimpleNamespace
    data = np.random.default_rng(0).integers(0, 37, (8, 17))
    results = {}
    for batch_size, grad_accum in ((8, 1), (4, 2), (1, 8)):
        model = minigpt.GPT(minigpt.GPTConfig(vocab_size=37, block_size=16, n_layer=2, n_head=2, n_embd=32),
                            seed=1, dtype=dtype, backend=backend)
        grads = {}
        optimizer = SimpleNamespace(step=lambda lr: grads.update({n: g.copy() for n, g in model.grads.items()}))
        cfg = TrainConfig(batch_size=batch_size, grad_accum=grad_accum, block_size=16, grad_clip=0.0)
        run = SimpleNamespace(cfg=cfg, model=model, world=FixedRows(data[:, :-1], data[:, 1:]), train_tokens=None,
                              data_rng=None, opt=optimizer, step=0)
        loss, _, _ = Run.train_step(run)
        results[batch_size, grad_accum] = loss, grads
    loss_ref, grads_ref = results.pop((8, 1))
    for loss, grads in results.values():
        assert loss == pytest.approx(loss_ref, rel=tolerance)
        for name, g in grads.items():
            assert np.abs(g - grads_ref[name]).max() <= tolerance * np.abs(grads_ref[name]).max(), name

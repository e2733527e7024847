"""Whole-task prompting (minigpt.prompting.evaluate) and `minigpt evaluate`, on tiny models and hand-made tasks."""
import json

import numpy as np
import pytest
from conftest import requires_core
from test_prompting_scoring import reference_logprobs

from minigpt.checkpoint import load_model, save_checkpoint
from minigpt.cli import main
from minigpt.config import GPTConfig
from minigpt.model import GPT
from minigpt.prompting import Template, evaluate_task
from minigpt.tasks import Example, TaskData
from minigpt.tasks.metrics import compute
from minigpt.tasks.subsets import dev_subset, train_subset
from minigpt.tokenizer import CharTokenizer

ALPHABET = "abcdefghijklmnopqrstuvwxyz .,:?\n0123456789"
TOK = CharTokenizer.train(ALPHABET)
WORDS = "bad good fine dull grim warm cold dark keen calm".split()


def spread_model(block_size=64, dtype="float64", backend="numpy", seed=3):
    model = GPT(GPTConfig(vocab_size=TOK.vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16),
                seed=seed, dtype=dtype, backend=backend)
    for p in model.params.values():
        if p.ndim == 2:
            p *= 6.0  # make the next token depend on the context (see test_prompting_scoring)
    return model


def classification_task(n_train=12, n_dev=10):
    rng = np.random.default_rng(0)
    make = lambda i, split: Example("classification", (" ".join(rng.choice(WORDS, 3)),), int(rng.integers(2)),
                                    f"{split}:{i}")
    return TaskData("reviews", "classification", ("negative", "positive"), ("accuracy", "f1"),
                    [make(i, "train") for i in range(n_train)], [make(i, "dev") for i in range(n_dev)])


def choice_task():
    rng = np.random.default_rng(1)
    dev = [Example("multiple-choice", (" ".join(rng.choice(WORDS, 4)), *rng.choice(WORDS, 3, replace=False)),
                   int(rng.integers(3)), f"dev:{i}") for i in range(8)]
    return TaskData("stories", "multiple-choice", None, ("accuracy",), dev[:2], dev)


def reference_predictions(model, task, template, rule):
    """Each prediction from the slow reference: one full forward per candidate, no cache, no batching."""
    predictions = []
    for ex in task.dev:
        answers = ex.choices if task.shape == "multiple-choice" else template.verbalizer
        texts = [template.answer_text(a) for a in answers]
        lps = [reference_logprobs(model, TOK.encode(template.fill(ex)), TOK.encode(t)) for t in texts]
        scores = {"total": [lp.sum() for lp in lps], "per_token": [lp.mean() for lp in lps],
                  "per_char": [lp.sum() / len(t) for lp, t in zip(lps, texts)]}[rule]
        predictions.append(int(np.argmax(scores)))
    return predictions


@pytest.mark.parametrize("rule", ["total", "per_token", "per_char"])
def test_zero_shot_metrics_equal_the_reference_predictions(rule):
    model, task = spread_model(), classification_task()
    template = Template("{text}. so it was", verbalizer=("grim", "good"))
    result = evaluate_task(model, TOK, task, template, scoring=rule)
    labels = [ex.label for ex in task.dev]
    want = compute(("accuracy", "f1"), reference_predictions(model, task, template, rule), labels)
    assert result["accuracy"] == want["accuracy"] and result["f1"] == want["f1"]
    assert result["by_scoring"][rule] == want
    assert (result["task"], result["n_train"], result["n_eval"], result["shots"]) == ("reviews", 0, 10, 0)
    assert result["example_prompt"] == task.dev[0].texts[0] + ". so it was"
    assert result["example_candidates"] == [" grim", " good"]


def test_multiple_choice_and_chance_level():
    model, task = spread_model(), choice_task()
    template = Template("{context}\nanswer:")
    result = evaluate_task(model, TOK, task, template, scoring="total")
    want = compute(("accuracy",), reference_predictions(model, task, template, "total"), [e.label for e in task.dev])
    assert result["accuracy"] == want["accuracy"]
    assert result["chance"] == {"uniform_accuracy": pytest.approx(1 / 3)}


def test_chance_level_of_a_classification_task():
    task = classification_task()
    # the training split's commonest class (positive) is not dev's (negative): the guess is made before seeing dev
    relabel = lambda examples, n_positive: [Example(e.shape, e.texts, int(i < n_positive), e.source)
                                            for i, e in enumerate(examples)]
    task = TaskData(task.name, task.shape, task.labels, task.metrics, relabel(task.train, 9), relabel(task.dev, 3))
    result = evaluate_task(spread_model(), TOK, task, Template("{text}", verbalizer=("bad", "good")))
    majority = 1
    assert result["chance"]["uniform_accuracy"] == 0.5
    assert result["chance"]["majority_class"] == task.labels[majority]
    assert result["chance"]["majority"]["accuracy"] == np.mean([e.label == majority for e in task.dev])
    # the best constant guess on the examples evaluated, which a subset need not balance
    here = 0
    assert result["chance"]["commonest_here_class"] == task.labels[here]
    assert result["chance"]["commonest_here"]["accuracy"] == np.mean([e.label == here for e in task.dev])


def test_regression_predicts_the_expected_value_of_the_number_words():
    rng = np.random.default_rng(2)
    dev = [Example("similarity", (" ".join(rng.choice(WORDS, 2)), " ".join(rng.choice(WORDS, 2))),
                   float(rng.uniform(0, 2)), f"dev:{i}") for i in range(8)]
    task = TaskData("sim", "similarity", None, ("pearson", "spearman"), dev, dev)
    model, template = spread_model(), Template("{text_a}, {text_b}:", verbalizer=("0", "1", "2"))
    result = evaluate_task(model, TOK, task, template, scoring="total")
    expected = []
    for ex in dev:
        totals = np.array([reference_logprobs(model, TOK.encode(template.fill(ex)), TOK.encode(" " + w)).sum()
                           for w in "012"])
        p = np.exp(totals - totals.max())
        expected.append(float((p / p.sum()) @ [0.0, 1.0, 2.0]))
    want = compute(("pearson", "spearman"), expected, [e.label for e in dev])
    assert result["pearson"] == pytest.approx(want["pearson"], abs=1e-12)
    assert result["spearman"] == pytest.approx(want["spearman"], abs=1e-12)


def test_few_shot_is_reproducible_and_reports_when_k_shrinks():
    task = classification_task(n_train=40, n_dev=6)
    template = Template("{text}. so it was", verbalizer=("grim", "good"))
    roomy = evaluate_task(spread_model(block_size=256), TOK, task, template, shots=3, seed=5)
    assert roomy["k_mean"] == 3 and roomy["k_shrunk"] == 0 and roomy["n_train"] == 40
    assert roomy == evaluate_task(spread_model(block_size=256), TOK, task, template, shots=3, seed=5)
    assert roomy["example_prompt"].count(". so it was") == 4  # three demonstrations, then the question
    tight = evaluate_task(spread_model(block_size=48), TOK, task, template, shots=3, seed=5)
    assert tight["k_shrunk"] == 6 and tight["k_mean"] < 3
    cramped = evaluate_task(spread_model(block_size=12), TOK, task, template, shots=3, seed=5)
    assert cramped["k_mean"] == 0 and cramped["prompt_truncated"] == 6


def test_an_examples_demonstrations_do_not_depend_on_max_eval(monkeypatch):
    import minigpt.prompting.evaluate as evaluate_module
    seen, predict = {}, evaluate_module.predict

    def recorded(model, tokenizer, template, example, demos, words, regression):
        seen[example.source] = [d.source for d in demos]
        return predict(model, tokenizer, template, example, demos, words, regression)
    monkeypatch.setattr(evaluate_module, "predict", recorded)
    task = classification_task(n_train=40, n_dev=10)
    template = Template("{text}. so it was", verbalizer=("grim", "good"))
    runs = []
    for max_eval in (None, 3):
        seen = {}
        evaluate_task(spread_model(block_size=256), TOK, task, template, shots=2, seed=5, max_eval=max_eval)
        runs.append(seen)
    everything, three = runs
    assert len(three) == 3 and all(three[source] == everything[source] for source in three)
    # the examples `minigpt finetune --max-eval 3 --data-seed 5` scores (test_finetune_train checks its side)
    assert list(three) == [e.source for e in dev_subset(task.dev, 3, 5)]


def test_a_prompt_that_fits_exactly_keeps_its_demonstrations():
    from minigpt.prompting.evaluate import predict
    from minigpt.prompting.templates import label_words
    task = classification_task(n_train=4, n_dev=1)
    template = Template("{text}. so it was", verbalizer=("grim", "good"))
    words = label_words(template, task.labels)
    fitted = lambda block: predict(spread_model(block_size=block), TOK, template, task.dev[0], task.train[:2], words,
                                   False)
    roomy = fitted(256)
    assert roomy["k"] == 2 and roomy["truncated"] == 0
    # the context holds the prompt and all of the longest answer but its last token, which is predicted, never read
    longest = max(len(TOK.encode(template.answer_text(w))) for w in words)
    exact = fitted(len(roomy["prompt_ids"]) + longest - 1)
    assert exact["k"] == 2 and exact["prompt_ids"] == roomy["prompt_ids"]
    assert fitted(len(roomy["prompt_ids"]) + longest - 2)["k"] == 1  # one token less: a demonstration goes


def test_answers_longer_than_the_context_are_compared_on_their_beginnings():
    task = choice_task()
    long = [Example("multiple-choice", (e.texts[0], *[(c + " ") * 6 for c in e.choices]), e.label, e.source)
            for e in task.dev]
    task = TaskData(task.name, task.shape, None, task.metrics, long[:2], long)
    result = evaluate_task(spread_model(block_size=24), TOK, task, Template("{context}:"))
    assert result["answers_cut"] == len(long) and result["n_eval"] == len(long)
    assert all(len(c) == 24 - 12 + 1 for c in result["example_candidates"])  # 12 prompt tokens kept, 13 answer


def test_unencodable_examples_stop_the_run_or_are_counted():
    task = classification_task()
    bad = Example("classification", ("ÆTHELRED was grim",), 0, "dev:99")
    task = TaskData(task.name, task.shape, task.labels, task.metrics, task.train, task.dev + [bad])
    template = Template("{text}", verbalizer=("bad", "good"))
    with pytest.raises(ValueError, match=r"example dev:99: .*'Æ'.*--skip-unencodable"):
        evaluate_task(spread_model(), TOK, task, template)
    result = evaluate_task(spread_model(), TOK, task, template, skip_unencodable=True)
    assert result["skipped"] == 1 and result["n_eval"] == 10 and "dev:99" in result["first_skipped"]


def test_an_unencodable_demonstration_is_named_as_itself():
    task = classification_task()
    bad = Example("classification", ("ÆTHELRED was grim",), 0, "train:99")
    task = TaskData(task.name, task.shape, task.labels, task.metrics, [bad], task.dev)
    template = Template("{text}", verbalizer=("bad", "good"))
    with pytest.raises(ValueError, match=r"demonstration \(for example dev:0\): training example train:99: .*'Æ'"):
        evaluate_task(spread_model(), TOK, task, template, shots=1)
    with pytest.raises(ValueError, match="1 shots asked for, but only 0 of the 1 training examples can be encoded"):
        evaluate_task(spread_model(), TOK, task, template, shots=1, skip_unencodable=True)


def test_a_template_the_tokenizer_cannot_encode_is_named_not_the_first_example():
    task = classification_task()
    for template, message in [
        (Template("{text}", verbalizer=("négatif", "good")), r"the verbalizer word 'négatif' cannot be encoded by "
                                                              r"the checkpoint's tokenizer: it has 'é' \(U\+00E9\)"),
        (Template("{text}", answer=" → {answer}", verbalizer=("bad", "good")),
         r"the answer template ' → \{answer\}' cannot be encoded .* '→' \(U\+2192\)"),
        (Template("Ça: {text}", verbalizer=("bad", "good")), r"the prompt template 'Ça: \{text\}' .* 'Ç' \(U\+00C7\)"),
        (Template("{text}", verbalizer=("bad", "good"), separator="§"), r"the separator '§' cannot be encoded"),
    ]:
        with pytest.raises(ValueError, match=message):  # even with --skip-unencodable: every example holds it
            evaluate_task(spread_model(), TOK, task, template, shots=1, skip_unencodable=True)
    evaluate_task(spread_model(), TOK, task, Template("{text}", verbalizer=("bad", "good"), separator="§"),
                  max_eval=1)  # zero-shot: no separator in any prompt


def test_templates_are_checked_against_the_task():
    task = classification_task()
    with pytest.raises(ValueError, match=r"names \{premise\}"):
        evaluate_task(spread_model(), TOK, task, Template("{premise}"))
    with pytest.raises(ValueError, match="has 3 words"):
        evaluate_task(spread_model(), TOK, task, Template("{text}", verbalizer=("a", "b", "c")))
    with pytest.raises(ValueError, match="only 12 examples"):
        evaluate_task(spread_model(), TOK, task, Template("{text}", verbalizer=("bad", "good")), shots=13)


def write_jsonl_task(folder, task):
    folder.mkdir()
    for split, examples in (("train", task.train), ("dev", task.dev)):
        rows = [{"text": e.texts[0], "label": task.labels[e.label]} for e in examples]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


@pytest.mark.parametrize("backend", ["numpy", pytest.param("cpu", marks=requires_core)])
def test_cli_evaluate_writes_the_metrics_json(tmp_path, capsys, backend):
    model = spread_model(block_size=40, dtype="float32")
    checkpoint = save_checkpoint(tmp_path / "run", model, 7, TOK)
    task = classification_task()
    write_jsonl_task(tmp_path / "task", task)
    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--task", "classification",
                 "--data", str(tmp_path / "task"), "--shots", "2", "--template", r"{text}\nso it was",
                 "--verbalizer", "negative=grim,positive=good", "--metrics-out", str(out), "--backend", backend,
                 "--max-eval", "8", "--no-progress"]) == 0
    printed = capsys.readouterr().out
    metrics = json.loads(out.read_text())
    assert (metrics["task"], metrics["n_train"], metrics["n_eval"], metrics["shots"]) == ("classification", 12, 8, 2)
    assert metrics["step"] == 7 and metrics["checkpoint"] == str(checkpoint)
    assert metrics["template"]["prompt"] == "{text}\nso it was"  # \n on the command line is a newline
    assert metrics["template"]["verbalizer"] == ["grim", "good"]
    assert "k had to shrink" in printed and metrics["k_shrunk"] > 0
    # the same numbers as the library call on the same model
    loaded, _ = load_model(checkpoint, backend=backend)
    from minigpt.tasks import load_task
    direct = evaluate_task(loaded, TOK, load_task("classification", data=tmp_path / "task"),
                           Template("{text}\nso it was", verbalizer={"negative": "grim", "positive": "good"}),
                           shots=2, max_eval=8)
    assert metrics["accuracy"] == direct["accuracy"] and metrics["k_mean"] == direct["k_mean"]


def test_cli_evaluate_bad_inputs(tmp_path, capsys):
    save_checkpoint(tmp_path / "run", spread_model(dtype="float32"), 1, TOK)
    write_jsonl_task(tmp_path / "task", classification_task())
    base = ["evaluate", "--checkpoint", str(tmp_path / "run"), "--backend", "numpy", "--no-progress"]
    assert main(base + ["--task", "nope"]) == 1
    assert "unknown task 'nope'; choose one of" in capsys.readouterr().err
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--template", "{txt}"]) == 1
    assert r"names {txt}, which a classification example does not have" in capsys.readouterr().err
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--shots", "-1"]) == 1
    assert "--shots must be >= 0" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--max-eval", "-1"])
    assert "--max-eval: must be an integer >= 0 (0: all), got -1" in capsys.readouterr().err
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--max-eval", "0",
                        "--template", "{text} so it was", "--verbalizer", "negative=grim,positive=good"]) == 0
    assert "on 10 examples" in capsys.readouterr().out  # 0: all of dev, as in minigpt finetune
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "missing")]) == 1
    assert "train.jsonl" in capsys.readouterr().err
    (tmp_path / "t.toml").write_text('prompt = "{text}"\nverbaliser = "x"\n')
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"),
                        "--template-file", str(tmp_path / "t.toml")]) == 1
    assert "unknown keys ['verbaliser']" in capsys.readouterr().err
    (tmp_path / "t.toml").write_text('prompt = "{text}"\nseparator = 5\n')
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--shots", "1",
                        "--template-file", str(tmp_path / "t.toml")]) == 1
    assert f"template file {tmp_path / 't.toml'}: separator must be a string, got 5" in capsys.readouterr().err
    assert main(base + ["--task", "classification", "--data", str(tmp_path / "task"), "--verbalizer", "good,good"]) == 1
    assert ("error: the verbalizer (from the command line) gives the word 'good' twice (classes 'negative' and "
            "'positive')") in capsys.readouterr().err


def load_experiment(name):
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "experiments" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zero_shot_curve_over_a_pretraining_run(tmp_path, capsys):
    from minigpt.train import Run, TrainConfig, train
    text = "the play was lovely. i loved it.\nthe plot was dull. i hated it.\n" * 40
    (tmp_path / "text.txt").write_text(text)
    cfg = TrainConfig(data=str(tmp_path / "text.txt"), n_layer=1, n_head=2, n_embd=16, block_size=32, batch_size=4,
                      max_iters=4, eval_interval=2, eval_iters=1, warmup_iters=1, lr_decay_iters=4, backend="numpy",
                      out=str(tmp_path / "run"), sample_tokens=0, seed=5)
    train(cfg, progress=False)
    pairs = (("the plot was lovely.", "positive"), ("the play was dull.", "negative"))
    rows = [{"text": t, "label": y} for t, y in pairs]
    (tmp_path / "task").mkdir()
    for split in ("train", "dev"):
        (tmp_path / "task" / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    curve = load_experiment("zero_shot_curve")
    # step 0 is rebuilt from the run's seed: exactly the weights the run started from
    init = next(curve.models_of_run(tmp_path / "run", "numpy", with_init=True))[1]
    start = Run(cfg).model  # what train() builds before its first step
    assert all(np.array_equal(init.params[k], start.params[k]) for k in start.params)
    assert curve.main(["--run", str(tmp_path / "run"), "--task", "classification", "--data", str(tmp_path / "task"),
                       "--template", "{text} i", "--verbalizer", "hated,loved", "--backend", "numpy",
                       "--json", str(tmp_path / "curve.json"), "--png", ""]) == 0
    lines = [json.loads(line) for line in (tmp_path / "curve.json").read_text().splitlines()]
    assert [r["step"] for r in lines] == [0, 2, 4] and all(r["n_eval"] == 2 and r["skipped"] == 0 for r in lines)
    assert "step      4  classification" in capsys.readouterr().out
    # a mistake is one line, not a traceback; an unwritable --json is refused before any evaluation
    assert curve.main(["--run", str(tmp_path / "nope"), "--task", "classification"]) == 1
    assert capsys.readouterr().err.startswith("zero_shot_curve.py: error: ")
    assert curve.main(["--run", str(tmp_path / "run"), "--task", "classification", "--data", str(tmp_path / "task"),
                       "--json", str(tmp_path), "--png", ""]) == 1
    assert f"--json {tmp_path} is a folder" in capsys.readouterr().err


def test_prompting_table_reports_mistakes_in_one_line(tmp_path, capsys):
    table = load_experiment("prompting_table")
    assert table.main(["--checkpoint", str(tmp_path / "nope"), "--no-finetune"]) == 1
    assert capsys.readouterr().err.startswith("prompting_table.py: error: no checkpoint")
    save_checkpoint(tmp_path / "run", spread_model(dtype="float32"), 1, TOK)
    assert table.main(["--checkpoint", str(tmp_path / "run"), "--tasks", "bogus", "--no-finetune", "--json", ""]) == 1
    assert "unknown task 'bogus'" in capsys.readouterr().err


def test_templates_on_the_command_line_take_backslash_n_and_t_as_newline_and_tab():
    from minigpt.cli.evaluate import unescape
    assert unescape("Review:\\t{text}\\nSentiment:") == "Review:\t{text}\nSentiment:" and unescape(None) is None


def test_dev_subsets_are_seeded_and_nested():
    dev = list(range(40))
    assert dev_subset(dev, None, 0) == dev_subset(dev, 0, 0) == dev_subset(dev, 40, 0) == dev
    ten = dev_subset(dev, 10, 1)
    assert len(set(ten)) == 10 and ten != dev[:10] and dev_subset(dev, 25, 1)[:10] == ten
    assert dev_subset(dev, 10, 2) != ten and train_subset(dev, 10, 1) != ten  # the training draw: a stream of its own

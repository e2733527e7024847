"""Tasks with open answers (the completion shape): the model writes its answer greedily, checked against one plain
forward over prompt + answer; the answers' perplexity, few-shot prompts, the JSONL format and the command."""
import json

import numpy as np
import pytest
from test_prompting_evaluate import TOK, spread_model
from test_prompting_scoring import reference_logprobs

from minigpt.checkpoint import save_checkpoint
from minigpt.cli import main
from minigpt.prompting import Template, evaluate_task
from minigpt.tasks import Example, TaskData, load_task

TEMPLATE = Template("{context}", answer="{answer}")  # no space: the answers below are whatever the model writes


def greedy_text(model, context, n):
    """The model's greedy continuation, n tokens, from a plain forward per token (no KV cache)."""
    ids = TOK.encode(context)
    for _ in range(n):
        logits, _ = model.forward(np.array([ids[-model.config.block_size:]]), train=False)
        ids.append(int(np.argmax(logits[0, -1])))
    return TOK.decode(ids[len(TOK.encode(context)):])


def teacher_forced_right(model, context, answer):
    """Right by the definition: fed the answer's own tokens, the model ranks each first; and if the answer ends
    inside a word, what it ranks first next does not go on with the word. One plain forward over prompt + answer."""
    prompt, target = TOK.encode(context), TOK.encode(answer)
    logits, _ = model.forward(np.array([prompt + target]), train=False)
    ranked_first = logits[0, len(prompt) - 1:].argmax(axis=-1)  # positions P-1 .. P+L-1 predict a_1 .. a_L, then next
    if list(ranked_first[:len(target)]) != target:
        return False
    return not (answer[-1].isalnum() and TOK.decode([int(ranked_first[-1])]).isalnum())


def completion_task(model, n_dev=40):
    """Contexts of random words; for most examples the answer is the beginning of the model's own greedy
    continuation (1 to 4 characters), so that some are right, some end mid-word and some are wrong."""
    rng = np.random.default_rng(0)
    words = "bad good fine dull grim warm cold dark keen calm".split()
    dev = []
    for i in range(n_dev):
        context = " ".join(rng.choice(words, 4))
        written = greedy_text(model, context, 5)
        answer = written[:int(rng.integers(1, 5))] if i % 4 else "xq"  # every fourth: an answer never written
        if not answer.strip():
            answer = "zz"
        dev.append(Example("completion", (context,), answer, f"dev:{i}"))
    train = [Example("completion", (" ".join(rng.choice(words, 3)),), w, f"train:{i}")
             for i, w in enumerate(["calm", "dark", "calm"])]
    return TaskData("echo", "completion", None, ("accuracy",), train, dev)


def test_greedy_answers_equal_the_teacher_forced_definition():
    model = spread_model()
    task = completion_task(model)
    result = evaluate_task(model, TOK, task, TEMPLATE)
    want = [teacher_forced_right(model, e.texts[0], e.label) for e in task.dev]
    assert result["accuracy"] == pytest.approx(np.mean(want)) and result["scoring"] == "greedy"
    assert 0 < sum(want) < len(want) - len(task.dev) // 4  # right ones, and wrong ones beyond the "xq" answers
    # the answers' perplexity: exp of the mean negative log-probability over all answer tokens
    lps = np.concatenate([reference_logprobs(model, TOK.encode(e.texts[0]), TOK.encode(e.label)) for e in task.dev])
    assert result["answer_nats_per_token"] == pytest.approx(-lps.mean(), rel=1e-9)
    assert result["answer_perplexity"] == pytest.approx(np.exp(-lps.mean()), rel=1e-9)
    assert result["chance"]["majority_answer"] == "calm"


def test_an_answer_that_stops_mid_word_is_wrong_and_the_longer_word_is_shown():
    model = spread_model()
    for seed in range(40):  # find a context whose greedy continuation begins with two letters
        context = f"keen {seed} dull"
        written = greedy_text(model, context, 3)
        if written[:2].isalpha():
            break
    else:
        pytest.fail("no context found whose continuation starts with two letters")
    task = TaskData("mid", "completion", None, ("accuracy",), [],
                    [Example("completion", (context,), written[:1], "cut"),
                     Example("completion", (context,), written[:2] if not written[2].isalnum() else "qq", "whole")])
    result = evaluate_task(model, TOK, task, TEMPLATE)
    assert result["example_prediction"].startswith(written[:2])  # the one-letter answer: the model went on
    assert result["accuracy"] == pytest.approx(float(not written[2].isalnum()) / 2)


def test_demonstrations_carry_their_answers_and_the_context_bounds_the_answer():
    model = spread_model(block_size=64)
    task = completion_task(model, n_dev=6)
    result = evaluate_task(model, TOK, task, TEMPLATE, shots=2, seed=1)
    prompt = result["example_prompt"]
    assert sum(e.texts[0] + e.label + "\n\n" in prompt for e in task.train) == 2  # solved demonstrations
    assert result["k_mean"] == 2 and prompt.endswith(task.dev[0].texts[0])
    long = TaskData("long", "completion", None, ("accuracy",), [],
                    [Example("completion", ("calm dark",), "a" * 70, "long")])
    cut = evaluate_task(model, TOK, long, TEMPLATE)
    assert cut["answers_cut"] == 1
    assert len(cut["example_candidates"][0]) == 64 - len("calm dark")  # the prompt and the answer fill the context


def test_scoring_rules_belong_to_their_kind_of_task():
    model = spread_model()
    task = completion_task(model, n_dev=2)
    with pytest.raises(ValueError, match="greedy continuation.*'per_token' does not apply"):
        evaluate_task(model, TOK, task, TEMPLATE, scoring="per_token")
    with pytest.raises(ValueError, match="no verbalizer"):
        evaluate_task(model, TOK, task, Template("{context}", verbalizer=("a", "b")))
    with pytest.raises(ValueError, match="non-empty string"):
        Example("completion", ("calm",), " ", "blank")


def test_jsonl_completion_task_and_its_errors(tmp_path):
    folder = tmp_path / "qa"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"context": "the capital of france is", "answer": "paris"}) + "\n")
    (folder / "dev.jsonl").write_text(json.dumps({"context": "two and two make", "answer": "four", "id": 7}) + "\n")
    task = load_task("completion", str(folder))
    assert task.shape == "completion" and task.dev[0].label == "four" and task.dev[0].texts == ("two and two make",)
    (folder / "dev.jsonl").write_text(json.dumps({"context": "two and two make", "label": "four"}) + "\n")
    with pytest.raises(ValueError, match="dev.jsonl:1.*missing field 'answer'"):
        load_task("completion", str(folder))
    (folder / "dev.jsonl").write_text(json.dumps({"context": "two and two make", "answer": 4}) + "\n")
    with pytest.raises(ValueError, match="'answer' must be a non-empty string, got 4"):
        load_task("completion", str(folder))


def test_cli_evaluate_and_finetune_on_a_completion_task(tmp_path, capsys):
    model = spread_model(dtype="float32")
    checkpoint = save_checkpoint(tmp_path / "run", model, 3, TOK)
    folder = tmp_path / "qa"
    folder.mkdir()
    rows = [{"context": "calm dark", "answer": "keen"}, {"context": "good bad", "answer": "fine"}]
    for name in ("train.jsonl", "dev.jsonl"):
        (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--task", "completion", "--data", str(folder),
                 "--shots", "1", "--backend", "numpy", "--no-progress",
                 "--metrics-out", str(tmp_path / "m.json")]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "m.json").read_text())
    assert "scoring greedy" in out and "answer: ' keen', the model wrote: " in out and "perplexity" in out
    assert result["n_eval"] == 2 and result["shots"] == 1 and "answer_perplexity" in result
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--task", "completion", "--data", str(folder),
                 "--scoring", "per_char", "--backend", "numpy"]) == 1
    assert "does not apply" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(checkpoint), "--task", "completion", "--data", str(folder),
                 "--backend", "numpy", "--metrics-out", str(folder / "dev.jsonl")]) == 1
    assert f"would overwrite a file in {folder}, which this command reads" in capsys.readouterr().err
    assert (folder / "dev.jsonl").read_text().count("\n") == 2  # the task's data, untouched
    assert main(["finetune", "--checkpoint", str(checkpoint), "--task", "completion", "--data", str(folder),
                 "--backend", "numpy", "--out", str(tmp_path / "ft")]) == 1
    assert "open answers" in capsys.readouterr().err and not (tmp_path / "ft").exists()


def test_a_tokenizer_that_normalises_text_compares_what_it_can_write():
    # GPT-1's tokenizer lowercases and drops the space before a word when it decodes: the label is compared as the
    # tokenizer writes it, so an answer the model writes token for token counts as right
    from minigpt.config import GPTConfig
    from minigpt.generate import generate
    from minigpt.model import GPT
    from minigpt.tokenizer import OpenAIGPTTokenizer
    letters = "abcdefghijklmnopqrstuvwxyz"
    tok = OpenAIGPTTokenizer(list(letters) + [c + "</w>" for c in letters], [])
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16), seed=0,
                dtype="float64")
    context = "the cat sat on the"
    written = tok.decode(list(generate(model, tok.encode(context), 3, greedy=True)))
    answer = written.strip().upper()  # what the model wrote, in another case and without the space
    task = TaskData("t", "completion", None, ("accuracy",), [], [Example("completion", (context,), answer, "x")])
    result = evaluate_task(model, tok, task, Template("{context}"))
    assert result["accuracy"] == 1.0 and result["chance"]["majority_from"] == "dev"


def test_a_completion_task_needs_no_training_split_zero_shot(tmp_path):
    (tmp_path / "train.jsonl").write_text("")
    (tmp_path / "dev.jsonl").write_text(json.dumps({"context": "calm dark", "answer": "keen"}) + "\n")
    task = load_task("completion", str(tmp_path))
    result = evaluate_task(spread_model(), TOK, task, Template("{context}"))
    assert result["n_eval"] == 1 and result["chance"]["majority_from"] == "dev"
    with pytest.raises(ValueError, match="1 shots asked for, but the training split has only 0 examples"):
        evaluate_task(spread_model(), TOK, task, Template("{context}"), shots=1)


def test_an_answer_spelled_in_more_tokens_is_still_the_answer(monkeypatch):
    # " lord" is one token of this BPE, and the model writes it byte by byte: the text is the answer's, so it is
    # right (the first of its tokens, " ", was compared as the prediction before). " lordship" stays wrong.
    import minigpt.prompting.evaluate as evaluate_module
    from minigpt.config import GPTConfig
    from minigpt.model import GPT
    from minigpt.tokenizer import BPETokenizer
    tok = BPETokenizer.train("my lord said to the lord " * 30, 270, special_tokens=())
    assert len(tok.encode(" lord")) == 1
    model = GPT(GPTConfig(vocab_size=tok.vocab_size, block_size=32, n_layer=1, n_head=2, n_embd=16), seed=0)
    task = TaskData("t", "completion", None, ("accuracy",), [], [Example("completion", ("my",), "lord", "x")])
    for written, right in ((" lord said", 1.0), (" lordship now", 0.0)):
        monkeypatch.setattr(evaluate_module, "generate", lambda *args, text=written, **kw: iter(text.encode()))
        result = evaluate_task(model, tok, task, Template("{context}", answer=" {answer}"))
        assert result["accuracy"] == right
        assert result["example_prediction"] == (" lord" if right else " lordship")

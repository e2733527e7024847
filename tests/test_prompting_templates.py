"""Prompt templates, verbalizers and few-shot prompts (minigpt.prompting.templates, .fewshot)."""
import pytest

from minigpt.prompting.fewshot import correct_answer, demonstration, draw_demonstrations, fit_answers, fit_prompt
from minigpt.prompting.templates import (DEFAULTS, Template, default_template, label_words, load_template_file,
                                         parse_verbalizer, resolve_template)
from minigpt.tasks import TASK_NAMES, Example, is_regression
from minigpt.tasks.glue import FORMATS as GLUE_FORMATS
from minigpt.tasks.shakespeare import BUILDERS as SHAKESPEARE_TASKS
from minigpt.tokenizer import CharTokenizer



def shape_and_labels(name):
    """(shape, class names) of a task, read from the loaders' format tables (no data files needed)."""
    if name in GLUE_FORMATS:
        return GLUE_FORMATS[name].shape, GLUE_FORMATS[name].labels
    if name == "movie-reviews":
        return "classification", GLUE_FORMATS["sst2"].labels
    if name in SHAKESPEARE_TASKS:
        _, labels, shape = SHAKESPEARE_TASKS[name]
        return shape, labels
    if name in ("race", "storycloze"):
        return "multiple-choice", None
    return name, ("label a", "label_b")  # the generic JSONL shapes: whatever labels the files hold

REVIEW = Example("classification", ("a fine film",), 1, "reviews:1")
PAIR = Example("entailment", ("It rains.", "The street is wet."), 0, "pairs:1")
STORY = Example("multiple-choice", ("He dropped the glass.", "It broke.", "It sang."), 0, "stories:1")


def test_every_task_name_has_a_default_that_fits_its_shape_and_labels():
    assert set(DEFAULTS) == set(TASK_NAMES)
    for name in TASK_NAMES:
        shape, labels = shape_and_labels(name)
        template = default_template(name).check(shape)
        if shape not in ("multiple-choice", "completion"):
            words = label_words(template, labels, regression=is_regression(name))
            assert len(words) == (len(labels) if labels else 6) and all(w.strip() for w in words)
    # each class's word, written out: a swapped pair would invert every zero-shot prediction of its task
    expected = {"sst2": {"negative": "negative", "positive": "positive"},
                "movie-reviews": {"negative": "negative", "positive": "positive"},
                "cola": {"unacceptable": "no", "acceptable": "yes"},
                "mnli": {"entailment": "True", "neutral": "Neither", "contradiction": "False"},
                "snli": {"entailment": "True", "neutral": "Neither", "contradiction": "False"},
                "rte": {"entailment": "True", "not_entailment": "False"},
                "qnli": {"entailment": "yes", "not_entailment": "no"},
                "mrpc": {"not_equivalent": "no", "equivalent": "yes"},
                "qqp": {"not_duplicate": "no", "duplicate": "yes"},
                "shakespeare-follows": {"does not follow": "no", "follows": "yes"},
                "shakespeare-same-play": {"different": "no", "same": "yes"},
                "shakespeare-genre": {"comedy": "comedy", "history": "history", "tragedy": "tragedy"}}
    for name, words in expected.items():
        labels = shape_and_labels(name)[1]
        assert dict(zip(labels, label_words(default_template(name), labels))) == words, name


def test_fill_and_answer_text():
    t = Template("Review: {text}\nSentiment:", verbalizer=("negative", "positive"))
    assert t.fill(REVIEW) == "Review: a fine film\nSentiment:"
    assert t.answer_text("positive") == " positive"
    pair = Template("{premise}\nQuestion: {hypothesis} True or False?\nAnswer:")
    assert pair.fill(PAIR) == "It rains.\nQuestion: The street is wet. True or False?\nAnswer:"


def test_braces_in_texts_stay_as_they_are_and_literal_braces_in_templates():
    t = Template("{{quote}} {text}").check("classification")
    assert t.fill(Example("classification", ("x = {y} {}",), 0)) == "{quote} x = {y} {}"


@pytest.mark.parametrize("prompt, shape, message", [
    ("Review: {txt}", "classification", r"names \{txt\}, which a classification example does not have; "
                                        r"its fields are \{text\}"),
    ("{premise} means?", "entailment", r"leaves out \{hypothesis\}"),
    ("{text_a} and {text}", "similarity", r"names \{text\}"),
    ("Review: {}", "classification", "positional"),
    ("Review: {0}", "classification", "positional"),
    ("Review: {text!r}", "classification", "plain {name}"),
    ("Review: {text.upper}", "classification", "plain {name}"),
    ("Review: {text", "classification", "not a valid template"),
    ("Review: text}", "classification", "not a valid template"),
])
def test_bad_prompt_templates_are_clear_errors(prompt, shape, message):
    with pytest.raises(ValueError, match=message):
        Template(prompt).check(shape)


def test_bad_answer_templates_and_shapes():
    with pytest.raises(ValueError, match=r"must hold \{answer\} exactly once"):
        Template("{text}", answer=" {label}").check("classification")
    with pytest.raises(ValueError, match=r"must hold \{answer\} exactly once"):
        Template("{text}", answer=" yes").check("classification")
    with pytest.raises(ValueError, match="multiple-choice task has no verbalizer"):
        Template("{context}", verbalizer=("a", "b")).check("multiple-choice")
    with pytest.raises(ValueError, match="unknown task shape 'regression'"):
        Template("{text}").check("regression")


def test_label_words():
    labels = ("entailment", "not_entailment")
    assert label_words(Template("{text}"), labels) == ("entailment", "not entailment")  # class names, readable
    assert label_words(Template("{text}", verbalizer=("yes", "no")), labels) == ("yes", "no")
    by_name = Template("{text}", verbalizer={"not_entailment": "False", "entailment": "True"})
    assert label_words(by_name, labels) == ("True", "False")  # in label order, whatever the dict's order
    with pytest.raises(ValueError, match="has 3 words"):
        label_words(Template("{text}", verbalizer=("a", "b", "c")), labels)
    with pytest.raises(ValueError, match=r"but the task's classes are \['entailment', 'not_entailment'\]"):
        label_words(Template("{text}", verbalizer={"entailment": "T", "neutral": "N"}), labels)
    with pytest.raises(ValueError, match="no class names"):
        label_words(Template("{text}"), None)
    assert label_words(default_template("stsb"), None, regression=True) == ("0", "1", "2", "3", "4", "5")
    with pytest.raises(ValueError, match="must be numbers"):
        label_words(Template("{text}", verbalizer=("low", "high")), None, regression=True)


def test_label_words_rejects_a_word_shared_by_two_classes():
    labels = ("negative", "neutral", "positive")
    with pytest.raises(ValueError, match=r"the verbalizer gives the word 'good' twice \(classes 'neutral' and "
                                         r"'positive'\); each class needs a word of its own"):
        label_words(Template("{text}", verbalizer=("bad", "good", "good")), labels)
    by_name = Template("{text}", verbalizer={"negative": "ok", "neutral": "meh", "positive": "ok"}, where=" (here)")
    with pytest.raises(ValueError, match=r"the verbalizer \(here\) gives the word 'ok' twice \(classes 'negative'"):
        label_words(by_name, labels)
    with pytest.raises(ValueError, match=r"gives the word 'not entailment' twice"):  # class names made readable
        label_words(Template("{text}"), ("not_entailment", "not entailment"))
    with pytest.raises(ValueError, match=r"gives the word '1' twice;"):
        label_words(Template("{text}", verbalizer=("0", "1", "1")), None, regression=True)


def test_parse_verbalizer():
    assert parse_verbalizer("no,yes") == ("no", "yes")
    assert parse_verbalizer("entailment=yes,not_entailment=no") == {"entailment": "yes", "not_entailment": "no"}
    assert parse_verbalizer("equal=a=b,other=no") == {"equal": "a=b", "other": "no"}  # the first = splits
    with pytest.raises(ValueError, match="empty word"):
        parse_verbalizer("no,,yes")
    with pytest.raises(ValueError, match="mixes"):
        parse_verbalizer("no,entailment=yes")


def test_template_files(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('prompt = "Q: {text}\\nA:"\nverbalizer = ["bad", "good"]\nseparator = "\\n###\\n"\n')
    t = load_template_file(path)
    assert (t.prompt, t.answer, t.verbalizer, t.separator) == ("Q: {text}\nA:", " {answer}", ("bad", "good"), "\n###\n")
    path.write_text('prompt = "{text}"\nverbalizer = {neg = "bad", pos = "good"}\n')
    assert load_template_file(path).verbalizer == {"neg": "bad", "pos": "good"}  # a table: words by class name
    path.write_text('prompt = "{text}"\nverbaliser = ["a", "b"]\n')
    with pytest.raises(ValueError, match=r"unknown keys \['verbaliser'\]"):
        load_template_file(path)
    path.write_text('answer = " {answer}"\n')
    with pytest.raises(ValueError, match="needs a prompt"):
        load_template_file(path)
    path.write_text('prompt = "{text}\n')
    with pytest.raises(ValueError, match="not valid TOML"):
        load_template_file(path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_template_file(tmp_path / "missing.toml")
    path.write_text('prompt = "{txt}"\n')
    with pytest.raises(ValueError, match=r"\(from .*t.toml\) names \{txt\}"):  # the error says where it came from
        load_template_file(path).check("classification")


@pytest.mark.parametrize("lines, message", [
    ('prompt = 3', "prompt must be a string, got 3"),
    ('prompt = "{text}"\nanswer = 5', "answer must be a string, got 5"),
    ('prompt = "{text}"\nseparator = 5', "separator must be a string, got 5"),
    ('prompt = "{text}"\nverbalizer = 5', "verbalizer must be a list of words, .* got 5"),
    ('prompt = "{text}"\nverbalizer = "no,yes"', "verbalizer must be a list of words, .* got 'no,yes'"),
    ('prompt = "{text}"\nverbalizer = ["a", 3]', r"verbalizer must be a list of words, .* got \['a', 3\]"),
    ('prompt = "{text}"\nverbalizer = {neg = "bad", pos = 1}',
     r"verbalizer must be .* or a table of label = \"word\", got \{'neg'"),
])
def test_template_file_values_of_the_wrong_type(tmp_path, lines, message):
    path = tmp_path / "t.toml"
    path.write_text(lines + "\n")
    with pytest.raises(ValueError, match=rf"template file {path}: {message}"):
        load_template_file(path)


def test_resolve_template_overrides_parts_of_the_default():
    t = resolve_template("sst2", prompt="{text} very", verbalizer="negative,positive")
    assert (t.prompt, t.answer, t.verbalizer) == ("{text} very", " {answer}", ("negative", "positive"))
    assert resolve_template("sst2").prompt == DEFAULTS["sst2"].prompt
    assert resolve_template("my-task", prompt="{text} ?").prompt == "{text} ?"  # no default needed with a prompt
    with pytest.raises(ValueError, match="no prompt template for task 'my-task'; known tasks: .*sst2"):
        resolve_template("my-task")


def test_draw_demonstrations_is_seeded_and_per_example():
    pool = [Example("classification", (f"text {i}",), i % 2) for i in range(50)]
    a = draw_demonstrations(pool, 4, seed=0, index=7)
    assert a == draw_demonstrations(pool, 4, seed=0, index=7) and len(set(a)) == 4
    assert a != draw_demonstrations(pool, 4, seed=0, index=8)
    assert a != draw_demonstrations(pool, 4, seed=1, index=7)
    assert draw_demonstrations(pool, 0, seed=0, index=0) == []
    with pytest.raises(ValueError, match="only 50 examples"):
        draw_demonstrations(pool, 51, seed=0, index=0)
    with pytest.raises(ValueError, match=">= 0"):
        draw_demonstrations(pool, -1, seed=0, index=0)


def test_correct_answer_of_each_shape():
    assert correct_answer(REVIEW, ("negative", "positive")) == "positive"
    assert correct_answer(STORY, None) == "It broke."
    similar = Example("similarity", ("a", "b"), 3.7)
    assert correct_answer(similar, ("0", "1", "2", "3", "4", "5")) == "4"  # the nearest number word


T = Template("R: {text}\nS:", verbalizer=("neg", "pos"), separator="\n\n")
WORDS = ("neg", "pos")
TOK = CharTokenizer.train("R: abcdefghijklmnopqrstuvwxyz\nS0123456789 pneg")
DEMOS = [Example("classification", (f"demo {i}",), i % 2) for i in range(3)]  # each "R: demo i\nS: neg\n\n": 18 chars


def test_fit_prompt_keeps_every_demonstration_that_fits():
    query = "R: a fine film\nS:"  # 17 characters
    full = "R: demo 0\nS: neg\n\nR: demo 1\nS: pos\n\nR: demo 2\nS: neg\n\n" + query
    p = fit_prompt(TOK.encode, T, REVIEW, DEMOS, WORDS, budget=100)
    assert TOK.decode(p.ids) == full and (p.k, p.truncated) == (3, 0)
    p = fit_prompt(TOK.encode, T, REVIEW, DEMOS, WORDS, budget=len(full))  # exactly full: nothing dropped
    assert (p.k, p.truncated) == (3, 0)


def test_fit_prompt_drops_the_last_drawn_demonstrations_first():
    p = fit_prompt(TOK.encode, T, REVIEW, DEMOS, WORDS, budget=17 + 2 * 18 + 5)
    assert p.k == 2 and TOK.decode(p.ids).startswith("R: demo 0") and "demo 2" not in TOK.decode(p.ids)
    p = fit_prompt(TOK.encode, T, REVIEW, DEMOS, WORDS, budget=17)
    assert (p.k, p.truncated, TOK.decode(p.ids)) == (0, 0, "R: a fine film\nS:")


def test_fit_prompt_cuts_a_long_example_from_the_left():
    p = fit_prompt(TOK.encode, T, REVIEW, DEMOS, WORDS, budget=10)
    assert (p.k, p.truncated, TOK.decode(p.ids)) == (0, 7, "ne film\nS:")  # the end, which the answer continues
    p = fit_prompt(TOK.encode, T, REVIEW, [], WORDS, budget=1)
    assert TOK.decode(p.ids) == ":"
    with pytest.raises(ValueError, match="reviews:1.*fills the whole context"):
        fit_prompt(TOK.encode, T, REVIEW, [], WORDS, budget=0)


def test_demonstration_text():
    assert demonstration(T, REVIEW, WORDS) == "R: a fine film\nS: pos"
    mc = Template("{context}", answer="\n{answer}")
    assert demonstration(mc, STORY, None) == "He dropped the glass.\nIt broke."


def test_fit_answers_cuts_long_answers_at_their_end_to_leave_room_for_the_prompt():
    short, long = [1, 2], list(range(20))
    assert fit_answers([short, long], prompt_length=10, block_size=32) == ([short, long], False)  # 10 + 20 - 1 <= 32
    cut, was_cut = fit_answers([short, long], prompt_length=30, block_size=32)  # keeps 16 prompt tokens: 17 fit
    assert was_cut and cut == [short, long[:17]]
    cut, _ = fit_answers([long], prompt_length=3, block_size=16)  # a short prompt keeps all of itself
    assert cut == [long[:14]] and 3 + 14 - 1 == 16

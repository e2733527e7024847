"""RACE, Story Cloze and generic JSONL loaders, and load_task's catalogue, on small files written here."""
import json

import pytest

from minigpt.tasks import TASK_NAMES, is_regression, load_task

RACE_ARTICLE = "Last week I talked with some of my students about what they wanted to do after they graduated."


def write_race(root, split, level, name, record):
    path = root / split / level / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record), encoding="utf-8")
    return path


def race_record(answers=("B", "D"), options=None):
    options = options or [["jobs", "careers", "hobbies", "parents"], ["a", "b", "c", "d"]]
    return {"id": "middle1.txt", "article": RACE_ARTICLE, "answers": list(answers), "options": options,
            "questions": ["What did the writer talk about?", "Which is true? _ ."]}


def test_race_folder_middle_and_high(tmp_path):
    write_race(tmp_path, "train", "middle", "1.txt", race_record())
    write_race(tmp_path, "train", "high", "7.txt", race_record(answers=("A", "C")))
    write_race(tmp_path, "dev", "middle", "3.txt", race_record(answers=("C", "A")))
    task = load_task("race", tmp_path)
    assert task.shape == "multiple-choice" and task.labels is None and task.metrics == ("accuracy",)
    assert len(task.train) == 4 and len(task.dev) == 2
    labels = sorted(e.label for e in task.train)
    assert labels == [0, 1, 2, 3]
    first = next(e for e in task.train if "/middle/" in e.source and e.source.endswith("question 1"))
    assert first.texts[0] == RACE_ARTICLE + "\nWhat did the writer talk about?"
    assert first.choices == ("jobs", "careers", "hobbies", "parents") and first.label == 1


def test_race_bad_answers(tmp_path):
    write_race(tmp_path, "dev", "high", "1.txt", race_record())
    path = write_race(tmp_path, "train", "high", "2.txt", race_record(answers=("B", "E")))
    with pytest.raises(ValueError, match=rf"{path}:question 2: answer 'E' is out of range"):
        load_task("race", tmp_path)
    record = race_record()
    del record["options"]
    write_race(tmp_path, "train", "high", "2.txt", record)
    with pytest.raises(ValueError, match="missing 'options'"):
        load_task("race", tmp_path)
    write_race(tmp_path, "train", "high", "2.txt", race_record(answers=("A",)))
    with pytest.raises(ValueError, match="2 questions, 2 option lists and 1 answers"):
        load_task("race", tmp_path)
    (tmp_path / "train" / "high" / "2.txt").write_text('{"article": "x", ', encoding="utf-8")
    with pytest.raises(ValueError, match="2.txt:1: is not valid JSON"):
        load_task("race", tmp_path)


STORY_HEADER = "InputStoryid,InputSentence1,InputSentence2,InputSentence3,InputSentence4," \
               "RandomFifthSentenceQuiz1,RandomFifthSentenceQuiz2,AnswerRightEnding\n"
STORY = ('138d5bfb-05cc-41e3-bf2c-fa85ebad14e2,Rick grew up in a troubled household.,'
         'He never found good support in family and turned to gangs.,'
         '"It wasn\'t long before Rick got shot in a robbery, badly.",'
         'The incident caused him to turn a new leaf.,He is happy now.,He joined a gang.,{answer}\n')


def write_storycloze(folder, answers=(1, 2), header=STORY_HEADER):
    folder.mkdir(exist_ok=True)
    val = folder / "cloze_test_val__spring2016 - cloze_test_ALL_val.csv"
    test = folder / "cloze_test_test__spring2016 - cloze_test_ALL_test.csv"
    val.write_bytes(b"\xef\xbb\xbf" + (header + "".join(STORY.format(answer=a) for a in answers)).encode())
    test.write_text(header + STORY.format(answer=1), encoding="utf-8")
    return val, test


def test_storycloze_trains_on_val_and_scores_on_test(tmp_path):
    val, test = write_storycloze(tmp_path)
    task = load_task("storycloze", tmp_path)
    assert len(task.train) == 2 and len(task.dev) == 1
    example = task.train[0]
    assert example.texts[0] == ("Rick grew up in a troubled household. He never found good support in family and "
                                "turned to gangs. It wasn't long before Rick got shot in a robbery, badly. The "
                                "incident caused him to turn a new leaf.")
    assert example.choices == ("He is happy now.", "He joined a gang.")
    assert [e.label for e in task.train] == [0, 1]
    assert task.train[1].source == f"{val}:3"


def test_storycloze_bad_input(tmp_path):
    val, _ = write_storycloze(tmp_path, answers=(1, 3))
    with pytest.raises(ValueError, match=r"_val.csv:3: AnswerRightEnding is '3': the answer index is out of range"):
        load_task("storycloze", tmp_path)
    write_storycloze(tmp_path, header=STORY_HEADER.replace(",AnswerRightEnding", ""))
    with pytest.raises(ValueError, match="has no AnswerRightEnding column"):
        load_task("storycloze", tmp_path)
    write_storycloze(tmp_path, header=STORY_HEADER.replace("InputSentence3", "Sentence3"))
    with pytest.raises(ValueError, match="missing column 'InputSentence3'"):
        load_task("storycloze", tmp_path)
    val.write_text(STORY_HEADER + STORY.format(answer=1).replace("He is happy now.", ""), encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        load_task("storycloze", tmp_path)
    with pytest.raises(FileNotFoundError, match="exactly one Story Cloze validation CSV"):
        load_task("storycloze", tmp_path / "nowhere")


def write_jsonl(folder, train, dev):
    folder.mkdir(exist_ok=True)
    for name, records in (("train.jsonl", train), ("dev.jsonl", dev)):
        (folder / name).write_text("".join(r if isinstance(r, str) else json.dumps(r) + "\n" for r in records),
                                   encoding="utf-8")
    return folder


def test_jsonl_each_shape(tmp_path):
    folder = write_jsonl(tmp_path / "c", [{"text": "great", "label": "pos"}, "\n", {"text": "awful", "label": "neg"},
                                          {"text": "fine", "label": "neutral", "id": 7}],
                         [{"text": "bad", "label": "neg"}])
    task = load_task("classification", folder)
    assert task.labels == ("neg", "neutral", "pos")  # the sorted set of training labels
    assert [e.label for e in task.train] == [2, 0, 1] and task.dev[0].label == 0
    assert task.train[1].source.endswith("train.jsonl:3")  # the blank line 2 is skipped, not renumbered

    folder = write_jsonl(tmp_path / "e", [{"premise": "It rains.", "hypothesis": "It is wet.", "label": 0},
                                          {"premise": "It rains.", "hypothesis": "It is dry.", "label": 2}],
                         [{"premise": "Sun.", "hypothesis": "Light.", "label": 1}])
    task = load_task("entailment", folder)
    assert task.labels == ("0", "1", "2") and task.train[1].texts == ("It rains.", "It is dry.")

    folder = write_jsonl(tmp_path / "s", [{"text_a": "a cat", "text_b": "a kitten", "label": 1}],
                         [{"text_a": "a dog", "text_b": "a car", "label": 0}])
    assert load_task("similarity", folder).shape == "similarity"

    folder = write_jsonl(tmp_path / "m", [{"context": "2+2=", "choices": ["3", "4", "5"], "label": 1}],
                         [{"context": "1+1=", "choices": ["2", "3"], "label": 0}])
    task = load_task("multiple-choice", folder)
    assert task.labels is None and task.train[0].choices == ("3", "4", "5") and task.train[0].label == 1


@pytest.mark.parametrize("shape, train, message", [
    ("classification", [{"text": "a", "label": "x"}, '{"text": "b", "label": \n'], r"train.jsonl:2: is not valid JSON"),
    ("classification", [{"text": "a"}], r"train.jsonl:1: missing field 'label'"),
    ("entailment", [{"premise": "a", "label": 0}], r"train.jsonl:1: missing field 'hypothesis'"),
    ("classification", [{"text": "a", "label": "x"}, {"text": "b", "label": 1}], r"train.jsonl:2: .*mixes string"),
    ("classification", [{"text": "a", "label": -1}], r"train.jsonl:1: label -1 is negative"),
    ("classification", [{"text": "a", "label": 1.5}], r"train.jsonl:1: label 1.5 must be a string"),
    ("similarity", [{"text_a": "a", "text_b": "b", "label": 4.5}], r"graded similarity scores are read from a GLUE "
                                                                   r"STS-B folder \(--task stsb\)"),
    ("classification", [{"text": "", "label": 1}], r"empty.*train.jsonl:1"),
    ("classification", [{"text": 3, "label": 1}], r"train.jsonl:1: 'text' must be a string"),
    ("multiple-choice", [{"context": "q", "choices": ["a", "b"], "label": 2}], r"train.jsonl:1: label 2 must be"),
    ("multiple-choice", [{"context": "q", "choices": "ab", "label": 0}], r"'choices' must be a list"),
])
def test_jsonl_bad_training_lines(tmp_path, shape, train, message):
    dev = [{"text": "ok", "label": "x"}]
    folder = write_jsonl(tmp_path, train, dev)
    with pytest.raises(ValueError, match=message):
        load_task(shape, folder)


def test_jsonl_dev_label_outside_the_training_labels(tmp_path):
    folder = write_jsonl(tmp_path, [{"text": "a", "label": "pos"}, {"text": "b", "label": "neg"}],
                         [{"text": "c", "label": "pos"}, {"text": "d", "label": "mixed"}])
    with pytest.raises(ValueError, match=r"dev.jsonl:2: label 'mixed' never occurs in train.jsonl"):
        load_task("classification", folder)
    folder = write_jsonl(tmp_path, [{"text": "a", "label": 0}, {"text": "b", "label": 1}],
                         [{"text": "c", "label": 3}])
    with pytest.raises(ValueError, match=r"dev.jsonl:1: label 3 is outside the training label set 0..1"):
        load_task("classification", folder)


def test_jsonl_needs_two_classes_in_training(tmp_path):
    folder = write_jsonl(tmp_path / "s", [{"text": "a", "label": "pos"}, {"text": "b", "label": "pos"}],
                         [{"text": "c", "label": "pos"}])
    with pytest.raises(ValueError, match=r"s/train.jsonl: every example has the label 'pos'; a task needs at "
                                         r"least 2 classes"):
        load_task("classification", folder)
    folder = write_jsonl(tmp_path / "i", [{"premise": "a", "hypothesis": "b", "label": 0}],
                         [{"premise": "c", "hypothesis": "d", "label": 0}])
    with pytest.raises(ValueError, match=r"i/train.jsonl: every example has the label 0; a task needs"):
        load_task("entailment", folder)


def test_jsonl_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.jsonl not found"):
        load_task("similarity", tmp_path)


def test_task_names_and_dispatch_errors():
    assert TASK_NAMES == ("sst2", "cola", "mnli", "snli", "qnli", "rte", "mrpc", "qqp", "stsb", "race", "storycloze",
                          "classification", "entailment", "similarity", "multiple-choice", "completion",
                          "movie-reviews", "shakespeare-genre", "shakespeare-follows", "shakespeare-same-play",
                          "shakespeare-next-line", "shakespeare-last-word")
    assert is_regression("stsb") and not is_regression("mrpc") and not is_regression("race")
    assert not is_regression("completion") and not is_regression("shakespeare-last-word")
    with pytest.raises(ValueError, match="unknown task 'sst-3'; available: sst2"):
        load_task("sst-3")
    with pytest.raises(ValueError, match="unknown task"):
        is_regression("glue")
    with pytest.raises(ValueError, match="takes no data"):
        load_task("shakespeare-genre", data="somewhere")

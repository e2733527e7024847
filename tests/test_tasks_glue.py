"""GLUE loaders on small files with each task's real column layout (download_glue_data.py's files)."""
import pytest

from minigpt.tasks import load_task
from minigpt.tasks.glue import FORMATS

MNLI_TRAIN_HEADER = ["index", "promptID", "pairID", "genre", "sentence1_binary_parse", "sentence2_binary_parse",
                     "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
MNLI_DEV_HEADER = MNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
SNLI_TRAIN_HEADER = ["index", "captionID", "pairID", "sentence1_binary_parse", "sentence2_binary_parse",
                     "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "label1", "gold_label"]
SNLI_DEV_HEADER = SNLI_TRAIN_HEADER[:-1] + ["label2", "label3", "label4", "label5", "gold_label"]
STSB_HEADER = ["index", "genre", "filename", "year", "old_index", "source1", "source2", "sentence1", "sentence2",
               "score"]


def write_tsv(path, rows, bom=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join("\t".join(row) + "\n" for row in rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def mnli_row(i, s1, s2, labels):
    return [str(i), "31193", f"{i}n", "government", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, *labels]


def snli_row(i, s1, s2, labels):
    return [str(i), "3416050480.jpg#4", f"{i}r1n", "( ( x ) )", "( y )", "(ROOT x)", "(ROOT y)", s1, s2, *labels]


def sts_row(i, s1, s2, score):
    return [str(i), "main-captions", "MSRvid", "2012test", f"{i:04d}", "none", "none", s1, s2, score]


def test_sst2_reads_sentences_literally_with_bom_and_quotes(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["sentence", "label"],
                                       ["hide new secretions from the parental units ", "0"],
                                       ['" the rock " is destined to be the 21st century\'s new " conan "', "1"]],
              bom=True)
    write_tsv(tmp_path / "dev.tsv", [["sentence", "label"], ["it 's a charming and often affecting journey . ", "1"]])
    task = load_task("sst2", tmp_path)
    assert (task.shape, task.labels, task.metrics) == ("classification", ("negative", "positive"), ("accuracy",))
    assert [e.texts for e in task.train] == [("hide new secretions from the parental units",),
                                             ('" the rock " is destined to be the 21st century\'s new " conan "',)]
    assert [e.label for e in task.train] == [0, 1]
    assert task.train[1].source == f"{tmp_path / 'train.tsv'}:3"
    assert task.dev[0].label == 1


def test_cola_has_no_header_and_four_columns(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["gj04", "1", "", "Our friends won't buy this analysis, let alone the next."],
                                       ["gj04", "0", "*", 'They drank the pub "dry.'],
                                       ["bc01", "1", "", "The more books I ask for, the more he reads."]])
    write_tsv(tmp_path / "dev.tsv", [["gj04", "0", "*", "Fred watered the plants flat flat."]])
    task = load_task("cola", tmp_path)
    assert task.labels == ("unacceptable", "acceptable") and task.metrics[0] == "matthews"
    assert [e.label for e in task.train] == [1, 0, 1]
    assert task.train[1].texts == ('They drank the pub "dry.',)
    assert task.train[0].source.endswith("train.tsv:1")  # no header: the first line is an example


def test_mnli_uses_dev_matched_and_the_gold_label_at_the_end(tmp_path):
    write_tsv(tmp_path / "train.tsv", [MNLI_TRAIN_HEADER,
                                       mnli_row(0, "Conceptually cream skimming has two basic dimensions.",
                                                "Product and geography are what make cream skimming work.",
                                                ["neutral", "neutral"]),
                                       mnli_row(1, "you know during the season", "You lose the things.",
                                                ["entailment", "entailment"])])
    write_tsv(tmp_path / "dev_matched.tsv", [MNLI_DEV_HEADER,
                                             mnli_row(0, "The new rights are nice enough",
                                                      "Everyone really likes the newest benefits",
                                                      ["neutral", "entailment", "neutral", "neutral", "neutral",
                                                       "neutral"]),
                                             mnli_row(1, "This site includes a list.", "The site is empty.",
                                                      ["contradiction"] * 6)])
    task = load_task("mnli", tmp_path)
    assert task.shape == "entailment" and task.labels == ("entailment", "neutral", "contradiction")
    assert task.train[0].texts == ("Conceptually cream skimming has two basic dimensions.",
                                   "Product and geography are what make cream skimming work.")
    assert [e.label for e in task.train] == [1, 0]
    assert [e.label for e in task.dev] == [1, 2]


def test_snli_ragged_rows_and_unlabelled_pairs(tmp_path):
    # GLUE's SNLI train.tsv: an 11-column header, some rows with 15 fields; "-" = annotators disagreed
    write_tsv(tmp_path / "train.tsv", [SNLI_TRAIN_HEADER,
                                       snli_row(0, "A person on a horse jumps.", "A person is outdoors.",
                                                ["entailment", "entailment"]),
                                       snli_row(1, "A young man kicks.", "Two women play soccer.",
                                                ["contradiction", "neutral", "contradiction", "contradiction",
                                                 "contradiction", "contradiction"]),
                                       snli_row(2, "Children smiling.", "They are sad.", ["neutral", "-"])])
    write_tsv(tmp_path / "dev.tsv", [SNLI_DEV_HEADER,
                                     snli_row(0, "Two women are embracing.", "The sisters are hugging.",
                                              ["neutral"] * 6)])
    with pytest.warns(UserWarning, match="no gold label"):
        task = load_task("snli", tmp_path)
    assert [e.label for e in task.train] == [0, 2]
    assert task.train[1].texts == ("A young man kicks.", "Two women play soccer.")
    assert "left out 1 rows with no gold label" in task.description


def test_qnli_and_rte_label_words(tmp_path):
    qnli, rte = tmp_path / "QNLI", tmp_path / "RTE"
    write_tsv(qnli / "train.tsv", [["index", "question", "sentence", "label"],
                                   ["0", "When did the third Digimon series begin?",
                                    "Unlike the two seasons before it, it was darker.", "not_entailment"],
                                   ["1", "Which missile batteries often have individual launchers?",
                                    "When MANPADS is operated by specialists, batteries may have launchers.",
                                    "entailment"]])
    write_tsv(qnli / "dev.tsv", [["index", "question", "sentence", "label"], ["0", "What?", "This.", "entailment"]])
    write_tsv(rte / "train.tsv", [["index", "sentence1", "sentence2", "label"],
                                  ["0", "No Weapons of Mass Destruction Found in Iraq Yet.",
                                   "Weapons of Mass Destruction Found in Iraq.", "not_entailment"]])
    write_tsv(rte / "dev.tsv", [["index", "sentence1", "sentence2", "label"],
                                ["0", "Dana Reeve died.", "Christopher Reeve had an accident.", "not_entailment"]])
    task = load_task("qnli", tmp_path)  # the GLUE root folder works too: its QNLI/ subfolder is used
    assert task.labels == ("entailment", "not_entailment") and [e.label for e in task.train] == [1, 0]
    task = load_task("rte", rte)
    assert task.train[0].texts[1] == "Weapons of Mass Destruction Found in Iraq." and task.train[0].label == 1


def test_mrpc_quality_column_and_f1(tmp_path):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(tmp_path / "train.tsv", [header,
                                       ["1", "702876", "702977", 'Amrozi accused his brother , whom he called " the '
                                        'witness " , of deliberately distorting his evidence .',
                                        "Referring to him as only \" the witness \" , Amrozi accused his brother ."],
                                       ["0", "2108705", "2108831", "Yucaipa owned Dominick 's before selling .",
                                        "Yucaipa bought Dominick 's in 1995 ."]], bom=True)
    write_tsv(tmp_path / "dev.tsv", [header, ["1", "1", "2", "He said so .", "So he said ."]])
    task = load_task("mrpc", tmp_path)
    assert task.shape == "similarity" and task.metrics == ("f1", "accuracy")
    assert [e.label for e in task.train] == [1, 0]
    assert task.train[0].texts[0].startswith("Amrozi accused his brother")


def test_qqp_split_rows_and_empty_questions_are_left_out_and_reported(tmp_path):
    header = ["id", "qid1", "qid2", "question1", "question2", "is_duplicate"]
    write_tsv(tmp_path / "train.tsv", [header,
                                       ["133273", "213221", "213222", "How is the life of a math student?",
                                        "Which level of prepration is enough?", "0"],
                                       ["201841", "303951", "174364", "How do I read and find my YouTube comments?"],
                                       ["", "Was Muhammad a real historical figure?", "0"],
                                       ["3", "7", "8", "Why are so many Quora users posting questions?",
                                        "Why do people ask Quora questions?", "1"],
                                       ["105780", "174363", "174364", "How can I develop android app?", "", "0"]])
    write_tsv(tmp_path / "dev.tsv", [header, ["1", "1", "2", "Is it?", "Is it not?", "0"]])
    with pytest.warns(UserWarning, match="left out 3 rows"):
        task = load_task("qqp", tmp_path)
    assert [e.label for e in task.train] == [0, 1]
    assert "lines 3, 4, 6" in task.description


def test_stsb_scores_are_float_labels(tmp_path):
    write_tsv(tmp_path / "train.tsv", [STSB_HEADER, sts_row(0, "A plane is taking off.",
                                                            "An air plane is taking off.", "5.000"),
                                       sts_row(1, "A man is playing a flute.", "A man is eating.", "0.6"),
                                       sts_row(2, "A cat sits.", "Stocks fell.", "0.000")])  # the range's ends
    write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, sts_row(0, "A man with a hard hat.", "A man wearing a hat.",
                                                          "3.8")])
    task = load_task("stsb", tmp_path)
    assert task.labels is None and task.is_regression and task.metrics == ("pearson", "spearman")
    assert [e.label for e in task.train] == [5.0, 0.6, 0.0] and isinstance(task.dev[0].label, float)


def test_every_glue_task_is_covered_here():
    assert set(FORMATS) == {"sst2", "cola", "mnli", "snli", "qnli", "rte", "mrpc", "qqp", "stsb"}


# ---- bad input: each error names the file and the line ----

def sst2_folder(tmp_path, train_rows, header=("sentence", "label")):
    write_tsv(tmp_path / "train.tsv", [list(header)] + train_rows)
    write_tsv(tmp_path / "dev.tsv", [["sentence", "label"], ["fine .", "1"]])
    return tmp_path


def test_label_outside_the_label_set(tmp_path):
    folder = sst2_folder(tmp_path, [["good .", "1"], ["bad .", "2"]])
    with pytest.raises(ValueError, match=r"train\.tsv:3: unknown label '2'"):
        load_task("sst2", folder)


def test_empty_text(tmp_path):
    folder = sst2_folder(tmp_path, [["good .", "1"], ["  ", "0"]])
    with pytest.raises(ValueError, match=r"empty.*train\.tsv:3"):
        load_task("sst2", folder)


def test_missing_column(tmp_path):
    write_tsv(tmp_path / "train.tsv", [["index", "sentence1", "label"], ["0", "a", "entailment"]])
    write_tsv(tmp_path / "dev.tsv", [["index", "sentence1", "label"], ["0", "a", "entailment"]])
    with pytest.raises(ValueError, match=r"train\.tsv:1: missing column 'sentence2'"):
        load_task("rte", tmp_path)


def test_wrong_number_of_fields(tmp_path):
    header = ["Quality", "#1 ID", "#2 ID", "#1 String", "#2 String"]
    write_tsv(tmp_path / "train.tsv", [header, ["1", "1", "2", "a .", "b ."], ["0", "3", "4", "c ."]])
    write_tsv(tmp_path / "dev.tsv", [header, ["1", "1", "2", "a .", "b ."]])
    with pytest.raises(ValueError, match=r"train\.tsv:3: has 4 tab-separated fields, expected 5"):
        load_task("mrpc", tmp_path)


def test_test_files_without_labels_are_refused(tmp_path):
    folder = sst2_folder(tmp_path, [["0", "uneasy mishmash of styles and genres ."]], header=("index", "sentence"))
    with pytest.raises(ValueError, match="GLUE test file"):
        load_task("sst2", folder)
    write_tsv(tmp_path / "train.tsv", [["index", "sentence"], ["0", "Bill whistled past the house."]])
    with pytest.raises(ValueError, match="GLUE test file"):
        load_task("cola", tmp_path)


def test_bad_scores(tmp_path):
    write_tsv(tmp_path / "dev.tsv", [STSB_HEADER, sts_row(0, "a", "b", "1.0")])
    write_tsv(tmp_path / "train.tsv", [STSB_HEADER, sts_row(0, "a", "b", "high")])
    with pytest.raises(ValueError, match=r"train\.tsv:2: score 'high' is not a number"):
        load_task("stsb", tmp_path)
    write_tsv(tmp_path / "train.tsv", [STSB_HEADER, sts_row(0, "a", "b", "7.5")])
    with pytest.raises(ValueError, match="outside the STS-B range"):
        load_task("stsb", tmp_path)


def test_undecodable_bytes_name_the_line(tmp_path):
    sst2_folder(tmp_path, [["good .", "1"]])
    (tmp_path / "train.tsv").write_bytes(b"sentence\tlabel\ngood .\t1\ncaf\xe9 latte .\t0\n")
    with pytest.raises(ValueError, match=r"train\.tsv:3: is not valid UTF-8"):
        load_task("sst2", tmp_path)


def test_missing_folder_or_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="train.tsv and dev_matched.tsv"):
        load_task("mnli", tmp_path)
    with pytest.raises(ValueError, match="needs data"):
        load_task("sst2")

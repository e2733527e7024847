"""GLUE task folders (Wang et al. 2018, https://gluebenchmark.com), as download_glue_data.py writes them.

Each task is a folder with train.tsv and a dev file (dev.tsv; MNLI's is dev_matched.tsv). The files
are tab-split with no quoting: quote characters belong to the sentences. The columns, as the
files have them:

    SST-2   sentence, label (0/1)                                     header
    CoLA    source, label (0/1), original mark, sentence              no header
    MNLI    index, promptID, pairID, genre, 4 parses, sentence1, sentence2, label1[..label5], gold_label
    SNLI    index, captionID, pairID, 4 parses, sentence1, sentence2, label1[..label5], gold_label
    QNLI    index, question, sentence, label (entailment/not_entailment)
    RTE     index, sentence1, sentence2, label (entailment/not_entailment)
    MRPC    Quality, #1 ID, #2 ID, #1 String, #2 String               Quality is the label (0/1)
    QQP     id, qid1, qid2, question1, question2, is_duplicate
    STS-B   index, genre, filename, year, old_index, source1, source2, sentence1, sentence2, score (0-5)

Known quirks, handled on purpose and reported in the TaskData description:
- MNLI and SNLI: dev rows carry five annotator labels, train rows one, and SNLI's train.tsv header
  lists 11 columns while some rows have 15; the gold label is always the last field.
- SNLI: pairs whose annotators did not agree have gold label "-": left out (as is standard).
- QQP: a few questions in train.tsv contain a newline, which splits their row into two short
  rows, and the Quora release has a few empty questions; rows without exactly 6 fields or with an
  empty question are left out and counted. (Anywhere else both are errors.)
- Test files have no label column (GLUE keeps test labels private): reading one is an error that
  says so.
"""
import warnings
from dataclasses import dataclass
from pathlib import Path

from minigpt.tasks.example import Example
from minigpt.tasks.files import fail, read_tsv
from minigpt.tasks.taskdata import TaskData, label_index


@dataclass(frozen=True)
class GlueFormat:
    folder: str  # the task's folder name in the GLUE download
    shape: str
    texts: tuple  # header names of the text columns (column indices for a file without a header)
    label: object  # header name of the label column (an index without a header)
    values: tuple  # the label strings in the file, in class-index order; () for a regression score
    labels: object  # the class names in index order; None for regression
    metrics: tuple
    dev_file: str = "dev.tsv"
    header: bool = True
    gold_label_last: bool = False  # the label is the row's last field, whatever the header says
    skip_values: tuple = ()  # label values that mean "no label": such rows are left out
    skip_broken: bool = False  # rows with the wrong number of fields or an empty text are left out (QQP)


FORMATS = {
    "sst2": GlueFormat("SST-2", "classification", ("sentence",), "label", ("0", "1"), ("negative", "positive"),
                       ("accuracy",)),
    "cola": GlueFormat("CoLA", "classification", (3,), 1, ("0", "1"), ("unacceptable", "acceptable"),
                       ("matthews", "accuracy"), header=False),
    "mnli": GlueFormat("MNLI", "entailment", ("sentence1", "sentence2"), "gold_label",
                       ("entailment", "neutral", "contradiction"), ("entailment", "neutral", "contradiction"),
                       ("accuracy",), dev_file="dev_matched.tsv", gold_label_last=True, skip_values=("-",)),
    "snli": GlueFormat("SNLI", "entailment", ("sentence1", "sentence2"), "gold_label",
                       ("entailment", "neutral", "contradiction"), ("entailment", "neutral", "contradiction"),
                       ("accuracy",), gold_label_last=True, skip_values=("-",)),
    "qnli": GlueFormat("QNLI", "entailment", ("question", "sentence"), "label", ("entailment", "not_entailment"),
                       ("entailment", "not_entailment"), ("accuracy",)),
    "rte": GlueFormat("RTE", "entailment", ("sentence1", "sentence2"), "label", ("entailment", "not_entailment"),
                      ("entailment", "not_entailment"), ("accuracy",)),
    "mrpc": GlueFormat("MRPC", "similarity", ("#1 String", "#2 String"), "Quality", ("0", "1"),
                       ("not_equivalent", "equivalent"), ("f1", "accuracy")),
    "qqp": GlueFormat("QQP", "similarity", ("question1", "question2"), "is_duplicate", ("0", "1"),
                      ("not_duplicate", "duplicate"), ("f1", "accuracy"), skip_broken=True),
    "stsb": GlueFormat("STS-B", "similarity", ("sentence1", "sentence2"), "score", (), None,
                       ("pearson", "spearman")),
}
COLA_FIELDS = 4
STSB_RANGE = (0.0, 5.0)


def load_glue(name, data):
    """TaskData for the GLUE task `name` from the folder `data` (the task's folder, or the GLUE root)."""
    fmt = FORMATS[name]
    folder = task_folder(name, fmt, data)
    train, train_notes = read_glue_file(name, fmt, folder / "train.tsv")
    dev, dev_notes = read_glue_file(name, fmt, folder / fmt.dev_file)
    notes = train_notes + dev_notes
    for note in notes:
        warnings.warn(note, stacklevel=2)
    description = (f"GLUE {fmt.folder} from {folder}: {len(train)} train, {len(dev)} dev examples"
                   + "".join(f"; {note}" for note in notes))
    return TaskData(name, fmt.shape, fmt.labels, fmt.metrics, train, dev, description)


def task_folder(name, fmt, data):
    if data is None:
        raise ValueError(f"task {name} needs data: the GLUE {fmt.folder} folder (with train.tsv and {fmt.dev_file})")
    data = Path(data)
    for folder in (data, data / fmt.folder):
        if (folder / "train.tsv").is_file() and (folder / fmt.dev_file).is_file():
            return folder
    raise FileNotFoundError(f"{data} is not a GLUE {fmt.folder} folder: it needs train.tsv and {fmt.dev_file} "
                            f"(or a {fmt.folder}/ subfolder holding them)")


def read_glue_file(name, fmt, path):
    """([Example], [note]) for one GLUE file; a note says what a known quirk left out."""
    rows = read_tsv(path)
    if not rows:
        raise fail(path, "is empty")
    text_at, label_at, n_fields, rows = column_positions(fmt, path, rows)
    examples, skipped_broken, skipped_unlabelled = [], [], []
    for number, fields in rows:
        source = f"{path}:{number}"
        if fmt.gold_label_last:
            if len(fields) < max(text_at) + 2:
                raise fail(source, f"has {len(fields)} tab-separated fields, expected at least {max(text_at) + 2}")
        elif len(fields) != n_fields:
            if fmt.skip_broken:
                skipped_broken.append(number)
                continue
            raise fail(source, f"has {len(fields)} tab-separated fields, expected {n_fields}")
        value = fields[label_at].strip()
        if value in fmt.skip_values:
            skipped_unlabelled.append(number)
            continue
        texts = tuple(fields[i].strip() for i in text_at)
        if fmt.skip_broken and not all(texts):
            skipped_broken.append(number)
            continue
        examples.append(Example(fmt.shape, texts, parse_label(fmt, value, source), source))
    notes = []
    if skipped_broken:
        lines = ", ".join(map(str, skipped_broken[:5])) + (", ..." if len(skipped_broken) > 5 else "")
        notes.append(f"{path}: left out {len(skipped_broken)} rows without {n_fields} fields or with an empty "
                     f"text (lines {lines})")
    if skipped_unlabelled:
        notes.append(f"{path}: left out {len(skipped_unlabelled)} rows with no gold label "
                     f"({'/'.join(repr(v) for v in fmt.skip_values)})")
    return examples, notes


def column_positions(fmt, path, rows):
    """(text indices, label index, fields per row, data rows) from the header, or fixed for CoLA."""
    if not fmt.header:
        number, first = rows[0]
        if [f.strip().lower() for f in first] == ["index", "sentence"]:
            raise test_file_error(path)
        return fmt.texts, fmt.label, COLA_FIELDS, rows
    number, header = rows[0]
    header = [h.strip() for h in header]
    missing = [c for c in fmt.texts if c not in header]
    if missing:
        raise fail(f"{path}:{number}", f"missing column {missing[0]!r} for GLUE {fmt.folder}; "
                                       f"the header has {header}")
    if fmt.label not in header:
        if "index" in header or "id" in header:
            raise test_file_error(path)
        raise fail(f"{path}:{number}", f"missing label column {fmt.label!r}; the header has {header}")
    label_at = -1 if fmt.gold_label_last else header.index(fmt.label)
    return tuple(header.index(c) for c in fmt.texts), label_at, len(header), rows[1:]


def test_file_error(path):
    return fail(path, "has no label column: it looks like a GLUE test file (GLUE keeps test labels private); "
                      "fine-tune on train.tsv and evaluate on the dev file")


def parse_label(fmt, value, source):
    if fmt.labels is not None:
        return label_index(value, fmt.values, source)
    try:
        score = float(value)
    except ValueError:
        raise fail(source, f"score {value!r} is not a number") from None
    if not STSB_RANGE[0] <= score <= STSB_RANGE[1]:
        raise fail(source, f"score {score} is outside the STS-B range {STSB_RANGE}")
    return score

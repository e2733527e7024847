"""Prompt templates: how an example becomes a prompt, and its answers become candidate completions.

A template has
    prompt       text with the example's fields in braces, e.g. "Review: {text}\\nSentiment:"
    answer       how an answer follows the prompt, with {answer}; default " {answer}" (a space, then it)
    verbalizer   the word for each class (Schick and Schuetze 2021 named it): a list in label order,
                 or {label name: word}; None uses the task's label names. Multiple-choice tasks have
                 none: their answers are the choices. A regression task (STS-B) gives number words
                 ("0" .. "5"); its prediction is the expected value under the candidates' probabilities.
                 Completion tasks have none either: the answer is the text the model should write.
    separator    between few-shot demonstrations; default a blank line
The fields of each shape are FIELDS below (the texts of minigpt.tasks.Example, in order). Literal
braces are written {{ and }}, as in str.format.

DEFAULTS holds one template per task name. They follow the prompts of GPT-3's appendix G where a
task has one there (RTE, ANLI for MNLI/SNLI, Story Cloze, RACE), GPT-2's "TL;DR:"-style plain cues
elsewhere. GPT-1 (sec. 5, figure 2 right) scored SST-2 zero-shot with the word "very" appended and
the label words restricted to "positive" and "negative": pass --template "{text} very" to get it.
The prompts only: GPT-3 also scored RACE (and ARC, OpenBookQA) by P(answer | context) / P(answer |
"Answer:"), an unconditional normalisation that minigpt does not offer (see scoring.py for its three rules).
"""
import string
from dataclasses import dataclass, field, replace

from minigpt.tasks.example import a_shape

FIELDS = {"classification": ("text",), "entailment": ("premise", "hypothesis"),
          "similarity": ("text_a", "text_b"), "multiple-choice": ("context",), "completion": ("context",)}
FILE_KEYS = ("prompt", "answer", "verbalizer", "separator")


@dataclass(frozen=True)
class Template:
    prompt: str
    answer: str = " {answer}"
    verbalizer: object = None  # tuple of words in label order, {label name: word}, or None
    separator: str = "\n\n"
    where: str = field(default="", compare=False)  # where it came from, for error messages

    def check(self, shape):
        """Raise ValueError unless this template fits examples of `shape`; returns self."""
        if shape not in FIELDS:
            raise ValueError(f"unknown task shape {shape!r}; expected one of {list(FIELDS)}")
        wanted = FIELDS[shape]
        used = field_names(self.prompt, f"the prompt template{self.where}")
        unknown = [name for name in used if name not in wanted]
        if unknown:
            raise ValueError(f"the prompt template{self.where} names {{{unknown[0]}}}, which {a_shape(shape)} example "
                             f"does not have; its fields are {', '.join('{' + f + '}' for f in wanted)}")
        missing = [name for name in wanted if name not in used]
        if missing:
            raise ValueError(f"the prompt template{self.where} leaves out {{{missing[0]}}}: the model would never "
                             f"see that part of {a_shape(shape)} example (fields: "
                             f"{', '.join('{' + f + '}' for f in wanted)})")
        if field_names(self.answer, f"the answer template{self.where}") != ["answer"]:
            raise ValueError(f"the answer template{self.where} must hold {{answer}} exactly once, got {self.answer!r}")
        if shape == "multiple-choice" and self.verbalizer is not None:
            raise ValueError(f"a multiple-choice task has no verbalizer (its answers are the choices){self.where}")
        if shape == "completion" and self.verbalizer is not None:
            raise ValueError(f"a completion task has no verbalizer (its answer is the text that follows){self.where}")
        return self

    def fill(self, example):
        """The prompt text of an example (its fields put into the prompt template)."""
        return self.prompt.format_map(dict(zip(FIELDS[example.shape], example.texts)))

    def answer_text(self, answer):
        """The completion text of one answer word or choice."""
        return self.answer.format_map({"answer": answer})


def field_names(text, what):
    """The names in braces in a str.format template, in order, each once; errors for other brace uses."""
    names = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as e:  # a lone { or }
        raise ValueError(f"{what} {text!r} is not a valid template ({e}); write literal braces as {{{{ and }}}}") \
            from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name == "" or name.isdigit():
            raise ValueError(f"{what} {text!r} has a positional {{}}; name the field, e.g. {{text}}")
        if spec or conversion or not name.isidentifier():
            raise ValueError(f"{what} {text!r}: write a field as a plain {{name}}, got {{{name}...}}")
        if name not in names:
            names.append(name)
    return names


def label_words(template, labels, regression=False):
    """The verbalizer's word for each class, in label order (labels: the task's class names, or None).

    For a regression task: the number words, which must parse as numbers.
    """
    words = number_words(template) if regression else class_words(template, labels)
    for i, word in enumerate(words):
        if word in words[:i]:  # two classes with one word score alike, and argmax always picks the first
            first = words.index(word)
            named = f" (classes {labels[first]!r} and {labels[i]!r})" if labels and not regression else ""
            raise ValueError(f"the verbalizer{template.where} gives the word {word!r} twice{named}; "
                             "each class needs a word of its own")
    return words


def number_words(template):
    words = template.verbalizer
    if not words or isinstance(words, dict):
        raise ValueError(f"a regression task needs a verbalizer of number words, e.g. 0,1,2,3,4,5{template.where}")
    try:
        [float(w) for w in words]
    except ValueError:
        raise ValueError(f"the verbalizer of a regression task must be numbers, got {list(words)}"
                         f"{template.where}") from None
    return tuple(words)


def class_words(template, labels):
    words = template.verbalizer
    if labels is None:
        raise ValueError("this task has no class names, so it cannot be scored through a verbalizer")
    if words is None:
        return tuple(label.replace("_", " ") for label in labels)
    if isinstance(words, dict):
        absent = [label for label in labels if label not in words]
        extra = [name for name in words if name not in labels]
        if absent or extra:
            raise ValueError(f"the verbalizer{template.where} maps {sorted(words)}, but the task's classes are "
                             f"{list(labels)}")
        return tuple(words[label] for label in labels)
    if len(words) != len(labels):
        raise ValueError(f"the verbalizer{template.where} has {len(words)} words ({', '.join(words)}) for "
                         f"{len(labels)} classes ({', '.join(labels)})")
    return tuple(words)


def parse_verbalizer(text):
    """The --verbalizer option: "no,yes" (words in label order) or "entailment=yes,not_entailment=no"."""
    items = [item for item in text.split(",")]
    if any(not item for item in items):
        raise ValueError(f"--verbalizer {text!r} has an empty word; separate the words with single commas")
    if all("=" in item for item in items):
        return dict(item.split("=", 1) for item in items)
    if any("=" in item for item in items):
        raise ValueError(f"--verbalizer {text!r} mixes label=word pairs and plain words; use one form")
    return tuple(items)


def load_template_file(path):
    """A Template from a TOML file with the keys prompt (required), answer, verbalizer, separator."""
    try:
        import tomllib
    except ImportError:  # Python < 3.11
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            settings = tomllib.load(f)
    except FileNotFoundError:
        raise FileNotFoundError(f"template file {path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"template file {path} is not valid TOML: {e}") from None
    unknown = sorted(set(settings) - set(FILE_KEYS))
    if unknown:
        raise ValueError(f"template file {path}: unknown keys {unknown}; expected {', '.join(FILE_KEYS)}")
    if "prompt" not in settings:
        raise ValueError(f"template file {path} needs a prompt = \"...\" line")
    check_file_types(settings, path)
    verbalizer = settings.get("verbalizer")
    if isinstance(verbalizer, list):
        verbalizer = tuple(verbalizer)
    return Template(settings["prompt"], settings.get("answer", " {answer}"), verbalizer,
                    settings.get("separator", "\n\n"), where=f" (from {path})")


def check_file_types(settings, path):
    """Raise ValueError naming the file and key for a value that is not text: TOML also has numbers, booleans,
    arrays and tables, and a 5 where a string belongs would otherwise fail later with a TypeError."""
    for key in ("prompt", "answer", "separator"):
        if key in settings and not isinstance(settings[key], str):
            raise ValueError(f"template file {path}: {key} must be a string, got {settings[key]!r}")
    if "verbalizer" in settings:
        verbalizer = settings["verbalizer"]
        words = verbalizer.values() if isinstance(verbalizer, dict) else verbalizer
        if not isinstance(verbalizer, (list, dict)) or not all(isinstance(word, str) for word in words):
            raise ValueError(f"template file {path}: verbalizer must be a list of words, e.g. [\"no\", \"yes\"], "
                             f"or a table of label = \"word\", got {verbalizer!r}")


DEFAULTS = {
    # classification
    "sst2": Template("Review: {text}\nSentiment:", verbalizer={"negative": "negative", "positive": "positive"}),
    "movie-reviews": Template("Review: {text}\nSentiment:",
                              verbalizer={"negative": "negative", "positive": "positive"}),
    "cola": Template("{text}\nQuestion: Is this sentence grammatical?\nAnswer:",
                     verbalizer={"unacceptable": "no", "acceptable": "yes"}),
    "classification": Template("{text}\nLabel:"),
    # entailment; GPT-3 (appendix G) asks "True, False or Neither?"
    "mnli": Template("{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
                     verbalizer={"entailment": "True", "neutral": "Neither", "contradiction": "False"}),
    "snli": Template("{premise}\nQuestion: {hypothesis} True, False or Neither?\nAnswer:",
                     verbalizer={"entailment": "True", "neutral": "Neither", "contradiction": "False"}),
    "rte": Template("{premise}\nQuestion: {hypothesis} True or False?\nAnswer:",
                    verbalizer={"entailment": "True", "not_entailment": "False"}),
    "qnli": Template("Question: {premise}\nSentence: {hypothesis}\nDoes the sentence answer the question?\nAnswer:",
                     verbalizer={"entailment": "yes", "not_entailment": "no"}),
    "entailment": Template("{premise}\nQuestion: {hypothesis}\nAnswer:"),
    # similarity
    "mrpc": Template("Sentence 1: {text_a}\nSentence 2: {text_b}\nQuestion: Do both sentences mean the same thing?"
                     "\nAnswer:", verbalizer={"not_equivalent": "no", "equivalent": "yes"}),
    "qqp": Template("Question 1: {text_a}\nQuestion 2: {text_b}\nQuestion: Do both questions ask the same thing?"
                    "\nAnswer:", verbalizer={"not_duplicate": "no", "duplicate": "yes"}),
    "stsb": Template("Sentence 1: {text_a}\nSentence 2: {text_b}\nQuestion: How similar are they, from 0 to 5?"
                     "\nAnswer:", verbalizer=("0", "1", "2", "3", "4", "5")),
    "similarity": Template("{text_a}\n{text_b}\nAnswer:"),
    # multiple choice: the context (RACE: the article and its question) continued by each choice
    "race": Template("{context}\nAnswer:"),
    "storycloze": Template("{context}"),
    "multiple-choice": Template("{context}\nAnswer:"),
    # completion: the context, continued by the answer after a space (the context ends before it)
    "completion": Template("{context}"),
    # the built-in Shakespeare tasks (genre: the class names comedy, history, tragedy are the words)
    "shakespeare-genre": Template("{text}\n\nThis passage is from a"),
    "shakespeare-follows": Template("{premise}\n{hypothesis}\n\nDoes the second line follow the first? Answer:",
                                    verbalizer={"does not follow": "no", "follows": "yes"}),
    "shakespeare-same-play": Template("{text_a}\n\n{text_b}\n\nAre both passages from the same play? Answer:",
                                      verbalizer={"different": "no", "same": "yes"}),
    "shakespeare-next-line": Template("{context}", answer="\n{answer}"),
    "shakespeare-last-word": Template("{context}"),
}


def default_template(task_name):
    """The default Template of a task name (see DEFAULTS); a ValueError listing the names otherwise."""
    if task_name not in DEFAULTS:
        raise ValueError(f"no prompt template for task {task_name!r}; known tasks: {', '.join(sorted(DEFAULTS))} "
                         "(give one with --template)")
    return replace(DEFAULTS[task_name], where=f" (the default for {task_name})")


def resolve_template(task_name, prompt=None, answer=None, verbalizer=None, separator=None, path=None):
    """The task's default template with any of its parts replaced (command-line options, or a file)."""
    if path:
        base = load_template_file(path)
    elif prompt is not None and task_name not in DEFAULTS:  # a task with no default, given a whole template
        base = Template(prompt)
    else:
        base = default_template(task_name)  # an unknown task without a template raises here
    changes = {k: v for k, v in (("prompt", prompt), ("answer", answer), ("separator", separator)) if v is not None}
    if verbalizer is not None:
        changes["verbalizer"] = parse_verbalizer(verbalizer) if isinstance(verbalizer, str) else verbalizer
    if changes:
        changes["where"] = " (from the command line)" if not path else f" (from {path} and the command line)"
    return replace(base, **changes)

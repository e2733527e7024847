"""One labelled example, whatever the task's shape.

GPT-1 fine-tunes on four shapes of input (Radford et al. 2018, figure 1). Every loader turns its
file format into Examples of one shape, and the input transformations (minigpt.finetune) turn
Examples into token sequences; neither needs to know about the other. A fifth shape, completion,
has an open answer instead of a choice: the text the model should write next (GPT-2's LAMBADA, the
last word of a passage; GPT-3's question answering). Only prompting evaluates it, by generation:
GPT-1's heads pick among classes or candidates, and have nothing to pick among here.

    shape              texts                                   label
    classification     (text,)                                 class index
    entailment         (premise, hypothesis)                   class index
    similarity         (text_a, text_b)                        class index, or a float for a graded
                                                               (regression) task such as STS-B
    multiple-choice    (context, choice_0, ..., choice_k-1)    index of the correct choice
    completion         (context,)                              the answer: the text that follows
"""
from dataclasses import dataclass

SHAPES = ("classification", "entailment", "similarity", "multiple-choice", "completion")
CHOICE_SHAPES = SHAPES[:4]  # GPT-1's four, which fine-tuning takes: the answer is one of a known set
N_TEXTS = {"classification": 1, "entailment": 2, "similarity": 2, "completion": 1}  # multiple-choice: 1 + >= 2 choices


def a_shape(shape):
    """The shape with its article, for messages: "an entailment", "a similarity"."""
    return f"{'an' if shape[0] in 'aeiou' else 'a'} {shape}"


@dataclass(frozen=True)
class Example:
    shape: str
    texts: tuple
    label: object  # int class / choice index, float for regression, str answer for completion
    source: str = ""  # "file:line" (or a built-in task's name and index), for error messages

    def __post_init__(self):
        where = f" ({self.source})" if self.source else ""
        if self.shape not in SHAPES:
            raise ValueError(f"unknown task shape {self.shape!r}{where}; expected one of {SHAPES}")
        if not isinstance(self.texts, tuple) or not all(isinstance(t, str) for t in self.texts):
            raise TypeError(f"Example.texts must be a tuple of str{where}")
        wanted = N_TEXTS.get(self.shape)
        if wanted is not None and len(self.texts) != wanted:
            raise ValueError(f"{a_shape(self.shape)} example needs {wanted} text(s), got {len(self.texts)}{where}")
        if self.shape == "multiple-choice":
            if len(self.texts) < 3:
                raise ValueError(f"a multiple-choice example needs a context and at least 2 choices{where}")
            if not (isinstance(self.label, int) and 0 <= self.label < len(self.texts) - 1):
                raise ValueError(f"answer index {self.label!r} is out of range for {len(self.texts) - 1} "
                                 f"choices{where}")
        if self.shape == "completion" and not (isinstance(self.label, str) and self.label.strip()):
            raise ValueError(f"the answer of a completion example must be a non-empty string, got {self.label!r}"
                             f"{where}")
        for i, text in enumerate(self.texts):
            if not text.strip():
                raise ValueError(f"text {i} of {a_shape(self.shape)} example is empty{where}")

    @property
    def choices(self):
        """The candidate answers of a multiple-choice example."""
        return self.texts[1:]

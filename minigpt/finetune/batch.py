"""A batch of encoded examples as padded arrays: the token ids, an explicit mask of the real tokens,
the position of each sequence's extract token, next-token targets for the auxiliary LM loss, and
which example (and which candidate) each sequence belongs to.

Sequences are padded on the right, to the longest in the batch. With causal attention a position
only sees itself and earlier positions, so padding after a sequence's extract token cannot change
the hidden state at the extract token or at any real token; the mask keeps the padding out of the
LM loss (target -1, cross_entropy's ignore index), and the head reads only the extract positions.
"""
from dataclasses import dataclass

import numpy as np

from minigpt.layers.cross_entropy import IGNORE_INDEX

PAD_ID = 0  # any valid id: padded positions are never read by the head and never scored by the LM loss


@dataclass(frozen=True)
class Batch:
    idx: np.ndarray  # (S, T) int64 token ids, S sequences padded to the longest, T
    mask: np.ndarray  # (S, T) bool, True on real tokens
    extract_pos: np.ndarray  # (S,) int64, the position of each sequence's extract token (its last real token)
    lm_targets: np.ndarray  # (S, T) int64, the next real token, or IGNORE_INDEX
    example_of: np.ndarray  # (S,) int64, the example each sequence belongs to, 0 .. N-1
    choice_of: np.ndarray  # (S,) int64, the sequence's index within its example (ordering or candidate)
    labels: np.ndarray  # (N,) int64 class or answer index, or float64 for regression
    n_examples: int

    @property
    def n_choices(self):
        """Sequences per example: (N,) int64 (the number of candidates, for multiple choice)."""
        return np.bincount(self.example_of, minlength=self.n_examples)


def collate(encoded, regression=False):
    """encoded: a non-empty list of EncodedExample -> Batch."""
    if not encoded:
        raise ValueError("collate: no examples to batch")
    sequences = [seq for example in encoded for seq in example.sequences]
    lengths = np.array([len(seq) for seq in sequences], dtype=np.int64)  # (S,)
    S, T = len(sequences), int(lengths.max())
    idx = np.full((S, T), PAD_ID, dtype=np.int64)
    for row, seq in enumerate(sequences):
        idx[row, :len(seq)] = seq
    mask = np.arange(T)[None, :] < lengths[:, None]  # (S, T)
    # position t predicts token t+1, counted only where t+1 is a real token: the first token ([s]) is
    # never predicted, and the extract token predicts nothing (padding follows it)
    lm_targets = np.full((S, T), IGNORE_INDEX, dtype=np.int64)
    lm_targets[:, :-1] = np.where(mask[:, 1:], idx[:, 1:], IGNORE_INDEX)
    example_of = np.repeat(np.arange(len(encoded)), [len(e.sequences) for e in encoded])
    choice_of = np.concatenate([np.arange(len(e.sequences)) for e in encoded])
    labels = np.array([e.label for e in encoded], dtype=np.float64 if regression else np.int64)
    return Batch(idx, mask, lengths - 1, lm_targets, example_of, choice_of, labels, len(encoded))

"""The task head (Radford et al. 2018, sec. 3.2): a linear layer on the final hidden state at the
extract token, and the three small steps around it, each a forward/backward function pair:

    gather        (S, T, C) states, extract positions (S,) -> (S, C): one state per sequence
    pair sum      (2N, C) -> (N, C): similarity adds the states of its two orderings
    choice grid   (S,) candidate scores -> (N, K): one row per example, one column per candidate,
                  -inf where an example has fewer than K candidates (its softmax weight is then 0)

Per shape, TaskHead runs
    classification, entailment    gather -> dropout -> linear (C -> classes)            logits (N, K)
    similarity                    gather -> pair sum -> dropout -> linear               logits (N, K), or (N,)
    multiple choice               gather -> dropout -> linear (C -> 1) -> choice grid   scores (N, K)
and a regression task (graded similarity, STS-B) has one output: a score (N,) instead of logits.
The softmax and the losses are in losses.py. Dropout before the head sits where GPT-1's released code
puts it; there each example's candidates share one mask, here every sequence draws its own.

Shapes: S sequences, N examples, T time, C n_embd, K classes or candidates.
"""
import numpy as np

from minigpt import kernels
from minigpt.layers import Dropout, Linear


def gather_forward(h, positions):
    """h: (S, T, C), positions: (S,) int -> z: (S, C), z[s] = h[s, positions[s]]; cache."""
    xp = kernels.array_module(h)
    rows = xp.arange(h.shape[0])
    positions = xp.asarray(positions)
    return h[rows, positions], (rows, positions, h.shape)


def gather_backward(dz, cache):
    """dz: (S, C) -> dh: (S, T, C), zero except at the gathered positions."""
    rows, positions, shape = cache
    dh = kernels.array_module(dz).zeros(shape, dtype=dz.dtype)
    dh[rows, positions] = dz  # each sequence has one extract position: no two rows collide
    return dh


def pair_sum_forward(z):
    """z: (2N, C), the two orderings of example i in rows 2i and 2i+1 -> (N, C), their sum."""
    if z.shape[0] % 2:
        raise ValueError(f"pair_sum: expected two sequences per example, got {z.shape[0]} sequences")
    return z[0::2] + z[1::2], None


def pair_sum_backward(dout, cache):
    """dout: (N, C) -> dz: (2N, C): a sum passes its gradient to both terms unchanged."""
    return kernels.array_module(dout).repeat(dout, 2, axis=0)


def choice_grid_forward(scores, example_of, choice_of, n_examples):
    """scores: (S,) one per candidate sequence -> grid: (N, K) with K the most candidates of any example,
    -inf where an example has no such candidate; cache."""
    xp = kernels.array_module(scores)
    example_of, choice_of = xp.asarray(example_of), xp.asarray(choice_of)
    grid = xp.full((n_examples, int(choice_of.max()) + 1), -np.inf, dtype=scores.dtype)
    grid[example_of, choice_of] = scores
    return grid, (example_of, choice_of)


def choice_grid_backward(dgrid, cache):
    """dgrid: (N, K) -> dscores: (S,), each candidate's entry (the -inf cells had no score to feed)."""
    example_of, choice_of = cache
    return dgrid[example_of, choice_of]


class TaskHead:
    """The linear head and the steps around it, for one task shape; params 'weight' (C, n_out) and, except
    for multiple choice, 'bias' (n_out,)."""

    def __init__(self, shape, n_out, n_embd, dropout, rng, dtype=np.float32, backend="numpy"):
        if shape == "multiple-choice" and n_out != 1:
            raise ValueError(f"a multiple-choice head scores each candidate with one number, not {n_out}")
        self.shape, self.n_out = shape, n_out
        self.drop = Dropout(dropout)
        # a bias added to every candidate's score cancels in the softmax over them: multiple choice has none
        has_bias = shape != "multiple-choice"
        self.linear = Linear(n_embd, n_out, rng, dtype, bias=has_bias, std=0.02, backend=backend)
        self.params, self.grads = self.linear.params, self.linear.grads
        self.cache = None

    def forward(self, h, batch, rng, train):
        """h: (S, T, C) final hidden states of batch.idx -> logits (N, K), candidate scores (N, K) or
        regression scores (N,)."""
        z, gather_cache = gather_forward(h, batch.extract_pos)  # (S, C)
        if self.shape == "similarity":
            z, _ = pair_sum_forward(z)  # (N, C)
        out = self.linear.forward(self.drop.forward(z, rng, train))  # (N or S, n_out)
        grid_cache = None
        if self.shape == "multiple-choice":
            out, grid_cache = choice_grid_forward(out[:, 0], batch.example_of, batch.choice_of, batch.n_examples)
        elif self.n_out == 1:
            out = out[:, 0]  # regression: one score per example
        self.cache = (gather_cache, grid_cache)
        return out

    def backward(self, dout):
        """dout: the gradient of forward's output -> dh: (S, T, C); adds into self.grads."""
        gather_cache, grid_cache = self.cache
        if self.shape == "multiple-choice":
            dout = choice_grid_backward(dout, grid_cache)[:, None]  # (S, 1)
        elif self.n_out == 1:
            dout = dout[:, None]  # (N, 1)
        xp = kernels.array_module(dout)
        dz = self.drop.backward(self.linear.backward(xp.ascontiguousarray(dout)))
        if self.shape == "similarity":
            dz = pair_sum_backward(dz, None)  # (2N, C)
        return gather_backward(dz, gather_cache)

"""Embedding lookup: row idx[b, t] of the table w. Used for tokens (wte) and positions (wpe)."""
import numpy as np


def embedding_forward(idx, w):
    """idx: int array (...), w: (V, C) -> out: (..., C), cache."""
    V = w.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        bad = idx[(idx < 0) | (idx >= V)].flat[0]
        raise ValueError(f"embedding: index {int(bad)} out of range for a table of {V} rows")
    # Only the indices are kept: the backward scatters into rows, it never needs w's values.
    return w[idx], (idx, w.shape)


def embedding_backward(dout, cache, dw=None):
    """dout: (..., C) -> dw: (V, C). A row used twice receives the sum of both gradients.

    With dw given, the gradient is added into it in place (the layer passes its grads: for
    GPT-2's 50257 x 768 table that saves a 150 MB temporary per step).
    """
    idx, shape = cache
    if dw is None:
        dw = np.zeros(shape, dtype=dout.dtype)
    np.add.at(dw, idx.reshape(-1), dout.reshape(-1, shape[1]))  # add.at accumulates repeated rows
    return dw


class Embedding:
    def __init__(self, num_embeddings, n_embd, rng, dtype=np.float32, std=0.02):
        self.params = {"weight": (rng.standard_normal((num_embeddings, n_embd)) * std).astype(dtype)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self.cache = None

    def forward(self, idx):
        out, self.cache = embedding_forward(idx, self.params["weight"])
        return out

    def backward(self, dout):
        embedding_backward(dout, self.cache, dw=self.grads["weight"])

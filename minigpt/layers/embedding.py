"""Embedding lookup: row idx[b, t] of the table w. Used for tokens (wte) and positions (wpe).

The lookup and the scatter-add of its gradient are in minigpt/kernels/embedding.py.
"""
import numpy as np

from minigpt import kernels


def embedding_forward(idx, w, backend="numpy"):
    """idx: int array (...), w: (V, C) -> out: (..., C), cache.

    The ids are checked where they are, then moved to where the table is. A batch of token ids arrives
    on the host, where the check costs nothing, and is copied to the GPU once (the backward reuses the
    copy). Ids already on the GPU are checked there, which waits for all the work queued on it.
    """
    V = w.shape[0]
    if idx.size and (idx.min() < 0 or idx.max() >= V):
        bad = idx[(idx < 0) | (idx >= V)].ravel()[0]
        raise ValueError(f"embedding: index {int(bad)} out of range for a table of {V} rows")
    # where the table is, as the int64 C-contiguous ids the CUDA kernels take: for host ids and a GPU table
    # this is the one copy to the GPU; ids already in that form are used as they are
    idx = kernels.array_module(w).asarray(idx, dtype=np.int64, order="C")
    # Only the indices are kept: the backward scatters into rows, it never needs w's values.
    return kernels.embedding_forward(idx, w, backend=backend, checked=True), (idx, w.shape, backend)


def embedding_backward(dout, cache, dw=None):
    """dout: (..., C) -> dw: (V, C). A row used twice receives the sum of both gradients.

    With dw given, the gradient is added into it in place (the layer passes its grads: for
    GPT-2's 50257 x 768 table that saves a 150 MB temporary per step).
    """
    idx, shape, backend = cache
    if dw is None:
        dw = np.zeros_like(dout, shape=shape)  # *_like: where dout lives
    dout = kernels.array_module(dout).ascontiguousarray(dout)
    kernels.embedding_backward(dw, dout, idx, backend=backend, checked=True)  # add.at: repeated rows accumulate
    return dw


class Embedding:
    def __init__(self, num_embeddings, n_embd, rng, dtype=np.float32, std=0.02, backend="numpy"):
        weight = (rng.standard_normal((num_embeddings, n_embd)) * std).astype(dtype)  # on the host, from rng
        self.params = {"weight": kernels.to_backend(weight, backend)}
        self.grads = {"weight": np.zeros_like(self.params["weight"])}
        self.backend = backend
        self.cache = None

    def forward(self, idx):
        out, self.cache = embedding_forward(idx, self.params["weight"], self.backend)
        return out

    def backward(self, dout):
        embedding_backward(dout, self.cache, dw=self.grads["weight"])

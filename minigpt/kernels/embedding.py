"""Embedding lookup and its gradient: rows of a table picked by integer ids (tokens for wte,
positions for wpe). The backward adds into the given gradient in place, summing the rows of
repeated ids.

The C++ extension has no embedding kernel: on the host, NumPy's fancy indexing is already one
row copy per id, so backend="cpu" runs the NumPy version. backend="cuda" has one (with atomicAdd
in the backward), so the table, the ids and the gradient never leave the GPU.
"""
from minigpt.kernels.backend import array_module, check_backend, core


def embedding_forward(idx, w, backend="numpy"):
    """idx: int (...), w: (V, C) -> out: (..., C), out[...] = w[idx[...]]."""
    if check_backend(backend) == "cuda":
        return core(backend).embedding_forward(idx, w)
    return w[idx]


def embedding_backward(dw, dout, idx, backend="numpy"):
    """dw: (V, C), updated in place: dw[idx[...]] += dout[...]. dout: idx.shape + (C,)."""
    if check_backend(backend) == "cuda":
        return core(backend).embedding_backward(dw, dout, idx)
    array_module(dw).add.at(dw, idx.reshape(-1), dout.reshape(-1, dw.shape[1]))  # add.at accumulates repeated rows

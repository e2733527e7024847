"""Embedding lookup and its gradient: rows of a table picked by integer ids (tokens for wte,
positions for wpe). The backward adds into the given gradient in place, summing the rows of
repeated ids.

The C++ extension has no embedding kernel: on the host, NumPy's fancy indexing is already one
row copy per id, so backend="cpu" runs the NumPy forward. Its backward groups the rows by id first
(sorted_row_sums), which is 5-6 times faster than np.add.at when a small vocabulary repeats each id
many times (a character model). backend="cuda" has its own kernels (with atomicAdd in the backward),
so the table, the ids and the gradient never leave the GPU. They check that every id is in [0, V)
before using it; that reads two numbers back from the GPU, which waits for all the work queued before
it, so checked=True (ids already checked on the host, as the layer does) skips it.
"""
import numpy as np

from minigpt.kernels.backend import array_module, check_backend, check_ids, check_rows, check_shape, core


def embedding_forward(idx, w, backend="numpy", checked=False):
    """idx: int (...), w: (V, C) -> out: (..., C), out[...] = w[idx[...]]."""
    if check_backend(backend) == "cuda":
        return core(backend).embedding_forward(idx, w, check_range=not checked)
    idx = array_module(w).asarray(idx)  # (a list of ids works too)
    check_ids("embedding_forward", idx)
    if not checked:
        check_rows("embedding_forward", idx, w.shape[0])
    return w[idx]


def embedding_backward(dw, dout, idx, backend="numpy", checked=False):
    """dw: (V, C), updated in place: dw[idx[...]] += dout[...]. dout: idx.shape + (C,)."""
    if check_backend(backend) == "cuda":
        return core(backend).embedding_backward(dw, dout, idx, check_range=not checked)
    check_ids("embedding_backward", idx)
    check_shape("embedding_backward", "dout", dout, tuple(idx.shape) + tuple(dw.shape[1:]))
    if not checked:
        check_rows("embedding_backward", idx, dw.shape[0])
    ids, rows = idx.reshape(-1), dout.reshape(-1, dw.shape[1])
    if backend == "cpu" and ids.size:
        unique_ids, sums = sorted_row_sums(ids, rows)
        dw[unique_ids] += sums  # each id once: plain fancy-index assignment is safe
        return
    array_module(dw).add.at(dw, ids, rows)  # add.at accumulates repeated rows (dw[ids] += rows would not)


def sorted_row_sums(ids, rows):
    """(unique ids, the sum of the rows of each): sort the rows by id, then add each run of equal ids."""
    order = np.argsort(ids, kind="stable")
    sorted_ids = ids[order]
    run_starts = np.flatnonzero(np.r_[True, sorted_ids[1:] != sorted_ids[:-1]])
    return sorted_ids[run_starts], np.add.reduceat(rows[order], run_starts, axis=0)

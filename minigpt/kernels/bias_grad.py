"""The gradient of a bias added to every row: db = dout.sum(axis=0), added into db when one is given.

Linear's bias is added to each of the N rows of x @ w, and GPT's position table wpe to each sequence of
the batch, so their gradients sum dout over those rows. The NumPy reference is dout.sum(axis=0). The
C++ kernel (csrc/bias_grad.cpp) sums the columns on two threads and adds straight into the layer's
gradient: NumPy's single-threaded sum was 4-5% of a training step at the default width. On the GPU
CuPy's sum over axis 0 was slow (18% of a "small" training step on an H100), so backend="cuda" has
its own column-sum kernel too.
"""
from minigpt.kernels.backend import check_backend, core


def bias_grad(dout, db=None, backend="numpy"):
    """dout: (N, C) -> db: (C,), db[c] = sum over rows of dout[:, c].

    With db given, the sums are added into it in place and db is returned (a layer passes its
    grads["bias"], often a view of the flat gradient buffer: no temporary, no second add).
    """
    if core(check_backend(backend)):
        return core(backend).bias_grad(dout, db)
    if dout.ndim != 2:
        raise ValueError(f"bias_grad: dout must be 2-D (N, C), got shape {dout.shape}")
    sums = dout.sum(axis=0)  # (C,)
    if db is None:
        return sums
    # as the C++ kernel checks: db += sums would broadcast into every row of a 2-D db
    if db.shape != sums.shape:
        raise ValueError(f"bias_grad: db must have shape (C,) = {tuple(sums.shape)} from dout {tuple(dout.shape)}, "
                         f"got {tuple(db.shape)}")
    db += sums
    return db

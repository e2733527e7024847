"""The position-wise feed-forward network of a block: c_fc (C -> 4C), GELU, c_proj (4C -> C), dropout."""
import numpy as np

from minigpt.layers.dropout import Dropout
from minigpt.layers.gelu import GELU
from minigpt.layers.linear import Linear


class MLP:
    def __init__(self, n_embd, dropout, rng, dtype=np.float32, proj_std=0.02, backend="numpy"):
        self.c_fc = Linear(n_embd, 4 * n_embd, rng, dtype, backend=backend)
        self.gelu = GELU(backend)
        self.c_proj = Linear(4 * n_embd, n_embd, rng, dtype, std=proj_std, backend=backend)
        self.dropout = Dropout(dropout)

    def sublayers(self):
        return {"c_fc": self.c_fc, "c_proj": self.c_proj}

    def forward(self, x, rng, train):
        h = self.gelu.forward(self.c_fc.forward(x))  # (B, T, 4C)
        return self.dropout.forward(self.c_proj.forward(h), rng, train)

    def backward(self, dout):
        dh = self.c_proj.backward(self.dropout.backward(dout))
        return self.c_fc.backward(self.gelu.backward(dh))

"""The GPT model: token + position embeddings, a stack of transformer blocks, a tied output head.

Two block layouts, chosen by GPTConfig.arch:
  gpt1 (Radford et al. 2018), post-LN:  h = ln_1(x + attn(x));     out = ln_2(h + mlp(h));   no final LN
  gpt2 (Radford et al. 2019), pre-LN:   h = x + attn(ln_1(x));     out = h + mlp(ln_2(h));   final ln_f
The output head multiplies by the token embedding's transpose (weight tying, as in both papers),
so wte receives two gradient contributions: from the lookup and from the head.

There is no autograd: forward keeps each layer's cache, and GPT.backward calls every layer's
backward in reverse order, in plain sight. Parameter names follow the GPT-2 checkpoint.

With backend="cuda" the parameters, gradients, activations and caches are CuPy arrays on the GPU,
made by the same code: a batch of token ids is copied in by forward, and the loss comes back as a
float; logits are returned where they were computed (cupy.asnumpy brings them to the host).

Shapes: B batch, T time (sequence), C n_embd, V vocab_size.
"""
import math
import numbers
import os
from dataclasses import replace

import numpy as np

from minigpt import kernels
from minigpt.config import GPTConfig
from minigpt.flat import FlatParameters
from minigpt.layers import (MLP, CausalSelfAttention, Dropout, Embedding, LayerNorm, cross_entropy_backward,
                            cross_entropy_forward)

DTYPES = {"float32": np.float32, "float64": np.float64}


class Block:
    """One transformer block: attention and MLP, each wrapped in a residual and a LayerNorm."""

    def __init__(self, cfg, rng, dtype, backend):
        # GPT-2 scales the init of the layers that write into the residual stream by 1/sqrt(2 L):
        # 2 L such writes add up, and this keeps the stream's variance from growing with depth.
        proj_std = 0.02 / math.sqrt(2 * cfg.n_layer)
        self.pre_ln = cfg.arch == "gpt2"
        self.ln_1 = LayerNorm(cfg.n_embd, dtype, backend)
        self.attn = CausalSelfAttention(cfg.n_embd, cfg.n_head, cfg.dropout, rng, dtype, proj_std, backend)
        self.ln_2 = LayerNorm(cfg.n_embd, dtype, backend)
        self.mlp = MLP(cfg.n_embd, cfg.dropout, rng, dtype, proj_std, backend)

    def sublayers(self):
        return {"ln_1": self.ln_1, "attn": self.attn, "ln_2": self.ln_2, "mlp": self.mlp}

    def forward(self, x, rng, train):
        if self.pre_ln:
            x = x + self.attn.forward(self.ln_1.forward(x), rng, train)
            return x + self.mlp.forward(self.ln_2.forward(x), rng, train)
        x = self.ln_1.forward(x + self.attn.forward(x, rng, train))
        return self.ln_2.forward(x + self.mlp.forward(x, rng, train))

    def forward_cached(self, x, kv_cache, pos):
        """Inference over new positions only, reading and extending the KV cache (no dropout)."""
        if self.pre_ln:
            x = x + self.attn.forward_cached(self.ln_1.forward(x), kv_cache, pos)
            return x + self.mlp.forward(self.ln_2.forward(x), None, False)
        x = self.ln_1.forward(x + self.attn.forward_cached(x, kv_cache, pos))
        return self.ln_2.forward(x + self.mlp.forward(x, None, False))

    def backward(self, dout):
        if self.pre_ln:
            # out = h + mlp(ln_2(h)): the gradient reaches h through the skip and through the MLP
            dh = dout + self.ln_2.backward(self.mlp.backward(dout))
            return dh + self.ln_1.backward(self.attn.backward(dh))
        dsum = self.ln_2.backward(dout)  # out = ln_2(h + mlp(h))
        dh = dsum + self.mlp.backward(dsum)
        dsum = self.ln_1.backward(dh)  # h = ln_1(x + attn(x))
        return dsum + self.attn.backward(dsum)


class GPT:
    """A GPT language model. forward(idx, targets) -> (logits, loss); backward() fills grads."""

    def __init__(self, cfg, seed=0, dtype="float32", backend="numpy"):
        if not isinstance(cfg, GPTConfig):
            raise TypeError(f"GPT needs a GPTConfig, got {type(cfg).__name__}")
        if dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {list(DTYPES)}, got {dtype!r}")
        kernels.check_backend(backend)
        if backend in ("cpu", "cuda") and dtype != "float32":
            raise ValueError(f"backend={backend!r} runs float32 kernels; use dtype='float32' (float64 is for "
                             "backend='numpy')")
        self.config, self.backend, self.dtype = cfg, backend, DTYPES[dtype]
        if backend != "cuda":  # the GPU's memory is CuPy's to report
            check_fits_in_memory(cfg, self.dtype, 2, "its weights and gradients")
        rng = np.random.default_rng(seed)
        self.wte = Embedding(cfg.vocab_size, cfg.n_embd, rng, self.dtype, backend=backend)
        self.wpe = Embedding(cfg.block_size, cfg.n_embd, rng, self.dtype, backend=backend)
        self.drop = Dropout(cfg.dropout)
        self.h = [Block(cfg, rng, self.dtype, backend) for _ in range(cfg.n_layer)]
        self.ln_f = LayerNorm(cfg.n_embd, self.dtype, backend) if cfg.arch == "gpt2" else None
        self.dropout_rng = np.random.default_rng([seed, 1])  # its own stream: dropout never shifts the init
        self.params, self.grads = collect_parameters(self.sublayers())
        # With the fast kernels (C++ or CUDA), all parameters live in one buffer and all gradients in another
        # (minigpt/flat.py): zeroing, clipping and AdamW become one or two calls instead of one per array. The
        # NumPy backend keeps one plain array per parameter, the easiest form to read and step through.
        self.flat = None
        if backend in ("cpu", "cuda"):
            self.flat = FlatParameters(self.sublayers())
            self.params, self.grads = collect_parameters(self.sublayers())  # now the views
        self.cache = None

    def sublayers(self):
        layers = {"wte": self.wte, "wpe": self.wpe}
        layers.update({f"h.{i}": block for i, block in enumerate(self.h)})
        if self.ln_f is not None:
            layers["ln_f"] = self.ln_f
        return layers

    def num_params(self):
        return sum(p.size for p in self.params.values())

    @classmethod
    def from_pretrained(cls, path, dtype="float32", backend="numpy", dropout=None):
        """A GPT from a local Hugging Face folder (config.json + model.safetensors) of model_type gpt2 or
        openai-gpt; nothing is downloaded. Its tokenizer: minigpt.pretrained.tokenizer_from_pretrained(path)."""
        from minigpt.pretrained import load_hf_model  # here, not at the top: minigpt.pretrained imports this file

        return load_hf_model(path, dtype=dtype, backend=backend, dropout=dropout)

    def save_pretrained(self, path, tokenizer=None):
        """Write a folder that transformers loads with GPT2LMHeadModel (arch gpt2) or OpenAIGPTLMHeadModel (gpt1)."""
        from minigpt.pretrained import save_pretrained

        return save_pretrained(self, path, tokenizer)

    def forward(self, idx, targets=None, train=True):
        """idx: int (B, T) token ids; targets: int (B, T) next tokens, or None.

        returns logits (B, T, V) and the mean cross-entropy loss (None without targets).
        train=False turns dropout off (evaluation and sampling).
        """
        x = self.forward_hidden(idx, train)  # (B, T, C)
        B, T, _ = x.shape
        # Tied head: logits = x @ wte^T, without a transposed copy of the (V, C) table.
        x2 = self._xp().ascontiguousarray(x).reshape(B * T, -1)  # (B*T, C)
        logits = kernels.matmul(x2, self.wte.params["weight"], trans_b=True, backend=self.backend)
        logits = logits.reshape(B, T, -1)  # (B, T, V)
        self.cache = {"x2": x2, "loss": None}
        if targets is None:
            return logits, None
        targets = self._check_tokens(targets, "targets", allow_ignore=True)  # on the host: the layer copies them in
        if targets.shape != (B, T):
            raise ValueError(f"targets shape {targets.shape} must equal idx shape {(B, T)}")
        loss, self.cache["loss"] = cross_entropy_forward(logits, targets, backend=self.backend)
        return logits, float(loss)  # the loss out: one number back to the host

    def backward(self):
        """Backpropagate the loss of the last forward, adding into self.grads (call zero_grad first)."""
        if self.cache is None or self.cache["loss"] is None:
            raise RuntimeError("backward() needs a forward(idx, targets) with targets first")
        dlogits = cross_entropy_backward(1.0, self.cache["loss"])  # (B, T, V)
        B, T, V = dlogits.shape
        dlogits = dlogits.reshape(B * T, V)
        x2 = self.cache["x2"]
        wte = self.wte.params["weight"]
        self.wte.grads["weight"] += kernels.matmul(dlogits, x2, trans_a=True, backend=self.backend)  # head's share
        dx = kernels.matmul(dlogits, wte, backend=self.backend).reshape(B, T, -1)  # (B, T, C)
        self.backward_hidden(dx)

    def forward_hidden(self, idx, train=True):
        """idx: int (B, T) token ids -> the final hidden state (B, T, C), before the output head:
        after ln_f for gpt2, the last block's output for gpt1. Fine-tuning heads read it."""
        idx = self._check_tokens(idx, "idx")  # the batch in: checked on the host; wte copies it to the GPU
        B, T = idx.shape
        x = self.wte.forward(idx) + self.wpe.forward(np.arange(T))  # (B, T, C)
        x = self.drop.forward(x, self.dropout_rng, train)
        for block in self.h:
            x = block.forward(x, self.dropout_rng, train)
        if self.ln_f is not None:
            x = self.ln_f.forward(x)
        return x

    def backward_hidden(self, dx):
        """dx: (B, T, C), the gradient of the last forward_hidden's output; adds into self.grads."""
        if self.ln_f is not None:
            dx = self.ln_f.backward(dx)
        for block in reversed(self.h):
            dx = block.backward(dx)
        dx = self.drop.backward(dx)
        B, T, C = dx.shape  # every sequence used the same positions 0..T-1: wpe is a bias over the batch
        dx = self._xp().ascontiguousarray(dx)
        self.wpe.backward(kernels.bias_grad(dx.reshape(B, T * C), backend=self.backend).reshape(T, C))
        self.wte.backward(dx)

    def add_token_embeddings(self, n, seed=0):
        """Grow the token embedding by n rows, ids V .. V+n-1, for new special tokens (GPT-1's start,
        delimiter and extract); returns the new ids.

        Existing rows keep their values bit for bit, so every pre-trained token means what it did; the
        new rows are drawn like GPT-2's init, N(0, 0.02), from their own seeded stream. The tied output
        head scores the new tokens too, and config.vocab_size grows by n. Make any optimizer after this:
        wte is a new, larger array, and so is its gradient.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"add_token_embeddings: n must be a positive integer, got {n!r}")
        V, C = self.wte.params["weight"].shape
        new_rows = (np.random.default_rng([seed, 3]).standard_normal((n, C)) * 0.02).astype(self.dtype)  # (n, C)
        xp = self._xp()
        weight = xp.concatenate([self.wte.params["weight"], kernels.to_backend(new_rows, self.backend)])  # (V+n, C)
        self.wte.params["weight"], self.wte.grads["weight"] = weight, xp.zeros_like(weight)
        self.config = replace(self.config, vocab_size=V + n)
        if self.flat is not None:  # on the GPU: a new pair of buffers that hold the grown table too
            self.flat = FlatParameters(self.sublayers())
        self.params, self.grads = collect_parameters(self.sublayers())
        self.cache = None
        return list(range(V, V + n))

    def new_kv_cache(self, batch_size):
        """Empty key/value buffers for every layer: [(k, v)], each (B, NH, block_size, hs)."""
        c = self.config
        shape = (batch_size, c.n_head, c.block_size, c.head_size)
        xp = self._xp()
        return [(xp.zeros(shape, self.dtype), xp.zeros(shape, self.dtype)) for _ in range(c.n_layer)]

    def forward_cached(self, idx, kv_cache, pos, last_only=False):
        """Logits (B, Tn, V) for tokens idx (B, Tn) at positions pos .. pos+Tn-1, given a KV cache
        that holds positions 0 .. pos-1. For generation: each step feeds only the newest token.

        last_only=True returns the logits of the last position only, (B, 1, V): all that sampling
        needs. The head (C x V multiply-adds per position, V = 50257 for GPT-2) then runs once per
        sequence instead of once per position of the prompt.
        """
        idx = self._check_tokens(idx, "idx")
        B, Tn = idx.shape
        if isinstance(pos, bool) or not isinstance(pos, numbers.Integral):
            raise TypeError(f"pos must be an integer position, got {pos!r}")
        if pos < 0 or pos + Tn > self.config.block_size:
            raise ValueError(f"positions {pos} .. {pos + Tn - 1} must lie in 0 .. block_size - 1 = "
                             f"{self.config.block_size - 1}")
        if len(kv_cache) != self.config.n_layer:  # zip below would skip the layers without a cache, silently
            raise ValueError(f"kv_cache holds {len(kv_cache)} layers' keys and values, the model has "
                             f"{self.config.n_layer} layers; make one with new_kv_cache")
        x = self.wte.forward(idx) + self.wpe.forward(np.arange(pos, pos + Tn))  # (B, Tn, C)
        for block, layer_cache in zip(self.h, kv_cache):
            x = block.forward_cached(x, layer_cache, pos)
        if last_only:
            x = self._xp().ascontiguousarray(x[:, -1:])  # (B, 1, C); LayerNorm is per row: it can follow the cut
        if self.ln_f is not None:
            x = self.ln_f.forward(x)
        x2 = self._xp().ascontiguousarray(x).reshape(x.shape[0] * x.shape[1], -1)  # (B*Tn or B, C)
        logits = kernels.matmul(x2, self.wte.params["weight"], trans_b=True, backend=self.backend)
        return logits.reshape(x.shape[0], x.shape[1], -1)

    def _xp(self):
        """The array module of the parameters: NumPy, or CuPy with backend="cuda"."""
        return kernels.array_module(self.wte.params["weight"])

    def zero_grad(self):
        if self.flat is not None and self.flat.holds(grads=self.grads):
            self.flat.grads.fill(0)  # one launch for every gradient
            return
        for g in self.grads.values():
            g.fill(0)

    def _check_tokens(self, ids, name, allow_ignore=False):
        ids = np.asarray(ids)
        if not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"{name} must be an integer array, got {ids.dtype}")
        if ids.ndim != 2:
            raise ValueError(f"{name} must have shape (B, T), got {ids.shape}")
        if ids.size == 0:  # caught here: an empty batch would otherwise fail deep inside a kernel
            raise ValueError(f"{name} has shape {ids.shape}: the batch (B) and the sequence (T) must be non-empty")
        if ids.shape[1] > self.config.block_size:
            raise ValueError(f"{name} has {ids.shape[1]} positions but block_size is {self.config.block_size}")
        low = -1 if allow_ignore else 0
        if ids.min() < low or ids.max() >= self.config.vocab_size:
            raise ValueError(f"{name} holds token ids outside [0, {self.config.vocab_size})")
        return ids


def physical_memory():
    """Bytes of RAM on this machine, or None where the system does not say."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits_in_memory(cfg, dtype, copies, what):
    """Raise before allocating a model whose `copies` arrays of every parameter exceed this machine's RAM: NumPy
    would fail with a traceback, or the system swap until it kills the process."""
    total = physical_memory()
    need = cfg.num_params() * np.dtype(dtype).itemsize * copies
    if total is not None and need > total:
        raise ValueError(f"a GPT of {cfg.num_params():,} parameters needs {need / 2**30:,.1f} GiB for {what} in "
                         f"{np.dtype(dtype).name}; this machine has {total / 2**30:,.1f} GiB of memory")


def collect_parameters(layers, prefix=""):
    """Walk the layer tree; return (params, grads) dicts keyed by dotted GPT-2 names.

    The dicts hold the layers' own arrays (no copies), so an optimizer that updates
    model.params in place updates the layers.
    """
    params, grads = {}, {}
    for name, layer in layers.items():
        path = f"{prefix}{name}"
        for key, value in getattr(layer, "params", {}).items():  # containers like Block own none
            params[f"{path}.{key}"] = value
            grads[f"{path}.{key}"] = layer.grads[key]
        if hasattr(layer, "sublayers"):
            sub_params, sub_grads = collect_parameters(layer.sublayers(), f"{path}.")
            params.update(sub_params)
            grads.update(sub_grads)
    return params, grads

"""What fine-tuning trains, and what it transfers.

    full      every parameter trains (the paper)
    frozen    the transformer is frozen: only the head and the new token rows of the embedding (start,
              delimiter, extract) train, as lectures often present it. The gradient still flows back
              through the whole stack, since the new tokens enter at the bottom; the optimizer and the
              gradient clipping then see only the trainable part, so every other weight, including the
              pre-trained rows of the (tied) embedding, stays bit for bit what it was.
    transfer_layers=n   the embeddings and the first n pre-trained blocks are kept, the rest drawn fresh
              (the paper's figure 2, left), then the whole model trains as in full mode.
"""
from dataclasses import dataclass

from minigpt.model import GPT

MODES = ("full", "frozen")


@dataclass
class ParameterSet:
    """The part of a model that an optimizer updates: {name: array} params and matching grads (views
    into the model's own arrays, so updating them updates the model). AdamW and clip_grad_norm take it
    in place of a model."""
    params: dict
    grads: dict
    backend: str


def trainable_parameters(model, mode):
    """model: TaskModel -> ParameterSet of what `mode` trains."""
    if mode not in MODES:
        raise ValueError(f"unknown fine-tuning mode {mode!r}; choose one of {', '.join(MODES)}")
    if mode == "full":
        return ParameterSet(dict(model.params), dict(model.grads), model.backend)
    first = model.first_new_id
    if first >= model.config.vocab_size:
        raise ValueError("frozen mode trains the new token rows, but the model has none; add the task tokens first")
    # rows first.. of a C-contiguous (V, C) array are themselves one C-contiguous block: views, no copies
    params = {"wte.new_rows": model.params["wte.weight"][first:]}
    grads = {"wte.new_rows": model.grads["wte.weight"][first:]}
    for name in model.head.params:
        params[f"head.{name}"], grads[f"head.{name}"] = model.params[f"head.{name}"], model.grads[f"head.{name}"]
    return ParameterSet(params, grads, model.backend)


def keep_first_layers(gpt, n_keep, seed=0):
    """Re-initialise, in place, every block from n_keep on (and GPT-2's final LayerNorm, which belongs to
    the top of the stack) with the weights a fresh GPT of the same shape and seed would have; the
    embeddings and blocks 0 .. n_keep-1 keep their pre-trained values."""
    n_layer = gpt.config.n_layer
    if isinstance(n_keep, bool) or not isinstance(n_keep, int) or not 0 <= n_keep <= n_layer:
        raise ValueError(f"transfer_layers must be an integer from 0 to the model's {n_layer} layers, got {n_keep!r}")
    if n_keep == n_layer:
        return
    fresh = GPT(gpt.config, seed=seed, dtype=gpt.dtype.__name__, backend=gpt.backend)
    drawn = {f"h.{i}." for i in range(n_keep, n_layer)} | {"ln_f."}
    for name, value in gpt.params.items():
        if any(name.startswith(prefix) for prefix in drawn):
            value[...] = fresh.params[name]

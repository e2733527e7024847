"""GPT-2 in Hugging Face's layout (model_type "gpt2", GPT2LMHeadModel): config.json and tensor names.

transformers' GPT-2 is minigpt's arch="gpt2" line for line: pre-LN blocks (x + attn(ln_1(x)),
x + mlp(ln_2(x))), a final ln_f, attention scaled by 1/sqrt(head size), the tanh GELU
("gelu_new"), LayerNorm eps 1e-5, and the output head tied to wte.

Tensor names are GPT-2's own in both, with "transformer." in front in files that GPT2LMHeadModel
writes (OpenAI's original conversion has no prefix). HF keeps GPT-2's Conv1D, whose weight is
(in, out), the layout of minigpt's Linear, so no weight is transposed. Old files also hold each
layer's causal mask as a buffer (h.N.attn.bias, h.N.attn.masked_bias): not weights, skipped.
"""
import re

from minigpt.pretrained.hf_config import (TANH_GELU, check_layer_norm_epsilon, check_tied, make_config,
                                          require_int, resolve_dropout)

MODEL_TYPE = "gpt2"
ARCH = "gpt2"
PREFIX = "transformer."
BUFFER = re.compile(r"^h\.\d+\.attn\.(bias|masked_bias)$")


def config_from_hf(hf, source, dropout=None):
    """GPTConfig from a gpt2 config.json dict; an error for anything minigpt would compute differently."""
    n_embd = require_int(hf, "n_embd", source)
    n_positions = require_int(hf, "n_positions", source)
    if hf.get("n_ctx", n_positions) != n_positions:
        raise ValueError(f"{source}: n_ctx ({hf['n_ctx']}) differs from n_positions ({n_positions}); "
                         "minigpt has one context length, the number of learned positions")
    if hf.get("n_inner") not in (None, 4 * n_embd):
        raise ValueError(f"{source}: n_inner is {hf['n_inner']}; minigpt's MLP is 4 * n_embd = {4 * n_embd} wide")
    activation = hf.get("activation_function", "gelu_new")
    if activation not in TANH_GELU:
        raise ValueError(f"{source}: activation_function is {activation!r}; minigpt's GELU is the tanh "
                         f"approximation ({' / '.join(TANH_GELU)}), and {activation!r} gives different outputs")
    for name, wanted in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                         ("add_cross_attention", False)):
        if hf.get(name, wanted) != wanted:
            raise ValueError(f"{source}: {name} is {hf[name]!r}; minigpt's attention needs {wanted}")
    # reorder_and_upcast_attn only moves the softmax to float32, which minigpt computes in anyway.
    check_layer_norm_epsilon(hf, source)
    check_tied(hf, source)
    return make_config(source, vocab_size=require_int(hf, "vocab_size", source), block_size=n_positions,
                       n_layer=require_int(hf, "n_layer", source), n_head=require_int(hf, "n_head", source),
                       n_embd=n_embd, dropout=resolve_dropout(hf, source, dropout), arch=ARCH)


def config_to_hf(cfg, eot_token=None):
    """The config.json that GPT2LMHeadModel reads for a minigpt GPTConfig with arch="gpt2"."""
    return {"model_type": MODEL_TYPE, "architectures": ["GPT2LMHeadModel"], "vocab_size": cfg.vocab_size,
            "n_positions": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "n_inner": None, "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5,
            "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout, "resid_pdrop": cfg.dropout,
            "initializer_range": 0.02, "scale_attn_weights": True, "tie_word_embeddings": True,
            "bos_token_id": eot_token, "eos_token_id": eot_token}


def to_hf_name(name):
    """minigpt's tensor name -> the name GPT2LMHeadModel writes."""
    return PREFIX + name


def from_hf_name(hf_name):
    """A tensor name in a gpt2 file -> minigpt's name (the reader checks the model has it), "buffer"
    for a mask to skip, or "lm_head" for the output head (tied to wte: the reader checks it equals wte)."""
    name = hf_name[len(PREFIX):] if hf_name.startswith(PREFIX) else hf_name
    if name == "lm_head.weight":
        return "lm_head"
    if BUFFER.match(name):
        return "buffer"
    return name

"""GPT-1 in Hugging Face's layout (model_type "openai-gpt", OpenAIGPTLMHeadModel): config.json and names.

transformers' OpenAIGPT block is post-LN, exactly minigpt's arch="gpt1":
    a = attn(x);  n = ln_1(x + a);  m = mlp(n);  h = ln_2(n + m)
with no final LayerNorm, attention scaled by 1/sqrt(head size) (Block(scale=True)), LayerNorm eps
1e-5 and the output head tied to the token embedding. Two details checked against
transformers 5.24's modeling_openai.py:
  - its config says afn="gelu", but its own table maps "gelu" to gelu_new, the tanh approximation
    0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), which is minigpt's GELU (and GPT-1's original);
    "relu", "silu" and "swish" are errors here.
  - it masks future positions with -1e4 instead of -inf; after the softmax both are exactly 0 in
    float32 unless a score is below -1e4 + 88, which a trained model never produces.
Names differ from GPT-2's only in the embeddings: tokens_embed (wte) and positions_embed (wpe).
The weights are Conv1D, (in, out), as in minigpt: no transposes. Files from older transformers
versions also hold each layer's causal mask (h.N.attn.bias), a buffer, not a weight: skipped.
"""
from minigpt.pretrained.hf_gpt2 import BUFFER
from minigpt.pretrained.hf_config import (check_layer_norm_epsilon, check_tied, make_config, require_int,
                                          resolve_dropout)

MODEL_TYPE = "openai-gpt"
ARCH = "gpt1"
PREFIX = "transformer."
GELU_NAMES = ("gelu", "gelu_new")  # both mean the tanh GELU in OpenAIGPT's own activation table
RENAMES = {"tokens_embed.weight": "wte.weight", "positions_embed.weight": "wpe.weight"}


def config_from_hf(hf, source, dropout=None):
    """GPTConfig from an openai-gpt config.json dict; an error for anything minigpt would compute differently."""
    afn = hf.get("afn", "gelu")
    if afn not in GELU_NAMES:
        raise ValueError(f"{source}: afn is {afn!r}; minigpt's MLP uses the tanh GELU (afn 'gelu' in OpenAIGPT)")
    check_layer_norm_epsilon(hf, source)
    check_tied(hf, source)
    return make_config(source, vocab_size=require_int(hf, "vocab_size", source),
                       block_size=require_int(hf, "n_positions", source), n_layer=require_int(hf, "n_layer", source),
                       n_head=require_int(hf, "n_head", source), n_embd=require_int(hf, "n_embd", source),
                       dropout=resolve_dropout(hf, source, dropout), arch=ARCH)


def config_to_hf(cfg, eot_token=None):
    """The config.json that OpenAIGPTLMHeadModel reads for a minigpt GPTConfig with arch="gpt1"."""
    return {"model_type": MODEL_TYPE, "architectures": ["OpenAIGPTLMHeadModel"], "vocab_size": cfg.vocab_size,
            "n_positions": cfg.block_size, "n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
            "afn": "gelu", "layer_norm_epsilon": 1e-5, "embd_pdrop": cfg.dropout, "attn_pdrop": cfg.dropout,
            "resid_pdrop": cfg.dropout, "initializer_range": 0.02, "tie_word_embeddings": True,
            "bos_token_id": None, "eos_token_id": eot_token}


def to_hf_name(name):
    """minigpt's tensor name -> the name OpenAIGPTLMHeadModel writes."""
    for theirs, ours in RENAMES.items():
        if name == ours:
            return PREFIX + theirs
    return PREFIX + name


def from_hf_name(hf_name):
    """A tensor name in an openai-gpt file -> minigpt's name (the reader checks the model has it), "buffer"
    for a mask to skip, or "lm_head" for the output head (tied to tokens_embed: the reader checks it is equal)."""
    name = hf_name[len(PREFIX):] if hf_name.startswith(PREFIX) else hf_name
    if name == "lm_head.weight":
        return "lm_head"
    if BUFFER.match(name):
        return "buffer"
    return RENAMES.get(name, name)

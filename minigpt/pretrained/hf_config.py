"""Checks shared by the two config.json readers (hf_gpt2.py, hf_openai_gpt.py).

A Hugging Face config.json describes more models than minigpt can run. Every field that changes
the math is checked here, and anything minigpt would compute differently is an error that names
the field, never a model that loads and quietly gives other numbers.
"""
from minigpt.config import GPTConfig
from minigpt.kernels.layernorm import EPS

# The tanh approximation of GELU, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), under its
# transformers names ("gelu_fast" rounds sqrt(2/pi) to 10 digits). It is minigpt's GELU.
TANH_GELU = ("gelu_new", "gelu_pytorch_tanh", "gelu_python_tanh", "gelu_fast")


def require_int(hf, name, source):
    value = hf.get(name)
    if type(value) is not int or value < 1:
        raise ValueError(f"{source}: field {name!r} must be a positive integer, got {value!r}")
    return value


def make_config(source, **fields):
    """GPTConfig(**fields), with GPTConfig's own checks (n_head dividing n_embd, say) naming config.json."""
    try:
        return GPTConfig(**fields)
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def check_layer_norm_epsilon(hf, source):
    """minigpt's LayerNorm adds 1e-5 to the variance, as GPT-1, GPT-2 and PyTorch do."""
    eps = hf.get("layer_norm_epsilon", EPS)
    # "not <=" rather than ">": JSON's NaN compares false with everything, and must be refused too.
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not abs(eps - EPS) <= 1e-12:
        raise ValueError(f"{source}: layer_norm_epsilon is {eps!r}; minigpt's LayerNorm uses {EPS}, "
                         "so this model would compute different values")


def check_tied(hf, source):
    """minigpt's output head is the token embedding (weight tying, as in GPT-1 and GPT-2)."""
    if hf.get("tie_word_embeddings", True) is not True:
        raise ValueError(f"{source}: tie_word_embeddings is {hf['tie_word_embeddings']!r}; minigpt's output head "
                         "always shares the token embedding's weights, so an untied lm_head cannot be loaded")


def resolve_dropout(hf, source, dropout=None):
    """One dropout probability from HF's three (embeddings, attention weights, residual branches).

    minigpt uses a single rate for all three. It matters for training only; `dropout` overrides."""
    if dropout is not None:
        return float(dropout)
    rates = {name: hf.get(name, 0.1) for name in ("embd_pdrop", "attn_pdrop", "resid_pdrop")}
    for name, rate in rates.items():
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0.0 <= rate < 1.0:
            raise ValueError(f"{source}: field {name!r} must be a probability in [0, 1), got {rate!r}")
    if len(set(rates.values())) != 1:
        raise ValueError(f"{source}: the dropout rates differ ({rates}) but minigpt has one rate for all three; "
                         "pass dropout=<rate> (or --dropout) to choose it")
    return float(rates["resid_pdrop"])

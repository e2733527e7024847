"""GPTConfig, the GPT-1/2/3 presets, and exact parameter counting without allocating anything.

Sources:
  GPT-1: Radford et al. 2018, "Improving Language Understanding by Generative Pre-Training", sec. 4.1
         (12 layers, 768 wide, 12 heads, 512 positions, a 40,000-merge BPE: 40,478 tokens).
  GPT-2: Radford et al. 2019, Table 2, with the sizes of the released checkpoints (1024 positions,
         50,257 tokens, pre-LN blocks and a final LayerNorm).
  GPT-3: Brown et al. 2020, Table 2.1 (2048 positions, GPT-2's tokenizer).

Two rows of GPT-3's Table 2.1 do not multiply out (d_model != n_heads x d_head), and our
attention needs d_model = n_head x head_size. We keep d_model, which fixes the parameter count,
and d_head where possible:
  GPT-3 XL:  d_model 2048, listed with 24 heads of 128 (= 3072). We use 16 heads of 128.
             The count, 1,315,723,264, matches the table's 1.3B, which confirms d_model = 2048.
  GPT-3 13B: d_model 5140, listed with 40 heads of 128 (= 5120). 5140 has no divisor near 40,
             so we use 5120 = 40 x 128: 12,853,386,240 parameters, where 5140 would give
             12,952,938,780; the table rounds to 13.0B, so either reading is plausible.
GPT-3 also alternates dense and locally banded sparse attention layers; that changes no
parameter count, and the presets here are all dense.
"""
import numbers
from dataclasses import asdict, dataclass, replace

ARCHS = ("gpt1", "gpt2")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 50257
    block_size: int = 1024  # the context length: the number of learned positions
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    arch: str = "gpt2"  # "gpt1": post-LN blocks, no final LN; "gpt2": pre-LN blocks and a final LN

    def __post_init__(self):
        # NumPy integers and floats are accepted and stored as Python ones, so to_dict() stays JSON-serialisable;
        # bool is refused although Python counts it as an int: vocab_size=True is a mistake, not a size of 1.
        for name in ("vocab_size", "block_size", "n_layer", "n_head", "n_embd"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"GPTConfig.{name} must be a positive integer, got {value!r}")
            object.__setattr__(self, name, int(value))  # frozen: the dataclass's own way round it
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"GPTConfig: n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        dropout = self.dropout
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Real) or not 0.0 <= dropout < 1.0:
            raise ValueError(f"GPTConfig.dropout must be a number in [0, 1), got {dropout!r}")
        object.__setattr__(self, "dropout", float(dropout))
        if self.arch not in ARCHS:
            raise ValueError(f"GPTConfig.arch must be one of {ARCHS}, got {self.arch!r}")

    @property
    def head_size(self):
        return self.n_embd // self.n_head

    @classmethod
    def preset(cls, name, **overrides):
        """A published configuration by name (see PRESETS), optionally with fields overridden."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return replace(PRESETS[name].config, **overrides)

    def to_dict(self):
        return asdict(self)

    def num_params(self):
        """Exact number of parameters, counted from the shapes alone (the output head is tied to wte)."""
        return sum(size for _, size in parameter_breakdown(self))


def parameter_breakdown(cfg):
    """(part, count) pairs that add up to num_params. C = n_embd, V = vocab, P = block_size, L = layers.

    per block: ln_1 2C + c_attn C*3C + 3C + c_proj C*C + C + ln_2 2C + c_fc C*4C + 4C + c_proj 4C*C + C
             = 12 C^2 + 13 C
    total    = V*C (wte, shared with the output head) + P*C (wpe) + L (12 C^2 + 13 C) + 2C (ln_f, GPT-2 only)
    """
    C, L = cfg.n_embd, cfg.n_layer
    per_block = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C) + (4 * C * C + C)
    parts = [("wte", cfg.vocab_size * C), ("wpe", cfg.block_size * C), ("blocks", L * per_block)]
    if cfg.arch == "gpt2":
        parts.append(("ln_f", 2 * C))
    return parts


COUNTING_FORMULA = "N = V*C + P*C + L*(12*C^2 + 13*C) [+ 2*C for the final LayerNorm of GPT-2/3]"


@dataclass(frozen=True)
class Preset:
    config: GPTConfig
    paper: str  # the size the paper reports, as printed there


def _gpt2(n_layer, n_head, n_embd, paper):
    return Preset(GPTConfig(50257, 1024, n_layer, n_head, n_embd, 0.1, "gpt2"), paper)


def _gpt3(n_layer, n_head, n_embd, paper):
    return Preset(GPTConfig(50257, 2048, n_layer, n_head, n_embd, 0.0, "gpt2"), paper)


PRESETS = {
    "gpt1": Preset(GPTConfig(40478, 512, 12, 12, 768, 0.1, "gpt1"), "117M"),
    "gpt2": _gpt2(12, 12, 768, "117M"),
    "gpt2-medium": _gpt2(24, 16, 1024, "345M"),
    "gpt2-large": _gpt2(36, 20, 1280, "762M"),
    "gpt2-xl": _gpt2(48, 25, 1600, "1542M"),
    "gpt3-small": _gpt3(12, 12, 768, "125M"),
    "gpt3-medium": _gpt3(24, 16, 1024, "350M"),
    "gpt3-large": _gpt3(24, 16, 1536, "760M"),
    "gpt3-xl": _gpt3(24, 16, 2048, "1.3B"),  # the table says 24 heads; see the module docstring
    "gpt3-2.7b": _gpt3(32, 32, 2560, "2.7B"),
    "gpt3-6.7b": _gpt3(32, 32, 4096, "6.7B"),
    "gpt3-13b": _gpt3(40, 40, 5120, "13.0B"),  # the paper's table says 5140; see the module docstring
    "gpt3-175b": _gpt3(96, 96, 12288, "175.0B"),
}


def statistics_table():
    """The model-statistics table that `minigpt params` prints, one line per preset."""
    header = f"{'preset':<12} {'arch':<5} {'layers':>6} {'d_model':>7} {'heads':>5} {'d_head':>6} " \
             f"{'context':>7} {'vocab':>6} {'parameters':>17} {'paper':>7}"
    lines = [header, "-" * len(header)]
    for name, preset in PRESETS.items():
        c = preset.config
        lines.append(f"{name:<12} {c.arch:<5} {c.n_layer:>6} {c.n_embd:>7} {c.n_head:>5} {c.head_size:>6} "
                     f"{c.block_size:>7} {c.vocab_size:>6} {c.num_params():>17,} {preset.paper:>7}")
    lines.append("")
    lines.append(COUNTING_FORMULA)
    lines.append("(V vocabulary, C d_model, P context, L layers; the output head shares wte's weights.)")
    lines.append("'paper' is the size as the paper prints it: GPT-2's paper lists its smallest model at 117M")
    lines.append("and the XL at 1542M, while the released checkpoints hold the exact counts above.")
    lines.append("GPT-3 alternated dense and locally banded sparse attention layers; these presets are dense in every")
    lines.append("layer, which changes no parameter count. Two rows of GPT-3's table do not multiply out (XL: 24 heads")
    lines.append("of 128 for a width of 2048; 13B: a width of 5140 for 40 heads of 128): we use 16 heads and 5120.")
    return "\n".join(lines)

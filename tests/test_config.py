"""GPTConfig validation, presets and exact parameter counts (checked against instantiated models)."""
import numpy as np
import pytest

import minigpt
from minigpt.config import statistics_table

# Exact counts of the released checkpoints (GPT-1: openai-gpt; GPT-2: gpt2 ... gpt2-xl).
KNOWN_COUNTS = {
    "gpt1": 116_534_784,
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "gpt2-large": 774_030_080,
    "gpt2-xl": 1_557_611_200,
}


@pytest.mark.parametrize("name, count", KNOWN_COUNTS.items())
def test_known_checkpoint_counts(name, count):
    assert minigpt.GPTConfig.preset(name).num_params() == count


def test_gpt3_175b_is_about_174_6_billion():
    cfg = minigpt.GPTConfig.preset("gpt3-175b")
    assert (cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.block_size) == (96, 12288, 96, 2048)
    assert round(cfg.num_params() / 1e9, 1) == 174.6


@pytest.mark.parametrize("name", [n for n in minigpt.PRESETS if n.startswith("gpt3")])
def test_gpt3_counts_round_to_the_table(name):
    paper = minigpt.PRESETS[name].paper
    scale = 1e9 if paper.endswith("B") else 1e6
    stated = float(paper[:-1])
    assert abs(minigpt.GPTConfig.preset(name).num_params() / scale - stated) / stated < 0.03


@pytest.mark.parametrize("arch", ["gpt1", "gpt2"])
def test_count_equals_instantiated_model(arch):
    cfg = minigpt.GPTConfig(vocab_size=37, block_size=9, n_layer=3, n_head=2, n_embd=10, arch=arch)
    model = minigpt.GPT(cfg)
    assert model.num_params() == cfg.num_params()


# The papers' tables, written out here: (layers, heads, width, context, vocabulary, dropout, block).
# GPT-1 (Radford et al. 2018, sec. 4.1); GPT-2 (Radford et al. 2019, table 2, and its released configs: 64-wide
# heads, dropout 0.1); GPT-3 (Brown et al. 2020, table 2.1; no dropout is stated, and minigpt uses none).
# GPT-3 XL's 24 heads do not divide 2048 and 13B's width is 5,120 in practice: see minigpt/config.py.
PAPER_SHAPES = {
    "gpt1": (12, 12, 768, 512, 40478, 0.1, "gpt1"),
    "gpt2": (12, 12, 768, 1024, 50257, 0.1, "gpt2"),
    "gpt2-medium": (24, 16, 1024, 1024, 50257, 0.1, "gpt2"),
    "gpt2-large": (36, 20, 1280, 1024, 50257, 0.1, "gpt2"),
    "gpt2-xl": (48, 25, 1600, 1024, 50257, 0.1, "gpt2"),
    "gpt3-small": (12, 12, 768, 2048, 50257, 0.0, "gpt2"),
    "gpt3-medium": (24, 16, 1024, 2048, 50257, 0.0, "gpt2"),
    "gpt3-large": (24, 16, 1536, 2048, 50257, 0.0, "gpt2"),
    "gpt3-xl": (24, 16, 2048, 2048, 50257, 0.0, "gpt2"),
    "gpt3-2.7b": (32, 32, 2560, 2048, 50257, 0.0, "gpt2"),
    "gpt3-6.7b": (32, 32, 4096, 2048, 50257, 0.0, "gpt2"),
    "gpt3-13b": (40, 40, 5120, 2048, 50257, 0.0, "gpt2"),
    "gpt3-175b": (96, 96, 12288, 2048, 50257, 0.0, "gpt2"),
}


def test_every_preset_has_the_papers_shape():
    assert set(PAPER_SHAPES) == set(minigpt.config.PRESETS)
    for name, shape in PAPER_SHAPES.items():
        c = minigpt.GPTConfig.preset(name)
        assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.vocab_size, c.dropout, c.arch) == shape, name


def test_preset_overrides_and_unknown_name():
    assert minigpt.GPTConfig.preset("gpt2", block_size=256).block_size == 256
    with pytest.raises(ValueError, match="unknown preset"):
        minigpt.GPTConfig.preset("gpt4")


@pytest.mark.parametrize("fields, message", [
    (dict(n_embd=10, n_head=3), "divisible"),
    (dict(arch="gpt5"), "arch"),
    (dict(dropout=1.0), "dropout"),
    (dict(n_layer=0), "n_layer"),
    (dict(vocab_size=2.5), "vocab_size"),
    (dict(vocab_size=True), "vocab_size must be a positive integer, got True"),
    (dict(n_head=np.int64(0)), "n_head"),
    (dict(dropout="0.1"), "dropout must be a number"),
    (dict(dropout=float("nan")), "dropout"),
])
def test_bad_config_is_a_clear_error(fields, message):
    with pytest.raises(ValueError, match=message):
        minigpt.GPTConfig(**{**dict(vocab_size=65, block_size=8, n_layer=1, n_head=2, n_embd=8), **fields})


def test_statistics_table_lists_every_preset_and_the_formula():
    table = statistics_table()
    for name in minigpt.PRESETS:
        assert name in table
    assert "1,557,611,200" in table and "116,534,784" in table and "12*C^2 + 13*C" in table


def test_numpy_numbers_are_stored_as_python_ones():
    cfg = minigpt.GPTConfig(vocab_size=np.int64(10), block_size=np.int32(8), n_layer=np.uint8(1), n_head=2,
                            n_embd=np.int64(8), dropout=np.float32(0.5))
    assert cfg.to_dict() == dict(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, dropout=0.5, arch="gpt2")
    assert all(type(cfg.to_dict()[name]) is int for name in ("vocab_size", "block_size", "n_layer", "n_embd"))
    assert type(cfg.dropout) is float

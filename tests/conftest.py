import os

import numpy as np
import pytest

from minigpt import kernels

if os.environ.get("MINIGPT_REQUIRE_CORE") and kernels._core is None:
    # CI sets this: there, a missing extension is a build failure, not a reason to skip tests.
    raise RuntimeError(f"MINIGPT_REQUIRE_CORE is set but minigpt._core is not importable: {kernels._CORE_IMPORT_ERROR}")

requires_core = pytest.mark.skipif(kernels._core is None, reason="minigpt._core is not built (pip install .)")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

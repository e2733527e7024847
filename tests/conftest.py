import numpy as np
import pytest

from minigpt import kernels

requires_core = pytest.mark.skipif(kernels._core is None, reason="minigpt._core is not built (pip install .)")


@pytest.fixture
def rng():
    return np.random.default_rng(1234)

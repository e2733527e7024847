"""MLP (C -> 4C -> GELU -> C, then dropout): forward against the formula, finite differences, C++ vs NumPy."""
import math

import numpy as np

from conftest import requires_core
from minigpt.gradcheck import numerical_gradient, rel_error
from minigpt.layers import MLP


def test_forward_matches_formula(rng):
    mlp = MLP(6, 0.0, rng, np.float64)
    x = rng.standard_normal((2, 3, 6))
    fc, proj = mlp.c_fc.params, mlp.c_proj.params
    h = x @ fc["weight"] + fc["bias"]
    h = 0.5 * h * (1 + np.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h**3)))
    assert fc["weight"].shape == (6, 24)
    assert np.allclose(mlp.forward(x, rng, train=False), h @ proj["weight"] + proj["bias"])


def test_backward_matches_finite_differences(rng):
    mlp = MLP(4, 0.1, rng, np.float64)
    for p in mlp.c_fc.params.values():
        p += rng.standard_normal(p.shape)
    x, dout = rng.standard_normal((2, 3, 4)), rng.standard_normal((2, 3, 4))
    f = lambda: mlp.forward(x, np.random.default_rng(2), train=True)
    f()
    dx = mlp.backward(dout)
    assert rel_error(dx, numerical_gradient(f, x, dout)) < 1e-8
    for lin in (mlp.c_fc, mlp.c_proj):
        for name, p in lin.params.items():
            assert rel_error(lin.grads[name].copy(), numerical_gradient(f, p, dout)) < 1e-7


@requires_core
def test_cpu_backend_matches_numpy():
    results = []
    for backend in ("numpy", "cpu"):
        rng = np.random.default_rng(0)
        mlp = MLP(20, 0.0, rng, np.float32, backend=backend)
        x = rng.standard_normal((3, 7, 20)).astype(np.float32)
        out = mlp.forward(x, rng, train=False)
        dx = mlp.backward(rng.standard_normal(out.shape).astype(np.float32))
        weight_grads = [lin.grads[name].copy() for lin in (mlp.c_fc, mlp.c_proj) for name in ("weight", "bias")]
        results.append([out, dx] + weight_grads)
    for ref, got in zip(*results):  # out, dx, then the weight and bias gradients of both layers
        assert np.linalg.norm(got - ref) <= 1e-5 * np.linalg.norm(ref)

import numpy as np

import tinygrad_mlp as tm


def test_chain_rule_through_the_blogs_network_matches_finite_differences():
    tm.set_default_dtype(np.float64)
    rng = np.random.default_rng(1)
    X, Y = rng.standard_normal((5, 3)), rng.random((5, 2))
    W1 = tm.Tensor(rng.standard_normal((3, 4)), requires_grad=True)

    def cost(w1):
        a2 = (X @ w1).sigmoid().sum(axis=1, keepdims=True) * np.ones((1, 2))
        return ((a2 - Y) ** 2).sum() / (2 * len(X))

    cost(W1).backward()
    numeric = np.zeros_like(W1.data)
    for i in np.ndindex(W1.shape):
        plus, minus = W1.data.copy(), W1.data.copy()
        plus[i] += 1e-6
        minus[i] -= 1e-6
        numeric[i] = (cost(tm.Tensor(plus)).item() - cost(tm.Tensor(minus)).item()) / 2e-6
    np.testing.assert_allclose(W1.grad, numeric, rtol=1e-5, atol=1e-8)

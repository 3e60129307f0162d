"""Reference solution of `tinygrad-mlp exercise show delta1`."""


def delta1(delta2, W2, a1):
    return (delta2 @ W2.T) * a1 * (1 - a1)

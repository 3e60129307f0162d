"""Reference solution of `tinygrad-mlp exercise show mse`."""


def mse_grad(a2, Y):
    return (a2 - Y) / a2.shape[0]

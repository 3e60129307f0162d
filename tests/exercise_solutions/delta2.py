"""Reference solution of `tinygrad-mlp exercise show delta2`."""


def delta2(a2, Y):
    return (a2 - Y) / len(a2)

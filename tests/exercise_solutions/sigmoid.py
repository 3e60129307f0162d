"""Reference solution of `tinygrad-mlp exercise show sigmoid`."""

import numpy as np

import tinygrad_mlp as tm


class Sigmoid(tm.Function):
    @staticmethod
    def forward(ctx, Z):
        a = 1 / (1 + np.exp(-Z))
        ctx.a = a
        return a

    @staticmethod
    def backward(ctx, grad):
        return grad * ctx.a * (1 - ctx.a)

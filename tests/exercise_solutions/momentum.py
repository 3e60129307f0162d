"""Reference solution of `tinygrad-mlp exercise show momentum`."""


def sgd_momentum_step(W, grad, buf, lr, momentum):
    buf = momentum * buf + grad
    return W - lr * buf, buf

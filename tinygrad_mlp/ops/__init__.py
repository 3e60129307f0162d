"""The built-in Functions, one module per kind: elementwise, activations, matmul, reductions, shape.

Each op's backward sits right below its forward, and its `rule` (one line: the local derivative
its backward applies) sits right above them; `viz.explain` prints it. Backward receives `grad`,
the gradient of the final output with respect to this op's output, and returns one gradient per
input: the chain rule, one link at a time. Broadcasting is undone by the engine (tensor.py).
"""

from tinygrad_mlp.ops.elementwise import Add, Div, Exp, Log, Mul, Neg, Pow, Sub
from tinygrad_mlp.ops.activations import LogSoftmax, ReLU, Sigmoid, Softmax, Tanh
from tinygrad_mlp.ops.matmul import Linear, MatMul
from tinygrad_mlp.ops.reductions import Max, Mean, Sum
from tinygrad_mlp.ops.shape import GetItem, Reshape, Transpose

__all__ = ["Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log",
           "Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax", "MatMul", "Linear",
           "Sum", "Mean", "Max", "Reshape", "Transpose", "GetItem"]

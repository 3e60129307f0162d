"""The built-in Functions, one module per kind: elementwise, activations, matmul, reductions,
shape, normalization, regularization, image, losses.

Each op's backward sits right below its forward, and its `rule` (one line: the local derivative
its backward applies) sits right above them; `viz.explain` prints it. Backward receives `grad`,
the gradient of the final output with respect to this op's output, and returns one gradient per
input: the chain rule, one link at a time. Broadcasting is undone by the engine (tensor.py).
`argmax` and `argmin` are plain functions: an index has no gradient.
"""

from tinygrad_mlp.ops.elementwise import (Abs, Add, AsType, Clip, Div, Exp, Log, Maximum, Minimum,
                                          Mul, Neg, Pow, Sqrt, Sub, Where)
from tinygrad_mlp.ops.activations import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid,
                                          Softmax, Softplus, Tanh)
from tinygrad_mlp.ops.matmul import Linear, MatMul
from tinygrad_mlp.ops.reductions import Max, Mean, Min, Std, Sum, Var, argmax, argmin
from tinygrad_mlp.ops.normalization import BatchNorm, LayerNorm
from tinygrad_mlp.ops.regularization import Dropout
from tinygrad_mlp.ops.shape import (BroadcastTo, Concatenate, Flatten, GetItem, Pad, Reshape,
                                    Squeeze, Stack, Transpose, Unsqueeze)
from tinygrad_mlp.ops.image import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d,
                                    MaxPool2d)
from tinygrad_mlp.ops.losses import (BCE, L1, MSE, NLL, BCEWithLogits, CrossEntropy, Huber,
                                     SoftmaxCrossEntropy)

__all__ = ["Add", "Sub", "Mul", "Div", "Neg", "Pow", "Exp", "Log", "Abs", "Sqrt", "Clip",
           "AsType", "Maximum", "Minimum", "Where",
           "Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax", "LeakyReLU", "ELU", "GELU",
           "Softplus", "MatMul", "Linear", "BatchNorm", "LayerNorm", "Dropout",
           "Sum", "Mean", "Max", "Min", "Var", "Std", "argmax", "argmin",
           "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "BroadcastTo", "Pad",
           "GetItem", "Stack", "Concatenate",
           "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d", "AdaptiveMaxPool2d",
           "MSE", "BCE", "BCEWithLogits", "SoftmaxCrossEntropy", "CrossEntropy", "L1", "Huber",
           "NLL"]

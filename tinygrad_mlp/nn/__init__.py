"""Neural-network building blocks: Module, layers, losses and initialisers.

    from tinygrad_mlp import nn
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10), nn.Softmax())
    loss = nn.CrossEntropyLoss()(model(X), y)
"""

from tinygrad_mlp.nn import init
from tinygrad_mlp.nn.layers import Linear, ReLU, Sequential, Sigmoid, Softmax, Tanh
from tinygrad_mlp.nn.losses import BCELoss, CrossEntropyLoss, MSELoss
from tinygrad_mlp.nn.module import IncompatibleKeys, Module
from tinygrad_mlp.nn.registry import register

__all__ = ["Module", "IncompatibleKeys", "Linear", "Sigmoid", "Tanh", "ReLU", "Softmax",
           "Sequential", "MSELoss", "BCELoss", "CrossEntropyLoss", "init", "register"]

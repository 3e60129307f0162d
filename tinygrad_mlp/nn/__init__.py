"""Neural-network building blocks: Module, layers, activations, normalisation, containers,
functional models (nn.Input, nn.Model, merge layers), losses, initialisers, gradient clipping
(nn.utils) and nn.summary.

    from tinygrad_mlp import nn
    model = nn.Sequential(nn.Linear(64, 32), nn.Sigmoid(), nn.Linear(32, 10), nn.Softmax())
    loss = nn.CrossEntropyLoss()(model(X), y)
"""

from tinygrad_mlp.nn import init, utils
from tinygrad_mlp.nn.activations import (ELU, GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, Softmax,
                                         Softplus, Tanh)
from tinygrad_mlp.nn.conv import (AdaptiveAvgPool2d, AdaptiveMaxPool2d, AvgPool2d, Conv2d,
                                  MaxPool2d, ZeroPad2d)
from tinygrad_mlp.nn.containers import ModuleDict, ModuleList, Sequential
from tinygrad_mlp.nn.layers import Dropout, Flatten, Identity, Linear, Rescaling
from tinygrad_mlp.nn.merge import Add, Concatenate, Multiply
from tinygrad_mlp.nn.model import Input, Model
from tinygrad_mlp.nn.losses import (BCELoss, CrossEntropyLoss, HuberLoss, L1Loss, MSELoss,
                                    NLLLoss)
from tinygrad_mlp.nn.module import HookHandle, IncompatibleKeys, Module
from tinygrad_mlp.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from tinygrad_mlp.nn.registry import register
from tinygrad_mlp.nn.shape import Permute, Reshape
from tinygrad_mlp.nn.summary import summary

__all__ = ["Module", "IncompatibleKeys", "HookHandle", "Linear", "Identity", "Flatten", "Dropout",
           "Sigmoid", "Tanh", "ReLU", "Softmax", "LogSoftmax", "LeakyReLU", "ELU", "GELU",
           "Softplus", "Conv2d", "MaxPool2d", "AvgPool2d", "AdaptiveAvgPool2d",
           "AdaptiveMaxPool2d", "ZeroPad2d", "BatchNorm1d", "BatchNorm2d",
           "LayerNorm", "Sequential", "ModuleList", "ModuleDict", "MSELoss", "BCELoss",
           "CrossEntropyLoss", "L1Loss", "HuberLoss", "NLLLoss", "init", "utils", "summary",
           "register", "Input", "Model", "Add", "Multiply", "Concatenate", "Rescaling",
           "Reshape", "Permute"]

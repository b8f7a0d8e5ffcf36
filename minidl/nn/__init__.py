"""Layers and models: ``Module``, ``Parameter``, the layers, ``init`` and ``functional``.

    from minidl import nn
    import minidl.nn.functional as F
"""
from minidl.nn import functional, init, utils
from minidl.nn.activation import GELU, LeakyReLU, LogSoftmax, ReLU, Sigmoid, SiLU, Softmax, Tanh
from minidl.nn.containers import ModuleDict, ModuleList, Sequential
from minidl.nn.conv import Conv2d
from minidl.nn.dropout import Dropout
from minidl.nn.embedding import Embedding
from minidl.nn.flatten import Flatten
from minidl.nn.linear import Identity, Linear
from minidl.nn.loss import CrossEntropyLoss, MSELoss
from minidl.nn.module import IncompatibleKeys, Module, RemovableHandle
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d, LayerNorm, LocalResponseNorm
from minidl.nn.parameter import Parameter
from minidl.nn.pooling import AdaptiveAvgPool2d, AvgPool2d, MaxPool2d

__all__ = ["AdaptiveAvgPool2d", "AvgPool2d", "BatchNorm1d", "BatchNorm2d", "Conv2d", "CrossEntropyLoss", "Dropout",
           "Embedding", "Flatten", "GELU", "Identity", "IncompatibleKeys", "LayerNorm", "LeakyReLU", "Linear",
           "LocalResponseNorm", "LogSoftmax", "MSELoss", "MaxPool2d", "Module", "ModuleDict", "ModuleList",
           "Parameter", "ReLU", "RemovableHandle", "Sequential", "SiLU", "Sigmoid", "Softmax", "Tanh",
           "functional", "init", "utils"]

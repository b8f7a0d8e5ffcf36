"""The functional API, imported as ``F``: ``import minidl.nn.functional as F``.

Each name is defined with its op in ``minidl.ops``; this module only gathers them.
"""
from minidl.ops.activation import gelu, leaky_relu, log_softmax, relu, sigmoid, silu, softmax, tanh
from minidl.ops.conv import conv2d
from minidl.ops.dropout import dropout
from minidl.ops.embedding import embedding
from minidl.ops.linalg import linear
from minidl.ops.loss import cross_entropy, mse_loss
from minidl.ops.normalization import batch_norm, layer_norm, local_response_norm
from minidl.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d

__all__ = ["adaptive_avg_pool2d", "avg_pool2d", "batch_norm", "conv2d", "cross_entropy", "dropout", "embedding",
           "gelu", "layer_norm", "leaky_relu", "linear", "local_response_norm", "log_softmax", "max_pool2d",
           "mse_loss", "relu", "sigmoid", "silu", "softmax", "tanh"]

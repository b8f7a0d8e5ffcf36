"""Normalisation layers: batch normalisation, layer normalisation and local response normalisation."""
import numpy as np

from minidl import _checks
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops import normalization
from minidl.tensor import Tensor


class _BatchNorm(Module):
    """Batch normalisation over axis 1 (Ioffe & Szegedy, 2015).

    Training: normalise with the batch's mean and variance, and move the
    running estimates towards them (r <- (1 - momentum) r + momentum * batch;
    ``momentum=None`` makes it the plain average over all batches so far).
    Eval: normalise with the running estimates. With
    ``track_running_stats=False`` there are none and batch statistics are
    always used. Buffers ``running_mean``, ``running_var`` and
    ``num_batches_tracked`` (int64) are saved in ``state_dict``, as in PyTorch.
    """

    _dims = ()        # the input ranks this layer accepts
    _layout = ""      # how they read, for error messages

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__()
        self.num_features = _checks.check_int(type(self).__name__, "num_features", num_features, 1)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = Parameter(np.ones(self.num_features, dtype=np.float32))
            self.bias = Parameter(np.zeros(self.num_features, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(self.num_features, dtype=np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(self.num_features, dtype=np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.array(0, dtype=np.int64)))
        else:
            for name in ("running_mean", "running_var", "num_batches_tracked"):
                self.register_buffer(name, None)

    def reset_running_stats(self):
        if self.track_running_stats:
            self.running_mean.data[...] = 0
            self.running_var.data[...] = 1
            self.num_batches_tracked.data[...] = 0

    def reset_parameters(self):
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, x):
        use_batch_stats = self.training or self.running_mean is None
        # In place of batch_norm's checks: the parameters and buffers are this layer's own, of
        # num_features each, so the input is what is left to check.
        normalization.check_batch_norm_input(_checks.layer_name(self), x, use_batch_stats, self._dims,
                                             self._layout, self.num_features)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:  # cumulative average: the n-th batch gets weight 1/n
                factor = 1.0 / float(self.num_batches_tracked.item())
        return normalization._batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                                         use_batch_stats, factor, self.eps)

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm of (N, C) or (N, C, L) inputs, per feature C."""

    _dims = (2, 3)
    _layout = "2-D (N, C) or 3-D (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch norm of (N, C, H, W) inputs, per channel C."""

    _dims = (4,)
    _layout = "4-D (N, C, H, W)"


class LocalResponseNorm(Module):
    """AlexNet's normalisation across channels: y_c = x_c / (k + alpha/size * sum of x^2
    over the ``size`` neighbouring channels)^beta (PyTorch's convention: alpha divided by size)."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size = _checks.check_int("LocalResponseNorm", "size", size, 1)
        self.alpha, self.beta, self.k = alpha, beta, k

    def forward(self, x):
        normalization.check_lrn_input(_checks.layer_name(self), x)  # size was checked in __init__
        return normalization._local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class LayerNorm(Module):
    """Layer normalisation over the last dimensions of the input, which must be ``normalized_shape``
    (Ba, Kiros & Hinton 2016): each sample's values there are normalised by their own mean and
    (biased) variance, then scaled by ``weight`` and shifted by ``bias``, both of shape
    ``normalized_shape``, initialised to 1 and 0 (with ``elementwise_affine=False`` neither exists;
    with ``bias=False``, no bias). The same in training and evaluation: there are no running
    statistics.
    """

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True):
        super().__init__()
        self.normalized_shape = normalization.check_normalized_shape("LayerNorm", normalized_shape)
        self.eps = eps
        self.elementwise_affine = _checks.check_bool("LayerNorm", "elementwise_affine", elementwise_affine)
        bias = _checks.check_bool("LayerNorm", "bias", bias)
        if self.elementwise_affine:
            self.weight = Parameter(np.ones(self.normalized_shape, dtype=np.float32))
        else:
            self.register_parameter("weight", None)
        if self.elementwise_affine and bias:
            self.bias = Parameter(np.zeros(self.normalized_shape, dtype=np.float32))
        else:
            self.register_parameter("bias", None)

    def reset_parameters(self):
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, x):
        normalization.check_layer_norm_input(_checks.layer_name(self), x, self.normalized_shape)
        return normalization._layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}, "
                f"bias={self.bias is not None}")

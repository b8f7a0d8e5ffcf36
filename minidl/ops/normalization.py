"""Normalisation layers: local response normalisation (AlexNet), batch normalisation and layer
normalisation."""
import numpy as np

from minidl import _checks, backend, kernels
from minidl.ops._util import FLOAT_ONLY, compute_dtype, op_dtype
from minidl.tensor import Function, Tensor


class LocalResponseNorm(Function):
    """y_c = x_c * s_c^-beta with s_c = k + alpha/size * sum_{j in W(c)} x_j^2,
    W(c) the ``size`` channels centred on c (cut at the ends).

    x_c appears in its own numerator and in s_j of every channel j whose
    window holds it, so
    dL/dx_c = gy_c s_c^-beta - 2 alpha beta / size * x_c * sum_{j: c in W(j)} gy_j y_j / s_j.
    The backward is that closed form on arrays (one kernel call instead of a
    graph of shifted sums), so it cannot be differentiated again.
    """

    double_backward = False
    keep_inputs = keep_outputs = (0,)

    def __init__(self, size, alpha, beta, k):
        self.args = (size, alpha, beta, k)

    def forward(self, x):
        dtype = compute_dtype(x.dtype)  # float16's x^2 overflows beyond 256
        y, self.scale = kernels.lrn_forward(x.astype(dtype, copy=False), *self.args)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        dtype = self.scale.dtype
        x, y = self.inputs[0].data.astype(dtype, copy=False), self.output().data.astype(dtype, copy=False)
        return Tensor._wrap(kernels.lrn_backward(x, y, self.scale, gy.data.astype(dtype, copy=False), *self.args))


class BatchNorm(Function):
    """Training-mode batch norm (Ioffe & Szegedy 2015, Algorithm 1) per channel (axis 1):
    xhat = (x - mean) / sqrt(var + eps) with the batch's mean and biased variance
    over the m values of the channel, y = gamma * xhat + beta.

    mean and var depend on every x of the channel, which gives, per channel,
    dL/dbeta = sum gy, dL/dgamma = sum gy * xhat and
    dL/dx = gamma / (m sqrt(var + eps)) * (m gy - sum gy - xhat * sum gy * xhat).
    That closed form runs as one kernel on arrays, so it cannot be differentiated again.

    The output has x's dtype, whatever gamma's and beta's (PyTorch's mixed-precision batch norm:
    a float16 input with the layer's float32 parameters). The statistics, ``mean`` and ``invstd``,
    are computed in at least float32 (``compute_dtype``): in float16 the squared deviations overflow
    beyond 256, and 1/invstd**2 - eps, the variance the running statistics get, is off by more than
    a small variance, even below 0.
    """

    double_backward = False
    keep_inputs, keep_outputs = (0, 1), ()  # x and gamma; beta's gradient needs only gy

    def __init__(self, eps):
        self.eps = eps

    def forward(self, x, gamma, beta):
        self.dtype = dtype = compute_dtype(x.dtype)
        y, self.mean, self.invstd = kernels.batch_norm_forward(
            x.astype(dtype, copy=False), gamma.astype(dtype, copy=False), beta.astype(dtype, copy=False), self.eps)
        return y.astype(x.dtype, copy=False)

    def backward(self, gy):
        dtype = self.dtype
        x, gamma = self.inputs[0].data.astype(dtype, copy=False), self.inputs[1].data.astype(dtype, copy=False)
        grads = kernels.batch_norm_backward(gy.data.astype(dtype, copy=False), x, gamma, self.mean, self.invstd)
        return tuple(Tensor._wrap(g) for g in grads)  # the engine casts each to its input's dtype


def check_lrn_input(where, x):
    """ValueError naming ``where`` unless x is a floating-point (N, C, ...) input."""
    if x.ndim < 3:
        raise ValueError(f"{where}: expected an input of 3 or more dimensions (N, C, ...); "
                         f"got shape {tuple(x.shape)}")
    op_dtype(where, FLOAT_ONLY, (x,))


def _local_response_norm(x, size, alpha, beta, k):
    """LRN on checked arguments: local_response_norm and nn.LocalResponseNorm both end here."""
    return LocalResponseNorm(size, float(alpha), float(beta), float(k))(x)


def local_response_norm(x, size, alpha=1e-4, beta=0.75, k=1.0):
    """Normalise each value by the energy of its neighbouring channels (PyTorch semantics:
    alpha is divided by ``size``). Input (N, C, ...) with at least 3 dimensions."""
    check_lrn_input("local_response_norm", x)
    return _local_response_norm(x, _checks.check_int("local_response_norm", "size", size, 1), alpha, beta, k)


def _array(t):
    return t.data if isinstance(t, Tensor) else t


def _values_per_channel(x):
    """m, the number of values each channel's statistics are taken over (every axis but 1)."""
    return x.shape[0] * int(np.prod(x.shape[2:], dtype=np.int64))


def check_batch_norm_input(where, x, training, dims=(2, 3, 4), layout="2-D, 3-D or 4-D (N, C, ...)",
                           channels=None):
    """ValueError naming ``where`` unless x is a floating-point input of a rank in ``dims``, with
    ``channels`` channels (axis 1) if given and, when ``training`` (normalising with the batch's
    statistics), more than one value per channel."""
    _checks.check_ndim(where, x, dims, layout)
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f"{where}: expected {channels} features (channels, axis 1); "
                         f"got {x.shape[1]} in an input of shape {tuple(x.shape)}")
    op_dtype(where, FLOAT_ONLY, (x,))
    if training and _values_per_channel(x) <= 1:  # one value: variance 0, and the unbiased one divides by 0
        raise ValueError(f"{where}: expected more than 1 value per channel when training; "
                         f"got input of shape {tuple(x.shape)}")


def batch_norm(x, running_mean, running_var, weight, bias, training, momentum=0.1, eps=1e-5):
    """Batch normalisation over axis 1 of (N, C), (N, C, L) or (N, C, H, W) inputs.

    Training: normalise with the batch's statistics, and move the running
    statistics (if given) towards them in place: r <- (1 - momentum) r +
    momentum * batch value, the variance taken unbiased (times m/(m-1)) as in
    PyTorch. Evaluation: normalise with the running statistics, composed of
    Tensor ops (differentiable in x, weight and bias, to any order).
    ``weight`` and ``bias`` may be None (meaning 1 and 0).
    """
    op = "batch_norm"
    check_batch_norm_input(op, x, training)
    channels = x.shape[1]
    for name, t in (("weight", weight), ("bias", bias), ("running_mean", running_mean),
                    ("running_var", running_var)):
        if t is not None:
            if tuple(t.shape) != (channels,):
                raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not match the {channels} channels "
                                 f"of the input of shape {tuple(x.shape)}")
            op_dtype(op, FLOAT_ONLY, (t,), name)
    if not training and (running_mean is None or running_var is None):
        raise ValueError(f"{op}: running_mean and running_var are needed in evaluation mode (training=False)")
    return _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps)


def _batch_norm(x, running_mean, running_var, weight, bias, training, momentum, eps):
    """Batch norm on checked arguments: batch_norm and nn.BatchNorm1d/2d both end here."""
    xp = backend.get_array_module(x.data)
    channels = x.shape[1]
    shape = (1, channels) + (1,) * (x.ndim - 2)

    if training:
        m = _values_per_channel(x)
        gamma = weight if weight is not None else Tensor._wrap(xp.ones(channels, dtype=x.dtype))
        beta = bias if bias is not None else Tensor._wrap(xp.zeros(channels, dtype=x.dtype))
        fn = BatchNorm(float(eps))
        y = fn(x, gamma, beta)
        if running_mean is not None:
            rm = _array(running_mean)
            rm[...] = (1 - momentum) * rm + momentum * fn.mean
        if running_var is not None:
            rv = _array(running_var)
            # the batch's biased variance, from invstd in the compute dtype; a constant channel's 0
            # can come back a rounding error below 0, and a negative running variance is a NaN in eval
            var = xp.maximum(1 / (fn.invstd * fn.invstd) - fn.invstd.dtype.type(eps), 0)
            rv[...] = (1 - momentum) * rv + momentum * var * (m / (m - 1))
        return y

    # Evaluation, in the compute dtype as in training, and back to x's dtype (a float16 input with a
    # float32 weight gives float16). The casts are no-ops but for float16 or mixed dtypes.
    dtype = compute_dtype(x.dtype)
    mean = Tensor._wrap(_array(running_mean).astype(dtype).reshape(shape))
    invstd = Tensor._wrap((1 / xp.sqrt(_array(running_var).astype(dtype) + dtype.type(eps))).reshape(shape))
    y = (x.astype(dtype) - mean) * invstd
    if weight is not None:
        y = y * weight.reshape(shape).astype(dtype)
    if bias is not None:
        y = y + bias.reshape(shape).astype(dtype)
    return y.astype(x.dtype)


def check_normalized_shape(where, normalized_shape):
    """``normalized_shape`` (an int or a sequence of ints, each >= 1, at least one) as a tuple of
    Python ints; a LayerNorm layer runs this once, when it is made."""
    shape = (normalized_shape,) if _checks.is_int(normalized_shape) else normalized_shape
    if not (isinstance(shape, (tuple, list)) and shape and all(_checks.is_int(n) and n >= 1 for n in shape)):
        _checks.fail(where, "normalized_shape", normalized_shape, "an int >= 1 or a non-empty tuple of ints >= 1")
    return tuple(int(n) for n in shape)


def check_layer_norm_input(where, x, normalized_shape):
    """ValueError naming ``where`` unless x is a floating-point input whose last dimensions are
    ``normalized_shape`` (a checked tuple)."""
    k = len(normalized_shape)
    if x.ndim < k or tuple(x.shape[x.ndim - k:]) != normalized_shape:
        raise ValueError(f"{where}: expected an input of shape (*, {', '.join(map(str, normalized_shape))}) "
                         f"for normalized_shape={normalized_shape}; got shape {tuple(x.shape)}")
    op_dtype(where, FLOAT_ONLY, (x,))


def _layer_norm(x, normalized_shape, weight, bias, eps):
    """Layer norm on checked arguments: layer_norm and nn.LayerNorm both end here. In the compute
    dtype, as batch norm's evaluation, and back to x's dtype; the casts are no-ops but for float16
    or mixed dtypes."""
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    dtype = compute_dtype(x.dtype)
    h = x.astype(dtype)
    centred = h - h.mean(axis=axes, keepdims=True)
    var = (centred * centred).mean(axis=axes, keepdims=True)
    y = centred / (var + eps).sqrt()
    if weight is not None:
        y = y * weight.astype(dtype)
    if bias is not None:
        y = y + bias.astype(dtype)
    return y.astype(x.dtype)


def layer_norm(x, normalized_shape, weight=None, bias=None, eps=1e-5):
    """Layer normalisation (Ba, Kiros & Hinton 2016) over the last ``len(normalized_shape)``
    dimensions of x, which must equal ``normalized_shape``: y = (x - mean) / sqrt(var + eps) *
    weight + bias, mean and the biased variance taken over those dimensions for each leading index,
    as in PyTorch. ``weight`` and ``bias``, of shape ``normalized_shape``, may be None (1 and 0).

    Composed of ops with their own gradients (Mean, Sub, Mul, Div, Sqrt), so the gradient, through
    the mean and the variance too, and its own derivative come from theirs.
    """
    op = "layer_norm"
    normalized_shape = check_normalized_shape(op, normalized_shape)
    check_layer_norm_input(op, x, normalized_shape)
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None:
            if tuple(t.shape) != normalized_shape:
                raise ValueError(f"{op}: {name} of shape {tuple(t.shape)} does not match "
                                 f"normalized_shape={normalized_shape}")
            op_dtype(op, FLOAT_ONLY, (t,), name)
    return _layer_norm(x, normalized_shape, weight, bias, eps)

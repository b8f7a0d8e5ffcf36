"""Training-mode batch normalisation over every axis but axis 1 (the channels).

One code path serves (N, C), (N, C, L) and (N, C, H, W): the statistics of
channel c are taken over all m = N * (spatial size) values x[:, c, ...].
"""


def _axes_and_shape(x):
    """The reduced axes, and the shape (1, C, 1, ...) that broadcasts a per-channel vector."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def batch_norm_forward(x, gamma, beta, eps):
    axes, shape = _axes_and_shape(x)
    mean = x.mean(axis=axes)
    centred = x - mean.reshape(shape)
    # Two passes (mean, then the mean of squared deviations) rather than E[x^2] - E[x]^2,
    # which cancels catastrophically in float32 when |mean| >> std.
    var = (centred * centred).mean(axis=axes)
    invstd = 1 / (var + x.dtype.type(eps)) ** x.dtype.type(0.5)
    y = centred * (gamma * invstd).reshape(shape) + beta.reshape(shape)
    return y, mean, invstd


def batch_norm_backward(gy, x, gamma, mean, invstd):
    axes, shape = _axes_and_shape(x)
    m = x.size // x.shape[1]
    xhat = (x - mean.reshape(shape)) * invstd.reshape(shape)
    gbeta = gy.sum(axis=axes)
    ggamma = (gy * xhat).sum(axis=axes)
    # From the chain rule through mean and variance (Ioffe & Szegedy, 2015):
    # dL/dx = gamma * invstd / m * (m * gy - sum(gy) - xhat * sum(gy * xhat)).
    gx = (gamma * invstd / x.dtype.type(m)).reshape(shape) * (
        x.dtype.type(m) * gy - gbeta.reshape(shape) - xhat * ggamma.reshape(shape))
    return gx, ggamma, gbeta

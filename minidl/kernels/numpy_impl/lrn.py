"""Local response normalisation across channels (axis 1), PyTorch's convention.

The window of ``size`` channels centred on c runs from c - size//2 to
c + (size-1)//2 and is cut at the channel ends (the missing channels count as
zeros, like PyTorch's zero-padded average). Window sums are built from
channel-shifted slices, one per offset, so the cost is ``size`` vectorised
passes however large the tensor.
"""
from minidl import backend


def _window_sum(a, before, after):
    """out[:, c] = sum of a[:, j] for c - before <= j <= c + after (j inside the channels)."""
    xp = backend.get_array_module(a)
    channels = a.shape[1]
    out = xp.zeros_like(a)
    # Offsets that reach past every channel add nothing, so size > C costs only C passes.
    for d in range(-min(before, channels - 1), min(after, channels - 1) + 1):
        if d >= 0:
            out[:, :channels - d] += a[:, d:]
        else:
            out[:, -d:] += a[:, :channels + d]
    return out


def lrn_forward(x, size, alpha, beta, k):
    xp = backend.get_array_module(x)
    t = x.dtype.type
    scale = t(k) + t(alpha / size) * _window_sum(x * x, size // 2, (size - 1) // 2)
    return x * xp.power(scale, t(-beta)), scale


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    xp = backend.get_array_module(x)
    t = x.dtype.type
    # Channel j's window holds c exactly when c - (size-1)//2 <= j <= c + size//2: the
    # forward window mirrored, so the same helper sums over "windows containing c".
    spread = _window_sum(gy * y / scale, (size - 1) // 2, size // 2)
    return gy * xp.power(scale, t(-beta)) - t(2 * alpha * beta / size) * x * spread

"""Max and average pooling on NCHW arrays.

Both pad the input once so that every window, including the extra one that
``ceil_mode`` may add at the right/bottom edge, lies inside the padded array.
A pooled output is then a reduction of kh*kw strided views, one per kernel
offset (i, j): the view ``xpad[:, :, i::sh, j::sw]`` (cut to OH x OW) holds
element (i, j) of every window at once. Only those kh*kw offsets are looped
over; batch, channels and positions are vectorised.
"""
from minidl import backend
from minidl.kernels import conv_output_size


def _after(size, out, kernel, stride, padding):
    """How much to pad after the input along one axis so that the last of ``out`` windows fits
    (``ceil_mode`` windows may reach past the padding)."""
    return max(size + padding, (out - 1) * stride + kernel - padding) - size


def _axis(size, kernel, stride, padding, ceil_mode):
    """Output length along one axis and how much to pad after the input (`_after`)."""
    out = conv_output_size(size, kernel, stride, padding, 1, ceil_mode)
    return out, _after(size, out, kernel, stride, padding)


def _padded(x, kernel, stride, padding, ceil_mode, value):
    """``x`` padded with ``value``, and the output size (OH, OW)."""
    xp = backend.get_array_module(x)
    n, c, h, w = x.shape
    oh, after_h = _axis(h, kernel[0], stride[0], padding[0], ceil_mode)
    ow, after_w = _axis(w, kernel[1], stride[1], padding[1], ceil_mode)
    xpad = xp.full((n, c, padding[0] + h + after_h, padding[1] + w + after_w), value, dtype=x.dtype)
    xpad[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w] = x
    return xpad, (oh, ow)


def _window_view(a, i, j, stride, out):
    """Element (i, j) of every window: a strided (N, C, OH, OW) view of padded ``a``."""
    return a[:, :, i:i + (out[0] - 1) * stride[0] + 1:stride[0], j:j + (out[1] - 1) * stride[1] + 1:stride[1]]


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    xp = backend.get_array_module(x)
    w = x.shape[3]
    xpad, out = _padded(x, kernel, stride, padding, ceil_mode, -xp.inf)
    offsets = [(i, j) for i in range(kernel[0]) for j in range(kernel[1])]
    count = len(offsets)
    # Two passes of plain ufuncs rather than a compare-and-select per offset, which is several
    # times slower in NumPy. First the running max (maximum propagates NaN, as in PyTorch).
    y = _window_view(xpad, 0, 0, stride, out).copy()
    for i, j in offsets[1:]:
        xp.maximum(y, _window_view(xpad, i, j, stride, out), out=y)
    # Then the first offset k (in window order, so ties go to the first) holding the max, as the
    # largest of count - k over the offsets that equal y.
    small = xp.uint8 if count < 256 else xp.int32
    code = xp.zeros(y.shape, dtype=small)
    for k, (i, j) in enumerate(offsets):
        xp.maximum(code, (_window_view(xpad, i, j, stride, out) == y) * small(count - k), out=code)
    first = count - code.astype(xp.int64)
    # NaN equals nothing; PyTorch points at the window's last NaN. Done for every window, not only
    # after asking whether y has a NaN: on CuPy that question would wait for the GPU.
    for k, (i, j) in enumerate(offsets):
        xp.copyto(first, k, where=xp.isnan(_window_view(xpad, i, j, stride, out)))
    row0 = (xp.arange(out[0], dtype=xp.int64) * stride[0] - padding[0])[:, None]
    col0 = (xp.arange(out[1], dtype=xp.int64) * stride[1] - padding[1])[None, :]
    shift = xp.asarray([i * w + j for i, j in offsets], dtype=xp.int64)  # flat offset of each k in the plane
    argmax = row0 * w + col0 + shift[first]
    # A window whose real pixels are all -inf ties with its padding; PyTorch then names the
    # window's first real pixel.
    xp.copyto(argmax, xp.maximum(row0, 0) * w + xp.maximum(col0, 0), where=y == -xp.inf)
    return y, argmax


def max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding):
    xp = backend.get_array_module(gy)
    n, c, h, w = x_shape
    out = gy.shape[2:]
    # A gather through the kernel-offset views, as avg_pool2d_backward: offset (i, j) of window
    # (p, q) reads pixel (p*sh - ph + i, q*sw - pw + j), which receives gy[p, q] where argmax
    # names it. No scatter: within one offset the windows read distinct pixels. The sums are in
    # float64 and, with the offsets in descending order, add each pixel's windows in increasing
    # (p, q) order, as the Numba and CUDA kernels add.
    rows = xp.arange(out[0], dtype=xp.int64) * stride[0] - padding[0]
    cols = xp.arange(out[1], dtype=xp.int64) * stride[1] - padding[1]
    g = gy.astype(xp.float64)
    gpad = xp.zeros((n, c, padding[0] + h + _after(h, out[0], kernel[0], stride[0], padding[0]),
                     padding[1] + w + _after(w, out[1], kernel[1], stride[1], padding[1])), dtype=xp.float64)
    for i in reversed(range(kernel[0])):
        row = rows + i
        for j in reversed(range(kernel[1])):
            col = cols + j
            inside = ((row >= 0) & (row < h))[:, None] & ((col >= 0) & (col < w))[None, :]
            # -1 where the offset reads padding, whose flat index could alias a real pixel
            pixel = xp.where(inside, row[:, None] * w + col[None, :], -1)
            _window_view(gpad, i, j, stride, out)[...] += xp.where(argmax == pixel, g, 0.0)
    return gpad[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w].astype(gy.dtype)


def _divisor(xp, x_shape, out, kernel, stride, padding, count_include_pad, dtype):
    """PyTorch's averaging divisor per output position, shape (OH, OW).

    Per axis, a window starting at s covers [s, min(s + k, size + p)) of the padded
    image; with ``count_include_pad`` its whole length counts, otherwise only its
    part inside the image [0, size). The 2-D count is the product of the two.
    """
    counts = []
    for size, o, k, s, p in zip(x_shape[2:], out, kernel, stride, padding):
        start = xp.arange(o) * s - p
        end = xp.minimum(start + k, size + p)
        counts.append(end - start if count_include_pad else xp.minimum(end, size) - xp.maximum(start, 0))
    return (counts[0][:, None] * counts[1][None, :]).astype(dtype)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = backend.get_array_module(x)
    xpad, out = _padded(x, kernel, stride, padding, ceil_mode, 0)
    total = xp.zeros(x.shape[:2] + out, dtype=x.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            total += _window_view(xpad, i, j, stride, out)
    return total / _divisor(xp, x.shape, out, kernel, stride, padding, count_include_pad, x.dtype)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    xp = backend.get_array_module(gy)
    n, c, h, w = x_shape
    out = gy.shape[2:]
    g = gy / _divisor(xp, x_shape, out, kernel, stride, padding, count_include_pad, gy.dtype)
    # The transpose of the forward's gather: add g into each offset's strided view of a
    # padded zero image (within one offset the positions are distinct, so += is safe),
    # then cut the padding off.
    gpad = xp.zeros((n, c, padding[0] + h + _axis(h, kernel[0], stride[0], padding[0], ceil_mode)[1],
                     padding[1] + w + _axis(w, kernel[1], stride[1], padding[1], ceil_mode)[1]), dtype=gy.dtype)
    for i in range(kernel[0]):
        for j in range(kernel[1]):
            _window_view(gpad, i, j, stride, out)[...] += g
    return gpad[:, :, padding[0]:padding[0] + h, padding[1]:padding[1] + w].copy()

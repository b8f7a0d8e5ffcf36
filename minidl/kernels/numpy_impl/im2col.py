"""im2col and col2im in NumPy (CuPy-compatible: pad, slicing, strided views).

For a fixed kernel offset (i, j), the pixels it reads across all output
positions form one strided slice of the padded image,
``xpad[:, :, i*dh : ... : sh, j*dw : ... : sw]`` of shape (N, C, OH, OW): the
rows ``(c, i, j)`` of every column. im2col gathers all of them in a single
copy of a strided view; col2im adds each slice back in a loop over the
kh*kw offsets, which is why it is the adjoint of im2col and not its inverse:
a pixel read by several windows receives the sum of their entries.
"""
from minidl.backend import get_array_module
from minidl.kernels import conv_output_size


def _geometry(shape, kernel, stride, padding, dilation):
    n, c, h, w = shape
    oh = conv_output_size(h, kernel[0], stride[0], padding[0], dilation[0])
    ow = conv_output_size(w, kernel[1], stride[1], padding[1], dilation[1])
    return n, c, h, w, oh, ow


def _window(i, j, oh, ow, stride, dilation):
    """The slice of the padded image that kernel offset (i, j) reads for every output position."""
    top, left = i * dilation[0], j * dilation[1]
    return (slice(None), slice(None),
            slice(top, top + stride[0] * (oh - 1) + 1, stride[0]),
            slice(left, left + stride[1] * (ow - 1) + 1, stride[1]))


def sliding_windows(a, window):
    """Every ``window``-sized window of the last two axes of the 4-D array ``a``, as a read-only
    view (N, C, positions_h, positions_w, window_h, window_w): NumPy's
    ``sliding_window_view(a, window, axis=(2, 3))``, which CuPy has too, but CuPy's checks the
    window on the GPU and reads the answer back, which waits for the device. ``broadcast_to``
    makes the view read-only on NumPy (CuPy has no read-only arrays)."""
    xp = get_array_module(a)
    n, c, h, w = a.shape
    return xp.lib.stride_tricks.as_strided(xp.broadcast_to(a, a.shape),
                                           shape=(n, c, h - window[0] + 1, w - window[1] + 1) + tuple(window),
                                           strides=a.strides + a.strides[2:])


def im2col(x, kernel, stride, padding, dilation, out=None, fold_batch=False):
    xp = get_array_module(x)
    n, c, h, w, oh, ow = _geometry(x.shape, kernel, stride, padding, dilation)
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw))) if ph or pw else x
    # A read-only view (no copy) of every window of the dilated kernel's extent, at every
    # position: (n, c, positions_h, positions_w, extent_h, extent_w). Striding it by the
    # stride keeps the output positions and by the dilation keeps the kernel taps, so the
    # one copy below is the whole unrolling.
    windows = sliding_windows(xpad, (dh * (kh - 1) + 1, dw * (kw - 1) + 1))[:, :, ::sh, ::sw, ::dh, ::dw]
    # (n, c, kh, kw, oh, ow) is the row order (c, i, j) with columns (oh, ow). For a 1x1
    # kernel with unit stride and no padding the view is already contiguous, so the
    # columns are x itself, returned read-only rather than copied.
    # With fold_batch the samples go next to the output positions: (c, kh, kw, n, oh, ow).
    windows = windows.transpose(*((1, 4, 5, 0, 2, 3) if fold_batch else (0, 1, 4, 5, 2, 3)))
    shape = (c * kh * kw, n * oh * ow) if fold_batch else (n, c * kh * kw, oh * ow)
    if out is None or windows.flags.c_contiguous:
        return xp.ascontiguousarray(windows).reshape(shape)
    xp.copyto(out.reshape(windows.shape), windows)
    return out


def col2im(col, x_shape, kernel, stride, padding, dilation, fold_batch=False):
    xp = get_array_module(col)
    n, c, h, w, oh, ow = _geometry(x_shape, kernel, stride, padding, dilation)
    ph, pw = padding
    kh, kw = kernel
    if fold_batch:
        col = col.reshape(c, kh, kw, n, oh, ow).transpose(3, 0, 1, 2, 4, 5)
    else:
        col = col.reshape(n, c, kh, kw, oh, ow)
    xpad = xp.zeros((n, c, h + 2 * ph, w + 2 * pw), dtype=col.dtype)
    for i in range(kh):
        for j in range(kw):
            xpad[_window(i, j, oh, ow, stride, dilation)] += col[:, :, i, j]
    if ph or pw:
        return xp.ascontiguousarray(xpad[:, :, ph:ph + h, pw:pw + w])
    return xpad

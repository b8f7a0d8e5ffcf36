"""The Winograd F(2x2, 3x3) transforms in NumPy (CuPy-compatible), as small matrix products
on 4x4 tiles; see ``minidl.kernels.winograd_input_transform`` for the layouts."""
from minidl.backend import get_array_module
from minidl.kernels.numpy_impl.im2col import sliding_windows

# The transform matrices of F(2x2, 3x3) (Lavin & Gray, 2015): B^T for the input tiles, A^T
# for the output tiles. Their entries are 0 and +-1, so applying them only adds and subtracts.
BT = ((1, 0, -1, 0), (0, 1, 1, 0), (0, -1, 1, 0), (0, 1, 0, -1))
AT = ((1, 1, 1, 0), (0, 1, -1, -1))


def _tiles(size):
    return (size + 1) // 2


def winograd_input_transform(x, padding):
    xp = get_array_module(x)
    n, c, h, w = x.shape
    ph, pw = padding
    th, tw = _tiles(h + 2 * ph - 2), _tiles(w + 2 * pw - 2)
    # Tile (ty, tx) reads rows 2ty .. 2ty+3 of the padded image; pad at the end too so the
    # last tile, which may reach past the last output, reads zeros there.
    xpad = xp.pad(x, ((0, 0), (0, 0), (ph, 2 * th + 2 - h - ph), (pw, 2 * tw + 2 - w - pw)))
    d = sliding_windows(xpad, (4, 4))[:, :, ::2, ::2]
    bt = xp.asarray(BT, dtype=x.dtype)
    v = bt @ d @ bt.T  # (n, c, th, tw, 4, 4)
    return xp.ascontiguousarray(v.transpose(4, 5, 1, 0, 2, 3)).reshape(16, c, n * th * tw)


def winograd_output_transform(m, out_shape):
    xp = get_array_module(m)
    n, k, oh, ow = out_shape
    th, tw = _tiles(oh), _tiles(ow)
    at = xp.asarray(AT, dtype=m.dtype)
    tiles = m.reshape(4, 4, k, n, th, tw).transpose(3, 2, 4, 5, 0, 1)
    y = (at @ tiles @ at.T).transpose(0, 1, 2, 4, 3, 5).reshape(n, k, 2 * th, 2 * tw)
    return xp.ascontiguousarray(y[:, :, :oh, :ow])


def winograd_output_transform_adjoint(gy):
    xp = get_array_module(gy)
    n, k, oh, ow = gy.shape
    th, tw = _tiles(oh), _tiles(ow)
    gpad = xp.pad(gy, ((0, 0), (0, 0), (0, 2 * th - oh), (0, 2 * tw - ow)))
    tiles = gpad.reshape(n, k, th, 2, tw, 2).transpose(0, 1, 2, 4, 3, 5)
    at = xp.asarray(AT, dtype=gy.dtype)
    gm = at.T @ tiles @ at  # (n, k, th, tw, 4, 4)
    return xp.ascontiguousarray(gm.transpose(4, 5, 1, 0, 2, 3)).reshape(16, k, n * th * tw)

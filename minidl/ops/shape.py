"""Movement ops: reshape, transpose, indexing, concat/stack, dtype and device casts.

None of these changes a value, they only move values around, so each
backward moves the gradient back: reshape it back, transpose it back, scatter
it back to the indexed positions, split it back into the concatenated pieces.
"""
import numpy as np

from minidl import backend
from minidl.ops._util import ANY, normalize_axis, operands, pick_axis
from minidl.tensor import Function, Tensor


def _shape_arg(shape):
    """reshape(2, 3) and reshape((2, 3)) both mean shape (2, 3)."""
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        shape = shape[0]
    return tuple(int(n) for n in shape)


def _resolve_shape(op, in_shape, shape):
    """The target shape with a single -1 filled in; ValueError naming both shapes on mismatch."""
    size = int(np.prod(in_shape, dtype=np.int64))
    unknown = [i for i, n in enumerate(shape) if n == -1]
    if len(unknown) > 1 or any(n < -1 for n in shape):
        raise ValueError(f"{op}: invalid target shape {shape} (at most one -1, no other negative sizes)")
    known = int(np.prod([n for n in shape if n != -1], dtype=np.int64))
    if unknown:
        if known == 0 or size % known:
            raise ValueError(
                f"{op}: cannot reshape a tensor of shape {in_shape} ({size} elements) into {shape}"
            )
        shape = tuple(size // known if n == -1 else n for n in shape)
    elif known != size:
        raise ValueError(
            f"{op}: cannot reshape a tensor of shape {in_shape} ({size} elements) "
            f"into {shape} ({known} elements)"
        )
    return shape


class Reshape(Function):
    """y = x with a new shape, same elements in the same order.  dL/dx = gy reshaped back."""

    keep_inputs = keep_outputs = ()

    def __init__(self, shape):
        self.shape = shape

    def forward(self, x):
        self.in_shape = x.shape
        return x.reshape(self.shape)

    def backward(self, gy):
        return reshape(gy, self.in_shape)


class Transpose(Function):
    """y = x with its axes permuted by ``axes``.  dL/dx = gy permuted by the inverse permutation."""

    keep_inputs = keep_outputs = ()

    def __init__(self, axes):
        self.axes = axes

    def forward(self, x):
        return x.transpose(self.axes)

    def backward(self, gy):
        inverse = tuple(int(i) for i in np.argsort(self.axes))
        return Transpose(inverse)(gy)


def _unwrap_index(index):
    """Tensors inside an index become their arrays; lists become arrays."""
    if isinstance(index, tuple):
        return tuple(_unwrap_index(i) for i in index)
    if isinstance(index, Tensor):
        return index.data
    if isinstance(index, list):
        return np.asarray(index)
    return index


def _is_advanced(index):
    parts = index if isinstance(index, tuple) else (index,)
    return any(not isinstance(i, (int, np.integer, slice, type(None), type(Ellipsis))) for i in parts)


class GetItem(Function):
    """y = x[index].  dL/dx = zeros of x's shape with gy added at the indexed
    places; with advanced indexing a repeated index receives the sum of its
    gradients."""

    keep_inputs = keep_outputs = ()

    def __init__(self, index):
        self.index = index

    def forward(self, x):
        self.in_shape = x.shape
        try:
            return x[self.index]
        except IndexError as e:
            raise IndexError(f"getitem: {e} (tensor of shape {x.shape})") from None

    def backward(self, gy):
        return GetItemGrad(self.index, self.in_shape)(gy)


class GetItemGrad(Function):
    """The backward of GetItem: scatter gy into zeros of ``in_shape`` at ``index``.
    It is linear in gy, so its own backward is GetItem again."""

    keep_inputs = keep_outputs = ()

    def __init__(self, index, in_shape):
        self.index, self.in_shape = index, in_shape

    def forward(self, gy):
        xp = backend.get_array_module(gy)
        gx = xp.zeros(self.in_shape, dtype=gy.dtype)
        if _is_advanced(self.index):
            backend.scatter_add(gx, self.index, gy)
        else:
            gx[self.index] = gy
        return gx

    def backward(self, ggx):
        return GetItem(self.index)(ggx)


class Concat(Function):
    """y = the inputs joined along ``axis``.  dL/dx_i = the slice of gy that x_i filled."""

    keep_inputs = keep_outputs = ()

    def __init__(self, axis):
        self.axis = axis

    def forward(self, *xs):
        self.sizes = [x.shape[self.axis] for x in xs]
        xp = backend.get_array_module(xs[0])
        return xp.concatenate(xs, axis=self.axis)

    def backward(self, gy):
        grads, start = [], 0
        lead = (slice(None),) * self.axis
        for size in self.sizes:
            stop = start + size
            grads.append(gy[lead + (slice(start, stop),)])
            start = stop
        return tuple(grads)


class Cast(Function):
    """y = x converted to ``dtype``.  dL/dx = gy converted back to x's dtype."""

    keep_inputs = keep_outputs = ()

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)

    def forward(self, x):
        self.in_dtype = x.dtype
        return x.astype(self.dtype)

    def backward(self, gy):
        return cast(gy, self.in_dtype)


class ToDevice(Function):
    """y = x copied to ``device``.  dL/dx = gy copied back to x's device."""

    keep_inputs = keep_outputs = ()

    def __init__(self, device):
        self.device = device

    def forward(self, x):
        self.in_device = backend.device_of(x)
        return backend.to_device(x, self.device)

    def backward(self, gy):
        return ToDevice(self.in_device)(gy)


# --- user-facing functions ------------------------------------------------------

def reshape(x, *shape):
    shape = _resolve_shape("reshape", x.shape, _shape_arg(shape))
    if shape == x.shape:
        return x
    return Reshape(shape)(x)


def transpose(x, *axes):
    """``transpose()`` reverses the axes (``.T``); ``transpose(d0, d1)`` swaps two
    axes (PyTorch); ``transpose((p0, p1, ...))`` applies a full permutation (NumPy)."""
    if not axes:
        perm = tuple(range(x.ndim))[::-1]
    elif len(axes) == 1 and isinstance(axes[0], (tuple, list)):
        return permute(x, *axes[0])
    elif len(axes) == 2:
        d0, d1 = normalize_axis("transpose", axes[0], x.ndim)[0], normalize_axis("transpose", axes[1], x.ndim)[0]
        perm = list(range(x.ndim))
        perm[d0], perm[d1] = perm[d1], perm[d0]
        perm = tuple(perm)
    else:
        raise TypeError(
            f"transpose: give no axes, two axes to swap, or one full permutation tuple; got {axes}"
        )
    return Transpose(perm)(x)


def permute(x, *dims):
    dims = _shape_arg(dims)
    if sorted(d % max(x.ndim, 1) for d in dims) != list(range(x.ndim)) or len(dims) != x.ndim:
        raise ValueError(f"permute: {dims} is not a permutation of the {x.ndim} axes of shape {x.shape}")
    return Transpose(tuple(d % x.ndim for d in dims))(x)


def flatten(x, start_dim=0, end_dim=-1):
    if x.ndim == 0:
        return reshape(x, 1)
    start, end = normalize_axis("flatten", start_dim, x.ndim)[0], normalize_axis("flatten", end_dim, x.ndim)[0]
    if start > end:
        raise ValueError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim}")
    return reshape(x, x.shape[:start] + (-1,) + x.shape[end + 1:])


def squeeze(x, axis=None, dim=None):
    axis = pick_axis(axis, dim)
    if axis is None:
        return reshape(x, tuple(n for n in x.shape if n != 1))
    axes = normalize_axis("squeeze", axis, x.ndim)
    return reshape(x, tuple(n for i, n in enumerate(x.shape) if not (i in axes and n == 1)))


def unsqueeze(x, dim):
    if not -x.ndim - 1 <= dim <= x.ndim:
        raise ValueError(f"unsqueeze: dim {dim} is out of range for a tensor with {x.ndim} dimensions")
    dim = dim % (x.ndim + 1)
    return reshape(x, x.shape[:dim] + (1,) + x.shape[dim:])


def getitem(x, index):
    return GetItem(_unwrap_index(index))(x)


def concat(tensors, axis=0, *, dim=None):
    axis = pick_axis(axis if dim is None else None, dim)
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("concat: needs at least one tensor")
    first = tensors[0]
    if first.ndim == 0:
        raise ValueError("concat: cannot join 0-d tensors; use stack")
    axis = normalize_axis("concat", axis, first.ndim)[0]
    for t in tensors[1:]:
        if t.ndim != first.ndim or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, first.shape)) if i != axis
        ):
            raise ValueError(
                f"concat: shapes {[x.shape for x in tensors]} differ outside axis {axis}; "
                "all sizes but the joined axis must match"
            )
    return Concat(axis)(*operands("concat", ANY, *tensors))  # mixed dtypes promote, as in torch.cat


cat = concat


def stack(tensors, axis=0, *, dim=None):
    axis = pick_axis(axis if dim is None else None, dim)
    tensors = [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]
    if not tensors:
        raise ValueError("stack: needs at least one tensor")
    shapes = {t.shape for t in tensors}
    if len(shapes) > 1:
        raise ValueError(f"stack: all tensors must have the same shape; got {[t.shape for t in tensors]}")
    return concat([unsqueeze(t, axis) for t in tensors], axis)


def cast(x, dtype):
    if x.dtype == np.dtype(dtype):
        return x
    return Cast(dtype)(x)


def to_device(x, device):
    backend.parse_device(device)
    target = device if ":" in device or device == "cpu" else None
    if target is not None and target == x.device:
        return x
    return ToDevice(device)(x)

"""Tensor and the define-by-run autograd engine.

Every operation is a `Function`. Calling one on tensors runs its
``forward`` on the raw arrays and, when a gradient is wanted, links the
outputs back to it (``output.creator``) and keeps the inputs. That chain of
links *is* the graph: it is built as the program runs ("define by run").

``backward()`` walks the graph from the output towards the leaves. Each
function's ``backward`` gets the gradients of its outputs and returns the
gradients of its inputs (the chain rule, one node at a time). Functions are
visited in decreasing ``generation`` (a function's generation is one more
than that of its newest input), which is a topological order: a function is
only visited after every function that consumes its outputs, so its output
gradients are complete. A heap replaces recursion, so a 5,000-op chain is as
fine as a 5-op one.

Gradients are themselves computed with Tensor operations. Normally that runs
in ``no_grad`` mode; with ``create_graph=True`` it is recorded, so the
gradient can be differentiated again.

Memory: a tensor holds its creator; a Function holds, for each input, where
its gradient goes (the leaf itself, or the input's creator and output index),
and its outputs only weakly, so the graph has no reference cycles and is freed
by reference counting as soon as the last output is dropped. Of the arrays, a
Function keeps only what its ``backward`` declared it reads (``keep_inputs``,
``keep_outputs``); an intermediate tensor that no backward reads is freed as
soon as the program drops it, although the graph runs through it. Gradients
are keyed by that place in the graph, not by the tensor object, for the same
reason. ``backward`` releases what each function kept as it passes (unless
``retain_graph``).
"""
import contextlib
import heapq
import itertools
import numbers
import weakref

import numpy as np

from minidl import backend
from minidl.config import config, using_config


# --- modes ---------------------------------------------------------------------

config.register("grad_enabled", True, per_thread=True, check=bool,
                doc="Whether ops record the graph that backward() walks (no_grad() turns it off). Per thread, "
                    "as in PyTorch: an optimizer step or an evaluation under no_grad() in one thread must not "
                    "stop another thread's training from recording its graph.")
config.register("anomaly", False, per_thread=True, check=bool,
                doc="Whether every op checks its outputs and gradients for NaN and inf (detect_anomaly()). Per "
                    "thread, like grad_enabled: it is a way of running the code on the thread that asks for it.")
_local = config.local  # the per-thread values, read directly on every op call


def is_grad_enabled():
    return _local.grad_enabled


class set_grad_enabled(contextlib.ContextDecorator):
    """Context (or decorator) in which graph recording is on or off: ``using_config('grad_enabled',
    enabled)``, written out because every backward() and optimizer step enters it, where the
    generic path's lookups cost a few microseconds."""

    def __init__(self, enabled):
        self.enabled = bool(enabled)

    def __enter__(self):
        self.old, _local.grad_enabled = _local.grad_enabled, self.enabled

    def __exit__(self, *exc):
        _local.grad_enabled = self.old


def no_grad():
    """Context in which operations build no graph (inference, optimizer steps)."""
    return set_grad_enabled(False)


def enable_grad():
    return set_grad_enabled(True)


class AnomalyError(FloatingPointError):
    """Raised inside ``detect_anomaly()`` by the first op that makes NaN or inf."""


def detect_anomaly():
    """Context in which the first operation (forward or backward) that produces
    NaN or inf raises `AnomalyError` naming the op. Costs one
    ``isfinite`` pass per op output, so it is for debugging, not training."""
    return using_config("anomaly", True)


def _check_finite(fn, arrays, where):
    for i, a in enumerate(arrays):
        if a is None or a.dtype.kind not in "fc":
            continue
        xp = backend.get_array_module(a)
        if not bool(xp.isfinite(a).all()):
            n_nan = int(xp.isnan(a).sum())
            n_inf = int(a.size - xp.isfinite(a).sum()) - n_nan
            raise AnomalyError(
                f"{type(fn).__name__} produced {n_nan} NaN and {n_inf} inf values in {where} {i} "
                f"(shape {tuple(a.shape)}, dtype {a.dtype})"
            )


# --- dtypes -------------------------------------------------------------------
# The dtype policy, in one place: what a tensor may hold (checked when it is made or cast) and how
# dtypes combine (PyTorch's rules), which the ops apply at entry (minidl.ops._util.operands).
# docs/learn/autograd-engine.md tabulates it.

DEFAULT_FLOAT = np.dtype(np.float32)  # what integer inputs of floating-point ops become, as in PyTorch
SUPPORTED_DTYPES = "bool, signed and unsigned integers, float16, float32 and float64"
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2}  # bool < integer < floating point


def _supported(dtype):
    return dtype.kind in "biu" or (dtype.kind == "f" and dtype.itemsize <= 8)  # no long double


def check_dtype(where, dtype):
    """``dtype`` as a NumPy dtype, if a tensor may hold it; TypeError naming ``where`` otherwise.
    Complex, object, string, datetime and structured dtypes are refused: no op is written for them,
    and they would fail deep inside NumPy or, worse, compute something (a complex loss)."""
    try:
        d = np.dtype(dtype)
    except TypeError:
        raise TypeError(f"{where}: {dtype!r} is not a dtype; a tensor holds {SUPPORTED_DTYPES}") from None
    if not _supported(d):
        raise TypeError(f"{where}: dtype {d} is not supported; a tensor holds {SUPPORTED_DTYPES}")
    return d


def _category(where, dtype):
    c = _CATEGORY.get(dtype.kind)
    if c is None or dtype.itemsize > 8:  # an array put into .data by hand, past the checks
        check_dtype(where, dtype)
    return c


def promote_types(where, a, b):
    """PyTorch's ``promote_types``: across categories (bool < integer < floating point) the higher
    operand's dtype (int64 with float32 is float32, where NumPy says float64); within one, the
    smallest dtype that holds both (uint8 with int8 is int16)."""
    if a == b:
        return a
    ca, cb = _category(where, a), _category(where, b)
    if ca != cb:
        return a if ca > cb else b
    d = np.promote_types(a, b)
    if d.kind != a.kind and d.kind != b.kind:  # uint64 with a signed integer: NumPy gives float64
        raise ValueError(f"{where}: no integer dtype holds both {a} and {b}; convert one of them first")
    return d


def result_type(where, arrays):
    """The dtype PyTorch computes an op on ``arrays`` in. Arrays with dimensions decide; a 0-d
    array (a scalar tensor) counts only if its category is higher, so ``float32 tensor * 0-d
    float64`` stays float32 but ``int64 tensor * 0-d float64`` is float64. (Python numbers are
    weaker still: see `scalar_dtype`.)"""
    dim = zero = None
    for a in arrays:
        d = a.dtype
        if a.ndim:
            dim = d if dim is None else promote_types(where, dim, d)
        else:
            zero = d if zero is None else promote_types(where, zero, d)
    if dim is None or zero is None:
        return zero if dim is None else dim
    return promote_types(where, dim, zero) if _category(where, zero) > _category(where, dim) else dim


def scalar_dtype(where, dtype, value):
    """The dtype of a Python number next to a tensor of ``dtype`` (PyTorch's "wrapped numbers"):
    the tensor's own unless the number is of a higher category; then int64 for an int, the default
    float32 for a float. So ``int64 tensor * 0.5`` is float32 and ``uint8 tensor + 1`` uint8. An
    int that the integer dtype cannot hold is refused rather than wrapped around."""
    kind = type(value)  # exact types first: the ABC check is slow, and x * 2.0 is everywhere
    c = (2 if kind is float else 1 if kind is int else 0 if kind is bool or kind is np.bool_
         else 1 if isinstance(value, numbers.Integral) else 2)
    if c > _category(where, dtype):
        dtype = np.dtype(np.int64) if c == 1 else DEFAULT_FLOAT
    if c == 1 and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if not info.min <= value <= info.max:
            raise ValueError(f"{where}: {value} does not fit in {dtype} (range {info.min} to {info.max}); "
                             "convert the tensor to a wider dtype first")
    return dtype


# --- Tensor -------------------------------------------------------------------

def _to_array(data, dtype=None):
    """Array from user data. An ndarray keeps its dtype; Python floats (and
    lists of them) become float32, as in PyTorch. Dtypes outside the policy
    (``check_dtype``) are refused here, so that no op ever sees them."""
    if isinstance(data, Tensor):
        data = data.data
    if dtype is not None:
        dtype = check_dtype("Tensor", dtype)
    if backend.is_array(data):
        a = data if dtype is None else data.astype(dtype, copy=False)
    elif isinstance(data, np.generic):
        a = np.asarray(data, dtype=dtype)
    else:
        try:
            a = np.asarray(data)
        except ValueError as e:  # a ragged list
            raise ValueError(f"Tensor: cannot make a tensor from this {type(data).__name__}: {e}") from None
        if a.dtype == object:
            raise TypeError(f"Tensor: cannot make a tensor from {type(data).__name__}: its values are not all "
                            f"numbers (or are integers beyond 64 bits); a tensor holds {SUPPORTED_DTYPES}")
        if dtype is None and a.dtype == np.float64:
            a = a.astype(np.float32)
        elif dtype is not None:
            a = a.astype(dtype, copy=False)
    check_dtype("Tensor", a.dtype)
    if not a.dtype.isnative:  # big-endian data from a file: the compiled kernels assume native order
        a = a.astype(a.dtype.newbyteorder("="))
    return a


def _is_float(dtype):
    return dtype.kind == "f"


class _Size(int):
    """``x.size`` is the number of elements (NumPy); ``x.size()`` and
    ``x.size(dim)`` give the shape (PyTorch). This int subclass serves both."""

    def __new__(cls, shape):
        n = int(np.prod(shape, dtype=np.int64))
        self = super().__new__(cls, n)
        self._shape = shape
        return self

    def __call__(self, dim=None):
        return self._shape if dim is None else self._shape[dim]


class Tensor:
    """An n-dimensional array with an optional gradient.

    ``data`` is a ``numpy.ndarray`` or ``cupy.ndarray``; ``grad`` is a Tensor or
    None; ``creator`` is the Function that made this tensor (None for a leaf).
    """

    __array_priority__ = 200
    __array_ufunc__ = None  # make `ndarray op Tensor` defer to Tensor's reflected op
    __hash__ = object.__hash__  # __eq__ is elementwise, identity stays the hash
    _counter = None  # [version], created by the first in-place change; shared with detach()

    def __init__(self, data, requires_grad=False, dtype=None):
        self.data = _to_array(data, dtype)
        self.grad = None
        self.creator = None
        self.generation = 0
        self._index = 0  # which output of its creator this tensor is
        self._requires_grad = False
        self._retains_grad = False
        self.requires_grad = requires_grad

    @classmethod
    def _wrap(cls, array):
        """A fresh leaf around an array, skipping validation (the ops' hot path)."""
        t = cls.__new__(cls)
        t.data = array
        t.grad = None
        t.creator = None
        t.generation = 0
        t._index = 0
        t._requires_grad = False
        t._retains_grad = False
        return t

    # properties ---------------------------------------------------------------
    @property
    def requires_grad(self):
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value):
        if value and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients; this tensor is {self.data.dtype} "
                "(convert it first, e.g. x.astype(np.float32))"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad=True):
        """Set ``requires_grad`` in place and return the tensor (PyTorch's spelling); only a leaf's
        flag can change, since a computed tensor's follows from its inputs."""
        if self.creator is not None:
            raise RuntimeError(f"requires_grad_: only a leaf tensor's flag can change; this one was computed by "
                               f"{type(self.creator).__name__} (use detach() for a leaf of the same values)")
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self):
        return self.creator is None

    @property
    def shape(self):
        return tuple(self.data.shape)

    @property
    def ndim(self):
        return self.data.ndim

    @property
    def size(self):
        return _Size(self.shape)

    def numel(self):
        return int(self.data.size)

    def dim(self):
        return self.data.ndim

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self):
        return backend.device_of(self.data)

    def __len__(self):
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self):
        body = np.array2string(backend.as_numpy(self.data), separator=", ", prefix="tensor(")
        extra = f", dtype={self.dtype}"
        if self.device != "cpu":
            extra += f", device='{self.device}'"
        if self.requires_grad:
            extra += ", requires_grad=True"
        return f"tensor({body}{extra})"

    def __array__(self, dtype=None, copy=None):
        if self.requires_grad:
            raise TypeError(
                "cannot convert a tensor that requires grad to a NumPy array implicitly; "
                "use x.detach().numpy()"
            )
        a = backend.as_numpy(self.data)
        return a if dtype is None else a.astype(dtype)

    def __bool__(self):
        if self.data.size != 1:
            raise ValueError(
                f"the truth value of a tensor with {self.data.size} elements is ambiguous; "
                "use .any() or .all()"
            )
        return bool(self.data)

    # conversion -----------------------------------------------------------
    def numpy(self):
        """The values as a host ``numpy.ndarray`` (shares memory on the CPU)."""
        return backend.as_numpy(self.data)

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element; this one has shape {self.shape}")
        return self.data.item()

    def __float__(self):
        if self.data.size != 1:
            raise ValueError(f"float(): only a tensor with one element converts to a Python number; this one has "
                             f"shape {self.shape}")
        return float(self.data.item())

    def __int__(self):
        if self.data.size != 1:
            raise ValueError(f"int(): only a tensor with one element converts to a Python number; this one has "
                             f"shape {self.shape}")
        return int(self.data.item())

    def tolist(self):
        return backend.as_numpy(self.data).tolist()

    def detach(self):
        """The same data, cut from the graph (shares memory, and the count of in-place changes)."""
        t = Tensor._wrap(self.data)
        if self._counter is None:
            self._counter = [0]
        t._counter = self._counter
        return t

    def to(self, device=None, dtype=None):
        out = self
        if dtype is not None:
            out = ops.cast(out, check_dtype("Tensor.to", dtype))
        if device is not None:
            out = ops.to_device(out, device)
        return out

    def cpu(self):
        return self.to("cpu")

    def cuda(self, index=None):
        return self.to("cuda" if index is None else f"cuda:{index}")

    def astype(self, dtype):
        return ops.cast(self, check_dtype("Tensor.astype", dtype))

    def float(self):
        return self.astype(np.float32)

    def long(self):
        """This tensor as int64 (class labels, indices): not differentiable, as in PyTorch."""
        return self.astype(np.int64)

    def double(self):
        return self.astype(np.float64)

    # autograd ---------------------------------------------------------------
    def retain_grad(self):
        """Keep ``.grad`` for this non-leaf tensor too (leaves always keep it)."""
        self._retains_grad = True

    def zero_grad(self):
        self.grad = None

    def backward(self, gradient=None, retain_graph=False, create_graph=False):
        """Accumulate d(self)/d(leaf) into ``leaf.grad`` for every leaf that requires grad.

        ``gradient`` is the gradient of some scalar with respect to ``self``;
        it may be omitted only when ``self`` has one element (then it is 1).
        """
        if not self.requires_grad:
            raise RuntimeError(
                "backward(): this tensor does not require grad and has no graph; "
                "create the inputs with requires_grad=True, outside no_grad()"
            )
        if gradient is None:
            if self.data.size != 1:
                raise ValueError(
                    f"backward() without a gradient needs a tensor with one element; this one has "
                    f"shape {self.shape}. Reduce it first (e.g. .sum()) or pass gradient= of that shape"
                )
            gradient = Tensor._wrap(backend.get_array_module(self.data).ones_like(self.data))
        run_backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph)

    # in place ----------------------------------------------------------------
    # PyTorch's rules: in place on the array under no_grad() (an optimizer's step, w -= lr * w.grad),
    # never on a tensor that requires grad while the graph is being recorded. Each in-place change
    # bumps the tensor's version, so that a backward which reads the old values fails (see
    # Function._record and run_backward) instead of computing with the new ones.

    @property
    def _version(self):
        """How many times this tensor's data was changed in place (shared with its detach())."""
        return 0 if self._counter is None else self._counter[0]

    def _bump_version(self):
        if self._counter is None:
            self._counter = [0]
        self._counter[0] += 1

    def _check_inplace(self, name, other=None):
        if not _local.grad_enabled:
            return
        if self._requires_grad:
            if self.creator is None:
                raise RuntimeError(
                    f"{name}: a leaf tensor that requires grad (shape {self.shape}) cannot be changed in place "
                    "while gradients are recorded; do it under `with mdl.no_grad():` (as an optimizer step does) "
                    "or use an out-of-place operation (x = x + y)")
            raise RuntimeError(
                f"{name}: this tensor (shape {self.shape}) was computed by {type(self.creator).__name__} in a "
                "graph; minidl does not rewrite a graph for an in-place change: use an out-of-place operation "
                "(x = x + y), or detach() it first")
        if isinstance(other, Tensor) and other._requires_grad:
            raise RuntimeError(
                f"{name}: the result would depend on a tensor that requires grad (shape {other.shape}), which an "
                "in-place change cannot record; use an out-of-place operation (x = x + y)")

    def _check_broadcasts_here(self, name, what, shape):
        """An in-place operand must broadcast to this tensor's shape, which the change cannot alter."""
        try:
            fits = shape == self.shape or np.broadcast_shapes(self.shape, shape) == self.shape
        except ValueError:
            fits = False
        if not fits:
            raise ValueError(f"{name}: {what} of shape {shape} does not broadcast to this tensor's shape "
                             f"{self.shape}, which an in-place operation cannot change")

    def _inplace(self, name, ufunc, other):
        self._check_inplace(name, other)
        value = other.data if isinstance(other, Tensor) else other
        xp = backend.get_array_module(self.data)
        if backend.is_array(value):
            backend.check_same_device(name, [self.data, value])
        elif not isinstance(value, (bool, int, float)):
            value = xp.asarray(value)
        self._check_broadcasts_here(name, "an operand", np.shape(value))
        result = np.result_type(self.data.dtype, value if isinstance(value, (bool, int, float)) else value.dtype)
        if not np.can_cast(result, self.data.dtype, casting="same_kind"):
            raise TypeError(f"{name}: the result type {result} cannot be stored in this {self.data.dtype} tensor "
                            "in place; convert the tensor first (x = x.astype(...))")
        getattr(xp, ufunc)(self.data, value, out=self.data, casting="same_kind")
        self._bump_version()
        return self

    def add_(self, other, alpha=1):
        """self += alpha * other, in place; returns self."""
        return self._inplace("add_", "add", other if alpha == 1 else other * alpha)

    def sub_(self, other, alpha=1):
        """self -= alpha * other, in place; returns self."""
        return self._inplace("sub_", "subtract", other if alpha == 1 else other * alpha)

    def mul_(self, other):
        return self._inplace("mul_", "multiply", other)

    def div_(self, other):
        return self._inplace("div_", "true_divide", other)

    def __iadd__(self, other):
        return self._inplace("+=", "add", other)

    def __isub__(self, other):
        return self._inplace("-=", "subtract", other)

    def __imul__(self, other):
        return self._inplace("*=", "multiply", other)

    def __itruediv__(self, other):
        return self._inplace("/=", "true_divide", other)

    def copy_(self, src):
        """Overwrite this tensor's values with ``src``'s (broadcast to its shape), in place."""
        self._check_inplace("copy_", src)
        value = src.data if isinstance(src, Tensor) else src
        if backend.is_array(value):
            value = backend.to_device(value, self.device)
        self._check_broadcasts_here("copy_", "a source", np.shape(value))
        self.data[...] = value
        self._bump_version()
        return self

    def zero_(self):
        return self.fill_(0)

    def fill_(self, value):
        self._check_inplace("fill_")
        self.data.fill(value)
        self._bump_version()
        return self

    def clamp_(self, min=None, max=None):
        """Clip the values to [min, max] in place (either may be None)."""
        if min is None and max is None:
            raise ValueError("clamp_: give min, max or both")
        self._check_inplace("clamp_")
        backend.get_array_module(self.data).clip(self.data, min, max, out=self.data)
        self._bump_version()
        return self

    # operators -------------------------------------------------------------
    def __neg__(self):
        return ops.neg(self)

    def __add__(self, other):
        return ops.add(self, other)

    def __radd__(self, other):
        return ops.add(other, self)

    def __sub__(self, other):
        return ops.sub(self, other)

    def __rsub__(self, other):
        return ops.sub(other, self)

    def __mul__(self, other):
        return ops.mul(self, other)

    def __rmul__(self, other):
        return ops.mul(other, self)

    def __truediv__(self, other):
        return ops.div(self, other)

    def __rtruediv__(self, other):
        return ops.div(other, self)

    def __pow__(self, other):
        return ops.pow(self, other)

    def __rpow__(self, other):
        return ops.pow(other, self)

    def pow(self, exponent):
        """``self ** exponent`` (PyTorch's spelling)."""
        return ops.pow(self, exponent)

    def __matmul__(self, other):
        return ops.matmul(self, other)

    def __rmatmul__(self, other):
        return ops.matmul(other, self)

    def __getitem__(self, index):
        return ops.getitem(self, index)

    # comparisons are not differentiable: they return bool tensors off the graph
    def _compare(self, other, name):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor._wrap(getattr(self.data, name)(other))

    def __eq__(self, other):
        return self._compare(other, "__eq__")

    def __ne__(self, other):
        return self._compare(other, "__ne__")

    def __lt__(self, other):
        return self._compare(other, "__lt__")

    def __le__(self, other):
        return self._compare(other, "__le__")

    def __gt__(self, other):
        return self._compare(other, "__gt__")

    def __ge__(self, other):
        return self._compare(other, "__ge__")

    # methods -----------------------------------------------------------------
    def reshape(self, *shape):
        return ops.reshape(self, *shape)

    view = reshape

    def transpose(self, *axes):
        return ops.transpose(self, *axes)

    def permute(self, *dims):
        return ops.permute(self, *dims)

    @property
    def T(self):
        return ops.transpose(self)

    def flatten(self, start_dim=0, end_dim=-1):
        return ops.flatten(self, start_dim, end_dim)

    def squeeze(self, axis=None, dim=None):
        return ops.squeeze(self, axis, dim=dim)

    def unsqueeze(self, dim):
        return ops.unsqueeze(self, dim)

    def expand_dims(self, axis):
        return ops.unsqueeze(self, axis)

    def broadcast_to(self, shape):
        return ops.broadcast_to(self, shape)

    def sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.sum(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.mean(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def max(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.max(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def min(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return ops.min(self, axis, keepdims, dim=dim, keepdim=keepdim)

    def argmax(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """The index of the largest value along ``axis`` (of the flattened tensor for None), int64;
        the first one where several tie. Not differentiable."""
        return self._arg_extremum("argmax", ops._util.pick_axis(axis, dim), ops._util.pick_keepdims(keepdims, keepdim))

    def argmin(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return self._arg_extremum("argmin", ops._util.pick_axis(axis, dim), ops._util.pick_keepdims(keepdims, keepdim))

    def _arg_extremum(self, name, axis, keepdims):
        axes = ops._util.normalize_axis(name, axis, self.ndim)
        if any(self.shape[a] == 0 for a in axes):
            raise ValueError(f"{name}: cannot take the {name} over an empty axis; got shape {self.shape}")
        if axis is not None and not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{name}: axis must be one int or None; got {axis!r}")
        return Tensor._wrap(getattr(self.data, name)(axis=axis, keepdims=keepdims).astype(np.int64, copy=False))

    def any(self):
        return bool(self.data.any())

    def all(self):
        return bool(self.data.all())

    def exp(self):
        return ops.exp(self)

    def log(self):
        return ops.log(self)

    def sqrt(self):
        return ops.sqrt(self)

    def abs(self):
        return ops.abs(self)

    def clip(self, min=None, max=None):
        return ops.clip(self, min, max)

    clamp = clip

    def relu(self):
        return ops.relu(self)

    def tanh(self):
        return ops.tanh(self)

    def sigmoid(self):
        return ops.sigmoid(self)

    def softmax(self, axis=-1, *, dim=None):
        return ops.softmax(self, axis, dim=dim)

    def log_softmax(self, axis=-1, *, dim=None):
        return ops.log_softmax(self, axis, dim=dim)


# --- Function -------------------------------------------------------------------

_REGISTRY = {}


def registered_ops():
    """Every differentiable Function defined inside minidl, by class name."""
    return dict(_REGISTRY)


class _Edge:
    """Where the gradient of a Function's input goes, for an input the Function does not keep:
    the input's creator and output index (its place in the graph) and its shape and dtype
    (to check and cast the gradient), without the input's array."""

    __slots__ = ("creator", "_index", "shape", "dtype")

    def __init__(self, t):
        self.creator, self._index, self.shape, self.dtype = t.creator, t._index, t.shape, t.dtype


def _key(t):
    """The identity of a tensor in the graph, shared by the tensor and its edges: a leaf is
    itself; a computed tensor is output ``_index`` of its creator."""
    return id(t) if t.creator is None else (id(t.creator), t._index)


class Function:
    """A differentiable operation.

    Subclasses define ``forward(*arrays) -> array or tuple of arrays`` and
    ``backward(*grad_outputs) -> Tensor or tuple of Tensors`` (one per input,
    None where an input gets no gradient). ``backward`` is written with Tensor
    operations, so it is differentiable itself. Inside ``backward``,
    ``self.inputs`` are the input Tensors, ``self.output(i)`` the i-th
    output Tensor and ``self.needs_input_grad[i]`` whether input i wants a
    gradient. Settings that are not tensors (an axis, a stride) are passed to
    ``__init__``; values derived in ``forward`` (a shape) can be kept as attributes.

    What backward reads is declared, so that the engine keeps only that until
    backward runs (Chainer's ``retain_inputs``/``retain_outputs``): ``keep_inputs``
    and ``keep_outputs`` are tuples of the indices backward reads; the rest are
    not held by the graph, and ``self.inputs[i]`` is None for an input not kept.
    ``None`` (the default, for Functions written outside minidl) keeps them all.

    A Function instance is used for one call (a second raises): its attributes hold that call's
    inputs and settings until its backward has run.
    """

    inputs = None
    needs_input_grad = None
    _edges = None  # per input: the Tensor or _Edge its gradient goes to, None for a constant
    _outputs = None  # weak references to the output Tensors
    _kept_outputs = None  # the arrays of the outputs backward reads
    generation = 0
    keep_inputs = None
    keep_outputs = None
    _called = False
    _versions = None  # the kept inputs' versions when recorded, where one had changed in place before
    # False for ops whose backward is a closed-form kernel on arrays (LRN, batch norm): their
    # gradient is right, but it cannot be differentiated again, so create_graph=True refuses them.
    double_backward = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("minidl.") and not cls.__name__.startswith("_"):
            _REGISTRY[cls.__name__] = cls

    def __call__(self, *inputs):
        # Every op runs through here and _record, so both are written as plain loops: generator
        # expressions cost about a microsecond each, the price of a small op's arithmetic.
        if self._called:
            raise RuntimeError(
                f"{type(self).__name__}: this Function instance was already called; an instance holds one "
                f"call's inputs for its backward, so create one per call: {type(self).__name__}(...)(x)")
        self._called = True
        for x in inputs:
            if not isinstance(x, Tensor):
                inputs = tuple(x if isinstance(x, Tensor) else Tensor(x) for x in inputs)
                break
        xs = [x.data for x in inputs]
        if len(xs) > 1:
            backend.check_same_device(type(self).__name__, xs)
        ys = self.forward(*xs)
        if not isinstance(ys, tuple):
            ys = (ys,)
        outputs = []
        for y in ys:
            if not backend.is_array(y):
                # A NumPy scalar result (a 0-d reduction) becomes an array on the inputs' device; an
                # array stays where forward put it (ToDevice's output is on another device).
                y = (backend.get_array_module(xs[0]) if xs else np).asarray(y)
            outputs.append(Tensor._wrap(y))
        if _local.anomaly:
            _check_finite(self, [o.data for o in outputs], "forward output")
        if _local.grad_enabled:
            for x in inputs:
                if x._requires_grad:
                    self._record(inputs, outputs)
                    break
        return outputs[0] if len(outputs) == 1 else tuple(outputs)

    def _record(self, inputs, outputs):
        """Link the outputs to this Function, keeping what backward declared it reads."""
        keep = self.keep_inputs
        generation, needs, kept, edges = 0, [], [], []
        for i, x in enumerate(inputs):
            generation = max(generation, x.generation)
            needs.append(x._requires_grad)
            k = x if keep is None or i in keep else None
            kept.append(k)
            if k is not None and k._counter is not None and k._counter[0]:
                if self._versions is None:
                    self._versions = [0] * len(inputs)
                self._versions[i] = k._counter[0]
            edges.append(None if not x._requires_grad else x if x.creator is None or k is not None else _Edge(x))
        self.generation = generation
        self.needs_input_grad, self.inputs, self._edges = tuple(needs), tuple(kept), tuple(edges)
        keep = self.keep_outputs
        self._kept_outputs = tuple(o.data if keep is None or i in keep else None for i, o in enumerate(outputs))
        self._outputs = [weakref.ref(o) for o in outputs]
        if len(outputs) > 1:  # to make zero gradients for outputs that were dropped
            self._output_specs = [(o.data.shape, o.data.dtype) for o in outputs]
        for i, o in enumerate(outputs):
            if _is_float(o.data.dtype):
                o._requires_grad = True
                o.creator = self
                o.generation = generation + 1
                o._index = i

    def output(self, i=0):
        """The i-th output Tensor (for backward passes that reuse it, e.g. exp, tanh). If the
        caller dropped it, a Tensor around its kept array takes its place in the graph."""
        if self._kept_outputs[i] is None:
            raise RuntimeError(f"{type(self).__name__}.backward reads output {i}, but its keep_outputs "
                               f"{self.keep_outputs} does not keep it")
        y = self._outputs[i]()
        if y is None:
            y = Tensor._wrap(self._kept_outputs[i])
            y._requires_grad, y.creator, y.generation, y._index = True, self, self.generation + 1, i
            self._outputs[i] = weakref.ref(y)
        return y

    @property
    def next_functions(self):
        """``(creator, output index)`` of each input, ``(None, 0)`` for a leaf or a constant: the
        edges that backward follows from here (PyTorch's ``grad_fn.next_functions``). Empty
        once backward has freed this part of the graph."""
        return tuple((None, 0) if e is None or e.creator is None else (e.creator, e._index)
                     for e in self._edges or ())

    def forward(self, *xs):
        raise NotImplementedError(f"{type(self).__name__}.forward")

    def backward(self, *gys):
        raise NotImplementedError(f"{type(self).__name__}.backward")

    def _release(self):
        self.inputs = self._edges = self._kept_outputs = None


def _check_versions(f):
    """Fail if an input or output that f's backward reads was changed in place since f ran."""
    versions = f._versions
    for i, x in enumerate(f.inputs):
        if x is not None and x._counter is not None and x._counter[0] != (versions[i] if versions else 0):
            _modified(f, f"input {i}", x, versions[i] if versions else 0)
    kept = f._kept_outputs
    for i, ref in enumerate(f._outputs):
        if kept[i] is not None:
            y = ref()
            if y is not None and y._counter is not None and y._counter[0]:
                _modified(f, f"output {i}", y, 0)


def _modified(f, which, t, expected):
    name = type(f).__name__
    raise RuntimeError(
        f"backward(): {which} of {name} (shape {t.shape}), which {name}'s backward reads, was changed in place "
        f"after {name} used it (it is at version {t._version}; {name} saw version {expected}). Use an "
        "out-of-place operation (x = x + y) where the old values are still needed, or make the change "
        "before the tensor is used"
    )


def _accumulate(grads, t, g):
    key = _key(t)
    if key in grads:
        grads[key] = (t, grads[key][1] + g)
    else:
        grads[key] = (t, g)


def run_backward(outputs, grad_outputs, retain_graph=False, create_graph=False, targets=None):
    """The engine behind ``Tensor.backward`` and `grad`.

    Propagates ``grad_outputs`` from ``outputs`` through the graph. Without
    ``targets``, gradients are accumulated into ``.grad`` of every leaf that
    requires grad (and of non-leaves that ``retain_grad()``). With
    ``targets`` (a list of tensors), their gradients are returned instead and
    no ``.grad`` is touched.
    """
    grads = {}  # id(tensor) -> (tensor, gradient); the tensor is kept alive here
    heap, seen, order = [], set(), itertools.count()

    def push(f):
        if id(f) not in seen:
            seen.add(id(f))
            heapq.heappush(heap, (-f.generation, next(order), f))

    for y, gy in zip(outputs, grad_outputs):
        gy = gy if isinstance(gy, Tensor) else Tensor(gy)
        if gy.shape != y.shape:
            raise ValueError(f"backward(): gradient has shape {gy.shape}, but the tensor has shape {y.shape}")
        _accumulate(grads, y, gy.astype(y.dtype) if gy.dtype != y.dtype else gy)
        if y.creator is not None:
            push(y.creator)

    target_keys = None if targets is None else {_key(t) for t in targets}

    with set_grad_enabled(create_graph):
        while heap:
            f = heapq.heappop(heap)[2]
            if f._edges is None:
                raise RuntimeError(
                    f"backward() through {type(f).__name__} a second time: its graph was freed by the "
                    "first backward(). Pass retain_graph=True to the first call if you need two."
                )
            gys = []
            for i, ref in enumerate(f._outputs):
                key = (id(f), i)
                entry = grads.get(key)
                if entry is not None and (target_keys is None or key not in target_keys):
                    del grads[key]
                    y = ref()
                    if y is not None and y._retains_grad and targets is None:
                        y.grad = entry[1] if y.grad is None else y.grad + entry[1]
                gys.append(None if entry is None else entry[1])
            if all(g is None for g in gys):
                continue
            _check_versions(f)
            if create_graph and not f.double_backward:
                raise RuntimeError(
                    f"{type(f).__name__} does not support create_graph=True: its backward is a closed-form "
                    "kernel, so second derivatives through it are not available"
                )
            if len(gys) > 1:
                xp = backend.get_array_module(*(g.data for g in gys if g is not None))
                gys = [g if g is not None else Tensor._wrap(xp.zeros(shape, dtype))
                       for g, (shape, dtype) in zip(gys, f._output_specs)]
            if _local.anomaly:
                try:
                    gxs = f.backward(*gys)
                except AnomalyError as e:
                    raise AnomalyError(f"{e}, inside the backward of {type(f).__name__}") from None
            else:
                gxs = f.backward(*gys)
            if not isinstance(gxs, tuple):
                gxs = (gxs,)
            if len(gxs) != len(f._edges):
                raise RuntimeError(
                    f"{type(f).__name__}.backward returned {len(gxs)} gradients for {len(f._edges)} inputs"
                )
            for i, gx in enumerate(gxs):
                if gx is not None and not isinstance(gx, Tensor):
                    raise TypeError(
                        f"{type(f).__name__}.backward returned a gradient of type {type(gx).__name__} for input "
                        f"{i}; expected a Tensor computed with Tensor ops (so that it can be differentiated "
                        "again), or None"
                    )
            if _local.anomaly:
                _check_finite(f, [None if g is None else g.data for g in gxs], "backward gradient for input")
            for x, gx in zip(f._edges, gxs):
                if gx is None or x is None:
                    continue
                if gx.shape != x.shape:
                    raise RuntimeError(
                        f"{type(f).__name__}.backward returned a gradient of shape {gx.shape} "
                        f"for an input of shape {x.shape}"
                    )
                if gx.dtype != x.dtype:
                    gx = gx.astype(x.dtype)
                _accumulate(grads, x, gx)
                if x.creator is not None:
                    push(x.creator)
            if not retain_graph:
                f._release()

        if targets is not None:
            return [grads[_key(t)][1] if _key(t) in grads else None for t in targets]
        for t, g in grads.values():
            if t.creator is None and t._requires_grad:
                t.grad = g if t.grad is None else t.grad + g
    return None


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False, allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, returned rather than
    accumulated into ``.grad`` (PyTorch's ``torch.autograd.grad``)."""
    single_out = isinstance(outputs, Tensor)
    outputs = [outputs] if single_out else list(outputs)
    single_in = isinstance(inputs, Tensor)
    inputs = [inputs] if single_in else list(inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif isinstance(grad_outputs, Tensor):
        grad_outputs = [grad_outputs]
    gos = []
    for y, g in zip(outputs, grad_outputs):
        if g is None:
            if y.data.size != 1:
                raise ValueError(f"grad(): output of shape {y.shape} needs an explicit grad_output")
            g = Tensor._wrap(backend.get_array_module(y.data).ones_like(y.data))
        gos.append(g)
    if retain_graph is None:
        retain_graph = create_graph
    result = run_backward(outputs, gos, retain_graph=retain_graph, create_graph=create_graph, targets=inputs)
    for t, g in zip(inputs, result):
        if g is None and not allow_unused:
            raise RuntimeError(
                f"grad(): an input of shape {t.shape} is not part of the graph of the outputs; "
                "pass allow_unused=True to get None for it"
            )
    return result[0] if single_in else tuple(result)


from minidl import ops  # noqa: E402  (ops build on Tensor and Function above)

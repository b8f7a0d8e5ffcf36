"""Elementwise arithmetic and math: + - * / ** neg exp log sqrt abs clip maximum.

Binary ops broadcast as NumPy does. The gradient that reaches a broadcast
input has the output's shape; ``sum_to`` folds it back to the input's shape
(see reduction.py). Each backward is written with Tensor ops, so it can be
differentiated again.
"""
from minidl import backend
from minidl.ops._util import binary_operands, broadcast_shape
from minidl.ops.reduction import sum_to
from minidl.tensor import Function, Tensor


class _Binary(Function):
    """Checks broadcastability up front, so a mismatch names the op and both shapes."""

    keep_inputs = (0, 1)

    def __call__(self, a, b):
        if a.shape != b.shape:
            broadcast_shape(type(self).__name__.lower(), a.shape, b.shape)
        return super().__call__(a, b)


class Add(_Binary):
    """y = a + b.  dL/da = gy, dL/db = gy (each summed back to its shape)."""

    keep_inputs = keep_outputs = ()

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a + b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(gy, self.shapes[1])


class Sub(_Binary):
    """y = a - b.  dL/da = gy, dL/db = -gy."""

    keep_inputs = keep_outputs = ()

    def forward(self, a, b):
        self.shapes = a.shape, b.shape
        return a - b

    def backward(self, gy):
        return sum_to(gy, self.shapes[0]), sum_to(-gy, self.shapes[1])


class Mul(_Binary):
    """y = a * b.  dL/da = gy * b, dL/db = gy * a."""

    keep_outputs = ()

    def forward(self, a, b):
        return a * b

    def backward(self, gy):
        a, b = self.inputs
        return sum_to(gy * b, a.shape), sum_to(gy * a, b.shape)


class Div(_Binary):
    """y = a / b.  dL/da = gy / b, dL/db = -gy * a / b**2."""

    keep_outputs = ()

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b
        return sum_to(ga, a.shape), sum_to(-ga * a / b, b.shape)


class Neg(Function):
    """y = -x.  dL/dx = -gy."""

    keep_inputs = keep_outputs = ()

    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class PowScalar(Function):
    """y = x ** c for a constant c.  dL/dx = gy * c * x**(c-1)."""

    keep_inputs, keep_outputs = (0,), ()

    def __init__(self, c):
        self.c = c

    def forward(self, x):
        return x ** self.c

    def backward(self, gy):
        x, = self.inputs
        return gy * self.c * x ** (self.c - 1)


class Pow(_Binary):
    """y = a ** b, both tensors.  dL/da = gy * b * a**(b-1), dL/db = gy * y * log(a)."""

    keep_outputs = (0,)

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        y = self.output()
        return sum_to(gy * b * a ** (b - 1), a.shape), sum_to(gy * y * log(a), b.shape)


class Exp(Function):
    """y = e**x.  dL/dx = gy * y."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return backend.get_array_module(x).exp(x)

    def backward(self, gy):
        return gy * self.output()


class Log(Function):
    """y = ln x.  dL/dx = gy / x."""

    keep_inputs, keep_outputs = (0,), ()

    def forward(self, x):
        return backend.get_array_module(x).log(x)

    def backward(self, gy):
        return gy / self.inputs[0]


class Sqrt(Function):
    """y = sqrt(x).  dL/dx = gy / (2 y)."""

    keep_inputs, keep_outputs = (), (0,)

    def forward(self, x):
        return backend.get_array_module(x).sqrt(x)

    def backward(self, gy):
        return gy / (2 * self.output())


class Abs(Function):
    """y = |x|.  dL/dx = gy * sign(x) (0 at x = 0, as PyTorch)."""

    keep_inputs, keep_outputs = (0,), ()

    def forward(self, x):
        return backend.get_array_module(x).abs(x)

    def backward(self, gy):
        x, = self.inputs
        return gy * Tensor._wrap(backend.get_array_module(x.data).sign(x.data))


class Clip(Function):
    """y = min(max(x, lo), hi).  dL/dx = gy where lo <= x <= hi, else 0."""

    keep_inputs, keep_outputs = (0,), ()

    def __init__(self, lo, hi):
        self.lo, self.hi = lo, hi

    def forward(self, x):
        return backend.get_array_module(x).clip(x, self.lo, self.hi)

    def backward(self, gy):
        x = self.inputs[0].data
        mask = backend.get_array_module(x).ones_like(x, dtype=bool)
        if self.lo is not None:
            mask &= x >= self.lo
        if self.hi is not None:
            mask &= x <= self.hi
        return gy * Tensor._wrap(mask.astype(x.dtype))


class Maximum(_Binary):
    """y = max(a, b) elementwise.  The gradient goes to the larger input; on a
    tie it is split half and half (as PyTorch does)."""

    keep_outputs = ()

    def forward(self, a, b):
        return backend.get_array_module(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.inputs
        ad, bd = a.data, b.data
        wa = (ad > bd) + 0.5 * (ad == bd)
        dtype = gy.dtype
        ga = gy * Tensor._wrap(wa.astype(dtype))
        gb = gy * Tensor._wrap((1 - wa).astype(dtype))
        return sum_to(ga, a.shape), sum_to(gb, b.shape)


def add(a, b):
    return Add()(*binary_operands(a, b))


def sub(a, b):
    return Sub()(*binary_operands(a, b))


def mul(a, b):
    return Mul()(*binary_operands(a, b))


def div(a, b):
    return Div()(*binary_operands(a, b))


def neg(x):
    return Neg()(x)


def pow(a, b):
    if isinstance(a, Tensor) and isinstance(b, (int, float)):
        return PowScalar(b)(a)
    return Pow()(*binary_operands(a, b))


def exp(x):
    return Exp()(x)


def log(x):
    return Log()(x)


def sqrt(x):
    return Sqrt()(x)


def abs(x):
    return Abs()(x)


def clip(x, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min {min} is greater than max {max}")
    return Clip(min, max)(x)


def maximum(a, b):
    return Maximum()(*binary_operands(a, b))

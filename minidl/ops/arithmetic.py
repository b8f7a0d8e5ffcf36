"""Elementwise arithmetic and math: + - * / ** neg exp log sqrt abs clip maximum.

Binary ops broadcast as NumPy does. The gradient that reaches a broadcast
input has the output's shape; ``sum_to`` folds it back to the input's shape
(see reduction.py). Each backward is written with Tensor ops, so it can be
differentiated again.
"""
from minidl import _checks, backend
from minidl.ops._util import ANY, FLOAT, NUMBER, binary_operands, broadcast_shape, cast_all, operands
from minidl.ops.reduction import sum_to
from minidl.tensor import Function, Tensor, scalar_dtype


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
        need_a, need_b = self.needs_input_grad
        return sum_to(gy * b, a.shape) if need_a else None, sum_to(gy * a, b.shape) if need_b else None


class Div(_Binary):
    """y = a / b.  dL/da = gy / b, dL/db = -gy * a / b**2."""

    keep_outputs = ()

    def forward(self, a, b):
        return a / b

    def backward(self, gy):
        a, b = self.inputs
        ga = gy / b
        return (sum_to(ga, a.shape) if self.needs_input_grad[0] else None,
                sum_to(-ga * a / b, b.shape) if self.needs_input_grad[1] else None)


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
        if self.c == 0:  # y = 1 whatever x is; c * x**(c-1) would be 0 * inf at x = 0 (PyTorch gives 0)
            return gy * 0
        x, = self.inputs
        return gy * self.c * x ** (self.c - 1)


class Pow(_Binary):
    """y = a ** b, both tensors.  dL/da = gy * b * a**(b-1), dL/db = gy * y * log(a).

    Where those read 0 * inf, PyTorch's values: dL/da = 0 where b = 0 (y = 1 there), and
    dL/db = 0 where a = 0 and b >= 0 (y is 0 or 1 there). Adding a constant 0/1 mask to the
    exponent, or to log's argument, gives exactly those and changes nothing elsewhere, so the
    gradient stays a differentiable Tensor expression.
    """

    keep_outputs = (0,)

    def forward(self, a, b):
        return a ** b

    def backward(self, gy):
        a, b = self.inputs
        y = self.output()
        b_zero = Tensor._wrap((b.data == 0).astype(b.dtype))
        a_zero = Tensor._wrap(((a.data == 0) & (b.data >= 0)).astype(a.dtype))
        return sum_to(gy * b * a ** (b - 1 + b_zero), a.shape), sum_to(gy * y * log(a + a_zero), b.shape)


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
    return Add()(*binary_operands("add", ANY, a, b))


def sub(a, b):
    return Sub()(*binary_operands("sub", NUMBER, a, b))


def mul(a, b):
    return Mul()(*binary_operands("mul", ANY, a, b))


def div(a, b):
    """True division: integers give float32, as in PyTorch."""
    return Div()(*binary_operands("div", FLOAT, a, b))


def neg(x):
    return Neg()(*operands("neg", NUMBER, x))


def _integer_power(base, exponent):
    raise ValueError(f"pow: integers to negative integer powers are not allowed ({base.dtype} ** {exponent}); "
                     "convert the base to float first, e.g. x.float() ** n")


def pow(a, b):
    """a ** b. With integers (no floats) the result is an integer, as in PyTorch, so a negative
    integer exponent is refused; a float exponent makes it float32."""
    if isinstance(a, Tensor) and isinstance(b, (int, float)):
        if isinstance(b, int) and b < 0 and a.dtype.kind in "biu":
            _integer_power(a, b)
        x, _ = binary_operands("pow", NUMBER, a, b)
        return PowScalar(b)(x)
    a, b = binary_operands("pow", NUMBER, a, b)
    if a.dtype.kind in "iu" and bool((b.data < 0).any()):
        _integer_power(a, f"a {b.dtype} tensor holding negative values")
    return Pow()(a, b)


def exp(x):
    return Exp()(*operands("exp", FLOAT, x))


def log(x):
    return Log()(*operands("log", FLOAT, x))


def sqrt(x):
    return Sqrt()(*operands("sqrt", FLOAT, x))


def abs(x):
    return Abs()(*operands("abs", NUMBER, x))


def clip(x, min=None, max=None):
    """Values clipped to [min, max]. The bounds are numbers, and take part in the dtype as Python
    numbers do: an integer tensor clipped at 0.5 is float32, as in PyTorch."""
    if min is None and max is None:
        raise ValueError("clip: give at least one of min and max")
    x, = operands("clip", ANY, x)
    dtype = x.dtype
    for name, bound in (("min", min), ("max", max)):
        if bound is not None:
            _checks.require(_checks.is_real(bound), "clip", name, bound, "a number")
            dtype = scalar_dtype("clip", dtype, bound)
    if min is not None and max is not None and min > max:
        raise ValueError(f"clip: min {min} is greater than max {max}")
    return Clip(min, max)(*cast_all(dtype, (x,)))


def maximum(a, b):
    return Maximum()(*binary_operands("maximum", ANY, a, b))

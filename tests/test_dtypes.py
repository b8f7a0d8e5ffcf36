"""The dtype policy: what a tensor may hold, and what each op does with bool, integer and float
inputs, mixed dtypes, empty axes and NaN/inf. Each op either gives the right value in PyTorch's
dtype or refuses with an error naming itself; never a silent wrong value, never NumPy's error.

The expectations are written out (docs/learn/autograd-engine.md has the table) and run without
PyTorch; with it, the same cases are compared against it, and the places where minidl decides
differently are listed in DIFFERENCES with the reason.
"""
import re
import warnings

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F

DTYPES = [np.bool_, np.uint8, np.int32, np.int64, np.float16, np.float32, np.float64]
VALUES = np.array([[0, 1, 2], [3, 1, 0]])  # as bool: both True and False


def _tensor(dtype):
    return mdl.tensor(VALUES.astype(dtype))


# --- creation ------------------------------------------------------------------------

REFUSED = [np.complex64, np.complex128, object, np.str_, np.bytes_, "datetime64[D]", "timedelta64[s]",
           [("a", np.int32)], np.longdouble]


@pytest.mark.parametrize("dtype", REFUSED, ids=str)
def test_creation_refuses_what_no_op_is_written_for(dtype):
    a = np.zeros(2, dtype=dtype)
    message = (f"Tensor: dtype {a.dtype} is not supported; a tensor holds bool, signed and unsigned "
               "integers, float16, float32 and float64")
    with pytest.raises(TypeError, match=re.escape(message)):
        mdl.tensor(a)
    with pytest.raises(TypeError, match=r"^Tensor: dtype"):
        mdl.tensor([0, 0], dtype=dtype)
    x = mdl.tensor([1.0, 2.0])
    with pytest.raises(TypeError, match=r"^Tensor.astype: dtype"):
        x.astype(dtype)
    with pytest.raises(TypeError, match=r"^Tensor.to: dtype"):
        x.to(dtype=dtype)


@pytest.mark.parametrize("data, error, pattern", [
    (["a", "b"], TypeError, r"Tensor: dtype <U1 is not supported"),
    ([1 + 2j], TypeError, r"Tensor: dtype complex128 is not supported"),
    ([1, None], TypeError, r"Tensor: cannot make a tensor from list: its values are not all numbers"),
    (2 ** 70, TypeError, r"Tensor: cannot make a tensor from int: .*integers beyond 64 bits"),
    ([[1, 2], [3]], ValueError, r"Tensor: cannot make a tensor from this list: .*inhomogeneous"),
])
def test_creation_from_python_data_refuses_non_numbers(data, error, pattern):
    with pytest.raises(error, match=pattern) as info:
        mdl.tensor(data)
    assert info.value.__cause__ is None and (info.value.__context__ is None or info.value.__suppress_context__)


def test_creation_refuses_a_name_that_is_no_dtype():
    with pytest.raises(TypeError, match=r"Tensor: 'float33' is not a dtype; a tensor holds bool"):
        mdl.tensor([1.0], dtype="float33")


@pytest.mark.parametrize("dtype", DTYPES + [np.int8, np.int16, np.uint16, np.uint32, np.uint64])
def test_creation_keeps_every_supported_dtype(dtype):
    assert mdl.tensor(np.zeros(2, dtype)).dtype == dtype
    assert mdl.tensor([0, 1], dtype=dtype).dtype == dtype
    assert mdl.tensor([1.0, 2.0]).astype(dtype).dtype == dtype


def test_big_endian_data_is_read_in_native_order():
    x = mdl.tensor(np.arange(3, dtype=">f4"))
    assert x.dtype == np.float32 and x.dtype.isnative
    np.testing.assert_array_equal((x * 2).numpy(), [0, 2, 4])


# --- promotion ----------------------------------------------------------------------

@pytest.mark.parametrize("a, b, expected", [
    (np.ones(2, np.int64), np.ones(2, np.float32), np.float32),    # NumPy: float64
    (np.ones(2, np.int32), np.ones(2, np.float16), np.float16),    # NumPy: float64
    (np.ones(2, np.uint8), np.ones(2, np.int8), np.int16),
    (np.ones(2, np.bool_), np.ones(2, np.uint8), np.uint8),
    (np.ones(2, np.float16), np.ones(2, np.float32), np.float32),
    (np.ones(2, np.float32), np.array(1.0), np.float32),           # a 0-d tensor of the same category
    (np.ones(2, np.int64), np.array(1.0), np.float64),             # ... of a higher one
    (np.array(1), np.array(1.0, np.float32), np.float32),
    (np.ones(2, np.int64), 0.5, np.float32),                       # Python numbers are weakest
    (np.ones(2, np.uint8), 1, np.uint8),
    (np.ones(2, np.bool_), 1, np.int64),
    (np.ones(2, np.bool_), True, np.bool_),
    (np.ones(2, np.float16), 2.0, np.float16),
    (np.array(1), 0.5, np.float32),
])
def test_type_promotion_follows_pytorch(a, b, expected):
    y = mdl.tensor(a) + (b if isinstance(b, (bool, int, float)) else mdl.tensor(b))
    assert y.dtype == np.dtype(expected)


def test_promotion_that_would_leave_the_integers_or_wrap_is_refused():
    with pytest.raises(ValueError, match=r"^add: no integer dtype holds both uint64 and int64"):
        mdl.tensor(np.ones(2, np.uint64)) + mdl.tensor(np.ones(2, np.int64))
    with pytest.raises(ValueError, match=r"^add: 300 does not fit in uint8 \(range 0 to 255\)"):
        mdl.tensor(np.ones(2, np.uint8)) + 300  # PyTorch wraps it round to 44
    with pytest.raises(ValueError, match=r"^mul: -1 does not fit in uint8"):
        mdl.tensor(np.ones(2, np.uint8)) * -1


@pytest.mark.torch
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "maximum"])
def test_mixed_dtype_binary_ops_match_torch(torch, op):
    """Every pair of DTYPES, each side with dimensions or 0-d: PyTorch's dtype and values, or both refuse."""
    fns = {"add": (lambda a, b: a + b, torch.add), "sub": (lambda a, b: a - b, torch.sub),
           "mul": (lambda a, b: a * b, torch.mul), "div": (lambda a, b: a / b, torch.div),
           "maximum": (mdl.maximum, torch.maximum)}
    ours, theirs = fns[op]
    for da in DTYPES:
        for db in DTYPES:
            if op == "sub" and np.bool_ in (da, db) and da != db:
                continue  # PyTorch refuses any bool operand; minidl only bool - bool (the result is right)
            for a_0d in (False, True):
                for b_0d in (False, True):
                    a = _operand(VALUES, da, a_0d)
                    b = _operand(VALUES[::-1] + 1, db, b_0d)
                    with np.errstate(divide="ignore", invalid="ignore"):
                        check_against_torch(torch, op, lambda: ours(mdl.tensor(a), mdl.tensor(b)),
                                            lambda: theirs(torch.from_numpy(a), torch.from_numpy(b)),
                                            (da, a_0d, db, b_0d))


def _operand(values, dtype, zero_d):
    a = values.astype(dtype)
    return np.array(a[1, 0]) if zero_d else a


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES)
def test_python_numbers_with_each_dtype_match_torch(torch, dtype):
    x = VALUES.astype(dtype)
    for number in (True, 2, 0.5):
        for name, fn in (("add", lambda a, n: a + n), ("mul", lambda a, n: a * n), ("div", lambda a, n: a / n),
                         ("rsub", lambda a, n: n - a), ("pow", lambda a, n: a ** n)):
            if name in ("rsub", "pow") and (number is True or dtype == np.bool_):
                continue  # PyTorch refuses bool in subtraction and pow, minidl computes: see DIFFERENCES
            check_against_torch(torch, name, lambda: fn(mdl.tensor(x), number),
                                lambda: fn(torch.from_numpy(x.copy()), number), (dtype, number))


# --- each op on each dtype ------------------------------------------------------------

def _same(dtype):
    return dtype


def _float(dtype):
    return dtype if dtype.kind == "f" else np.dtype(np.float32)


def _int64_unless_float(dtype):
    return dtype if dtype.kind == "f" else np.dtype(np.int64)


def _int64_if_bool(dtype):
    return np.dtype(np.int64) if dtype.kind == "b" else dtype


def _no_bool(dtype):
    return None if dtype.kind == "b" else dtype


def _float_only(dtype):
    return dtype if dtype.kind == "f" else None


# (op name in errors, minidl, PyTorch, the output dtype for an input dtype, None when refused)
CASES = [
    ("exp", lambda x: x.exp(), lambda t, x: t.exp(x), _float),
    ("log", lambda x: x.log(), lambda t, x: t.log(x), _float),
    ("sqrt", lambda x: x.sqrt(), lambda t, x: t.sqrt(x), _float),
    ("sigmoid", lambda x: x.sigmoid(), lambda t, x: t.sigmoid(x), _float),
    ("tanh", lambda x: x.tanh(), lambda t, x: t.tanh(x), _float),
    ("div", lambda x: x / 2, lambda t, x: x / 2, _float),
    ("div", lambda x: x / x, lambda t, x: x / x, _float),
    ("mul", lambda x: x * 0.5, lambda t, x: x * 0.5, _float),
    ("pow", lambda x: x ** 0.5, lambda t, x: x ** 0.5, _float),
    ("clip", lambda x: x.clip(0.5, 1.5), lambda t, x: x.clamp(0.5, 1.5), _float),
    ("add", lambda x: x + x, lambda t, x: x + x, _same),
    ("mul", lambda x: x * x, lambda t, x: x * x, _same),
    ("maximum", lambda x: mdl.maximum(x, x), lambda t, x: t.maximum(x, x), _same),
    ("max", lambda x: x.max(), lambda t, x: x.max(), _same),
    ("min", lambda x: x.min(axis=1), lambda t, x: x.amin(1), _same),
    ("concat", lambda x: mdl.cat([x, x]), lambda t, x: t.cat([x, x]), _same),
    ("getitem", lambda x: x[1, ::-1], lambda t, x: x[1].flip(0), _same),
    ("reshape", lambda x: x.reshape(3, 2).T, lambda t, x: x.reshape(3, 2).T, _same),
    ("sum", lambda x: x.sum(), lambda t, x: x.sum(), _int64_unless_float),
    ("sum", lambda x: x.sum(axis=0), lambda t, x: x.sum(0), _int64_unless_float),
    ("add", lambda x: x + 1, lambda t, x: x + 1, _int64_if_bool),
    ("pow", lambda x: x ** 2, lambda t, x: x ** 2, _int64_if_bool),
    ("clip", lambda x: x.clip(0, 1), lambda t, x: x.clamp(0, 1), _int64_if_bool),
    ("sub", lambda x: x - x, lambda t, x: x - x, _no_bool),
    ("neg", lambda x: -x, lambda t, x: -x, _no_bool),
    ("abs", lambda x: x.abs(), lambda t, x: x.abs(), _no_bool),
    ("relu", lambda x: x.relu(), lambda t, x: t.relu(x), _no_bool),
    ("pow", lambda x: x ** x, lambda t, x: x ** x, _no_bool),
    ("matmul", lambda x: x @ x.T, lambda t, x: x @ x.T, _no_bool),
    ("pow", lambda x: x ** -1, lambda t, x: x ** -1, _float_only),  # integers to a negative power
    ("mean", lambda x: x.mean(), lambda t, x: x.mean(), _float_only),
    ("softmax", lambda x: x.softmax(axis=1), lambda t, x: t.softmax(x, 1), _float_only),
    ("log_softmax", lambda x: x.log_softmax(axis=1), lambda t, x: t.log_softmax(x, 1), _float_only),
    ("dropout", lambda x: F.dropout(x, 0.5), lambda t, x: t.nn.functional.dropout(x, 0.5), _float_only),
    ("mse_loss", lambda x: F.mse_loss(x, x), lambda t, x: t.nn.functional.mse_loss(x, x), _float_only),
    ("cross_entropy", lambda x: F.cross_entropy(x, np.array([2, 0])),
     lambda t, x: t.nn.functional.cross_entropy(x, t.tensor([2, 0])), _float_only),
    ("linear", lambda x: F.linear(x, x), lambda t, x: t.nn.functional.linear(x, x), _no_bool),
    ("batch_norm", lambda x: F.batch_norm(x, None, None, None, None, True),
     lambda t, x: t.nn.functional.batch_norm(x, None, None, training=True), _float_only),
    ("conv2d", lambda x: F.conv2d(x.reshape(1, 1, 2, 3), x[:, :2].reshape(1, 1, 2, 2)),
     lambda t, x: t.nn.functional.conv2d(x.reshape(1, 1, 2, 3), x[:, :2].reshape(1, 1, 2, 2)), _float_only),
    ("max_pool2d", lambda x: F.max_pool2d(x.reshape(1, 1, 2, 3), 2),
     lambda t, x: t.nn.functional.max_pool2d(x.reshape(1, 1, 2, 3), 2), _float_only),
    ("avg_pool2d", lambda x: F.avg_pool2d(x.reshape(1, 1, 2, 3), 2),
     lambda t, x: t.nn.functional.avg_pool2d(x.reshape(1, 1, 2, 3), 2), _float_only),
    ("adaptive_avg_pool2d", lambda x: F.adaptive_avg_pool2d(x.reshape(1, 1, 2, 3), 1),
     lambda t, x: t.nn.functional.adaptive_avg_pool2d(x.reshape(1, 1, 2, 3), 1), _float_only),
    ("local_response_norm", lambda x: F.local_response_norm(x.reshape(1, 2, 3), 2),
     lambda t, x: t.nn.functional.local_response_norm(x.reshape(1, 2, 3), 2), _float_only),
]
CASE_IDS = [f"{i}-{c[0]}" for i, c in enumerate(CASES)]

# Where minidl decides otherwise than PyTorch 2.13 (CPU) on one kind of input dtype, and why:
# op -> (the dtype kinds, the reason). Elsewhere: PyTorch refuses mixed dtypes in matmul and linear,
# and any bool operand of a subtraction (minidl promotes, and refuses only bool - bool); it wraps a
# Python int that does not fit an integer dtype round (minidl refuses it); and its mean over nothing,
# so also a loss's 'mean' over an empty batch, is NaN (minidl refuses it, naming the op).
DIFFERENCES = {
    "conv2d": ("iu", "PyTorch's CPU kernels take integers; minidl's (im2col + BLAS, Numba, CUDA) are float only"),
    "max_pool2d": ("iu", "as conv2d"),
    "avg_pool2d": ("iu", "as conv2d (and PyTorch's integer average is truncated)"),
    "local_response_norm": ("biu", "PyTorch's is composed of ops that promote; minidl's kernel is float only"),
}


def check_against_torch(torch, op, ours, theirs, label):
    """Both refuse (minidl with an error naming ``op``), or both give the same dtype and values."""
    try:
        expected = theirs()
    except (RuntimeError, NotImplementedError, TypeError):
        expected = None
    if expected is None:
        with pytest.raises(ValueError, match=rf"^{op}: "):
            ours()
        return
    got = ours()
    assert str(got.dtype) == str(expected.dtype).replace("torch.", ""), (op, label)
    tol = dict(rtol=2e-3, atol=1e-4) if got.dtype == np.float16 else dict(rtol=1e-6)
    np.testing.assert_allclose(got.numpy().astype(np.float64), expected.double().numpy(), **tol,
                               err_msg=f"{op} {label}")


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_op_on_each_dtype_is_right_or_refused(case, dtype):
    op, fn, _, rule = case
    x = _tensor(dtype)
    expected = rule(x.dtype)
    if expected is None:
        with pytest.raises(ValueError, match=rf"^{op}: expected .*floating-point .*got {x.dtype}|^{op}: "
                                             rf"(not defined for bool tensors|integers to negative)") as info:
            fn(x)
        assert info.value.__context__ is None  # our check, not a NumPy error caught and converted
        return
    mdl.manual_seed(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        y = fn(x)
        mdl.manual_seed(0)
        reference = fn(mdl.tensor(x.numpy().astype(np.float64))).numpy()  # the same values, in float64
    assert y.dtype == expected
    if expected.kind in "biu":  # exact, wrapped round like the integer dtype (-x of uint8)
        np.testing.assert_array_equal(y.numpy(), reference.astype(np.int64).astype(expected))
    elif np.float16 in (expected, dtype):
        np.testing.assert_allclose(y.numpy(), reference, rtol=2e-3, atol=1e-4)
    else:
        np.testing.assert_allclose(y.numpy(), reference, rtol=1e-6)


@pytest.mark.torch
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_op_on_each_dtype_matches_torch(torch, case, dtype):
    op, fn, torch_fn, _ = case
    kind = np.dtype(dtype).kind
    if kind in DIFFERENCES.get(op, ("",))[0]:
        pytest.skip(f"{op} on {np.dtype(dtype)}: {DIFFERENCES[op][1]}")
    if op == "dropout" and kind == "f":
        pytest.skip("dropout: the masks come from different generators")
    x = VALUES.astype(dtype)
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore")
        check_against_torch(torch, op, lambda: fn(mdl.tensor(x)), lambda: torch_fn(torch, torch.from_numpy(x.copy())),
                            np.dtype(dtype))


def test_the_defect_sigmoid_of_integers_is_not_zero():
    y = mdl.tensor(np.array([-2, 0, 3])).sigmoid()
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.numpy(), 1 / (1 + np.exp([2.0, 0.0, -3.0])), rtol=1e-6)
    # and the Function itself, called directly with no entry check in between
    np.testing.assert_allclose(mdl.ops.Sigmoid()(mdl.tensor(np.array([0, 2]))).numpy(), [0.5, 0.880797], rtol=1e-6)


def test_the_defect_complex_logits_never_make_a_loss():
    with pytest.raises(TypeError, match="Tensor: dtype complex128 is not supported"):
        F.cross_entropy(mdl.tensor(np.array([[1j, 2.0]])), np.array([0]))
    with pytest.raises(TypeError, match="cross_entropy: dtype complex128 is not supported"):
        F.cross_entropy(np.array([[1j, 2.0]]), np.array([0]))  # an array, never made a Tensor
    with pytest.raises(ValueError, match=r"cross_entropy: expected a floating-point input \(the logits\); got int64"):
        F.cross_entropy(mdl.tensor([[1, 2]]), np.array([0]))


def test_integer_powers_follow_pytorch():
    x = mdl.tensor(np.array([2, 3]))
    assert (x ** 2).dtype == np.int64 and (2 ** x).dtype == np.int64 and (x ** 0.5).dtype == np.float32
    np.testing.assert_array_equal((x ** x).numpy(), [4, 27])
    with pytest.raises(ValueError, match=r"^pow: integers to negative integer powers are not allowed \(int64 \*\* -1"):
        x ** -1
    with pytest.raises(ValueError, match=r"^pow: integers to negative integer powers .*negative values"):
        x ** mdl.tensor(np.array([1, -1]))
    with pytest.raises(ValueError, match=r"^pow: 300 does not fit in uint8"):
        mdl.tensor(np.array([2], np.uint8)) ** 300


def test_gradients_come_back_in_each_inputs_dtype_across_promotion():
    h = mdl.tensor(np.ones(3, np.float16), requires_grad=True)
    d = mdl.tensor(np.array(2.0), requires_grad=True)  # 0-d float64: the float16 tensor decides
    i = mdl.tensor(np.array([1, 2, 3]))
    y = (h * d + i).sum()
    assert y.dtype == np.float16
    y.backward()
    assert h.grad.dtype == np.float16 and d.grad.dtype == np.float64
    np.testing.assert_array_equal(h.grad.numpy(), [2, 2, 2])
    assert d.grad.item() == 3


# --- empty axes and NaN / inf ------------------------------------------------------------

@pytest.mark.parametrize("fn, shape", [
    (lambda x: x.sum(axis=0), (3,)),
    (lambda x: x.mean(axis=1), (0,)),            # averaging 3 values, for no row
    (lambda x: x.max(axis=1), (0,)),
    (lambda x: x.softmax(axis=1), (0, 3)),
    (lambda x: x.T.log_softmax(axis=1), (3, 0)),  # softmax over an empty axis: nothing to normalise
    (lambda x: x @ mdl.tensor(np.ones((3, 2))), (0, 2)),
    (lambda x: F.linear(x, mdl.tensor(np.ones((2, 3)))), (0, 2)),
    (lambda x: mdl.cat([x, x]), (0, 3)),
    (lambda x: F.cross_entropy(x, np.zeros(0, np.int64), reduction="sum"), ()),
    (lambda x: F.cross_entropy(x, np.zeros(0, np.int64), reduction="none"), (0,)),
    (lambda x: F.batch_norm(x, mdl.zeros(3, dtype=np.float64), mdl.ones(3, dtype=np.float64), None, None, False),
     (0, 3)),
    (lambda x: F.conv2d(x.reshape(0, 3, 1, 1), mdl.tensor(np.ones((2, 3, 1, 1)))), (0, 2, 1, 1)),
    (lambda x: F.max_pool2d(x.reshape(0, 1, 1, 3), (1, 2)), (0, 1, 1, 1)),
])
def test_empty_batches_give_empty_results_and_gradients(fn, shape):
    x = mdl.tensor(np.zeros((0, 3)), requires_grad=True)
    y = fn(x)
    assert y.shape == shape
    y.sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("fn, pattern", [
    (lambda x: x.mean(), r"mean: cannot average over an empty axis; got shape \(0, 3\) with axis \(0, 1\)"),
    (lambda x: x.max(axis=0), r"max: cannot reduce over an empty axis; got shape \(0, 3\) with axis \(0,\)"),
    (lambda x: F.batch_norm(x, None, None, None, None, True),
     r"batch_norm: expected more than 1 value per channel when training; got input of shape \(0, 3\)"),
    (lambda x: x.argmax(axis=0), r"argmax: cannot take the argmax over an empty axis; got shape \(0, 3\)"),
    (lambda x: x.argmin(), r"argmin: cannot take the argmin over an empty axis; got shape \(0, 3\)"),
])  # the losses' 'mean' over an empty batch: tests/test_losses.py
def test_reductions_over_nothing_are_refused_by_name(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn(mdl.tensor(np.zeros((0, 3))))
    assert info.value.__context__ is None


# Ops whose kernels sum over a window or a channel, at values whose float16 sums or squares
# overflow (max 65504) although the result does not: computed in float32, as PyTorch does.
@pytest.mark.parametrize("fn, scale", [
    (lambda x: F.avg_pool2d(x, 2), 6e4),
    (lambda x: F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False), 6e4),
    (lambda x: F.adaptive_avg_pool2d(x, 2), 6e4),  # bins of equal size: the avg_pool2d kernel
    (lambda x: F.local_response_norm(x, 3, alpha=1.0), 300),
    (lambda x: F.batch_norm(x, None, None, None, None, True), 300),
])
def test_float16_kernels_accumulate_in_float32(fn, scale):
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 4, 4)) * scale
    x16 = mdl.tensor(x.astype(np.float16), requires_grad=True)
    y16 = fn(x16)
    reference = fn(mdl.tensor(x16.numpy().astype(np.float32))).numpy()
    assert y16.dtype == np.float16
    np.testing.assert_allclose(y16.numpy(), reference, rtol=2e-3, atol=2e-3 * np.abs(reference).max())
    y16.backward(mdl.tensor(np.ones(y16.shape, np.float16)))
    assert x16.grad.dtype == np.float16 and np.isfinite(x16.grad.numpy()).all()


def test_batch_norm_of_zero_channels_is_empty():
    x = mdl.tensor(np.zeros((4, 0)), requires_grad=True)
    y = F.batch_norm(x, None, None, None, None, True)
    assert y.shape == (4, 0)


SPECIALS = np.array([[np.nan, np.inf, -np.inf], [0.0, 1.0, -1.0]], dtype=np.float32)
SPECIAL_CASES = [
    ("exp", lambda x: x.exp(), lambda t, x: x.exp()),
    ("log", lambda x: x.log(), lambda t, x: x.log()),
    ("sqrt", lambda x: x.sqrt(), lambda t, x: x.sqrt()),
    ("sigmoid", lambda x: x.sigmoid(), lambda t, x: x.sigmoid()),
    ("tanh", lambda x: x.tanh(), lambda t, x: x.tanh()),
    ("relu", lambda x: x.relu(), lambda t, x: x.relu()),
    ("abs", lambda x: x.abs(), lambda t, x: x.abs()),
    ("clip", lambda x: x.clip(-0.5, 0.5), lambda t, x: x.clamp(-0.5, 0.5)),
    ("max", lambda x: x.max(axis=1), lambda t, x: x.amax(1)),
    ("sum", lambda x: x.sum(axis=1), lambda t, x: x.sum(1)),
    ("softmax", lambda x: x.softmax(axis=1), lambda t, x: x.softmax(1)),
    ("log_softmax", lambda x: x.log_softmax(axis=1), lambda t, x: x.log_softmax(1)),
    ("pow", lambda x: x ** 0, lambda t, x: x ** 0),
    ("pow", lambda x: x ** 2, lambda t, x: x ** 2),
    ("maximum", lambda x: mdl.maximum(x, x * 0), lambda t, x: t.maximum(x, x * 0)),
]


@pytest.mark.torch
@pytest.mark.parametrize("case", SPECIAL_CASES, ids=[f"{i}-{c[0]}" for i, c in enumerate(SPECIAL_CASES)])
def test_nan_and_inf_match_torch(torch, case):
    _, fn, torch_fn = case
    with np.errstate(all="ignore"):
        y = fn(mdl.tensor(SPECIALS)).numpy()
    np.testing.assert_allclose(y, torch_fn(torch, torch.from_numpy(SPECIALS.copy())).numpy(), rtol=1e-6)


def test_nan_and_inf_by_hand():
    x = mdl.tensor(SPECIALS)
    with np.errstate(all="ignore"):
        np.testing.assert_array_equal(x.sigmoid().numpy()[0], [np.nan, 1, 0])
        np.testing.assert_array_equal(x.relu().numpy()[0], [np.nan, np.inf, 0])
        np.testing.assert_array_equal((x ** 0).numpy(), np.ones((2, 3)))  # nan ** 0 = 1, as in IEEE and PyTorch
        np.testing.assert_array_equal(x.max(axis=1).numpy(), [np.nan, 1])

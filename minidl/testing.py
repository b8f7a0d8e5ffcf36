"""A test harness for an op: forward against a reference, gradients, second derivatives, inputs left
alone, dtypes kept, batch size 1, broadcasting and, where PyTorch is installed, PyTorch's values.

    import minidl.testing

    minidl.testing.check_op(silu, [(3, 4)], reference=lambda x: x / (1 + np.exp(-x)))

runs every check and raises on the first that fails, naming the op, the check, the dtype and the
input shapes. `OpTestCase` runs the same checks as pytest tests, one per check and dtype:

    class TestSiLU(minidl.testing.OpTestCase):
        op = staticmethod(silu)
        shapes = [(3, 4)]
        reference = staticmethod(lambda x: x / (1 + np.exp(-x)))

Like ``numpy.testing``, this module is imported explicitly (``import minidl.testing``), not by
``import minidl``; it imports pytest and torch only inside the checks that need them.

The checks, by name (the names that the failure messages and the pytest ids use), in order:

- ``inputs_unchanged``: forward, then backward, leave the input arrays as they were (compared
  with copies).
- ``dtype``: float32 inputs give float32 outputs, float64 inputs float64 outputs.
- ``forward``: the outputs match ``reference`` (run on float64 copies of the same values) to the
  dtype's tolerance; only where a reference is given.
- ``gradcheck``, ``gradgradcheck``: `minidl.gradcheck` and `minidl.gradgradcheck`, which compute
  in float64 whatever the inputs' dtype; the second unless ``double=False``.
- ``batch1``: the first dimension of each input that has a batch dimension set to 1; then the
  forward check (without a reference: outputs of as many dimensions as for the full batch, which
  catches a stray ``squeeze()``) and gradcheck.
- ``broadcast``: for an elementwise op that broadcasts, each input in turn given a size-1
  dimension, or one dimension fewer; the outputs must have ``np.broadcast_shapes`` of the input
  shapes, then the forward check and gradcheck.
- ``torch``: the outputs, and the gradients for a random upstream gradient, against a PyTorch
  function, in float64; skipped (``pytest.skip``, with the reason) where PyTorch is not installed.

``gradcheck``, ``gradgradcheck`` and ``torch`` run once, in float64; the others once per dtype,
the gradient parts of ``batch1`` and ``broadcast`` only in their float64 test (in each, where
float64 is not among the dtypes).
"""
import dataclasses
import importlib
import sys

import numpy as np

from minidl.gradcheck import GradcheckError, gradcheck, gradgradcheck
from minidl.tensor import Function, Tensor, grad

__all__ = ["CHECKS", "KINDS", "OpCheckError", "OpTestCase", "check_op", "draw_inputs", "torch_function"]

CHECKS = ("inputs_unchanged", "dtype", "forward", "gradcheck", "gradgradcheck", "batch1", "broadcast", "torch")
"""The names of the checks, in the order they run."""

KINDS = ("any", "positive", "nonzero", "distinct")
"""How `draw_inputs` draws an input's values: ``any`` uniform in (-2, 2); ``positive`` in (0.5, 2)
(for log, sqrt); ``nonzero`` at least 0.2 away from 0 (for kinks at 0: relu, abs); ``distinct`` no
two values within 0.1 of each other (for max, sort: no ties within a finite difference's step)."""

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_F64 = np.dtype(np.float64)


class OpCheckError(AssertionError):
    """A check of `check_op` or `OpTestCase` failed. The message names the op, the check, the dtype
    and the input shapes, then says what went wrong; where the op itself raised an error, that error
    is the ``__cause__``. A failing gradient check raises `minidl.GradcheckError` (also an
    AssertionError) with the same kind of message."""


class _Failed(Exception):
    """Raised inside a check to say which input shapes and which part of it failed."""

    def __init__(self, error, shapes, part):
        super().__init__(str(error))
        self.error, self.shapes, self.part = error, shapes, part


@dataclasses.dataclass
class _Spec:
    op: object
    shapes: list
    name: str
    reference: object = None
    torch_reference: object = None
    dtypes: tuple = _FLOATS
    double: bool = True
    batch_dim: tuple = ()
    broadcast: bool = False
    make_inputs: object = None
    kind: tuple = ()
    seed: int = 0
    gradcheck_kwargs: dict = dataclasses.field(default_factory=dict)
    tolerances: dict = dataclasses.field(default_factory=dict)
    torch_tolerance: tuple = (1e-7, 1e-12)
    checks: tuple = CHECKS
    case_id: str = ""


# --- inputs -----------------------------------------------------------------------------

def draw_inputs(rng, shapes, dtype, kind="any"):
    """The default input maker: one array per shape, drawn from ``rng`` in float64 and cast to
    ``dtype``, so the float32 and float64 tests see the same values. ``kind`` is one of `KINDS`, or
    a sequence of them, one per input."""
    kinds = _per_input(kind, len(shapes), "kind")
    out = []
    for shape, k in zip(shapes, kinds):
        n = int(np.prod(shape, dtype=np.int64))
        if k == "positive":
            v = rng.uniform(0.5, 2.0, n)
        elif k == "nonzero":
            v = rng.choice([-1.0, 1.0], n) * rng.uniform(0.2, 2.0, n)
        elif k == "distinct":
            v = rng.permutation(n) * 0.25 - n * 0.125 + rng.uniform(-0.05, 0.05, n)
        elif k == "any":
            v = rng.uniform(-2.0, 2.0, n)
        else:
            raise ValueError(f"draw_inputs: kind must be one of {KINDS}; got {k!r}")
        out.append(v.reshape(shape).astype(dtype))
    return out


def _per_input(value, n, what):
    if isinstance(value, (str, bool)):
        return (value,) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(f"{what} has {len(value)} entries for {n} inputs; give one per input, or one for all")
    return value


def _normalise_shapes(shapes):
    if shapes is None:
        raise ValueError("give the input shapes: a list with one shape per input, e.g. [(2, 3)]")
    shapes = tuple(shapes)
    if all(isinstance(d, (int, np.integer)) for d in shapes):  # a bare shape: one input
        shapes = (shapes,)
    out = []
    for s in shapes:
        s = (s,) if isinstance(s, (int, np.integer)) else tuple(s)
        if not all(isinstance(d, (int, np.integer)) and d >= 0 for d in s):
            raise ValueError(f"an input shape must be a tuple of ints >= 0; got {s!r}")
        out.append(tuple(int(d) for d in s))
    return out


def _arrays(spec, shapes, dtype):
    rng = np.random.default_rng(spec.seed)
    if spec.make_inputs is None:
        arrays = draw_inputs(rng, shapes, dtype, spec.kind)
    else:
        arrays = list(spec.make_inputs(rng, [tuple(s) for s in shapes], np.dtype(dtype)))
        if len(arrays) != len(shapes):
            raise ValueError(f"make_inputs returned {len(arrays)} inputs for {len(shapes)} shapes")
    out = []
    for a in arrays:
        a = a.numpy() if isinstance(a, Tensor) else np.asarray(a)
        out.append(a.astype(dtype) if a.dtype.kind == "f" else a)
    return out


def _tensors(arrays):
    """Leaf tensors of copies of ``arrays``: the floating ones require grad."""
    return [Tensor(a.copy(), requires_grad=a.dtype.kind == "f") for a in arrays]


# --- running the op ------------------------------------------------------------------------
# The harness's functions set __tracebackhide__: in a pytest failure the traceback shows the op's
# frames (and the test's), not the harness's own.

def _call(spec, inputs):
    __tracebackhide__ = True
    op = spec.op
    out = op()(*inputs) if isinstance(op, type) and issubclass(op, Function) else op(*inputs)
    outs = tuple(out) if isinstance(out, (tuple, list)) else (out,)
    for i, y in enumerate(outs):
        if not isinstance(y, Tensor):
            raise TypeError(f"output {i} is a {type(y).__name__}; an op must return Tensors")
    return outs


def _as_function(spec):
    def fn(*inputs):
        __tracebackhide__ = True
        return _call(spec, inputs)

    fn.__name__ = fn.__qualname__ = spec.name
    return fn


def _upstream(spec, outputs):
    rng = np.random.default_rng(spec.seed + 1)
    return [rng.standard_normal(y.shape) for y in outputs]


def _differentiable(outputs):
    return [i for i, y in enumerate(outputs) if y.requires_grad]


def _compare(got, expected, rtol, atol, what):
    __tracebackhide__ = True
    got, expected = np.asarray(got), np.asarray(expected)
    if got.shape != expected.shape:
        raise AssertionError(f"{what} has shape {got.shape}, but {expected.shape} was expected")
    np.testing.assert_allclose(got.astype(np.float64), expected.astype(np.float64), rtol=rtol, atol=atol,
                               err_msg=what, verbose=True)


def _fmt(shapes):
    return "[" + ", ".join(str(tuple(s)) for s in shapes) + "]"


# --- the checks -------------------------------------------------------------------------------

def _check_inputs_unchanged(spec, dtype):
    __tracebackhide__ = True
    arrays = _arrays(spec, spec.shapes, dtype)
    xs = _tensors(arrays)
    outputs = _call(spec, xs)
    for when in ("forward", "backward"):
        if when == "backward":
            ys = [outputs[i] for i in _differentiable(outputs)]
            targets = [x for x in xs if x.requires_grad]
            if not ys or not targets:
                break
            gs = _upstream(spec, ys)
            grad(ys, targets, grad_outputs=[Tensor(g.astype(y.dtype)) for g, y in zip(gs, ys)], allow_unused=True)
        for i, (x, a) in enumerate(zip(xs, arrays)):
            if not np.array_equal(x.numpy(), a, equal_nan=True):
                changed = int(np.sum(~((x.numpy() == a) | (np.isnan(x.numpy()) & np.isnan(a)))))
                raise AssertionError(f"{when} modified input {i} in place ({changed} of {a.size} values changed); "
                                     "an op must leave its input arrays alone (copy first, or write to a new array)")


def _check_dtype(spec, dtype):
    __tracebackhide__ = True
    outputs = _call(spec, _tensors(_arrays(spec, spec.shapes, dtype)))
    for i, y in enumerate(outputs):
        if y.dtype.kind == "f" and y.dtype != dtype:
            raise AssertionError(f"output {i} is {y.dtype} for {np.dtype(dtype)} inputs; an op must keep its "
                                 "inputs' floating dtype (a float64 array or np.float64 scalar in forward promotes)")


def _forward_against_reference(spec, dtype, shapes):
    __tracebackhide__ = True
    arrays = _arrays(spec, shapes, dtype)
    expected = spec.reference(*[a.astype(np.float64) if a.dtype.kind == "f" else a.copy() for a in arrays])
    expected = tuple(expected) if isinstance(expected, (tuple, list)) else (expected,)
    outputs = _call(spec, _tensors(arrays))
    if len(outputs) != len(expected):
        raise AssertionError(f"the op returned {len(outputs)} outputs, the reference {len(expected)}")
    rtol, atol = spec.tolerances[np.dtype(dtype)]
    for i, (y, e) in enumerate(zip(outputs, expected)):
        _compare(y.numpy(), e, rtol, atol, f"output {i} against the reference ({np.dtype(dtype)}, rtol={rtol:g}, "
                                           f"atol={atol:g})")
    return outputs


def _check_forward(spec, dtype):
    __tracebackhide__ = True
    _forward_against_reference(spec, dtype, spec.shapes)


def _run_gradcheck(spec, shapes, double=False):
    __tracebackhide__ = True
    xs = _tensors(_arrays(spec, shapes, _F64))
    if not any(x.requires_grad for x in xs):
        raise ValueError("no input is floating point, so there is no gradient to check")
    (gradgradcheck if double else gradcheck)(_as_function(spec), xs, **spec.gradcheck_kwargs)


def _check_gradcheck(spec, dtype):
    __tracebackhide__ = True
    _run_gradcheck(spec, spec.shapes)


def _check_gradgradcheck(spec, dtype):
    __tracebackhide__ = True
    _run_gradcheck(spec, spec.shapes, double=True)


def _runs_gradients(spec, dtype):
    return np.dtype(dtype) == _F64 or _F64 not in spec.dtypes


def _batch1_shapes(spec):
    return [(1,) + s[1:] if batch and s else s for s, batch in zip(spec.shapes, spec.batch_dim)]


def _check_batch1(spec, dtype):
    __tracebackhide__ = True
    shapes = _batch1_shapes(spec)
    try:
        if spec.reference is not None:
            _forward_against_reference(spec, dtype, shapes)
        else:
            full = _call(spec, _tensors(_arrays(spec, spec.shapes, dtype)))
            one = _call(spec, _tensors(_arrays(spec, shapes, dtype)))
            for i, (a, b) in enumerate(zip(one, full)):
                if a.ndim != b.ndim:
                    raise AssertionError(f"output {i} has shape {a.shape} for a batch of 1, but {b.ndim} dimensions "
                                         f"({b.shape}) for the full batch: was a dimension of size 1 squeezed away?")
    except Exception as e:
        raise _Failed(e, shapes, "forward") from e
    if _runs_gradients(spec, dtype):
        try:
            _run_gradcheck(spec, shapes)
        except Exception as e:
            raise _Failed(e, shapes, "gradcheck") from e


def _broadcast_variants(shapes):
    """Each input in turn with one dimension of size > 1 set to 1, and with its leading dimension
    dropped; the others as they are."""
    seen, out = {tuple(shapes)}, []
    for i, s in enumerate(shapes):
        candidates = [s[:a] + (1,) + s[a + 1:] for a in range(len(s)) if s[a] > 1]
        if s:
            candidates.append(s[1:])
        for c in candidates:
            v = tuple(shapes[:i]) + (c,) + tuple(shapes[i + 1:])
            if v not in seen:
                seen.add(v)
                out.append(list(v))
    return out


def _check_broadcast(spec, dtype):
    __tracebackhide__ = True
    for shapes in _broadcast_variants(spec.shapes):
        part = "output shape"
        try:
            expected = np.broadcast_shapes(*shapes)
            outputs = _call(spec, _tensors(_arrays(spec, shapes, dtype)))
            for i, y in enumerate(outputs):
                if y.shape != expected:
                    raise AssertionError(f"output {i} has shape {y.shape}; broadcasting the inputs gives {expected}")
            if spec.reference is not None:
                part = "forward"
                _forward_against_reference(spec, dtype, shapes)
            if _runs_gradients(spec, dtype):
                part = "gradcheck"
                _run_gradcheck(spec, shapes)
        except Exception as e:
            raise _Failed(e, shapes, part) from e


def torch_function(name, *args, **kwargs):
    """The PyTorch function called ``name`` (a dotted name, ``"torch.nn.functional.mse_loss"``) with
    ``args`` and ``kwargs`` bound after the tensors, looked up only when called, so a test module
    that uses it imports without PyTorch: ``torch_function("torch.softmax", 0)`` is ``lambda x:
    torch.softmax(x, 0)``. A string ``torch_reference`` is ``torch_function(torch_reference)``."""
    def call(*tensors):
        return _resolve(name)(*tensors, *args, **kwargs)

    call.__name__ = call.__qualname__ = name.rsplit(".", 1)[-1]
    return call


def _torch_function(ref):
    return _resolve(ref) if isinstance(ref, str) else ref


def _resolve(ref):
    parts = ref.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        try:
            for p in parts[i:]:
                obj = getattr(obj, p)
        except AttributeError:
            raise _BadSetting(f"torch_reference {ref!r} does not name a function: {'.'.join(parts[:i])} has no "
                             f"attribute {'.'.join(parts[i:])!r}") from None
        return obj
    raise _BadSetting(f"torch_reference {ref!r}: cannot import {parts[0]!r}")


class _NoTorch(Exception):
    """PyTorch is not installed: the torch check is skipped."""


class _BadSetting(ValueError):
    """A setting found wrong only when its check runs (a torch_reference that names nothing)."""


def _check_torch(spec, dtype):
    __tracebackhide__ = True
    try:
        import torch
    except ImportError as e:
        # worded as pytest.importorskip words it, so tools that look for such skips find this one too
        raise _NoTorch(f"could not import 'torch': {e}; {spec.name}: the torch check needs PyTorch") from None
    fn = _torch_function(spec.torch_reference)
    arrays = _arrays(spec, spec.shapes, _F64)
    xs = _tensors(arrays)
    ts = [torch.tensor(a, requires_grad=True) if a.dtype.kind == "f" else torch.from_numpy(a.copy()) for a in arrays]
    outputs = _call(spec, xs)
    theirs = fn(*ts)
    theirs = tuple(theirs) if isinstance(theirs, (tuple, list)) else (theirs,)
    if len(outputs) != len(theirs):
        raise AssertionError(f"the op returned {len(outputs)} outputs, the torch reference {len(theirs)}")
    rtol, atol = spec.torch_tolerance
    for i, (y, t) in enumerate(zip(outputs, theirs)):
        _compare(y.numpy(), t.detach().numpy(), rtol, atol,
                 f"output {i} against PyTorch (rtol={rtol:g}, atol={atol:g})")
    pairs = [i for i in _differentiable(outputs) if theirs[i].requires_grad]
    targets = [i for i, x in enumerate(xs) if x.requires_grad]
    if not pairs or not targets:
        return
    gs = _upstream(spec, [outputs[i] for i in pairs])
    ours = grad([outputs[i] for i in pairs], [xs[i] for i in targets], grad_outputs=[Tensor(g) for g in gs],
                allow_unused=True)
    ref = torch.autograd.grad([theirs[i] for i in pairs], [ts[i] for i in targets],
                              grad_outputs=[torch.from_numpy(g) for g in gs], allow_unused=True)
    for i, g, r in zip(targets, ours, ref):
        g = np.zeros(xs[i].shape) if g is None else g.numpy()
        r = np.zeros(xs[i].shape) if r is None else r.numpy()
        _compare(g, r, rtol, atol, f"the gradient of input {i} against PyTorch's (rtol={rtol:g}, atol={atol:g}), "
                                   "for a random upstream gradient")


_RUNNERS = {"inputs_unchanged": _check_inputs_unchanged, "dtype": _check_dtype, "forward": _check_forward,
            "gradcheck": _check_gradcheck, "gradgradcheck": _check_gradgradcheck, "batch1": _check_batch1,
            "broadcast": _check_broadcast, "torch": _check_torch}
_PER_DTYPE = {"inputs_unchanged", "dtype", "forward", "batch1", "broadcast"}


# --- the spec and the plan ------------------------------------------------------------------------

def _make_spec(op, shapes, *, name=None, reference=None, torch_reference=None, dtypes=_FLOATS, double=True,
               batch_dim=True, broadcast=False, make_inputs=None, kind="any", seed=0, gradcheck_kwargs=None,
               rtol32=1e-4, atol32=1e-5, rtol64=1e-7, atol64=1e-12, torch_rtol=1e-7, torch_atol=1e-12,
               checks=None, case_id=""):
    if not callable(op):
        raise TypeError(f"op must be a callable taking Tensors (or a Function subclass); got {op!r}")
    if name is None:
        name = getattr(op, "__name__", None) or repr(op)
    shapes = _normalise_shapes(shapes)
    dtypes = tuple(np.dtype(d) for d in dtypes)
    for d in dtypes:
        if d not in _FLOATS:
            raise ValueError(f"{name}: dtypes must be float32 and/or float64; got {d}")
    kinds = _per_input(kind, len(shapes), f"{name}: kind")
    for k in kinds:
        if k not in KINDS:
            raise ValueError(f"{name}: kind must be one of {KINDS}; got {k!r}")
    batch = tuple(bool(b) for b in _per_input(batch_dim, len(shapes), f"{name}: batch_dim"))
    if broadcast:
        if len(shapes) < 2:
            raise ValueError(f"{name}: broadcast=True needs an op of two or more inputs; it has {len(shapes)}")
        try:
            np.broadcast_shapes(*shapes)
        except ValueError:
            raise ValueError(f"{name}: broadcast=True, but the input shapes {_fmt(shapes)} do not broadcast") from None
    if checks is None:
        checks = CHECKS
    elif isinstance(checks, str):
        checks = (checks,)
    unknown = [c for c in checks if c not in CHECKS]
    if unknown:
        raise ValueError(f"{name}: unknown checks {unknown}; the checks are {CHECKS}")
    return _Spec(op=op, shapes=shapes, name=name, reference=reference, torch_reference=torch_reference,
                 dtypes=dtypes, double=bool(double), batch_dim=batch, broadcast=bool(broadcast),
                 make_inputs=make_inputs, kind=kinds, seed=int(seed), gradcheck_kwargs=dict(gradcheck_kwargs or {}),
                 tolerances={_FLOATS[0]: (rtol32, atol32), _FLOATS[1]: (rtol64, atol64)},
                 torch_tolerance=(torch_rtol, torch_atol), checks=tuple(checks), case_id=case_id)


def _plan(spec):
    """The (check, dtype) pairs that apply to ``spec``, in order."""
    applies = {
        "inputs_unchanged": True, "dtype": True, "forward": spec.reference is not None, "gradcheck": True,
        "gradgradcheck": spec.double, "batch1": _batch1_shapes(spec) != spec.shapes, "broadcast": spec.broadcast,
        "torch": spec.torch_reference is not None,
    }
    plan = []
    for check in CHECKS:
        if check in spec.checks and applies[check]:
            plan += [(check, d) for d in (spec.dtypes if check in _PER_DTYPE else (_F64,))]
    return plan


def _run(spec, check, dtype):
    """Run one check; raise OpCheckError (GradcheckError for a gradient check) naming it, or _NoTorch."""
    __tracebackhide__ = True
    dtype = np.dtype(dtype)
    try:
        _RUNNERS[check](spec, dtype)
        return
    except (_NoTorch, _BadSetting):
        raise
    except _Failed as f:
        error, shapes, part = f.error, f.shapes, f.part
    except Exception as e:
        error, shapes, part = e, spec.shapes, None
    case = f" [{spec.case_id}]" if spec.case_id else ""
    where = f" ({part})" if part else ""
    detail = str(error).strip() if isinstance(error, AssertionError) else f"{type(error).__name__}: {error}"
    message = (f"{spec.name}{case}: the {check} check failed{where} for {dtype} inputs of shapes {_fmt(shapes)}: "
               f"{detail}")
    failure = (GradcheckError if isinstance(error, GradcheckError) else OpCheckError)(message)
    if isinstance(error, AssertionError):  # a check's own verdict: the message says it all
        raise failure from None
    raise failure from error  # an error raised by the op: its traceback shows where


def _skip(reason):
    if "pytest" in sys.modules:
        import pytest

        pytest.skip(reason)
    import unittest

    raise unittest.SkipTest(reason)


def check_op(op, shapes, *, reference=None, torch_reference=None, dtypes=(np.float32, np.float64), double=True,
             batch_dim=True, broadcast=False, make_inputs=None, kind="any", seed=0, gradcheck_kwargs=None,
             rtol32=1e-4, atol32=1e-5, rtol64=1e-7, atol64=1e-12, torch_rtol=1e-7, torch_atol=1e-12, checks=None,
             name=None):
    """Run every check that applies to ``op`` and return their labels (``"forward float32"``, ...);
    raise `OpCheckError`, or `minidl.GradcheckError` for a gradient check, at the first that fails.

    ``op`` is a callable taking Tensors and returning a Tensor or a tuple of them (or a
    `minidl.Function` subclass: then ``op()(*inputs)`` is called). ``shapes`` has one shape per
    input (a bare shape such as ``(2, 3)`` means one input).

    - ``reference(*arrays)``: the expected outputs, from float64 NumPy copies of the inputs; the
      op's outputs must match to ``rtol32``/``atol32`` for float32 inputs, ``rtol64``/``atol64``
      for float64 ones. Without it there is no ``forward`` check.
    - ``torch_reference``: a function on torch tensors, or its dotted name
      (``"torch.nn.functional.gelu"``); the ``torch`` check compares outputs and gradients in float64
      to ``torch_rtol``/``torch_atol``. Without PyTorch it is skipped, after the other checks ran:
      ``pytest.skip`` under pytest, ``unittest.SkipTest`` elsewhere.
    - ``dtypes``: the dtypes of the per-dtype checks. ``double=False`` leaves out gradgradcheck
      (for an op whose backward cannot be differentiated).
    - ``batch_dim``: whether the first dimension of each input is a batch dimension (one bool, or
      one per input); those are set to 1 in the ``batch1`` check.
    - ``broadcast=True`` declares an elementwise op that broadcasts its inputs (two or more).
    - ``make_inputs(rng, shapes, dtype)`` returns one array per shape (its floating arrays are cast
      to ``dtype``; others, such as integer class labels, are passed as they are and get no gradient);
      by default `draw_inputs` with ``kind`` ("any", "positive", "nonzero", "distinct"; one for all
      inputs or one per input). ``rng`` is ``np.random.default_rng(seed)``, new for every check.
    - ``gradcheck_kwargs`` are passed to `minidl.gradcheck` and `minidl.gradgradcheck` (``eps``,
      ``atol``, ...).
    - ``checks``: run only these (names from `CHECKS`). ``name``: the op's name in messages.
    """
    spec = _make_spec(op, shapes, name=name, reference=reference, torch_reference=torch_reference, dtypes=dtypes,
                      double=double, batch_dim=batch_dim, broadcast=broadcast, make_inputs=make_inputs, kind=kind,
                      seed=seed, gradcheck_kwargs=gradcheck_kwargs, rtol32=rtol32, atol32=atol32, rtol64=rtol64,
                      atol64=atol64, torch_rtol=torch_rtol, torch_atol=torch_atol, checks=checks)
    passed, skipped = [], None
    for check, dtype in _plan(spec):
        try:
            _run(spec, check, dtype)
        except _NoTorch as e:
            skipped = str(e)
            continue
        passed.append(f"{check} {dtype}")
    if skipped:
        _skip(f"{skipped}; the other {len(passed)} checks passed")
    return passed


# --- pytest ------------------------------------------------------------------------------

_OPTIONS = ("reference", "torch_reference", "dtypes", "double", "batch_dim", "broadcast", "make_inputs", "kind",
            "seed", "gradcheck_kwargs", "rtol32", "atol32", "rtol64", "atol64", "torch_rtol", "torch_atol", "checks",
            "name")


class OpTestCase:
    """Base class for a pytest test class of an op: pytest collects one test per check and dtype
    (and per case), ``test_op[forward-float32]``, ``test_op[gradcheck-float64]`` ...

        class TestSoftplus(OpTestCase):
            op = staticmethod(softplus)
            shapes = [(3, 4)]
            reference = staticmethod(lambda x: np.log1p(np.exp(x)))
            torch_reference = "torch.nn.functional.softplus"

    The class attributes are `check_op`'s arguments, with the same defaults (a plain function as a
    class attribute is fine too; ``staticmethod`` makes the intent plain). ``name`` defaults to the
    class name. ``cases`` runs every check on several settings: a list of input-shape lists, or of
    dicts of `check_op` arguments (``op`` and ``shapes`` among them) and optionally an ``id``, each
    overriding the class's attributes for that case: ``dict(shapes=[(4,), (3, 4)], batch_dim=False,
    id="unbatched")``. The tests are then ``test_op[unbatched-forward-float32]``, ``case0-...`` for
    a case without an id. The ``torch`` test carries the ``torch`` marker where the project registers
    one, and is skipped, with the reason, where PyTorch is not installed.

    The parametrisation is done by the class's ``pytest_generate_tests``, which pytest calls for the
    test methods of the class; it parametrises only ``test_op``, so test methods of your own in the
    subclass run as usual.
    """

    op = None
    shapes = None
    cases = None

    @classmethod
    def _specs(cls):
        if cls.op is None and cls.cases is None:
            raise TypeError(f"{cls.__name__}: set op, the callable under test (op = staticmethod(my_op))")
        base = {k: getattr(cls, k) for k in _OPTIONS if hasattr(cls, k)}
        base.setdefault("name", None)
        if base["name"] is None:
            base["name"] = cls.__name__
        if cls.cases is None:
            return [_make_spec(cls.op, cls.shapes, **base)]
        specs = []
        for i, case in enumerate(cls.cases):
            case = dict(case) if isinstance(case, dict) else {"shapes": case}
            case_id = str(case.pop("id", f"case{i}"))
            shapes, op = case.pop("shapes", cls.shapes), case.pop("op", cls.op)
            if shapes is None:
                raise TypeError(f"{cls.__name__}: case {case_id} has no shapes, and the class sets none")
            if op is None:
                raise TypeError(f"{cls.__name__}: case {case_id} has no op, and the class sets none")
            unknown = sorted(set(case) - set(_OPTIONS))
            if unknown:
                raise TypeError(f"{cls.__name__}: case {case_id}: unknown settings {unknown}")
            specs.append(_make_spec(op, shapes, **{**base, **case, "case_id": case_id}))
        return specs

    def pytest_generate_tests(self, metafunc):
        """The pytest hook, called for each test method of the class: parametrises ``test_op`` with
        one (case, check, dtype) per test; leaves other methods alone."""
        if metafunc.function.__name__ != "test_op":
            return
        specs = self._specs()
        registered = any(line.split(":")[0].strip() == "torch" for line in metafunc.config.getini("markers"))
        import pytest

        params = []
        for spec in specs:
            for check, dtype in _plan(spec):
                marks = [pytest.mark.torch] if check == "torch" and registered else []
                ident = "-".join(filter(None, [spec.case_id if len(specs) > 1 else "", check, dtype.name]))
                params.append(pytest.param(spec, check, dtype, id=ident, marks=marks))
        metafunc.parametrize(("spec", "check", "dtype"), params)

    def test_op(self, spec, check, dtype):
        """Run one check on one case in one dtype."""
        try:
            _run(spec, check, dtype)
        except _NoTorch as e:
            import pytest

            pytest.skip(str(e))

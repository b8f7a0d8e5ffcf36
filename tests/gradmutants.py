"""Bugs injected into the backward of registered ops, to measure what the gradient checker catches.

A mutant replaces one op's ``backward`` (or, for a missing accumulation, the ``sum_to`` its module's
backward passes use) for the length of a ``with`` block. First-order mutants change the gradient's
value: gradcheck must catch them. Double-backward mutants keep the value and change only its
derivative: gradcheck cannot see them, gradgradcheck must. A mutant that leaves the gradient of a
case unchanged (a transposed constant, a missing accumulation where nothing is broadcast) is
equivalent to the original there and is not counted.

Used by tests/test_gradcheck_mutations.py and benchmarks/bench_gradcheck.py.
"""
import contextlib
import sys
from dataclasses import dataclass

import numpy as np

import minidl as mdl
from minidl import ops


def _first_copy_to(x, shape):
    """sum_to's bug: the first of the broadcast copies instead of their sum."""
    shape = tuple(shape)
    if tuple(x.shape) == shape:
        return x
    lead = x.ndim - len(shape)
    index = (0,) * lead + tuple(slice(0, 1) if s == 1 and n != 1 else slice(None)
                               for s, n in zip(shape, x.shape[lead:]))
    return x[index].reshape(shape)


def _transposed(g):
    """g's elements in another order of the same shape: its (k, size/k) matrix transposed,
    k the smallest factor above 1 (a reversal where the size is prime)."""
    n = g.size
    k = next((k for k in range(2, n) if n % k == 0), None)
    flat = g.reshape(-1)
    moved = flat[::-1] if k is None else flat.reshape(k, n // k).T.reshape(-1)
    return moved.reshape(g.shape)


def _one_element(g):
    """g with its middle element off by 1e-4 of g's largest magnitude."""
    delta = np.zeros(g.shape)
    delta.reshape(-1)[g.size // 2] = 1e-4 * max(float(np.abs(g.data).max()), 1.0)
    return g + mdl.tensor(delta).astype(g.dtype)


def _first_order(change):
    """A mutation of each returned gradient (``which`` picks the inputs it applies to)."""
    def mutate(gxs, which):
        return tuple(change(g) if g is not None and i in which else g for i, g in enumerate(gxs))
    return mutate


def _swap(gxs, which):
    """The gradient of input 0 returned for input 1 and the other way round (equal shapes only)."""
    gxs = list(gxs)
    if len(gxs) >= 2 and gxs[0] is not None and gxs[1] is not None and gxs[0].shape == gxs[1].shape:
        gxs[0], gxs[1] = gxs[1], gxs[0]
    return tuple(gxs)


def _value_kept(change):
    """A double-backward mutation: g's value unchanged (to rounding), its derivative ``change``d."""
    return _first_order(lambda g: change(g) + (g - change(g)).detach())


@dataclass(frozen=True)
class Kind:
    name: str
    mutate: object  # (gradients tuple, inputs it applies to) -> gradients tuple
    order: int = 1  # 1: gradcheck must catch it; 2: gradgradcheck must
    per_input: bool = True  # one mutant per input; else one for the whole backward
    patch_sum_to: bool = False


KINDS = [
    Kind("scale 1+1e-6", _first_order(lambda g: g * (1 + 1e-6))),
    Kind("scale 1+1e-4", _first_order(lambda g: g * (1 + 1e-4))),
    Kind("one element off by 1e-4", _first_order(_one_element)),
    Kind("sign flipped", _first_order(lambda g: -g)),
    Kind("transposed", _first_order(lambda g: mdl.tensor(_transposed(g.data)))),
    Kind("broadcast not accumulated", None, per_input=False, patch_sum_to=True),
    Kind("gradient of the wrong input", _swap, per_input=False),
    Kind("double backward scaled 1+1e-4", _value_kept(lambda g: g * (1 + 1e-4)), order=2),
    Kind("double backward sign flipped", _value_kept(lambda g: -g), order=2),
]


@contextlib.contextmanager
def mutant(op, kind, which=None):
    """Inside the block, registered op ``op``'s backward carries ``kind``'s bug, applied to the
    gradients of the inputs in ``which`` (all if None)."""
    cls = mdl.registered_ops()[op]
    if kind.patch_sum_to:
        module = sys.modules[cls.__module__]
        modules = [m for m in (module, ops.reduction) if hasattr(m, "sum_to")]
        saved = [(m, m.sum_to) for m in modules]
        for m in modules:
            m.sum_to = _first_copy_to
        try:
            yield
        finally:
            for m, f in saved:
                m.sum_to = f
        return
    original = cls.backward

    def backward(self, *gys):
        gxs = original(self, *gys)
        single = not isinstance(gxs, tuple)
        gxs = kind.mutate((gxs,) if single else gxs, range(len(self._edges)) if which is None else which)
        return gxs[0] if single else gxs

    cls.backward = backward
    try:
        yield
    finally:
        cls.backward = original


def _gradients(case, inputs, order, seed=0):
    """d<w, ys>/d(inputs) for a fixed random w (order 1), or the same for the gradients' own
    graph, d<w2, J^T w>/d(inputs, w) (order 2), as arrays: to tell whether a mutant changes them."""
    rng = np.random.default_rng(seed)
    xs = [mdl.tensor(x.data.astype(np.float64), requires_grad=x.requires_grad) if x.dtype.kind == "f" else x
          for x in inputs]
    outputs = case.fn(*xs)
    ys = [y for y in (outputs if isinstance(outputs, tuple) else (outputs,)) if y.requires_grad]
    targets = [x for x in xs if x.requires_grad]
    ws = [mdl.tensor(rng.standard_normal(y.shape), requires_grad=order == 2) for y in ys]
    gs = mdl.grad(ys, targets, grad_outputs=ws, create_graph=order == 2, allow_unused=True)
    if order == 2:
        gs = [g for g in gs if g is not None and g.requires_grad]
        if not gs:
            return []
        targets = targets + ws
        gs = mdl.grad(gs, targets, grad_outputs=[mdl.tensor(rng.standard_normal(g.shape)) for g in gs],
                      allow_unused=True)
    return [np.zeros(t.shape) if g is None else g.data for g, t in zip(gs, targets)]


def _differentiable_inputs(case, inputs):
    """The input positions of ``case.op`` that receive a gradient, in the graph the case builds."""
    outputs = case.fn(*inputs)
    stack = [y.creator for y in (outputs if isinstance(outputs, tuple) else (outputs,)) if y.creator is not None]
    seen, positions = set(), set()
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        if type(f).__name__ == case.op:
            positions |= {k for k, edge in enumerate(f._edges) if edge is not None}
        stack += [producer for producer, _ in f.next_functions if producer is not None]
    return sorted(positions)


def mutants_of(case, inputs):
    """(kind, which) for every mutant of ``case.op`` that applies to the case: per-input kinds once
    for each of the op's inputs that gets a gradient."""
    cls = mdl.registered_ops()[case.op]
    positions = _differentiable_inputs(case, inputs)
    out = []
    for kind in KINDS:
        if kind.order == 2 and not (case.double and cls.double_backward):
            continue
        out += [(kind, (k,)) for k in positions] if kind.per_input else [(kind, None)]
    return out


def changes_gradient(case, inputs, kind, which):
    """Whether the mutant changes, at these inputs, what its checker compares: the gradient for
    first-order kinds, the gradient's derivative for double-backward ones."""
    before = _gradients(case, inputs, kind.order)
    with mutant(case.op, kind, which):
        try:
            after = _gradients(case, inputs, kind.order)
        except Exception:  # the engine refused the mutated gradient (a shape): not equivalent
            return True
    return len(before) != len(after) or any(not np.array_equal(a, b) for a, b in zip(before, after))

"""The table of gradient-check cases: every differentiable op in minidl has at least one.

A case names the op it covers, a function that uses it, and input specs. test_gradcheck_ops.py runs
every case through mdl.gradcheck (and mdl.gradgradcheck where ``double`` is set) and asserts that the op
really is in the graph the function builds; test_registry.py fails when an op has no case.
"""
from dataclasses import dataclass, field

import numpy as np

import minidl as mdl
from minidl.testing import draw_inputs


@dataclass
class Inp:
    """An input spec: a shape and how to draw values that keep away from kinks."""
    shape: tuple
    kind: str = "any"  # one of minidl.testing.KINDS (how draw_inputs draws), or int
    requires_grad: bool = True
    high: int = 0  # for kind="int": values in [0, high)

    def make(self, rng):
        if self.kind == "int":
            return mdl.tensor(rng.integers(0, self.high, size=self.shape))
        v, = draw_inputs(rng, [self.shape], np.float64, self.kind)
        return mdl.tensor(v, requires_grad=self.requires_grad)


@dataclass
class Case:
    op: str  # the registered Function class name this case covers
    fn: object
    inputs: list
    double: bool = False  # also run gradgradcheck
    kwargs: dict = field(default_factory=dict)  # passed to gradcheck (eps, atol, rtol)
    id: str = ""

    def make_inputs(self, seed=0):
        rng = np.random.default_rng(seed)
        return [spec.make(rng) for spec in self.inputs]


def cases_for(op, fn, input_sets, double=False, **kwargs):
    """One Case per input set; an input set is a list of Inp (or of shapes, meaning kind 'any')."""
    out = []
    for inputs in input_sets:
        specs = [i if isinstance(i, Inp) else Inp(tuple(i)) for i in inputs]
        ident = f"{op}-" + "-".join(f"{s.kind[0]}{s.shape}" for s in specs)
        out.append(Case(op, fn, specs, double, kwargs, ident))
    return out


def all_cases():
    """Every case from every module of this package (each module defines CASES)."""
    import importlib
    import pkgutil

    import gradcases

    out = []
    for info in sorted(pkgutil.iter_modules(gradcases.__path__), key=lambda m: m.name):
        out += importlib.import_module(f"gradcases.{info.name}").CASES
    return out

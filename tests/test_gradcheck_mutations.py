"""The gradient checker's power, measured: every kind of bug in tests/gradmutants.py, injected into
the backward of every registered op, must fail gradcheck (first-order bugs) or gradgradcheck
(double-backward bugs) on every case of the op where it changes what is checked, in both modes.

One exception, by design: the float32 round trip (a Cast case) is checked with rtol=1e-5, the
float32 rounding it contains, so a 1e-6 scale error is below what that case can promise.
benchmarks/bench_gradcheck.py prints the same measurement as a table, next to PyTorch's gradcheck.
"""
import pytest

import minidl as mdl
from gradcases import all_cases
from gradmutants import KINDS, changes_gradient, mutant, mutants_of

CASES = all_cases()
OPS = sorted({c.op for c in CASES})


def below_a_fixed_tolerance(case, kind):
    return kind.name == "scale 1+1e-6" and ("rtol" in case.kwargs or "atol" in case.kwargs)


def mutants_for(op):
    """(case, kind, which) for each mutant of ``op`` that changes what its checker compares."""
    for case in (c for c in CASES if c.op == op):
        inputs = case.make_inputs()
        for kind, which in mutants_of(case, inputs):
            if not below_a_fixed_tolerance(case, kind) and changes_gradient(case, inputs, kind, which):
                yield case, kind, which


@pytest.mark.parametrize("mode", ["auto", "directional"])
@pytest.mark.parametrize("op", OPS)
def test_every_injected_bug_is_caught(op, mode):
    missed = []
    for case, kind, which in mutants_for(op):
        check = mdl.gradcheck if kind.order == 1 else mdl.gradgradcheck
        with mutant(op, kind, which):
            try:
                check(case.fn, case.make_inputs(), mode=mode, **case.kwargs)
            except mdl.GradcheckError:
                continue
        missed.append(f"{kind.name} in {case.id} (inputs {which}) passed {check.__name__}")
    assert not missed, f"bugs in {op}'s backward that the checker missed: {missed}"


def test_every_kind_of_bug_is_tried_on_some_op():
    tried = {kind.name for op in ("Add", "Mul", "MatMul", "Exp") for _, kind, _ in mutants_for(op)}
    assert tried == {kind.name for kind in KINDS}

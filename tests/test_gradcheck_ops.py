"""Every differentiable op against central differences in float64 (and second derivatives where marked)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis.extra.numpy import mutually_broadcastable_shapes

import minidl as mdl
from conftest import ops_in_graph
from gradcases import all_cases

CASES = all_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case):
    inputs = case.make_inputs()
    assert case.op in ops_in_graph(case.fn(*inputs)), f"the case for {case.op} does not use it"
    assert mdl.gradcheck(case.fn, inputs, **case.kwargs)


DOUBLE = [c for c in CASES if c.double]


@pytest.mark.parametrize("case", DOUBLE, ids=[c.id for c in DOUBLE])
def test_gradgradcheck(case):
    assert mdl.gradgradcheck(case.fn, case.make_inputs(), **case.kwargs)


SEEDS = 20


@pytest.mark.parametrize("op", sorted({c.op for c in CASES}))
def test_correct_ops_pass_across_seeds(op):
    # the error bars are tight: they must hold for every draw, not just the one above
    cases = [c for c in CASES if c.op == op]
    for seed in range(1, SEEDS + 1):
        case = cases[seed % len(cases)]
        assert mdl.gradcheck(case.fn, case.make_inputs(seed), seed=seed, **case.kwargs)
        if case.double:
            assert mdl.gradgradcheck(case.fn, case.make_inputs(seed), seed=seed, **case.kwargs)


@settings(max_examples=30, deadline=None, derandomize=True)
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, max_dims=3, max_side=3))
def test_binary_ops_broadcast_any_shapes(shapes):
    rng = np.random.default_rng(1)
    a = mdl.tensor(rng.uniform(-2, 2, shapes.input_shapes[0]), requires_grad=True)
    b = mdl.tensor(rng.uniform(0.5, 2, shapes.input_shapes[1]), requires_grad=True)
    for fn in (lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b, lambda a, b: a / b):
        y = fn(a, b)
        assert y.shape == shapes.result_shape
        assert mdl.gradcheck(fn, [a, b])

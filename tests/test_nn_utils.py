"""nn.utils.clip_grad_norm_, against PyTorch's and by hand."""
import math

import numpy as np
import pytest

import minidl as mdl
from minidl import nn
from conftest import randn


def params_with_grads(scale, seed=0):
    ps = [mdl.tensor(randn(3, 4, seed=seed), requires_grad=True), mdl.tensor(randn(5, seed=seed + 1), requires_grad=True)]
    for k, p in enumerate(ps):
        p.grad = mdl.tensor(randn(*p.shape, seed=seed + 10 + k) * scale)
    return ps


def test_clipping_by_hand():
    p = mdl.tensor(np.zeros(2), requires_grad=True)
    p.grad = mdl.tensor(np.array([3.0, 4.0]))  # norm 5
    total = nn.utils.clip_grad_norm_([p], max_norm=1.0)
    assert total.item() == 5.0
    np.testing.assert_allclose(p.grad.data, [0.6, 0.8], rtol=1e-6)  # scaled by 1 / (5 + 1e-6)
    total = nn.utils.clip_grad_norm_(p, max_norm=10.0)  # a single tensor; under the limit: unchanged
    np.testing.assert_allclose(total.item(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(p.grad.data, [0.6, 0.8], rtol=1e-6)


def test_parameters_without_a_gradient_are_skipped():
    a, b = mdl.tensor(np.zeros(2), requires_grad=True), mdl.tensor(np.zeros(2), requires_grad=True)
    a.grad = mdl.tensor(np.array([0.0, 2.0]))
    assert nn.utils.clip_grad_norm_([a, b], 1.0).item() == 2.0
    assert b.grad is None
    assert nn.utils.clip_grad_norm_([b], 1.0).item() == 0.0


def test_non_finite_norms():
    p = mdl.tensor(np.zeros(2), requires_grad=True)
    p.grad = mdl.tensor(np.array([np.inf, 1.0]))
    with pytest.raises(RuntimeError, match=r"clip_grad_norm_: the total 2-norm of the gradients is inf"):
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    np.testing.assert_array_equal(p.grad.data, [np.inf, 1.0])  # raised before any change
    with np.errstate(invalid="ignore"):  # as PyTorch's: the factor is 0, and inf * 0 is NaN
        assert math.isinf(nn.utils.clip_grad_norm_([p], 1.0).item())
    with pytest.raises(ValueError, match=r"norm_type must be > 0"):
        nn.utils.clip_grad_norm_([p], 1.0, norm_type=0)


@pytest.mark.torch
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
@pytest.mark.parametrize("scale", [0.01, 10.0], ids=["under", "over"])
def test_matches_pytorch(torch, norm_type, scale):
    ours = params_with_grads(scale)
    theirs = [torch.tensor(p.data, requires_grad=True) for p in ours]
    for t, p in zip(theirs, ours):
        t.grad = torch.tensor(p.grad.data)
    total = nn.utils.clip_grad_norm_(ours, max_norm=1.5, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm=1.5, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-12)
    for p, t in zip(ours, theirs):
        np.testing.assert_allclose(p.grad.data, t.grad.numpy(), rtol=1e-12)

"""Losses (cross-entropy, MSE) and the layers a classifier feeds into them (linear, dropout):
gradients, PyTorch's values, numerical stability, errors."""
import functools

import numpy as np
import pytest

import minidl as mdl
from minidl.ops.dropout import dropout
from minidl.ops.linalg import linear
from minidl.ops.loss import cross_entropy, mse_loss
from minidl.testing import OpTestCase, torch_function
from conftest import close, randn


TARGET = np.array([2, 0, 3, 3, 1])

# --- cross-entropy ---------------------------------------------------------------------


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_gradcheck(reduction):
    x = mdl.tensor(randn(5, 4), requires_grad=True)
    assert mdl.gradcheck(lambda x: cross_entropy(x, TARGET, reduction), [x])
    assert mdl.gradgradcheck(lambda x: cross_entropy(x, mdl.tensor(TARGET), reduction), [x])


@pytest.mark.torch
@pytest.mark.parametrize("as_tensor", [True, False])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_matches_torch(torch, reduction, as_tensor):
    x = randn(5, 4) * 3
    xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym = cross_entropy(xm, mdl.tensor(TARGET) if as_tensor else TARGET, reduction)
    yt = torch.nn.functional.cross_entropy(xt, torch.tensor(TARGET), reduction=reduction)
    g = randn(*ym.shape, seed=1)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.tensor(g))
    close(ym.numpy(), yt.detach().numpy())
    close(xm.grad.numpy(), xt.grad.numpy())


def test_cross_entropy_gradient_is_softmax_minus_onehot():
    x = mdl.tensor(randn(5, 4), requires_grad=True)
    cross_entropy(x, TARGET).backward()
    p = np.exp(x.numpy()) / np.exp(x.numpy()).sum(axis=1, keepdims=True)
    close(x.grad.numpy(), (p - np.eye(4)[TARGET]) / 5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_is_stable_for_huge_logits(dtype):
    # naive softmax would overflow exp(1e4) to inf, and log(0) for the losing classes
    x = mdl.tensor(np.array([[1e4, 0.0, -1e4], [0.0, 1e4, 1e4]], dtype=dtype), requires_grad=True)
    y = cross_entropy(x, np.array([1, 2]), reduction="none")
    y.sum().backward()
    assert y.dtype == x.grad.dtype == dtype
    np.testing.assert_allclose(y.numpy(), [1e4, np.log(2)], rtol=1e-6)
    np.testing.assert_allclose(x.grad.numpy(), [[1, -1, 0], [0, 0.5, -0.5]], atol=1e-6)


# --- mean squared error and linear, through minidl.testing's checks --------------------------
# (gradcheck and gradgradcheck, PyTorch's values and gradients, and NumPy's values, dtypes, a batch of 1)

MSE_REFERENCE = {"mean": np.mean, "sum": np.sum, "none": lambda d: d}


class TestMSELoss(OpTestCase):
    cases = [dict(shapes=[(3, 4), (3, 4)], id=reduction, op=functools.partial(mse_loss, reduction=reduction),
                  reference=lambda a, b, r=reduction: MSE_REFERENCE[r]((a - b) ** 2),
                  torch_reference=torch_function("torch.nn.functional.mse_loss", reduction=reduction))
             for reduction in ("mean", "sum", "none")]


def _linear_reference(x, w, b=None):
    return x @ w.T + (0 if b is None else b)


class TestLinear(OpTestCase):
    op = staticmethod(linear)
    reference = staticmethod(_linear_reference)
    torch_reference = "torch.nn.functional.linear"
    batch_dim = (True, False, False)  # x's first dimension; not the weight's or the bias's
    cases = [[(3, 4), (3, 4), (3,)], [(5, 4), (3, 4), (3,)], [(2, 3, 4), (3, 4), (3,)], [(2, 2, 4), (3, 4), (3,)],
             dict(shapes=[(4,), (3, 4), (3,)], batch_dim=False, id="unbatched"),
             dict(shapes=[(3, 4), (3, 4)], batch_dim=(True, False), id="no-bias")]


# --- dropout ----------------------------------------------------------------------

def test_dropout_gradcheck_with_a_fixed_mask():
    def fn(x):
        mdl.manual_seed(0)  # the same mask at every evaluation of the check
        return dropout(x, 0.4)

    x = mdl.tensor(randn(4, 5), requires_grad=True)
    assert mdl.gradcheck(fn, [x])
    assert mdl.gradgradcheck(fn, [x])


def test_dropout_statistics():
    mdl.manual_seed(1)
    x = mdl.tensor(np.full((400, 500), 2.0))
    for p in (0.1, 0.5, 0.8):
        y = dropout(x, p).numpy()
        assert abs((y == 0).mean() - p) < 0.01
        assert abs(y.mean() - 2.0) < 0.03  # inverted dropout: E[y] = x
        assert set(np.unique(y)) == {0.0, 2.0 / (1 - p)}


def test_dropout_is_identity_in_eval_and_at_p0():
    x = mdl.tensor(randn(3, 4), requires_grad=True)
    assert dropout(x, 0.5, training=False) is x
    assert dropout(x, 0.0) is x


@pytest.mark.torch
def test_dropout_scaling_matches_torch(torch):
    # masks come from different generators; compare where both kept an element
    x = randn(200, 100)
    mdl.manual_seed(0)
    torch.manual_seed(0)
    y = dropout(mdl.tensor(x), 0.3).numpy()
    yt = torch.nn.functional.dropout(torch.tensor(x), 0.3).numpy()
    both = (y != 0) & (yt != 0)
    assert both.mean() > 0.4
    close(y[both], yt[both])
    assert abs((y == 0).mean() - (yt == 0).mean()) < 0.02


# --- errors ---------------------------------------------------------------------

def t(*shape, dtype=np.float64):
    return mdl.tensor(np.ones(shape, dtype=dtype))


@pytest.mark.parametrize("fn, pattern", [
    (lambda: cross_entropy(t(3, 4), np.array([0, 4, 1])),
     r"cross_entropy: target 4 is out of range for 4 classes \(expected 0 <= target < 4\)"),
    (lambda: cross_entropy(t(3, 4), mdl.tensor(np.array([0, -1, 1]))), r"cross_entropy: target -1 is out of range"),
    (lambda: cross_entropy(t(3, 4), np.array([0, 1])),
     r"cross_entropy: target of shape \(2,\) does not match a batch of 3 logits .*expected shape \(3,\)"),
    (lambda: cross_entropy(t(3, 4), np.array([[0], [1], [2]])), r"cross_entropy: target of shape \(3, 1\)"),
    (lambda: cross_entropy(t(3, 4), np.array([0.0, 1.0, 2.0])),
     r"cross_entropy: target must hold integer class indices; got dtype float64"),
    (lambda: cross_entropy(t(4), np.array([0])), r"cross_entropy: expected logits of shape \(N, C\); got shape \(4,\)"),
    (lambda: cross_entropy(t(2, 3), np.array([0, 1]), reduction="avg"),
     r"cross_entropy: reduction must be 'mean', 'sum' or 'none'; got 'avg'"),
    (lambda: mse_loss(t(2, 3), t(3, 2)), r"mse_loss: the inputs must have the same shape; got \(2, 3\) and \(3, 2\)"),
    (lambda: mse_loss(t(2, 3), t(3)), r"mse_loss: the inputs must have the same shape; got \(2, 3\) and \(3,\)"),
    (lambda: mse_loss(t(2), t(2), reduction=None), r"mse_loss: reduction must be .* got None"),
    (lambda: linear(t(2, 3), t(4, 5)), r"linear: input of shape \(2, 3\) has 3 features, but the weight"),
    (lambda: dropout(t(2), 1.0), r"dropout: p must be in \[0, 1\); got 1.0"),
    # a 'mean' over an empty batch, 0/0 (PyTorch: NaN), is refused under the loss's own name
    (lambda: cross_entropy(t(0, 3), np.zeros(0, np.int64)),
     r"cross_entropy: cannot average the loss over an empty input of shape \(0, 3\); use reduction='sum' or 'none'"),
    (lambda: mdl.nn.CrossEntropyLoss()(t(0, 3), np.zeros(0, np.int64)),
     r"CrossEntropyLoss\(\): cannot average the loss over an empty input of shape \(0, 3\)"),
    (lambda: mse_loss(t(0, 2), t(0, 2)), r"mse_loss: cannot average the loss over an empty input of shape \(0, 2\)"),
    (lambda: mdl.nn.MSELoss()(t(0), t(0)), r"MSELoss\(\): cannot average the loss over an empty input of shape \(0,\)"),
    (lambda: cross_entropy(t(2, 3, dtype=np.int64), np.array([0, 1])),
     r"cross_entropy: expected a floating-point input \(the logits\); got int64"),
    (lambda: mdl.nn.CrossEntropyLoss()(t(2, 3, dtype=np.bool_), np.array([0, 1])),
     r"CrossEntropyLoss\(\): expected a floating-point input \(the logits\); got bool"),
    (lambda: mse_loss(t(2, dtype=np.int64), t(2, dtype=np.uint8)),
     r"mse_loss: expected floating-point inputs; got int64 and uint8"),
    (lambda: dropout(t(2, dtype=np.int64), 0.5), r"dropout: expected a floating-point input; got int64"),
])
def test_bad_input_names_the_op_and_values(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert info.value.__context__ is None  # raised by our check, not converted from a NumPy error


@pytest.mark.parametrize("reduction", ["sum", "none"])
def test_losses_of_an_empty_batch_without_averaging(reduction):
    x = mdl.tensor(np.zeros((0, 3)), requires_grad=True)
    for loss, unreduced in ((cross_entropy(x, np.zeros(0, np.int64), reduction), (0,)),
                            (mse_loss(x, x * 2, reduction), (0, 3))):
        assert loss.shape == (() if reduction == "sum" else unreduced)
        assert not loss.numpy().any()
        loss.sum().backward()
    assert x.grad.shape == (0, 3)


def test_mse_promotes_an_integer_target_as_pytorch():
    prediction = mdl.tensor(np.array([1.0, 2.5], np.float32), requires_grad=True)
    loss = mse_loss(prediction, mdl.tensor(np.array([1, 2])))
    assert loss.dtype == np.float32
    np.testing.assert_allclose(loss.item(), 0.125)
    loss.backward()
    assert prediction.grad.dtype == np.float32
    np.testing.assert_allclose(prediction.grad.numpy(), [0, 0.5])

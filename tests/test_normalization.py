"""Local response normalisation and batch norm: gradients, PyTorch's values and running statistics, errors.

LRN is checked with a large alpha (1 or 2, k=2): at the default alpha=1e-4 the
cross-channel term is ~1e-4 of the output, and a window summing the wrong
channels would still pass.
"""
import numpy as np
import pytest

import minidl as mdl
from minidl.ops.normalization import batch_norm, local_response_norm
from conftest import close, randn

# Every test here runs on each kernel implementation (tests/conftest.py::kernel_set).
pytestmark = pytest.mark.usefixtures("kernel_set")


# --- local response normalisation -------------------------------------------------

# (input shape, size): odd and even windows, windows wider than the channel count, 3-D and 5-D inputs
LRN_CASES = [((2, 5, 2, 2), 1), ((2, 5, 2, 2), 2), ((1, 5, 2, 3), 3), ((1, 6, 2, 2), 4), ((1, 6, 2, 2), 5),
             ((2, 3, 4), 7), ((1, 4, 2), 8), ((1, 4, 2, 1, 2), 3)]


@pytest.mark.parametrize("shape, size", LRN_CASES)
def test_lrn_gradcheck(shape, size):
    x = mdl.tensor(randn(*shape), requires_grad=True)
    assert mdl.gradcheck(lambda x: local_response_norm(x, size, alpha=2.0, beta=0.75, k=2.0), [x])


@pytest.mark.torch
@pytest.mark.parametrize("alpha, beta, k", [(2.0, 0.75, 2.0), (1.0, 1.5, 1.0), (1e-4, 0.75, 1.0)])
@pytest.mark.parametrize("shape, size", LRN_CASES)
def test_lrn_matches_torch(torch, shape, size, alpha, beta, k):
    x = randn(*shape)
    xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym = local_response_norm(xm, size, alpha, beta, k)
    yt = torch.nn.functional.local_response_norm(xt, size, alpha, beta, k)
    g = randn(*shape, seed=1)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.tensor(g))
    close(ym.numpy(), yt.detach().numpy())
    close(xm.grad.numpy(), xt.grad.numpy())


def test_lrn_window_by_hand():
    # channels 0..3 hold 1, 2, 3, 4; size 3 -> channel c sums squares of c-1..c+1, cut at the ends
    x = np.arange(1.0, 5.0).reshape(1, 4, 1, 1)
    y = local_response_norm(mdl.tensor(x), 3, alpha=3.0, beta=1.0, k=1.0).numpy().ravel()
    sums = np.array([1 + 4, 1 + 4 + 9, 4 + 9 + 16, 9 + 16])
    np.testing.assert_allclose(y, np.arange(1.0, 5.0) / (1 + sums), rtol=1e-12)


def test_lrn_float32_stays_float32():
    x = mdl.tensor(randn(2, 5, 3, 3).astype(np.float32), requires_grad=True)
    y = local_response_norm(x, 5, alpha=1.0, k=2.0)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == np.float32


# --- batch norm --------------------------------------------------------------------

BN_SHAPES = [(4, 3), (3, 3, 5), (2, 3, 4, 4)]


@pytest.mark.parametrize("shape", [(4, 3), (3, 3, 2), (2, 3, 2, 2)])
def test_batch_norm_train_gradcheck(shape):
    rng = np.random.default_rng(0)
    inputs = [mdl.tensor(rng.standard_normal(shape) * 2 + 1, requires_grad=True),
              mdl.tensor(rng.uniform(0.5, 2, 3), requires_grad=True),
              mdl.tensor(rng.standard_normal(3), requires_grad=True)]
    assert mdl.gradcheck(lambda x, w, b: batch_norm(x, None, None, w, b, training=True), inputs)
    assert mdl.gradcheck(lambda x: batch_norm(x, None, None, None, None, training=True), inputs[:1])


@pytest.mark.parametrize("shape", [(4, 3), (2, 3, 2, 2)])
def test_batch_norm_eval_gradcheck_and_second_derivatives(shape):
    rng = np.random.default_rng(0)
    rm, rv = mdl.tensor(rng.standard_normal(3)), mdl.tensor(rng.uniform(0.5, 2, 3))
    inputs = [mdl.tensor(rng.standard_normal(shape), requires_grad=True),
              mdl.tensor(rng.uniform(0.5, 2, 3), requires_grad=True),
              mdl.tensor(rng.standard_normal(3), requires_grad=True)]

    def fn(x, w, b):
        return batch_norm(x, rm, rv, w, b, training=False)

    assert mdl.gradcheck(fn, inputs)
    assert mdl.gradgradcheck(fn, inputs)  # composed of Tensor ops, so differentiable twice


def test_batch_norm_train_refuses_create_graph():
    x = mdl.tensor(randn(4, 3), requires_grad=True)
    y = batch_norm(x, None, None, None, None, training=True)
    with pytest.raises(RuntimeError, match="BatchNorm does not support create_graph=True"):
        mdl.grad([(y * y).sum()], [x], create_graph=True)


@pytest.mark.torch
@pytest.mark.parametrize("affine", [True, False])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("shape", BN_SHAPES)
def test_batch_norm_matches_torch(torch, shape, training, affine):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape) * 3 + 1
    w, b = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.uniform(0.5, 2, 3)
    xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    wm, wt = mdl.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    bm, bt = mdl.tensor(b, requires_grad=True), torch.tensor(b, requires_grad=True)
    rmm, rvm, rmt, rvt = mdl.tensor(rm.copy()), mdl.tensor(rv.copy()), torch.tensor(rm), torch.tensor(rv)
    ym = batch_norm(xm, rmm, rvm, wm if affine else None, bm if affine else None, training, 0.3, 1e-3)
    yt = torch.nn.functional.batch_norm(xt, rmt, rvt, wt if affine else None, bt if affine else None,
                                        training, 0.3, 1e-3)
    g = rng.standard_normal(shape)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.tensor(g))
    close(ym.numpy(), yt.detach().numpy())
    close(xm.grad.numpy(), xt.grad.numpy())
    if affine:
        close(wm.grad.numpy(), wt.grad.numpy())
        close(bm.grad.numpy(), bt.grad.numpy())
    close(rmm.numpy(), rmt.numpy())
    close(rvm.numpy(), rvt.numpy())


@pytest.mark.torch
def test_batch_norm_running_stats_follow_torch_over_several_steps(torch):
    rm, rv = mdl.zeros(4, dtype=np.float64), mdl.ones(4, dtype=np.float64)
    rm_array = rm.data  # updated in place: buffers shared elsewhere (state_dict) see the change
    rmt, rvt = torch.zeros(4, dtype=torch.float64), torch.ones(4, dtype=torch.float64)
    for step in range(5):
        x = randn(6, 4, 3, seed=step) * (step + 1) + step
        batch_norm(mdl.tensor(x), rm, rv, None, None, training=True)
        torch.nn.functional.batch_norm(torch.tensor(x), rmt, rvt, None, None, True)
    assert rm.data is rm_array
    close(rm.numpy(), rmt.numpy())
    close(rv.numpy(), rvt.numpy())
    # evaluation then uses them, and leaves them alone
    x = randn(2, 4, 3, seed=9)
    y = batch_norm(mdl.tensor(x), rm, rv, None, None, training=False)
    close(y.numpy(), torch.nn.functional.batch_norm(torch.tensor(x), rmt, rvt, None, None, False).numpy())
    close(rm.numpy(), rmt.numpy())


def test_batch_norm_unbiased_running_var_by_hand():
    x = np.array([[1.0], [2.0], [4.0]])  # mean 7/3; biased var 14/9, unbiased 7/3
    rm, rv = mdl.zeros(1, dtype=np.float64), mdl.ones(1, dtype=np.float64)
    y = batch_norm(mdl.tensor(x), rm, rv, None, None, training=True, momentum=0.5, eps=0.0)
    np.testing.assert_allclose(rm.numpy(), [7 / 6], rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), [0.5 + 0.5 * 7 / 3], rtol=1e-12)
    np.testing.assert_allclose(y.numpy().ravel(), (x.ravel() - 7 / 3) / np.sqrt(14 / 9), rtol=1e-12)


def test_batch_norm_float32_is_stable_and_stays_float32():
    # |mean| >> std: a one-pass E[x^2] - E[x]^2 would lose every digit of the variance in float32
    x64 = 1000 + randn(64, 3, 4)
    x = mdl.tensor(x64.astype(np.float32), requires_grad=True)
    rm, rv = mdl.zeros(3), mdl.ones(3)
    y = batch_norm(x, rm, rv, mdl.ones(3), mdl.zeros(3), training=True)
    y.sum().backward()
    assert y.dtype == x.grad.dtype == rm.dtype == rv.dtype == np.float32
    ref = batch_norm(mdl.tensor(x.numpy().astype(np.float64)), None, None, None, None, training=True)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), atol=1e-3)


def _float16_batches():
    """Channel 0 constant (variance 0), channel 1 ordinary, channel 2 spread over +-300, whose
    squared deviations overflow float16 (max 65504) although its variance does not."""
    rng = np.random.default_rng(0)
    x = np.empty((8, 3, 2), np.float16)
    x[:, 0] = 3.0
    x[:, 1] = rng.standard_normal((8, 2))
    x[:, 2] = rng.uniform(-300, 300, (8, 2))
    return x


def test_batch_norm_float16_keeps_running_var_valid_and_eval_finite():
    x = _float16_batches()
    bn = mdl.nn.BatchNorm1d(3, momentum=0.5)
    for _ in range(20):  # 0.5**20 of the initial 1 is below the rounding error the variance used to have
        y = bn(mdl.tensor(x))
    assert (bn.running_var.numpy() >= 0).all(), bn.running_var
    assert y.dtype == np.float16 and np.isfinite(y.numpy()).all()  # float32 parameters do not promote it
    # training output: the constant channel is 0, the others normalised (the wide one used to be all 0)
    assert (y.numpy()[:, 0] == 0).all()
    np.testing.assert_allclose(y.numpy()[:, 2].astype(np.float64).std(), 1, rtol=1e-2)
    bn.eval()
    ye = bn(mdl.tensor(x))
    assert ye.dtype == np.float16 and np.isfinite(ye.numpy()).all()

    torch = pytest.importorskip("torch")  # the checks above run without it
    bnt = torch.nn.BatchNorm1d(3, momentum=0.5)
    for _ in range(20):
        yt = bnt(torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), yt.detach().numpy(), atol=2e-3, rtol=2e-3)
    np.testing.assert_allclose(bn.running_mean.numpy(), bnt.running_mean.numpy(), rtol=1e-3)
    np.testing.assert_allclose(bn.running_var.numpy(), bnt.running_var.numpy(), rtol=1e-3, atol=1e-9)
    bnt.eval()
    np.testing.assert_allclose(ye.numpy(), bnt(torch.from_numpy(x)).detach().numpy(), atol=2e-3, rtol=2e-3)


def test_batch_norm_float16_functional_with_float16_running_stats():
    x = mdl.tensor(_float16_batches(), requires_grad=True)
    rm, rv = mdl.zeros(3, dtype=np.float16), mdl.ones(3, dtype=np.float16)
    for _ in range(20):
        y = batch_norm(x, rm, rv, None, None, training=True, momentum=0.5)
    assert rm.dtype == rv.dtype == np.float16 and (rv.numpy() >= 0).all()
    y.sum().backward()
    assert x.grad.dtype == np.float16 and np.isfinite(x.grad.numpy()).all()
    assert np.isfinite(batch_norm(x, rm, rv, None, None, training=False).numpy()).all()


# --- errors -------------------------------------------------------------------------

def t(*shape, dtype=np.float64):
    return mdl.tensor(np.ones(shape, dtype=dtype))


@pytest.mark.parametrize("fn, pattern", [
    (lambda: local_response_norm(t(2, 3), 2),
     r"local_response_norm: expected an input of 3 or more dimensions \(N, C, \.\.\.\); got shape \(2, 3\)"),
    (lambda: local_response_norm(t(1, 3, 2), 0), r"local_response_norm: size must be an int >= 1; got 0"),
    (lambda: local_response_norm(t(1, 3, 2), 2.0), r"local_response_norm: size must be an int >= 1; got 2.0"),
    (lambda: local_response_norm(t(1, 3, 2, dtype=np.int64), 2),
     r"local_response_norm: expected a floating-point input; got int64"),
    (lambda: batch_norm(t(1, 3), None, None, None, None, True),
     r"batch_norm: expected more than 1 value per channel when training; got input of shape \(1, 3\)"),
    (lambda: batch_norm(t(1, 3, 1, 1), None, None, None, None, True),
     r"expected more than 1 value per channel when training; got input of shape \(1, 3, 1, 1\)"),
    (lambda: batch_norm(t(2, 3), None, None, t(4), None, True),
     r"batch_norm: weight of shape \(4,\) does not match the 3 channels of the input of shape \(2, 3\)"),
    (lambda: batch_norm(t(2, 3), None, None, None, t(3, 1), True), r"batch_norm: bias of shape \(3, 1\)"),
    (lambda: batch_norm(t(2, 3, 4), t(2), t(3), None, None, False),
     r"batch_norm: running_mean of shape \(2,\) does not match the 3 channels"),
    (lambda: batch_norm(t(2, 3, 4), t(3), t(5), None, None, True), r"batch_norm: running_var of shape \(5,\)"),
    (lambda: batch_norm(t(3), None, None, None, None, True),
     r"batch_norm: expected a 2-D, 3-D or 4-D \(N, C, \.\.\.\) input; got shape \(3,\)"),
    (lambda: batch_norm(t(2, 3, 1, 1, 1), None, None, None, None, True), r"got shape \(2, 3, 1, 1, 1\)"),
    (lambda: batch_norm(t(2, 3), None, None, None, None, False),
     r"batch_norm: running_mean and running_var are needed in evaluation mode"),
    (lambda: batch_norm(t(2, 3, dtype=np.int32), None, None, None, None, True),
     r"batch_norm: expected a floating-point input; got int32"),
    (lambda: batch_norm(t(2, 3), None, None, t(3, dtype=np.int64), None, True),
     r"batch_norm: expected a floating-point weight; got int64"),
    (lambda: batch_norm(t(2, 3), t(3, dtype=np.int64), t(3), None, None, False),
     r"batch_norm: expected a floating-point running_mean; got int64"),
    (lambda: batch_norm(t(2, 3, dtype=np.bool_), None, None, None, None, True),
     r"batch_norm: expected a floating-point input; got bool"),
])
def test_bad_input_names_the_op_and_values(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert info.value.__context__ is None  # raised by our check, not converted from a NumPy error

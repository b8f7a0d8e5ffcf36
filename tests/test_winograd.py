"""Winograd F(2x2, 3x3): its transforms against their definitions, the convolution and both of its
gradients against im2col's, gradchecks with the algorithm forced, and how 'auto' chooses."""
import numpy as np
import pytest

import minidl as mdl
from minidl import kernels
from minidl.kernels import winograd
from minidl.ops.conv import conv2d

pytestmark = pytest.mark.usefixtures("kernel_set")

BT = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
AT = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)
# (x shape, padding): even and odd outputs, every padding the algorithm takes, outputs of one pixel
GEOMETRIES = [((2, 3, 6, 6), (1, 1)), ((1, 2, 5, 7), (0, 0)), ((3, 4, 6, 5), (2, 1)), ((2, 1, 3, 3), (0, 2)),
              ((1, 3, 8, 9), (1, 0)), ((2, 2, 1, 1), (1, 1))]


@pytest.fixture
def algorithm(setting):
    """Set the conv algorithm inside a test; the old one comes back afterwards."""
    return lambda name: setting("conv_algorithm", name)


@pytest.mark.parametrize("shape, padding", GEOMETRIES)
def test_input_transform_matches_its_definition(shape, padding):
    x = np.random.default_rng(0).standard_normal(shape)
    n, c, h, w = shape
    (ph, pw) = padding
    oh, ow = h + 2 * ph - 2, w + 2 * pw - 2
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    xpad = np.zeros((n, c, 2 * th + 2, 2 * tw + 2))
    xpad[:, :, ph:ph + h, pw:pw + w] = x
    expected = np.zeros((4, 4, c, n, th, tw))
    for b in range(n):
        for ch in range(c):
            for ty in range(th):
                for tx in range(tw):
                    d = xpad[b, ch, 2 * ty:2 * ty + 4, 2 * tx:2 * tx + 4]
                    expected[:, :, ch, b, ty, tx] = BT @ d @ BT.T
    np.testing.assert_allclose(kernels.winograd_input_transform(x, padding), expected.reshape(16, c, -1),
                               rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("out_shape", [(2, 3, 4, 4), (1, 2, 5, 3), (2, 1, 1, 1)])
def test_output_transform_matches_its_definition_and_has_its_adjoint(out_shape):
    n, k, oh, ow = out_shape
    th, tw = (oh + 1) // 2, (ow + 1) // 2
    rng = np.random.default_rng(1)
    m = rng.standard_normal((16, k, n * th * tw))
    tiles = m.reshape(4, 4, k, n, th, tw)
    expected = np.zeros((n, k, 2 * th, 2 * tw))
    for ty in range(th):
        for tx in range(tw):
            for b in range(n):
                for ch in range(k):
                    expected[b, ch, 2 * ty:2 * ty + 2, 2 * tx:2 * tx + 2] = AT @ tiles[:, :, ch, b, ty, tx] @ AT.T
    y = kernels.winograd_output_transform(m, out_shape)
    np.testing.assert_allclose(y, expected[:, :, :oh, :ow], rtol=1e-13, atol=1e-13)
    gy = rng.standard_normal(out_shape)
    assert np.isclose(np.vdot(y, gy), np.vdot(m, kernels.winograd_output_transform_adjoint(gy)), rtol=1e-12)


def _conv_and_grads(x, w, padding, gy):
    xs = [mdl.tensor(x, requires_grad=True), mdl.tensor(w, requires_grad=True)]
    y = conv2d(*xs, padding=padding)
    return [y.numpy()] + [g.numpy() for g in mdl.grad(y, xs, grad_outputs=mdl.tensor(gy))]


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("shape, padding", GEOMETRIES)
def test_winograd_equals_im2col(algorithm, shape, padding, dtype, tol):
    rng = np.random.default_rng(2)
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((5, shape[1], 3, 3)).astype(dtype)
    oh, ow = shape[2] + 2 * padding[0] - 2, shape[3] + 2 * padding[1] - 2
    gy = rng.standard_normal((shape[0], 5, oh, ow)).astype(dtype)
    algorithm("im2col")
    expected = _conv_and_grads(x, w, padding, gy)
    algorithm("winograd")
    for a, e in zip(_conv_and_grads(x, w, padding, gy), expected):
        assert a.dtype == dtype and a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * np.abs(e).max())


@pytest.mark.parametrize("padding", [0, 1, 2, (1, 0)])
def test_gradcheck_and_gradgradcheck_through_winograd(algorithm, monkeypatch, padding):
    algorithm("winograd")
    calls = []
    conv_, weight_grad = winograd.conv, winograd.weight_grad
    monkeypatch.setattr(winograd, "conv", lambda *a: calls.append("conv") or conv_(*a))
    monkeypatch.setattr(winograd, "weight_grad", lambda *a: calls.append("weight_grad") or weight_grad(*a))
    rng = np.random.default_rng(3)
    x = mdl.tensor(rng.uniform(-1, 1, (2, 2, 4, 5)), requires_grad=True)
    w = mdl.tensor(rng.uniform(-1, 1, (3, 2, 3, 3)), requires_grad=True)

    def fn(x, w):
        return conv2d(x, w, padding=padding)

    assert mdl.gradcheck(fn, [x, w])
    assert mdl.gradgradcheck(fn, [x, w])
    assert {"conv", "weight_grad"} <= set(calls)  # the checks went through Winograd, not im2col


def _algorithm_used(monkeypatch, x_shape, w_shape, **settings):
    used = []
    conv_ = winograd.conv
    monkeypatch.setattr(winograd, "conv", lambda *a: used.append("winograd") or conv_(*a))
    conv2d(mdl.tensor(np.ones(x_shape, np.float32)), mdl.tensor(np.ones(w_shape, np.float32)), **settings)
    return "winograd" if used else "im2col"


def test_auto_uses_winograd_where_it_measured_faster(algorithm, monkeypatch, kernel_set):
    algorithm("auto")
    # with the NumPy reference's slow transforms, im2col is faster everywhere
    expected = "winograd" if kernel_set == "numba" else "im2col"
    assert _algorithm_used(monkeypatch, (1, 16, 32, 32), (16, 16, 3, 3), padding=1) == expected
    assert _algorithm_used(monkeypatch, (1, 128, 4, 4), (128, 128, 3, 3), padding=1) == expected
    assert _algorithm_used(monkeypatch, (1, 64, 8, 8), (64, 64, 3, 3), padding=1) == "im2col"  # few tiles
    assert _algorithm_used(monkeypatch, (1, 128, 1, 1), (128, 128, 3, 3), padding=1) == "im2col"  # < one tile
    assert _algorithm_used(monkeypatch, (1, 3, 32, 32), (16, 3, 3, 3), padding=1) == "im2col"  # few channels
    assert _algorithm_used(monkeypatch, (1, 16, 32, 32), (16, 16, 5, 5), padding=2) == "im2col"  # not 3x3


def test_auto_keeps_im2col_on_the_gpu_where_nothing_was_measured(algorithm):
    from minidl.ops import conv

    pytest.importorskip("numba")
    layer = ((3, 3), (1, 1), (1, 1), (1, 1), 1, (128, 128), (32, 32))
    with mdl.using_config("kernels", "numba"):
        algorithm("auto")
        assert conv.algorithm_for(*layer) == "winograd"  # measured faster with the Numba kernels
        assert conv.algorithm_for(*layer, on_gpu=True) == "im2col"
        algorithm("winograd")
        assert conv.algorithm_for(*layer, on_gpu=True) == "winograd"


@pytest.mark.parametrize("settings", [dict(stride=2), dict(dilation=2), dict(groups=2), dict(padding=3)])
def test_winograd_is_used_only_where_it_applies(algorithm, monkeypatch, settings):
    algorithm("winograd")
    assert _algorithm_used(monkeypatch, (1, 16, 9, 9), (16, 16 // settings.get("groups", 1), 3, 3),
                           **settings) == "im2col"
    assert _algorithm_used(monkeypatch, (1, 16, 9, 9), (16, 16, 3, 3)) == "winograd"
    algorithm("im2col")
    assert _algorithm_used(monkeypatch, (1, 16, 9, 9), (16, 16, 3, 3)) == "im2col"


def test_chunked_winograd_equals_unchunked(algorithm, setting):
    algorithm("winograd")
    rng = np.random.default_rng(4)
    x, w, gy = rng.standard_normal((5, 3, 6, 7)), rng.standard_normal((4, 3, 3, 3)), rng.standard_normal((5, 4, 6, 7))
    whole = _conv_and_grads(x, w, 1, gy)
    setting("workspace_limit", 1)
    for a, e in zip(_conv_and_grads(x, w, 1, gy), whole):
        np.testing.assert_allclose(a, e, rtol=1e-13, atol=1e-13)


def test_unknown_algorithm_is_named():
    with pytest.raises(ValueError, match=r"config.conv_algorithm: expected one of 'auto', 'im2col', 'winograd'; "
                                         r"got 'fft'"):
        mdl.config.conv_algorithm = "fft"


@pytest.mark.torch
@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
@pytest.mark.parametrize("padding", [0, 1, 2])
def test_winograd_matches_pytorch(algorithm, torch, padding, dtype, tol):
    # 16 channels of unit-variance data: the float32 transforms' rounding stays within 1e-5 of
    # the largest value, as for im2col.
    algorithm("winograd")
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 16, 9, 10)).astype(dtype)
    w = (rng.standard_normal((16, 16, 3, 3)) / 12).astype(dtype)
    oh, ow = 9 + 2 * padding - 2, 10 + 2 * padding - 2
    gy = rng.standard_normal((2, 16, oh, ow)).astype(dtype)
    ours = _conv_and_grads(x, w, (padding, padding), gy)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    ty = torch.nn.functional.conv2d(tx, tw, padding=padding)
    ty.backward(torch.tensor(gy))
    for a, e in zip(ours, (ty.detach().numpy(), tx.grad.numpy(), tw.grad.numpy())):
        np.testing.assert_allclose(a, e, rtol=tol, atol=tol * np.abs(e).max())


@pytest.mark.parametrize("x_dtype, w_dtype", [(np.float32, np.float64), (np.float64, np.float32)])
def test_mixed_dtypes_promote_as_im2col_does_chunked_or_not(algorithm, setting, x_dtype, w_dtype):
    rng = np.random.default_rng(6)
    x, w = rng.standard_normal((3, 2, 5, 5)).astype(x_dtype), rng.standard_normal((3, 2, 3, 3)).astype(w_dtype)
    gy = rng.standard_normal((3, 3, 5, 5))
    algorithm("im2col")
    expected = _conv_and_grads(x, w, 1, gy)
    algorithm("winograd")
    for limit in (mdl.config.workspace_limit, 1):
        setting("workspace_limit", limit)
        for a, e in zip(_conv_and_grads(x, w, 1, gy), expected):
            assert a.dtype == e.dtype
            np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5 * np.abs(e).max())

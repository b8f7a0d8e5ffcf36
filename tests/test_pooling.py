"""Max, average and adaptive average pooling: gradients, PyTorch's sizes and values, ties, errors."""
import numpy as np
import pytest

import minidl as mdl
from minidl import kernels
from minidl.ops.pooling import adaptive_avg_pool2d, avg_pool2d, max_pool2d
from conftest import close

# Every test here runs on each kernel implementation (tests/conftest.py::kernel_set).
pytestmark = pytest.mark.usefixtures("kernel_set")


def distinct(shape, seed=0):
    """Values no two of which are within 0.1 of each other (no ties for max pooling to break)."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    return (rng.permutation(n) * 0.25 + rng.uniform(-0.05, 0.05, n)).reshape(shape)


# (input H, W, kernel_size, stride, padding, ceil_mode): overlapping and gapped windows, rectangular
# kernels, windows reaching into the padding, and ceil_mode's extra window kept or dropped.
CONFIGS = [
    (4, 4, 2, None, 0, False),
    (14, 14, 3, 2, 0, True),   # AlexNet/GoogLeNet style: ceil gives 7x7 where floor gives 6x6
    (13, 13, 3, 2, 0, True),   # ceil and floor agree: 6x6
    (5, 5, 2, 2, 1, True),     # the ceil window would start in the right padding: dropped (3x3)
    (6, 6, 2, 2, 1, True),
    (7, 5, (3, 2), (2, 1), (1, 0), True),
    (8, 8, 4, 3, 2, True),
    (8, 8, 4, 3, 2, False),
    (5, 7, 3, 1, 1, False),
    (5, 5, 5, 1, 2, True),
    (3, 3, 3, 5, 1, True),     # stride larger than the kernel
    (9, 4, (1, 3), (4, 1), (0, 1), True),
    (20, 18, (16, 17), 2, 8, True),  # more than 255 offsets per window
]


def t(*shape, dtype=np.float64):
    return mdl.tensor(np.ones(shape, dtype=dtype))


def config_id(c):
    return "x".join(map(str, c[:2])) + f"-k{c[2]}-s{c[3]}-p{c[4]}" + ("-ceil" if c[5] else "")


def run_both(torch, ours, theirs, x, seed=1):
    """Output and input gradient of ``ours`` (minidl) and ``theirs`` (torch) for the same x and upstream g."""
    xm = mdl.tensor(x, requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), theirs(xt)
    assert ym.shape == tuple(yt.shape)
    g = np.random.default_rng(seed).standard_normal(ym.shape)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.tensor(g))
    return (ym.numpy(), xm.grad.numpy()), (yt.detach().numpy(), xt.grad.numpy())


@pytest.mark.parametrize("size, k, s, p, ceil, expected", [
    (14, 3, 2, 0, True, 7), (14, 3, 2, 0, False, 6), (13, 3, 2, 0, True, 6),
    (5, 2, 2, 1, True, 3),  # a 4th window would start in the right padding only: dropped
    (6, 2, 2, 1, True, 4),
])
def test_output_size_follows_pytorch(size, k, s, p, ceil, expected):
    x = t(1, 1, size, size)
    assert max_pool2d(x, k, s, p, ceil).shape[2:] == (expected, expected)
    assert avg_pool2d(x, k, s, p, ceil).shape[2:] == (expected, expected)


# --- gradients ------------------------------------------------------------------

@pytest.mark.parametrize("cfg", CONFIGS[:6], ids=config_id)
def test_max_pool_gradcheck(cfg):
    h, w, k, s, p, ceil = cfg
    x = mdl.tensor(distinct((1, 2, h, w)), requires_grad=True)
    assert mdl.gradcheck(lambda x: max_pool2d(x, k, s, p, ceil), [x])


@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("cfg", [CONFIGS[3], CONFIGS[5], CONFIGS[6], CONFIGS[11]], ids=config_id)
def test_avg_pool_gradcheck(cfg, count_include_pad):
    h, w, k, s, p, ceil = cfg
    x = mdl.tensor(np.random.default_rng(0).standard_normal((1, 2, h, w)), requires_grad=True)
    assert mdl.gradcheck(lambda x: avg_pool2d(x, k, s, p, ceil, count_include_pad), [x])


@pytest.mark.parametrize("size, out", [((6, 4), 2), ((5, 7), (3, 4)), ((4, 3), (None, 2)), ((2, 3), 4)])
def test_adaptive_avg_pool_gradcheck(size, out):
    x = mdl.tensor(np.random.default_rng(0).standard_normal((1, 2) + size), requires_grad=True)
    assert mdl.gradcheck(lambda x: adaptive_avg_pool2d(x, out), [x])
    assert mdl.gradgradcheck(lambda x: adaptive_avg_pool2d(x, out), [x])


# --- against PyTorch -------------------------------------------------------------

@pytest.mark.torch
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_max_pool_matches_torch(torch, cfg):
    h, w, k, s, p, ceil = cfg
    x = np.random.default_rng(0).standard_normal((2, 3, h, w))
    ours, theirs = run_both(torch, lambda x: max_pool2d(x, k, s, p, ceil),
                            lambda x: torch.nn.functional.max_pool2d(x, k, s, p, ceil_mode=ceil), x)
    for a, b in zip(ours, theirs):
        close(a, b)
    _, idx = torch.nn.functional.max_pool2d(torch.tensor(x), k, s, p, ceil_mode=ceil, return_indices=True)
    pair = lambda v: (v, v) if isinstance(v, int) else v  # noqa: E731
    argmax = kernels.max_pool2d_forward(x, pair(k), pair(k if s is None else s), pair(p), ceil)[1]
    np.testing.assert_array_equal(argmax, idx.numpy())


@pytest.mark.torch
@pytest.mark.parametrize("count_include_pad", [True, False])
@pytest.mark.parametrize("cfg", CONFIGS, ids=config_id)
def test_avg_pool_matches_torch(torch, cfg, count_include_pad):
    h, w, k, s, p, ceil = cfg
    x = np.random.default_rng(0).standard_normal((2, 3, h, w))
    ours, theirs = run_both(
        torch, lambda x: avg_pool2d(x, k, s, p, ceil, count_include_pad),
        lambda x: torch.nn.functional.avg_pool2d(x, k, s, p, ceil_mode=ceil, count_include_pad=count_include_pad),
        x)
    for a, b in zip(ours, theirs):
        close(a, b)


@pytest.mark.torch
@pytest.mark.parametrize("size, out", [((8, 8), 4), ((7, 7), 3), ((10, 9), (4, None)), ((5, 5), (7, 2)),
                                       ((6, 13), (6, 5)), ((3, 3), 1), ((4, 4), (None, None))])
def test_adaptive_avg_pool_matches_torch(torch, size, out):
    x = np.random.default_rng(0).standard_normal((2, 3) + size)
    ours, theirs = run_both(torch, lambda x: adaptive_avg_pool2d(x, out),
                            lambda x: torch.nn.functional.adaptive_avg_pool2d(x, out), x)
    for a, b in zip(ours, theirs):
        close(a, b)


@pytest.mark.torch
@pytest.mark.parametrize("pool", ["max", "avg"])
def test_float32_stays_float32_and_matches_torch(torch, pool):
    x = np.random.default_rng(0).standard_normal((2, 3, 9, 9)).astype(np.float32)
    ours = max_pool2d if pool == "max" else avg_pool2d
    theirs = getattr(torch.nn.functional, f"{pool}_pool2d")
    (y, gx), (yt, gxt) = run_both(torch, lambda x: ours(x, 3, 2, 1, True),
                                  lambda x: theirs(x, 3, 2, 1, ceil_mode=True), x)
    assert y.dtype == gx.dtype == np.float32
    np.testing.assert_allclose(y, yt, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(gx, gxt, rtol=1e-6, atol=1e-6)


# --- ties and special values --------------------------------------------------------

@pytest.mark.torch
def test_max_pool_tie_sends_the_whole_gradient_to_one_element(torch):
    # An all-equal window: the first element in window order gets all of it, as in PyTorch
    # (not an even split, which the max reduction uses).
    x = np.ones((1, 1, 2, 2))
    xm = mdl.tensor(x, requires_grad=True)
    max_pool2d(xm, 2).sum().backward()
    np.testing.assert_array_equal(xm.grad.numpy(), [[[[1, 0], [0, 0]]]])
    # overlapping windows over a constant image, with padding
    x = np.full((1, 1, 4, 5), 3.0)
    ours, theirs = run_both(torch, lambda x: max_pool2d(x, 3, 1, 1),
                            lambda x: torch.nn.functional.max_pool2d(x, 3, 1, 1), x)
    close(ours[1], theirs[1])


@pytest.mark.torch
def test_max_pool_special_values_like_torch(torch):
    x = np.random.default_rng(0).standard_normal((1, 1, 4, 4))
    x[0, 0, 1, 1] = np.nan
    x[0, 0, 2:, 2:] = -np.inf
    y = max_pool2d(mdl.tensor(x), 2).numpy()
    yt = torch.nn.functional.max_pool2d(torch.tensor(x), 2).numpy()
    np.testing.assert_array_equal(y, yt)  # NaN propagates; an all -inf window gives -inf
    _, idx = torch.nn.functional.max_pool2d(torch.tensor(x), 2, return_indices=True)
    np.testing.assert_array_equal(kernels.max_pool2d_forward(x, (2, 2), (2, 2), (0, 0), False)[1], idx.numpy())


def test_max_pool_double_backward_gathers_at_argmax():
    x = mdl.tensor(distinct((1, 1, 4, 4)), requires_grad=True)
    g = mdl.tensor(np.arange(4.0).reshape(1, 1, 2, 2), requires_grad=True)
    (gx,) = mdl.grad([max_pool2d(x, 2)], [x], grad_outputs=[g], create_graph=True)
    ggx = mdl.tensor(np.random.default_rng(0).standard_normal((1, 1, 4, 4)))
    (gg,) = mdl.grad([gx], [g], grad_outputs=[ggx])
    argmax = kernels.max_pool2d_forward(x.data, (2, 2), (2, 2), (0, 0), False)[1]
    expected = ggx.numpy().reshape(16)[argmax.reshape(-1)].reshape(1, 1, 2, 2)
    np.testing.assert_array_equal(gg.numpy(), expected)


# --- errors -----------------------------------------------------------------------

@pytest.mark.parametrize("fn, pattern", [
    (lambda: max_pool2d(t(3, 4, 4), 2), r"max_pool2d: expected a 4-D \(N, C, H, W\) input; got shape \(3, 4, 4\)"),
    (lambda: avg_pool2d(t(1, 1, 2, 2), 3), r"avg_pool2d: the 3x3 window does not fit the input of shape "
                                           r"\(1, 1, 2, 2\) with padding \(0, 0\) \(output would be 0x0\)"),
    (lambda: max_pool2d(t(1, 1, 4, 2), (2, 3)), r"max_pool2d: the 2x3 window does not fit .* \(output would be 2x0\)"),
    (lambda: max_pool2d(t(1, 1, 4, 4), 3, padding=2), r"max_pool2d: padding must be at most half of "
                                                      r"kernel_size=\(3, 3\); got 2"),
    (lambda: max_pool2d(t(1, 1, 4, 4), (3, 2), padding=(1, 2)), r"max_pool2d: padding must be at most half of "
                                                                r"kernel_size=\(3, 2\); got \(1, 2\)"),
    (lambda: avg_pool2d(t(1, 1, 4, 4), 2, padding=-1), r"avg_pool2d: padding must be >= 0; got -1"),
    (lambda: max_pool2d(t(1, 1, 4, 4), 2, stride=0), r"max_pool2d: stride must be >= 1; got 0"),
    (lambda: avg_pool2d(t(1, 1, 4, 4), 2, stride=(1, -1)), r"avg_pool2d: stride must be >= 1; got \(1, -1\)"),
    (lambda: max_pool2d(t(1, 1, 4, 4), 2, stride=(1, 2, 3)), r"max_pool2d: stride must be an int or a pair of "
                                                             r"ints \(h, w\); got \(1, 2, 3\)"),
    (lambda: max_pool2d(t(1, 1, 4, 4), 0), r"max_pool2d: kernel_size must be >= 1; got 0"),
    (lambda: max_pool2d(t(1, 1, 4, 4), (2, 2, 2)), r"max_pool2d: kernel_size must be an int or a pair of ints "
                                                   r"\(h, w\); got \(2, 2, 2\)"),
    (lambda: avg_pool2d(t(1, 1, 4, 4), 2.0), r"avg_pool2d: kernel_size must be an int or a pair of ints \(h, w\); "
                                             r"got 2.0"),
    (lambda: max_pool2d(t(1, 1, 4, 4, dtype=np.int64), 2), r"max_pool2d: expected a floating-point input; got int64"),
    (lambda: adaptive_avg_pool2d(t(4, 4), 2), r"adaptive_avg_pool2d: expected a 4-D \(N, C, H, W\) input; "
                                              r"got shape \(4, 4\)"),
    (lambda: adaptive_avg_pool2d(t(1, 1, 4, 4), 0), r"adaptive_avg_pool2d: output_size must be positive; got 0"),
    (lambda: adaptive_avg_pool2d(t(1, 1, 4, 4), (2, 2, 2)), r"adaptive_avg_pool2d: output_size must be an int, "
                                                            r"None, or a pair of them; got \(2, 2, 2\)"),
    (lambda: adaptive_avg_pool2d(t(1, 1, 0, 4), 2), r"adaptive_avg_pool2d: input of shape \(1, 1, 0, 4\) has an "
                                                    r"empty spatial axis"),
])
def test_bad_input_names_the_op_and_values(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert info.value.__context__ is None  # raised by our check, not converted from a NumPy error

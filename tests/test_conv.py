"""Convolution: im2col/col2im, conv2d's gradients over the stride/padding/dilation/groups/kernel grid,
second derivatives, PyTorch as an oracle, the bounded workspace, and bad input."""
import itertools

import numpy as np
import pytest

import minidl as mdl
from minidl import kernels
from minidl.ops import conv
from minidl.ops.conv import conv2d

# Every test here runs on each kernel implementation (tests/conftest.py::kernel_set).
pytestmark = pytest.mark.usefixtures("kernel_set")


@pytest.fixture(params=["per-sample", "batch-folded"])
def layout(request, monkeypatch):
    """Each way of laying out the GEMMs (conv.fold_batch picks one per layer): every test that
    uses this runs both, whatever the rule would pick for its shapes."""
    folded = request.param == "batch-folded"
    monkeypatch.setattr(conv, "fold_batch", lambda length: folded)
    return request.param

# --- the gradcheck grid ---------------------------------------------------------------------
# Every value of every parameter appears: all 18 (stride, padding, dilation) triples twice, with
# the kernel shape, groups and batch size cycling at different periods so they meet many triples
# (a covering design: the full product would be ~1,500 checks).
KERNELS = [(1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (1, 3), (3, 1), (2, 5), (4, 2)]
GROUPS = ["1", "2", "depthwise"]
CHANNELS = {"1": (2, 3, 1), "2": (2, 4, 2), "depthwise": (3, 3, 3)}  # (in, out, groups)


def _grid():
    rows = []
    for rep, (j, (s, p, d)) in itertools.product((0, 1), enumerate(itertools.product((1, 2, 3), (0, 1, 2), (1, 2)))):
        # the second pass shifts every cycle, so it pairs each triple with new values
        kernel, groups, batch = KERNELS[(j + 5 * rep) % 9], GROUPS[(j // 2 + rep) % 3], 1 + (j + rep) % 3
        # the smallest image that gives two output positions along each axis (more where the
        # padding alone is wider than the kernel: every image has at least one pixel)
        size = tuple(max(d * (k - 1) + 1 - 2 * p, 1) + s for k in kernel)
        rows.append((batch, groups, size, kernel, s, p, d))
    return rows


GRID = _grid()


def test_grid_covers_every_value():
    assert len(set(GRID)) == len(GRID)
    seen = [set(col) for col in zip(*GRID)]
    assert {1, 2, 3} <= seen[0] and set(GROUPS) <= seen[1] and set(KERNELS) <= seen[3]
    assert seen[4] == {1, 2, 3} and seen[5] == {0, 1, 2} and seen[6] == {1, 2}
    assert {len(set(k)) for k in seen[3]} == {1, 2}  # square and non-square kernels


@pytest.mark.usefixtures("layout")
@pytest.mark.parametrize("batch, groups, size, kernel, stride, padding, dilation", GRID,
                         ids=[f"{i}-n{r[0]}-g{r[1]}-hw{r[2][0]}x{r[2][1]}-k{r[3][0]}x{r[3][1]}-s{r[4]}-p{r[5]}-d{r[6]}"
                              for i, r in enumerate(GRID)])
def test_conv2d_gradcheck(batch, groups, size, kernel, stride, padding, dilation):
    c, oc, g = CHANNELS[groups]
    rng = np.random.default_rng(0)
    x = mdl.tensor(rng.uniform(-1, 1, (batch, c) + size), requires_grad=True)
    w = mdl.tensor(rng.uniform(-1, 1, (oc, c // g) + kernel), requires_grad=True)
    b = mdl.tensor(rng.uniform(-1, 1, oc), requires_grad=True)

    def fn(x, w, b):
        return conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=g)

    y = fn(x, w, b)
    assert y.shape[:2] == (batch, oc) and min(y.shape[2:]) >= 2
    assert mdl.gradcheck(fn, [x, w, b])


@pytest.mark.usefixtures("layout")
@pytest.mark.parametrize("stride, padding, dilation, groups, kernel", [
    (1, 1, 1, 1, (3, 3)), (2, (1, 0), (1, 2), 2, (2, 3)),
])
def test_conv2d_gradgradcheck(stride, padding, dilation, groups, kernel):
    rng = np.random.default_rng(1)
    x = mdl.tensor(rng.uniform(-1, 1, (2, 2, 5, 6)), requires_grad=True)
    w = mdl.tensor(rng.uniform(-1, 1, (2, 2 // groups) + kernel), requires_grad=True)
    b = mdl.tensor(rng.uniform(-1, 1, 2), requires_grad=True)

    def fn(x, w, b):
        return conv2d(x, w, b, stride=stride, padding=padding, dilation=dilation, groups=groups)

    assert mdl.gradgradcheck(fn, [x, w, b])


@pytest.mark.usefixtures("layout")
@pytest.mark.parametrize("groups", [1, 2])
def test_weight_gradient_of_a_layer_with_few_output_positions(groups):
    # One output position: one sample's GEMMs are matrix-vector products, and the two layouts
    # (the layout fixture) differ most.
    rng = np.random.default_rng(2)
    x = mdl.tensor(rng.uniform(-1, 1, (3, 2 * groups, 3, 3)), requires_grad=True)
    w = mdl.tensor(rng.uniform(-1, 1, (3 * groups, 2, 3, 3)), requires_grad=True)
    assert mdl.gradcheck(lambda x, w: conv2d(x, w, groups=groups), [x, w])
    assert mdl.gradgradcheck(lambda x, w: conv2d(x, w, groups=groups), [x, w])


# --- im2col / col2im -------------------------------------------------------------------------
IM2COL_CONFIGS = [  # x shape, kernel, stride, padding, dilation
    ((2, 3, 6, 5), (3, 3), (1, 1), (1, 1), (1, 1)),
    ((1, 2, 7, 9), (2, 4), (2, 3), (0, 2), (1, 1)),
    ((3, 1, 9, 8), (3, 2), (1, 2), (2, 1), (2, 3)),
    ((2, 2, 8, 8), (1, 1), (3, 3), (0, 0), (1, 1)),  # windows with gaps between them
    ((1, 4, 5, 5), (5, 5), (1, 1), (0, 0), (1, 1)),  # one window, the whole image
    ((2, 3, 4, 5), (1, 1), (1, 1), (0, 0), (1, 1)),  # the columns are the image itself
]


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", IM2COL_CONFIGS)
def test_im2col_matches_its_definition(shape, kernel, stride, padding, dilation):
    x = np.random.default_rng(0).standard_normal(shape)
    col = kernels.im2col(x, kernel, stride, padding, dilation)
    n, c, h, w = shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, padding, dilation
    oh = kernels.conv_output_size(h, kh, sh, ph, dh)
    ow = kernels.conv_output_size(w, kw, sw, pw, dw)
    expected = np.zeros((n, c * kh * kw, oh * ow))
    for ci, i, j, r, q in itertools.product(range(c), range(kh), range(kw), range(oh), range(ow)):
        row, col_h, col_w = (ci * kh + i) * kw + j, r * sh - ph + i * dh, q * sw - pw + j * dw
        if 0 <= col_h < h and 0 <= col_w < w:
            expected[:, row, r * ow + q] = x[:, ci, col_h, col_w]
    np.testing.assert_array_equal(col, expected)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", IM2COL_CONFIGS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_col2im_is_the_adjoint_of_im2col(shape, kernel, stride, padding, dilation, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    col = kernels.im2col(x, kernel, stride, padding, dilation)
    c = rng.standard_normal(col.shape).astype(dtype)
    back = kernels.col2im(c, shape, kernel, stride, padding, dilation)
    assert col.dtype == dtype and back.dtype == dtype and back.shape == shape
    lhs = np.vdot(col.astype(np.float64), c.astype(np.float64))
    rhs = np.vdot(x.astype(np.float64), back.astype(np.float64))
    assert lhs == pytest.approx(rhs, rel=1e-5 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("shape, kernel, stride, padding, dilation", IM2COL_CONFIGS)
def test_im2col_writes_into_out(shape, kernel, stride, padding, dilation):
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    expected = kernels.im2col(x, kernel, stride, padding, dilation)
    out = np.full(expected.shape, np.nan, dtype=np.float32)
    col = kernels.im2col(x, kernel, stride, padding, dilation, out)
    np.testing.assert_array_equal(col, expected)
    # the columns are either written into out or, where they are x itself, a view of x
    assert np.shares_memory(col, out) or (np.shares_memory(col, x) and np.isnan(out).all())


def test_the_workspace_is_reused_and_released_with_the_limit(setting):
    x = mdl.tensor(np.ones((2, 3, 8, 8), np.float32))
    w = mdl.tensor(np.ones((4, 3, 3, 3), np.float32))
    setting("workspace_limit", 1000)
    conv2d(x, w, stride=2)  # a buffer kept by earlier tests is over the limit: one sample's columns, fresh
    assert conv._scratch.buffer.nbytes == 27 * 9 * 4
    setting("workspace_limit", 2 ** 20)
    conv2d(x, w, stride=2)  # im2col: 2 samples x 27 rows x 9 positions, float32
    buffer = conv._scratch.buffer
    assert buffer.nbytes == 2 * 27 * 9 * 4
    np.testing.assert_array_equal(conv2d(x, w, stride=2).numpy(), np.full((2, 4, 3, 3), 27, np.float32))
    assert conv._scratch.buffer is buffer  # kept, not reallocated
    setting("workspace_limit", 1000)
    conv2d(x, w, stride=2)
    assert conv._scratch.buffer is not buffer and conv._scratch.buffer.nbytes == 27 * 9 * 4  # released


def test_col2im_is_not_the_inverse():
    # 3x3 windows, stride 1, padding 1 on a 4x4 image: each pixel is counted once per window over it
    ones = np.ones((1, 1, 4, 4))
    counts = kernels.col2im(kernels.im2col(ones, (3, 3), (1, 1), (1, 1), (1, 1)), ones.shape,
                            (3, 3), (1, 1), (1, 1), (1, 1))
    np.testing.assert_array_equal(counts[0, 0], [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]])


@pytest.mark.usefixtures("layout")
def test_float32_stays_float32():
    rng = np.random.default_rng(0)
    x = mdl.tensor(rng.standard_normal((2, 4, 6, 6)).astype(np.float32), requires_grad=True)
    w = mdl.tensor(rng.standard_normal((4, 2, 3, 3)).astype(np.float32), requires_grad=True)
    b = mdl.tensor(np.zeros(4, np.float32), requires_grad=True)
    y = conv2d(x, w, b, stride=2, padding=1, groups=2)
    y.sum().backward()
    assert y.dtype == np.float32 and x.grad.dtype == np.float32 and w.grad.dtype == np.float32


@pytest.mark.usefixtures("layout")
def test_no_input_gradient_when_the_input_does_not_need_one():
    x = mdl.tensor(np.ones((1, 1, 4, 4)))
    w = mdl.tensor(np.ones((1, 1, 3, 3)), requires_grad=True)
    conv2d(x, w).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad.numpy(), np.full((1, 1, 3, 3), 4.0))


# --- PyTorch as the oracle -------------------------------------------------------------------
TORCH_CONFIGS = [  # N, C, H, W, OC, kernel, stride, padding, dilation, groups
    (2, 3, 8, 8, 4, 3, 1, 1, 1, 1),
    (2, 4, 9, 7, 6, (3, 2), (2, 1), (1, 0), 1, 2),
    (1, 4, 10, 10, 4, 3, 1, 2, 2, 4),
    (3, 2, 11, 9, 4, 5, 3, 2, 1, 1),
    (2, 6, 7, 7, 6, 1, 1, 0, 1, 3),
    (2, 3, 12, 12, 2, (2, 4), 2, (0, 2), (2, 1), 1),
    (1, 8, 6, 6, 16, 3, 1, 1, 1, 8),
    (2, 2, 5, 5, 3, 5, 1, 0, 1, 1),
    (2, 4, 13, 13, 8, 4, 3, 1, 2, 2),
    (1, 3, 19, 19, 4, 11, 4, 2, 1, 1),
    (2, 1, 6, 9, 2, (1, 5), 1, (0, 2), 1, 1),
    (3, 6, 8, 8, 6, 3, 2, 1, 1, 6),
]


def _assert_close(actual, expected):
    """Relative to the largest magnitude of the reference: 1e-7 in float64."""
    scale = max(np.abs(expected).max(), 1e-300)
    assert np.abs(actual - expected).max() <= 1e-7 * scale


@pytest.mark.usefixtures("layout")
@pytest.mark.torch
@pytest.mark.parametrize("n, c, h, w, oc, kernel, stride, padding, dilation, groups", TORCH_CONFIGS)
def test_conv2d_matches_pytorch(n, c, h, w, oc, kernel, stride, padding, dilation, groups):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    kernel = kernel if isinstance(kernel, tuple) else (kernel, kernel)
    arrays = [rng.standard_normal((n, c, h, w)), rng.standard_normal((oc, c // groups) + kernel),
              rng.standard_normal(oc)]
    ours = [mdl.tensor(a, requires_grad=True) for a in arrays]
    theirs = [torch.tensor(a, requires_grad=True) for a in arrays]
    y = conv2d(*ours, stride=stride, padding=padding, dilation=dilation, groups=groups)
    ty = torch.nn.functional.conv2d(*theirs, stride=stride, padding=padding, dilation=dilation, groups=groups)
    _assert_close(y.numpy(), ty.detach().numpy())
    gy = rng.standard_normal(y.shape)
    y.backward(mdl.tensor(gy))
    ty.backward(torch.tensor(gy))
    for a, b in zip(ours, theirs):
        _assert_close(a.grad.numpy(), b.grad.numpy())


# --- bounded workspace (tests/conftest.py::setting sets the limit) ---------------------
def _run(x, w, b, create_graph=False):
    """Output and all gradients (and, with create_graph, a second derivative) as arrays."""
    xs = [mdl.tensor(a, requires_grad=True) for a in (x, w, b)]
    y = conv2d(*xs, stride=2, padding=1, groups=2)
    gy = mdl.tensor(np.arange(y.size, dtype=np.float64).reshape(y.shape) % 7 - 3)
    grads = mdl.grad(y, xs, grad_outputs=gy, create_graph=create_graph)
    out = [y.numpy()] + [g.numpy() for g in grads]
    if create_graph:
        ggx = mdl.grad((grads[0] * grads[0]).sum() + (grads[1] ** 3).sum(), xs[:2])
        out += [g.numpy() for g in ggx]
    return out


@pytest.mark.usefixtures("layout")
def test_chunked_and_unchunked_are_identical(setting, monkeypatch):
    # Small integers: every product and sum is exact, so any order of summation gives the same
    # bits, and equality tests that the chunks cover each sample exactly once.
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 4, (5, 4, 7, 6)).astype(np.float64)
    w = rng.integers(-3, 4, (6, 2, 3, 3)).astype(np.float64)
    b = rng.integers(-3, 4, 6).astype(np.float64)
    whole = _run(x, w, b, create_graph=True)

    seen = []
    im2col = kernels.im2col
    monkeypatch.setattr(kernels, "im2col", lambda x, *a: seen.append(x.shape[0]) or im2col(x, *a))
    per_sample = 4 * 9 * 4 * 3 * 8  # C*kh*kw*OH*OW float64 columns of one sample
    for limit, most in [(1, 1), (2 * per_sample, 2), (3 * per_sample + 5, 3)]:
        setting("workspace_limit", limit)
        seen.clear()
        chunked = _run(x, w, b, create_graph=True)
        for a, e in zip(chunked, whole):
            np.testing.assert_array_equal(a, e)
        assert seen and max(seen) <= most  # the batch really was split


def test_both_layouts_give_the_same_bits(monkeypatch):
    # Small integers, as above: exact in any order of summation, so the layouts must agree exactly,
    # forward, both gradients, the bias's, and second derivatives through all three Functions.
    rng = np.random.default_rng(1)
    x = rng.integers(-3, 4, (3, 4, 7, 6)).astype(np.float64)
    w = rng.integers(-3, 4, (6, 2, 3, 3)).astype(np.float64)
    b = rng.integers(-3, 4, 6).astype(np.float64)
    runs = []
    for folded in (False, True):
        monkeypatch.setattr(conv, "fold_batch", lambda length: folded)
        runs.append(_run(x, w, b, create_graph=True))
    for a, e in zip(*runs):
        np.testing.assert_array_equal(a, e)


@pytest.mark.usefixtures("layout")
def test_chunking_on_random_float32(setting):
    rng = np.random.default_rng(0)
    x, w, b = (rng.standard_normal(s).astype(np.float32) for s in [(4, 4, 9, 9), (6, 2, 3, 3), (6,)])
    whole = _run(x, w, b)
    setting("workspace_limit", 1)
    for a, e in zip(_run(x, w, b), whole):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)


def test_workspace_limit_must_be_positive():
    with pytest.raises(ValueError, match=r"config.workspace_limit: expected a positive number of bytes; got 0"):
        mdl.config.workspace_limit = 0


# --- bad input ---------------------------------------------------------------------------------
def t(*shape):
    return mdl.tensor(np.ones(shape))


@pytest.mark.parametrize("call, pattern", [
    (lambda: conv2d(t(1, 3, 5, 5), t(2, 2, 3, 3)),
     r"conv2d: input of shape \(1, 3, 5, 5\) has 3 channels, but weight of shape \(2, 2, 3, 3\) with "
     r"groups=1 expects 2"),
    (lambda: conv2d(t(1, 4, 5, 5), t(2, 1, 3, 3), groups=2),
     r"conv2d: input of shape \(1, 4, 5, 5\) has 4 channels, .* groups=2 expects 2"),
    (lambda: conv2d(t(1, 1, 4, 4), t(1, 1, 3, 3), dilation=2),
     r"conv2d: kernel \(3, 3\) with dilation \(2, 2\) spans \(5, 5\) pixels, more than the padded input "
     r"\(4, 4\)"),
    (lambda: conv2d(t(1, 1, 2, 6), t(1, 1, 5, 1), padding=(1, 0)),
     r"conv2d: kernel \(5, 1\) .* spans \(5, 1\) pixels, more than the padded input \(4, 6\)"),
    (lambda: conv2d(t(1, 3, 5, 5), t(2, 1, 3, 3), groups=2),
     r"conv2d: groups=2 must divide both the input channels \(3, .*and the output channels \(2,"),
    (lambda: conv2d(t(1, 4, 5, 5), t(3, 2, 3, 3), groups=2),
     r"conv2d: groups=2 must divide .*output channels \(3, weight shape \(3, 2, 3, 3\)\)"),
    (lambda: conv2d(t(1, 2, 5, 5), t(2, 2, 3, 3), groups=0), r"conv2d: groups must be an int >= 1; got 0"),
    (lambda: conv2d(t(1, 2, 5, 5), t(2, 2, 3, 3), groups=1.0), r"conv2d: groups must be an int >= 1; got 1.0"),
    (lambda: conv2d(t(3, 5, 5), t(2, 3, 3, 3)), r"conv2d: expected a 4-D \(N, C, H, W\) input; got shape \(3, 5, 5\)"),
    (lambda: conv2d(t(1, 3, 5, 5), t(2, 3, 3)), r"conv2d: weight must be 4-D .*got shape \(2, 3, 3\)"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), stride=0), r"conv2d: stride must be >= 1; got 0"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), stride=(1, 2, 3)),
     r"conv2d: stride must be an int or a pair of ints \(h, w\); got \(1, 2, 3\)"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), stride=(True, 1)),
     r"conv2d: stride must be an int or a pair of ints \(h, w\); got \(True, 1\)"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), dilation=(1, 0)), r"conv2d: dilation must be >= 1; got \(1, 0\)"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), dilation=1.5),
     r"conv2d: dilation must be an int or a pair of ints \(h, w\); got 1.5"),
    (lambda: conv2d(t(1, 1, 5, 5), t(1, 1, 3, 3), padding=-1), r"conv2d: padding must be >= 0; got -1"),
    (lambda: conv2d(t(1, 1, 5, 5), t(4, 1, 3, 3), t(3)),
     r"conv2d: bias of shape \(3,\) does not match the 4 output channels .*expected shape \(4,\)"),
])
def test_bad_input_names_conv2d_and_the_values(call, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        call()
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)

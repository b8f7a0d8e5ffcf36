"""The engine: graph building, backward order, accumulation, memory, modes, dtypes."""
import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import minidl as mdl


def leaf(*shape, seed=0):
    return mdl.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


# --- gradients ------------------------------------------------------------------

def test_diamond_graph_gets_both_paths():
    x = leaf(3)
    a = x * x          # x used twice by one op
    b = a.exp()
    y = (a * b + a).sum()   # a reaches y along three paths
    y.backward()
    xd = x.data
    expected = (2 * xd) * (np.exp(xd ** 2) * (1 + xd ** 2) + 1)
    np.testing.assert_allclose(x.grad.data, expected, rtol=1e-12)


def test_gradients_accumulate_across_backward_calls():
    x = leaf(2, 3)
    (x * 2).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 5.0))
    x.zero_grad()
    assert x.grad is None


def test_second_backward_through_freed_graph_says_how_to_keep_it():
    x = leaf(3)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward_that_accumulates():
    x = leaf(3)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * x.data)


def test_backward_on_a_leaf():
    x = mdl.tensor(3.0, requires_grad=True)
    x.backward()
    assert x.grad.item() == 1.0


def test_backward_with_explicit_gradient():
    x = leaf(2, 2)
    y = x * 3
    y.backward(np.ones((2, 2)) * 2)
    np.testing.assert_allclose(x.grad.data, np.full((2, 2), 6.0))


def test_backward_on_non_scalar_without_gradient_says_so():
    y = leaf(2, 3) * 2
    with pytest.raises(ValueError, match=r"one element.*\(2, 3\)"):
        y.backward()


def test_backward_on_tensor_without_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        mdl.tensor([1.0, 2.0]).sum().backward()


def test_only_leaves_keep_grad_unless_retained():
    x = leaf(3)
    h = x * 2
    h2 = x * 3
    h2.retain_grad()
    (h + h2).sum().backward()
    assert h.grad is None
    np.testing.assert_array_equal(h2.grad.data, np.ones(3))


def test_long_chain_needs_no_recursion():
    x = mdl.tensor(np.float64(1.0), requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001 + 0.0
    y.backward()
    np.testing.assert_allclose(x.grad.item(), 1.0001 ** 5000, rtol=1e-10)
    del y  # freeing a 10,000-node chain must not overflow the C stack either
    gc.collect()


def test_graph_is_freed_by_reference_counting():
    gc.disable()
    try:
        x = leaf(4)
        h = x.exp()
        ref = weakref.ref(h)
        y = (h * 2).sum()
        del h
        assert ref() is not None  # kept alive by the graph
        y.backward()
        assert ref() is None  # backward released it
        h = x.exp()
        ref = weakref.ref(h)
        y = (h * 2).sum()
        del h, y  # dropping the output frees the graph: no cycles to wait for
        assert ref() is None
    finally:
        gc.enable()


def test_no_memory_growth_over_1000_iterations():
    w = leaf(32, 32)
    x = mdl.tensor(np.random.default_rng(1).standard_normal((16, 32)))

    def step():
        h = (x @ w).tanh()
        loss = (h.softmax(axis=1) * h).sum() + (w * w).mean()
        loss.backward()
        w.grad = None

    for _ in range(300):  # let NumPy's and Python's caches and free lists settle
        step()
    gc.disable()  # everything must be freed by reference counting alone
    try:
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        for _ in range(1000):
            step()
        grown = tracemalloc.get_traced_memory()[0] - base
        tracemalloc.stop()
    finally:
        gc.enable()
    # One leaked graph per iteration would hold >= 4 KiB (a 16x32 float64 array): 4 MiB over the loop.
    assert grown < 128 * 1024, f"memory grew by {grown} bytes over 1000 iterations"


# --- modes ------------------------------------------------------------------

def test_no_grad_builds_no_graph():
    x = leaf(3)
    with mdl.no_grad():
        y = x * 2
    assert y.creator is None and not y.requires_grad
    assert mdl.is_grad_enabled()


def test_detach_shares_data_and_cuts_the_graph():
    x = leaf(3)
    y = x * 2
    d = y.detach()
    assert d.creator is None and not d.requires_grad
    assert np.shares_memory(d.data, y.data)


def test_create_graph_gives_differentiable_gradients():
    x = mdl.tensor([0.5, -1.0, 2.0], requires_grad=True, dtype=np.float64)
    y = (x ** 3).sum()
    g, = mdl.grad(y, [x], create_graph=True)
    np.testing.assert_allclose(g.data, 3 * x.data ** 2)
    g.sum().backward()
    np.testing.assert_allclose(x.grad.data, 6 * x.data)


def test_backward_create_graph_records_grad_graph():
    x = mdl.tensor(2.0, requires_grad=True, dtype=np.float64)
    y = x ** 4
    y.backward(create_graph=True)
    gx = x.grad
    assert gx.creator is not None
    x.grad = None
    gx.backward()
    assert x.grad.item() == pytest.approx(12 * 2.0 ** 2)


def test_grad_leaves_dot_grad_alone():
    x = leaf(3)
    g = mdl.grad((x * x).sum(), x)
    assert x.grad is None
    np.testing.assert_allclose(g.data, 2 * x.data)


def test_grad_of_unused_input():
    x, z = leaf(3), leaf(3, seed=1)
    with pytest.raises(RuntimeError, match="allow_unused"):
        mdl.grad((x * 2).sum(), [x, z])
    gx, gz = mdl.grad((x * 2).sum(), [x, z], allow_unused=True)
    assert gz is None


# --- Function ---------------------------------------------------------------

class Square(mdl.Function):
    def forward(self, x):
        return x ** 2

    def backward(self, gy):
        x, = self.inputs
        return 2 * x * gy


def test_user_function_as_in_the_contract():
    x = leaf(2, 3)
    y = Square()(x)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * x.data)
    assert mdl.gradcheck(lambda t: Square()(t), [x])
    assert mdl.gradgradcheck(lambda t: Square()(t), [x])


def test_function_with_two_outputs_one_unused():
    class Split(mdl.Function):
        def forward(self, x):
            return x[:2].copy(), x[2:].copy()

        def backward(self, ga, gb):
            return mdl.concat([ga, gb])

    x = leaf(5)
    a, b = Split()(x)
    del b
    (a * 3).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3, 3, 0, 0, 0])


def test_wrong_gradient_shape_names_the_function():
    class Broken(mdl.Function):
        def forward(self, x):
            return x.sum()

        def backward(self, gy):
            return gy

    with pytest.raises(RuntimeError, match=r"Broken.backward returned a gradient of shape \(\) for an input of shape \(3,\)"):
        Broken()(leaf(3)).backward()


def test_an_array_returned_by_backward_names_the_function():
    class ReturnsArray(mdl.Function):
        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy.data * 2

    with pytest.raises(TypeError, match=r"ReturnsArray.backward returned a gradient of type ndarray for input 0; "
                                        r"expected a Tensor computed with Tensor ops"):
        ReturnsArray()(leaf(3)).sum().backward()


# --- pow at 0: PyTorch's conventions -------------------------------------------------

POW_AT = np.array([0.0, 1.0, -2.0, 3.0])
# d/dx and d2/dx2 of x ** c at POW_AT, as PyTorch 2.13 gives them (written out: they run without it)
POW_GRADS = {
    0: ([0, 0, 0, 0], [0, 0, 0, 0]),
    1: ([1, 1, 1, 1], [0, 0, 0, 0]),
    2: ([0, 2, -4, 6], [2, 2, 2, 2]),
    3: ([0, 3, 12, 27], [0, 6, -12, 18]),
    -1: ([-np.inf, -1, -0.25, -1 / 9], [np.inf, 2, -0.25, 2 / 27]),
    0.5: ([np.inf, 0.5, np.nan, 0.5 / np.sqrt(3)], [-np.inf, -0.25, np.nan, -0.25 * 3 ** -1.5]),
}


@pytest.mark.parametrize("c", list(POW_GRADS))
def test_pow_scalar_gradients_at_zero_follow_pytorch(c):
    x = mdl.tensor(POW_AT, requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        g, = mdl.grad((x ** c).sum(), [x], create_graph=True)
        np.testing.assert_allclose(g.numpy(), POW_GRADS[c][0], rtol=1e-12)
        if g.requires_grad:  # x ** 0's gradient, 0, does not depend on x (PyTorch's has no graph either)
            gg, = mdl.grad(g.sum(), [x])
            np.testing.assert_allclose(gg.numpy(), POW_GRADS[c][1], rtol=1e-12)


# a ** b for tensors, where a = 0 or b = 0, and PyTorch's (a, b) gradients there
POW_BASES = [0.0, 0.0, 0.0, 2.0, -2.0, 0.0, 0.0, 0.0]
POW_EXPONENTS = [0.0, 1.0, 2.0, 0.0, 2.0, -1.0, 0.5, -0.5]
POW_TENSOR_GRADS = ([0, 1, 0, 0, -4, -np.inf, np.inf, -np.inf], [0, 0, 0, np.log(2), np.nan, -np.inf, 0, -np.inf])


def test_pow_tensor_gradients_at_zero_follow_pytorch():
    a, b = mdl.tensor(np.array(POW_BASES), requires_grad=True), mdl.tensor(np.array(POW_EXPONENTS), requires_grad=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        (a ** b).sum().backward()
    np.testing.assert_allclose(a.grad.numpy(), POW_TENSOR_GRADS[0], rtol=1e-12)
    np.testing.assert_allclose(b.grad.numpy(), POW_TENSOR_GRADS[1], rtol=1e-12)


@pytest.mark.torch
def test_pow_gradients_at_zero_match_torch(torch):
    for c in POW_GRADS:
        xt = torch.tensor(POW_AT, requires_grad=True)
        g, = torch.autograd.grad((xt ** c).sum(), xt, create_graph=True)
        np.testing.assert_allclose(g.detach().numpy(), POW_GRADS[c][0], rtol=1e-12)
        if g.requires_grad:
            np.testing.assert_allclose(torch.autograd.grad(g.sum(), xt)[0].numpy(), POW_GRADS[c][1], rtol=1e-12)
    at = torch.tensor(POW_BASES, dtype=torch.float64, requires_grad=True)
    bt = torch.tensor(POW_EXPONENTS, dtype=torch.float64, requires_grad=True)
    (at ** bt).sum().backward()
    np.testing.assert_allclose(at.grad.numpy(), POW_TENSOR_GRADS[0], rtol=1e-12)
    np.testing.assert_allclose(bt.grad.numpy(), POW_TENSOR_GRADS[1], rtol=1e-12)


# --- dtypes and conversion ----------------------------------------------------------

def test_dtype_rules():
    assert mdl.tensor(1.5).dtype == np.float32
    assert mdl.tensor([1.0, 2.0]).dtype == np.float32
    assert mdl.tensor([1, 2]).dtype == np.int64
    assert mdl.tensor(np.ones(2)).dtype == np.float64
    assert mdl.tensor(np.ones(2, np.float16)).dtype == np.float16
    x = mdl.tensor(np.ones(2, np.float32))
    assert (x * 2.0).dtype == np.float32 and (2.0 / x).dtype == np.float32 and (x ** 2).dtype == np.float32
    assert (x + [1.0, 2.0]).dtype == np.float32  # a list operand follows mdl.tensor's rule
    assert (x + np.ones(2)).dtype == np.float64  # an ndarray keeps its dtype
    i = mdl.tensor([1, 2])
    assert (i * 0.5).dtype == np.float32 and (i + x).dtype == np.float32 and (i / i).dtype == np.float32
    assert (x * mdl.tensor(np.array(2.0))).dtype == np.float32  # a 0-d float64 does not promote float32


def test_mixed_precision_gradient_comes_back_in_the_inputs_dtype():
    a = mdl.tensor(np.ones(3, np.float32), requires_grad=True)
    b = mdl.tensor(np.ones(3, np.float64), requires_grad=True)
    y = a * b
    assert y.dtype == np.float64
    y.sum().backward()
    assert a.grad.dtype == np.float32 and b.grad.dtype == np.float64


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError, match="floating-point.*int64"):
        mdl.tensor([1, 2, 3], requires_grad=True)
    t = mdl.tensor([1, 2])
    with pytest.raises(TypeError):
        t.requires_grad = True


def test_ndarray_on_the_left_defers_to_tensor():
    x = leaf(3)
    y = np.ones(3) * x + np.ones(3)
    assert isinstance(y, mdl.Tensor) and y.requires_grad


def test_numpy_conversion():
    x = leaf(2)
    with pytest.raises(TypeError, match="detach"):
        np.asarray(x)
    np.testing.assert_array_equal(np.asarray(x.detach()), x.data)
    assert x.numpy() is x.data


def test_comparisons_are_bool_tensors_off_the_graph_and_tensors_stay_hashable():
    x = leaf(3)
    m = x > 0
    assert m.dtype == bool and not m.requires_grad
    assert len({x, x}) == 1


def test_pytorch_spellings():
    x = mdl.tensor(np.arange(24, dtype=np.float64).reshape(2, 3, 4), requires_grad=True)
    assert x.size == 24 and x.size() == (2, 3, 4) and x.size(1) == 3
    assert x.view(6, 4).shape == (6, 4)
    assert x.sum(dim=1, keepdim=True).shape == (2, 1, 4)
    assert x.transpose(0, 2).shape == (4, 3, 2)       # swap two axes
    assert x.transpose((1, 2, 0)).shape == (3, 4, 2)  # full permutation
    assert x.T.shape == (4, 3, 2)
    assert x.flatten(1).shape == (2, 12)
    assert mdl.cat([x, x], dim=1).shape == (2, 6, 4)
    assert x.unsqueeze(0).squeeze(0).shape == (2, 3, 4)


def test_item_and_repr():
    x = mdl.tensor(2.5, requires_grad=True)
    assert x.item() == 2.5
    assert "requires_grad=True" in repr(x) and "float32" in repr(x)
    with pytest.raises(ValueError, match="one element"):
        mdl.tensor([1.0, 2.0]).item()


def test_softmax_and_log_softmax_are_stable_for_large_inputs():
    x = mdl.tensor(np.array([[1000.0, 1001.0, 1002.0], [-1000.0, 0.0, 1000.0]]))
    s = x.softmax(axis=1).data
    ls = x.log_softmax(axis=1).data
    assert np.isfinite(s).all() and np.isfinite(ls).all()
    np.testing.assert_allclose(s[0], np.exp([-2, -1, 0]) / np.exp([-2, -1, 0]).sum())
    np.testing.assert_allclose(ls[1], [-2000.0, -1000.0, 0.0])


def test_manual_seed_makes_random_tensors_repeatable():
    mdl.manual_seed(3)
    a = mdl.randn(4)
    mdl.manual_seed(3)
    np.testing.assert_array_equal(a.data, mdl.randn(4).data)
    assert a.dtype == np.float32

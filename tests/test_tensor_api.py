"""PyTorch's everyday spellings on tensors: requires_grad_, long, argmax/argmin with keepdim, from_numpy."""
import numpy as np
import pytest

import minidl as mdl

TIES = np.array([[1.0, 5.0, 5.0], [7.0, 2.0, 7.0]])


def test_requires_grad_sets_the_flag_of_a_leaf_and_returns_it():
    t = mdl.tensor(np.ones(3))
    assert t.requires_grad_() is t and t.requires_grad
    assert not t.requires_grad_(False).requires_grad
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        mdl.tensor(np.arange(3)).requires_grad_()


def test_requires_grad_of_a_computed_tensor_cannot_change():
    y = mdl.tensor(np.ones(3), requires_grad=True) * 2
    with pytest.raises(RuntimeError, match="requires_grad_: only a leaf tensor's flag can change; this one was "
                                           "computed by Mul"):
        y.requires_grad_(False)


def test_long_gives_int64_off_the_graph():
    y = mdl.tensor(np.array([1.7, -2.2]), requires_grad=True).long()
    assert y.dtype == np.int64 and not y.requires_grad
    np.testing.assert_array_equal(y.data, [1, -2])


@pytest.mark.parametrize("dim, keepdim", [(None, False), (0, False), (1, False), (1, True), (-1, True)])
def test_argmax_and_argmin_take_the_first_of_ties(dim, keepdim):
    t = mdl.tensor(TIES)
    for name in ("argmax", "argmin"):
        got = getattr(mdl, name)(t, dim, keepdim=keepdim)
        assert got.dtype == np.int64
        expected = getattr(np, name)(TIES, axis=dim, keepdims=keepdim)
        np.testing.assert_array_equal(got.data, expected)
        np.testing.assert_array_equal(getattr(t, name)(dim=dim, keepdim=keepdim).data, expected)
    np.testing.assert_array_equal(t.argmax(1).data, [1, 0])  # the first 5, the first 7


def test_argmax_refuses_several_axes_and_empty_ones():
    with pytest.raises(TypeError, match=r"argmax: axis must be one int or None; got \(0, 1\)"):
        mdl.tensor(TIES).argmax((0, 1))
    with pytest.raises(ValueError, match="cannot take the argmax over an empty axis"):
        mdl.tensor(np.zeros((2, 0))).argmax(1)


def test_from_numpy_shares_memory():
    a = np.arange(6.0).reshape(2, 3)
    t = mdl.from_numpy(a)
    a[0, 0] = 42.0
    assert t.data is a and t.data[0, 0] == 42.0 and t.dtype == np.float64
    with pytest.raises(TypeError, match="from_numpy: expected a numpy.ndarray, got list"):
        mdl.from_numpy([1.0, 2.0])


@pytest.mark.torch
@pytest.mark.parametrize("dim, keepdim", [(None, False), (1, False), (1, True), (0, True)])
def test_argmax_matches_pytorch_on_ties(torch, dim, keepdim):
    values = np.array([[3.0, 3.0, 1.0, 3.0], [0.0, 2.0, 2.0, -1.0], [5.0, 5.0, 5.0, 5.0]])
    for name in ("argmax", "argmin"):
        ours = getattr(mdl, name)(mdl.tensor(values), dim, keepdim=keepdim)
        theirs = getattr(torch, name)(torch.tensor(values), dim=dim, keepdim=keepdim)
        np.testing.assert_array_equal(ours.data, theirs.numpy())


def test_float_and_int_of_a_one_element_tensor_and_pow():
    t = mdl.tensor(np.array([[2.5]]))
    assert float(t) == 2.5 and isinstance(float(t), float) and int(t) == 2
    assert f"{float(mdl.tensor(np.float32(0.25))):.2f}" == "0.25"
    with pytest.raises(ValueError, match=r"float\(\): only a tensor with one element .* shape \(2,\)"):
        float(mdl.tensor(np.ones(2)))
    with pytest.raises(ValueError, match=r"int\(\): only a tensor with one element"):
        int(mdl.tensor(np.ones((1, 2))))
    x = mdl.tensor(np.array([1.0, 2.0, 3.0]), requires_grad=True)
    y = x.pow(3)
    np.testing.assert_array_equal(y.numpy(), [1.0, 8.0, 27.0])
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 12.0, 27.0])

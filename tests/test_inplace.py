"""In-place operations, with PyTorch's rules: on the array under no_grad(), refused on a tensor that
requires grad while the graph is recorded, and a backward that would read changed values fails."""
import numpy as np
import pytest

import minidl as mdl
from conftest import randn


def leaf(*shape, seed=0):
    return mdl.tensor(randn(*shape, seed=seed), requires_grad=True)


def test_the_optimizer_idiom_updates_the_parameter_in_place():
    w = leaf(3)
    array = w.data
    (w * w).sum().backward()
    expected = w.data - 0.1 * w.grad.data
    with mdl.no_grad():
        w -= 0.1 * w.grad
    assert w.data is array and w.requires_grad and w.is_leaf
    np.testing.assert_array_equal(w.data, expected)
    (w * w).sum().backward()  # still a leaf in the next step's graph


@pytest.mark.parametrize("update, expected", [
    (lambda t: t.add_(2.0), [3.0, 4.0]), (lambda t: t.add_(mdl.tensor([1.0, 1.0]), alpha=3), [4.0, 5.0]),
    (lambda t: t.sub_(1.0), [0.0, 1.0]), (lambda t: t.sub_(mdl.tensor([1.0, 2.0]), alpha=0.5), [0.5, 1.0]),
    (lambda t: t.mul_(3), [3.0, 6.0]), (lambda t: t.div_(mdl.tensor([2.0, 4.0])), [0.5, 0.5]),
    (lambda t: t.zero_(), [0.0, 0.0]), (lambda t: t.fill_(7), [7.0, 7.0]),
    (lambda t: t.copy_(mdl.tensor([5.0, 6.0])), [5.0, 6.0]), (lambda t: t.copy_(9.0), [9.0, 9.0]),
    (lambda t: t.clamp_(min=1.5), [1.5, 2.0]), (lambda t: t.clamp_(max=1.5), [1.0, 1.5]),
], ids=["add_", "add_-alpha", "sub_", "sub_-alpha", "mul_", "div_", "zero_", "fill_", "copy_", "copy_-scalar",
        "clamp_-min", "clamp_-max"])
def test_each_in_place_method(update, expected):
    t = mdl.tensor([1.0, 2.0])
    array = t.data
    assert update(t) is t
    assert t.data is array and t._version == 1
    np.testing.assert_array_equal(t.data, expected)


def test_augmented_assignments_keep_the_tensor():
    t = mdl.tensor([[1.0, 2.0], [3.0, 4.0]])
    same = t
    t += mdl.tensor([1.0, 1.0])  # broadcast along rows
    t -= 1
    t *= 2
    t /= mdl.tensor([[2.0], [4.0]])
    assert t is same and t._version == 4
    np.testing.assert_array_equal(t.data, [[1.0, 2.0], [1.5, 2.0]])


def test_a_leaf_that_requires_grad_refuses_in_place_changes_while_recording():
    w = leaf(3)
    for change in (lambda: w.__iadd__(1), lambda: w.add_(1), lambda: w.zero_(), lambda: w.copy_(np.ones(3))):
        with pytest.raises(RuntimeError, match=r"a leaf tensor that requires grad \(shape \(3,\)\) cannot be "
                                               r"changed in place while gradients are recorded.*no_grad"):
            change()
    np.testing.assert_array_equal(w.data, randn(3))


def test_a_tensor_in_a_graph_refuses_in_place_changes_while_recording():
    y = leaf(3).exp()
    with pytest.raises(RuntimeError, match=r"\*=: this tensor \(shape \(3,\)\) was computed by Exp in a graph"):
        y *= 2


def test_an_in_place_change_cannot_take_in_a_tensor_that_requires_grad():
    with pytest.raises(RuntimeError, match="would depend on a tensor that requires grad"):
        mdl.tensor(np.zeros(3)).add_(leaf(3))


def test_bad_operands_are_refused_before_anything_changes():
    t = mdl.tensor([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"add_: an operand of shape \(2, 3\) does not broadcast to this "
                                         r"tensor's shape \(3,\)"):
        t.add_(np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"-=: an operand of shape \(4,\) does not broadcast"):
        t -= np.ones(4)
    with pytest.raises(ValueError, match=r"copy_: a source of shape \(2,\) does not broadcast to this "
                                         r"tensor's shape \(3,\)"):
        t.copy_(np.ones(2))
    i = mdl.tensor(np.array([1, 2, 3]))
    with pytest.raises(TypeError, match=r"\+=: the result type float64 cannot be stored in this int64 tensor"):
        i += 0.5
    with pytest.raises(ValueError, match="clamp_: give min, max or both"):
        t.clamp_()
    assert t._version == 0 and i._version == 0
    np.testing.assert_array_equal(t.data, [1.0, 2.0, 3.0])


def test_backward_fails_where_an_input_it_reads_was_changed():
    a, b = leaf(2), mdl.tensor(np.array([3.0, 4.0]))  # float64, as a: no cast copies it
    y = (a * b).sum()
    b.mul_(2)
    with pytest.raises(RuntimeError, match=r"input 1 of Mul \(shape \(2,\)\), which Mul's backward reads, was "
                                           r"changed in place after Mul used it \(it is at version 1; Mul saw "
                                           r"version 0\)"):
        y.backward()


def test_backward_fails_where_an_output_it_reads_was_changed():
    x = leaf(3)
    y = x.exp()  # exp's backward reads its output
    z = y.sum()
    with mdl.no_grad():
        y += 1
    with pytest.raises(RuntimeError, match=r"output 0 of Exp .* was changed in place"):
        z.backward()


def test_a_change_the_backward_does_not_read_is_no_error():
    x, c = leaf(3), mdl.tensor(np.ones(3))
    y = (x + c).sum()  # Add's backward reads neither input
    c.add_(1)
    y.backward()
    np.testing.assert_array_equal(x.grad.data, np.ones(3))


def test_a_change_before_the_op_runs_is_no_error():
    a, b = leaf(2), mdl.tensor(np.array([3.0, 4.0]))  # float64, as a: no cast copies it
    b.mul_(2)  # version 1 before Mul sees it
    (a * b).sum().backward()
    np.testing.assert_array_equal(a.grad.data, [6.0, 8.0])


def test_detach_shares_the_version():
    a, b = leaf(2), mdl.tensor(np.array([3.0, 4.0]))  # float64, as a: no cast copies it
    y = (a * b).sum()
    b.detach().zero_()
    with pytest.raises(RuntimeError, match="input 1 of Mul"):
        y.backward()


def test_an_optimizer_step_invalidates_a_graph_recorded_before_it():
    w = leaf(3)
    loss = (w * w).sum()
    loss.backward(retain_graph=True)
    mdl.optim.SGD([w], lr=0.1).step()
    with pytest.raises(RuntimeError, match="input 0 of Mul"):
        loss.backward()


def test_a_function_instance_called_twice_is_refused():
    class Square(mdl.Function):
        def forward(self, x):
            return x * x

        def backward(self, gy):
            return 2 * gy * self.inputs[0]

    square = Square()
    square(leaf(3))
    with pytest.raises(RuntimeError, match=r"Square: this Function instance was already called.*Square\(...\)\(x\)"):
        square(leaf(3, seed=1))


@pytest.mark.torch
def test_the_same_rules_as_pytorch(torch):
    # the optimizer idiom gives PyTorch's numbers, and both refuse the in-place change of a leaf
    w_m, w_t = leaf(4), torch.tensor(randn(4), requires_grad=True)
    for w, ctx in ((w_m, mdl.no_grad), (w_t, torch.no_grad)):
        (w * w * w).sum().backward()
        with ctx():
            w -= 0.01 * w.grad
            w.clamp_(min=-0.5)
    np.testing.assert_allclose(w_m.data, w_t.detach().numpy(), rtol=1e-15)
    with pytest.raises(RuntimeError):
        w_t.add_(1)
    with pytest.raises(RuntimeError):
        w_m.add_(1)

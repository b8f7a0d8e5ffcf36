"""What a Function keeps for backward: only what it declares (keep_inputs, keep_outputs), so a
training step holds fewer arrays between its forward and backward passes, with the same results."""
import tracemalloc
import weakref

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl_models import lenet5, resnet18
from test_autograd import Square


def test_an_intermediate_no_backward_reads_is_freed_at_forward_time():
    x = mdl.tensor(np.array([1.0, 2.0]), requires_grad=True)
    h = x * 3
    y = (h + 1).sum()  # Add and Sum keep nothing of h
    probe = weakref.ref(h)
    del h
    assert probe() is None
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [3.0, 3.0])


def test_a_dropped_output_that_backward_reads_is_rebuilt_in_the_graph():
    # tanh keeps its output's array; with create_graph the rebuilt output must still lead back to x,
    # or the second derivative would lose the path through y.
    x = mdl.tensor(np.array([0.3, -1.2]), requires_grad=True)
    y_sum = x.tanh().sum()
    (gx,) = mdl.grad(y_sum, [x], create_graph=True)
    (ggx,) = mdl.grad(gx.sum(), [x])
    t = np.tanh(x.numpy())
    np.testing.assert_allclose(gx.numpy(), 1 - t ** 2, rtol=1e-14)
    np.testing.assert_allclose(ggx.numpy(), -2 * t * (1 - t ** 2), rtol=1e-14)


def test_reading_an_output_not_declared_fails_clearly():
    class Undeclared(mdl.Function):
        keep_inputs, keep_outputs = (), ()

        def forward(self, x):
            return x * 2

        def backward(self, gy):
            return gy * 0 + self.output()

    x = mdl.tensor(np.ones(2), requires_grad=True)
    y = Undeclared()(x)
    with pytest.raises(RuntimeError, match=r"Undeclared.backward reads output 0, but its keep_outputs \(\) does "
                                           r"not keep it"):
        y.sum().backward()


def test_a_function_that_declares_nothing_keeps_everything():
    # Square (the contract's example) reads self.inputs without declaring it: an intermediate input
    # the program drops must still be there for its backward, which then releases it.
    x = mdl.tensor(np.array([3.0]), requires_grad=True)
    h = x * 2
    f = Square()
    y = f(h)
    probe = weakref.ref(h)
    del h
    assert probe() is not None
    y.backward()
    assert f.inputs is None and probe() is None
    np.testing.assert_array_equal(x.grad.numpy(), [24.0])  # d(2x)^2/dx = 8x


def _keep_everything(monkeypatch):
    """Every built-in Function keeps all its inputs and outputs, as before the declarations."""
    for cls in mdl.registered_ops().values():
        monkeypatch.setattr(cls, "keep_inputs", None)
        monkeypatch.setattr(cls, "keep_outputs", None)


def _step_memory(model, x, y):
    """Bytes held by the graph after the forward pass, and the peak of the whole step (NumPy's
    allocations, which tracemalloc sees), with the gradients it produced."""
    model.zero_grad()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        loss = F.cross_entropy(model(x), y)
        held = tracemalloc.get_traced_memory()[0] - base
        loss.backward()
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return held, peak, [p.grad.numpy().copy() for p in model.parameters()]


@pytest.mark.parametrize("name, make, shape, batch", [("lenet5", lenet5, (1, 32, 32), 64),
                                                      ("resnet18", lambda: resnet18(num_classes=10), (3, 32, 32), 8)])
def test_a_training_step_holds_less_and_computes_the_same(monkeypatch, name, make, shape, batch):
    mdl.manual_seed(0)
    model = make()
    rng = np.random.default_rng(0)
    x = mdl.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = rng.integers(0, 10, batch)
    _step_memory(model, x, y)  # warm up: kernels compiled, workspaces made
    held, peak, grads = _step_memory(model, x, y)
    _keep_everything(monkeypatch)
    held_all, peak_all, grads_all = _step_memory(model, x, y)
    for g, g_all in zip(grads, grads_all):
        np.testing.assert_array_equal(g, g_all)
    # Measured (batch 64 / 8): LeNet-5 holds 2.0 MiB instead of 5.2, ResNet-18 about 60% of it.
    assert held < 0.7 * held_all, (name, held, held_all)
    assert peak < peak_all, (name, peak, peak_all)

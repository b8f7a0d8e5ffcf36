"""Initialisers: their statistics on large tensors, PyTorch's default layer inits, repeatability."""
import math

import numpy as np
import pytest

import minidl as mdl
from minidl import nn
from minidl.nn import init


def param(*shape, dtype=np.float32):
    return nn.Parameter(np.zeros(shape, dtype=dtype))


def test_calculate_gain():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1
    assert init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01 ** 2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError, match="unsupported nonlinearity 'gelu'"):
        init.calculate_gain("gelu")
    with pytest.raises(ValueError, match="negative slope"):
        init.calculate_gain("leaky_relu", "x")


def test_fan_in_and_fan_out():
    assert init._calculate_fan_in_and_fan_out(param(3, 5)) == (5, 3)
    assert init._calculate_fan_in_and_fan_out(param(8, 4, 3, 2)) == (24, 48)
    with pytest.raises(ValueError, match=r"fewer than 2 dimensions \(shape \(5,\)\)"):
        init._calculate_fan_in_and_fan_out(param(5))


# (initialiser, kwargs, "uniform" bound or "normal" std) for a (512, 64, 3, 3) weight:
# fan_in = 64 * 9 = 576, fan_out = 512 * 9 = 4608
FAN_IN, FAN_OUT = 576, 4608
CASES = [
    (init.uniform_, dict(a=-0.3, b=0.5), ("uniform", -0.3, 0.5)),
    (init.normal_, dict(mean=0.2, std=0.05), ("normal", 0.2, 0.05)),
    (init.xavier_uniform_, dict(gain=2.0), ("uniform", None, 2.0 * math.sqrt(6 / (FAN_IN + FAN_OUT)))),
    (init.xavier_normal_, dict(), ("normal", 0.0, math.sqrt(2 / (FAN_IN + FAN_OUT)))),
    (init.kaiming_uniform_, dict(), ("uniform", None, math.sqrt(2) * math.sqrt(3 / FAN_IN))),  # a=0: ReLU gain
    (init.kaiming_uniform_, dict(a=math.sqrt(5)), ("uniform", None, 1 / math.sqrt(FAN_IN))),
    (init.kaiming_normal_, dict(mode="fan_out", nonlinearity="relu"), ("normal", 0.0, math.sqrt(2 / FAN_OUT))),
    (init.kaiming_normal_, dict(a=0.2, nonlinearity="leaky_relu"), ("normal", 0.0, math.sqrt(2 / 1.04 / FAN_IN))),
    (init.lecun_uniform_, dict(), ("uniform", None, math.sqrt(3 / FAN_IN))),
    (init.lecun_normal_, dict(), ("normal", 0.0, 1 / math.sqrt(FAN_IN))),
]


@pytest.mark.parametrize("fn, kwargs, expected", CASES, ids=lambda c: getattr(c, "__name__", ""))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_initialiser_statistics(fn, kwargs, expected, dtype):
    mdl.manual_seed(0)
    w = param(512, 64, 3, 3, dtype=dtype)
    assert fn(w, **kwargs) is w
    a = w.data.astype(np.float64)
    assert w.dtype == dtype and w.requires_grad and w.is_leaf
    kind, first, second = expected
    if kind == "uniform":
        low, high = (-second, second) if first is None else (first, second)
        assert low <= a.min() < low + 0.01 * (high - low) and high - 0.01 * (high - low) < a.max() <= high
        assert a.mean() == pytest.approx((low + high) / 2, abs=0.01 * (high - low))
        assert a.std() == pytest.approx((high - low) / math.sqrt(12), rel=0.02)
    else:
        mean, std = first, second
        assert a.mean() == pytest.approx(mean, abs=0.01 * std)
        assert a.std() == pytest.approx(std, rel=0.02)


def test_constants_and_empty_tensors():
    w = param(3, 4, dtype=np.float64)
    assert init.constant_(w, 0.25) is w and np.all(w.data == 0.25)
    init.ones_(w)
    assert np.all(w.data == 1)
    init.zeros_(w)
    assert np.all(w.data == 0)
    empty = param(0, 5)
    assert init.kaiming_uniform_(empty, mode="fan_out") is empty  # no elements, nothing to do
    assert nn.Linear(0, 3).bias.shape == (3,)


def test_bad_arguments():
    with pytest.raises(ValueError, match="mode must be 'fan_in' or 'fan_out'; got 'fan_avg'"):
        init.kaiming_normal_(param(2, 2), mode="fan_avg")
    with pytest.raises(ValueError, match="lower bound a=1 is greater than upper bound b=0"):
        init.uniform_(param(2), 1, 0)
    with pytest.raises(TypeError, match="init.xavier_uniform_: expected a Tensor or Parameter; got ndarray"):
        init.xavier_uniform_(np.zeros((2, 2)))


@pytest.mark.parametrize("make, fan_in", [(lambda: nn.Linear(300, 400), 300),
                                          (lambda: nn.Conv2d(32, 256, 5, groups=2), 16 * 25)])
def test_default_layer_init_bounds(make, fan_in):
    """PyTorch's defaults: weight and bias both U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    layer = make()
    bound = 1 / math.sqrt(fan_in)
    w = layer.weight.data.astype(np.float64)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert w.std() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    b = layer.bias.data
    assert np.abs(b).max() <= bound and b.std() > 0.4 * bound  # few values: only a loose spread check


@pytest.mark.torch
def test_default_layer_init_matches_pytorch_spread():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    for ours, theirs in [(nn.Linear(300, 400), torch.nn.Linear(300, 400)),
                         (nn.Conv2d(32, 256, 5, groups=2), torch.nn.Conv2d(32, 256, 5, groups=2))]:
        ref = theirs.weight.detach().numpy()
        assert ours.weight.shape == tuple(ref.shape)
        assert ours.weight.data.std() == pytest.approx(ref.std(), rel=0.03)
        assert np.abs(ours.weight.data).max() == pytest.approx(np.abs(ref).max(), rel=0.01)


def test_manual_seed_makes_initialisation_repeatable():
    def build():
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.Linear(5, 2))

    mdl.manual_seed(7)
    a = build()
    mdl.manual_seed(7)
    b = build()
    c = build()
    for (name, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values()):
        np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=name)
        assert not np.array_equal(x.numpy(), z.numpy())
    mdl.manual_seed(1)
    w1 = init.normal_(param(3, 3)).data.copy()
    mdl.manual_seed(1)
    np.testing.assert_array_equal(init.normal_(param(3, 3)).data, w1)

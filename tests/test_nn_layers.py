"""Layers: shapes, modes, running statistics, errors, and a cross-check against PyTorch."""
import numpy as np
import pytest

import minidl as mdl
from minidl import _checks, nn
from minidl.nn import functional as F
from minidl.testing import OpTestCase, torch_function


def randn(rng, *shape, dtype=np.float32):
    return mdl.tensor(rng.standard_normal(shape).astype(dtype))


@pytest.mark.parametrize("layer, in_shape, out_shape", [
    (lambda: nn.Identity(3, unused=True), (2, 3), (2, 3)),
    (lambda: nn.Linear(4, 3), (2, 4), (2, 3)),
    (lambda: nn.Linear(4, 3, bias=False), (5, 2, 4), (5, 2, 3)),
    (lambda: nn.Conv2d(3, 4, 3), (2, 3, 8, 8), (2, 4, 6, 6)),
    (lambda: nn.Conv2d(4, 6, (3, 5), stride=2, padding=(1, 2), dilation=1, groups=2), (1, 4, 9, 9), (1, 6, 5, 5)),
    (lambda: nn.Conv2d(2, 2, 3, dilation=2), (1, 2, 7, 7), (1, 2, 3, 3)),
    (lambda: nn.MaxPool2d(2), (2, 3, 7, 7), (2, 3, 3, 3)),
    (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), (1, 1, 8, 8), (1, 1, 4, 4)),
    (lambda: nn.AvgPool2d(3, stride=1, padding=1), (1, 2, 5, 5), (1, 2, 5, 5)),
    (lambda: nn.AdaptiveAvgPool2d((1, 1)), (2, 5, 7, 6), (2, 5, 1, 1)),
    (lambda: nn.AdaptiveAvgPool2d(3), (2, 5, 7, 6), (2, 5, 3, 3)),
    (lambda: nn.LocalResponseNorm(5), (2, 6, 3, 3), (2, 6, 3, 3)),
    (lambda: nn.BatchNorm1d(3), (4, 3), (4, 3)),
    (lambda: nn.BatchNorm1d(3), (4, 3, 5), (4, 3, 5)),
    (lambda: nn.BatchNorm2d(3), (4, 3, 2, 2), (4, 3, 2, 2)),
    (lambda: nn.Dropout(0.3), (4, 5), (4, 5)),
    (lambda: nn.ReLU(), (2, 3), (2, 3)),
    (lambda: nn.Tanh(), (2, 3), (2, 3)),
    (lambda: nn.Sigmoid(), (2, 3), (2, 3)),
    (lambda: nn.Softmax(dim=1), (2, 3), (2, 3)),
    (lambda: nn.LogSoftmax(dim=-1), (2, 3), (2, 3)),
    (lambda: nn.Flatten(), (2, 3, 4, 5), (2, 60)),
    (lambda: nn.Flatten(0, 1), (2, 3, 4), (6, 4)),
])
def test_output_shapes(rng, layer, in_shape, out_shape):
    assert layer()(randn(rng, *in_shape)).shape == out_shape


def test_parameter_shapes_and_dtypes():
    conv = nn.Conv2d(4, 6, (3, 5), groups=2)
    assert conv.weight.shape == (6, 2, 3, 5) and conv.bias.shape == (6,)
    assert conv.kernel_size == (3, 5) and conv.stride == (1, 1) and conv.padding == (0, 0)
    lin = nn.Linear(4, 3, bias=False)
    assert lin.weight.shape == (3, 4) and lin.bias is None
    assert [n for n, _ in lin.named_parameters()] == ["weight"]
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    for m in (conv, bn, nn.Linear(2, 2)):
        assert all(p.dtype == np.float32 and p.requires_grad for p in m.parameters())


def _softmax0(x):
    return np.exp(x) / np.exp(x).sum(0, keepdims=True)


class TestActivationLayers(OpTestCase):
    """Values against NumPy (in float64 to assert_allclose's default rtol 1e-7, atol 0) and PyTorch,
    gradients, dtypes and a batch of 1: one test per layer, check and dtype."""
    shapes = [(3, 4)]
    atol64 = 0
    cases = [
        dict(id="ReLU", op=nn.ReLU(), reference=lambda x: np.maximum(x, 0), torch_reference="torch.relu",
             kind="nonzero"),  # away from the kink, where a central difference means nothing
        dict(id="Tanh", op=nn.Tanh(), reference=np.tanh, torch_reference="torch.tanh"),
        dict(id="Sigmoid", op=nn.Sigmoid(), reference=lambda x: 1 / (1 + np.exp(-x)), torch_reference="torch.sigmoid"),
        dict(id="Softmax", op=nn.Softmax(dim=0), reference=_softmax0,
             torch_reference=torch_function("torch.softmax", 0)),
        dict(id="LogSoftmax", op=nn.LogSoftmax(dim=0), reference=lambda x: np.log(_softmax0(x)),
             torch_reference=torch_function("torch.log_softmax", 0)),
    ]


def test_losses_values(rng):
    x = randn(rng, 3, 4, dtype=np.float64)
    target = np.array([0, 3, 1])
    per_sample = -np.log(np.exp(x.data) / np.exp(x.data).sum(1, keepdims=True))[np.arange(3), target]
    np.testing.assert_allclose(nn.CrossEntropyLoss()(x, target).item(), per_sample.mean())
    np.testing.assert_allclose(nn.CrossEntropyLoss("none")(x, mdl.tensor(target)).data, per_sample)
    y = randn(rng, 3, 4, dtype=np.float64)
    np.testing.assert_allclose(nn.MSELoss()(x, y).item(), ((x.data - y.data) ** 2).mean())
    np.testing.assert_allclose(nn.MSELoss(reduction="sum")(x, y).item(), ((x.data - y.data) ** 2).sum())


def test_dropout_train_and_eval(rng):
    drop = nn.Dropout(0.5)
    x = mdl.tensor(np.ones((200, 50), dtype=np.float32))
    y = drop(x).data
    assert set(np.unique(y)) == {0.0, 2.0}  # inverted: survivors are scaled by 1/(1-p)
    assert 0.45 < (y == 0).mean() < 0.55
    drop.eval()
    assert drop(x) is x


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm2d, (6, 3, 4, 5)), (nn.BatchNorm1d, (8, 3)),
                                        (nn.BatchNorm1d, (6, 3, 7))])
def test_batchnorm_running_stats_and_modes(rng, cls, shape):
    bn = cls(3, momentum=0.2).double()
    bn.weight.data[...] = [1.0, 2.0, 3.0]
    bn.bias.data[...] = [0.5, 0.0, -1.0]
    axes = (0,) + tuple(range(2, len(shape)))
    bshape = (1, 3) + (1,) * (len(shape) - 2)
    x1, x2 = (rng.standard_normal(shape) * 2 + 1 for _ in range(2))
    m = x1.size // 3

    y = bn(mdl.tensor(x1)).data
    mean, var = x1.mean(axes), x1.var(axes)
    expected = (x1 - mean.reshape(bshape)) / np.sqrt(var.reshape(bshape) + 1e-5)
    np.testing.assert_allclose(y, expected * bn.weight.data.reshape(bshape) + bn.bias.data.reshape(bshape),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(bn.running_mean.data, 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, 0.8 + 0.2 * var * m / (m - 1), rtol=1e-12)  # unbiased
    assert bn.num_batches_tracked.item() == 1 and bn.num_batches_tracked.dtype == np.int64

    bn.eval()
    rm, rv = bn.running_mean.data.copy(), bn.running_var.data.copy()
    y = bn(mdl.tensor(x2)).data
    expected = (x2 - rm.reshape(bshape)) / np.sqrt(rv.reshape(bshape) + 1e-5)
    np.testing.assert_allclose(y, expected * bn.weight.data.reshape(bshape) + bn.bias.data.reshape(bshape),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(bn.running_mean.data, rm)  # eval leaves the statistics alone
    assert bn.num_batches_tracked.item() == 1

    bn.train()
    bn(mdl.tensor(x2))
    np.testing.assert_allclose(bn.running_mean.data, 0.8 * rm + 0.2 * x2.mean(axes), rtol=1e-12)
    assert bn.num_batches_tracked.item() == 2


def test_batchnorm_cumulative_average_and_no_tracking(rng):
    bn = nn.BatchNorm1d(2, momentum=None).double()
    xs = [rng.standard_normal((5, 2)) + i for i in range(3)]
    for x in xs:
        bn(mdl.tensor(x))
    np.testing.assert_allclose(bn.running_mean.data, np.mean([x.mean(0) for x in xs], axis=0), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var.data, np.mean([x.var(0, ddof=1) for x in xs], axis=0), rtol=1e-12)

    free = nn.BatchNorm1d(2, affine=False, track_running_stats=False).double().eval()
    assert list(free.state_dict()) == [] and list(free.parameters()) == []
    y = free(mdl.tensor(xs[0])).data  # no running statistics: batch statistics even in eval mode
    np.testing.assert_allclose(y, (xs[0] - xs[0].mean(0)) / np.sqrt(xs[0].var(0) + 1e-5), rtol=1e-10)


@pytest.mark.parametrize("fn, pattern", [
    (lambda r: nn.Linear(4, 3)(randn(r, 2, 5)),
     r"Linear\(in_features=4, out_features=3, bias=True\): input of shape \(2, 5\) has 5 features, "
     r"but the weight of shape \(3, 4\) expects 4"),
    (lambda r: nn.Linear(-1, 3), r"Linear: in_features must be an int >= 0; got -1"),
    (lambda r: nn.Conv2d(3, 4, 3)(randn(r, 2, 5, 8, 8)),
     r"Conv2d\(3, 4, kernel_size=\(3, 3\), stride=\(1, 1\)\): "
     r"input of shape \(2, 5, 8, 8\) has 5 channels, but weight of shape \(4, 3, 3, 3\) with groups=1 expects 3"),
    (lambda r: nn.Conv2d(3, 4, 3)(randn(r, 3, 8, 8)),
     r"Conv2d\(3, 4, kernel_size=\(3, 3\), stride=\(1, 1\)\): expected a 4-D \(N, C, H, W\) input; "
     r"got shape \(3, 8, 8\)"),
    (lambda r: nn.Conv2d(3, 4, 5, padding=1)(randn(r, 1, 3, 2, 2)),
     r"Conv2d\(3, 4, kernel_size=\(5, 5\), stride=\(1, 1\), padding=\(1, 1\)\): kernel \(5, 5\) "
     r"with dilation \(1, 1\) spans \(5, 5\) pixels, more than the padded input \(4, 4\)"),
    (lambda r: nn.Conv2d(3, 4, 3, groups=2), r"Conv2d: in_channels \(3\) and out_channels \(4\) .* groups \(2\)"),
    (lambda r: nn.Conv2d(3, 4, 0), r"Conv2d: kernel_size must be >= 1; got 0"),
    (lambda r: nn.Conv2d(3, 4, (3, 3, 3)), r"Conv2d: kernel_size must be an int or a pair of ints \(h, w\); "
                                           r"got \(3, 3, 3\)"),
    (lambda r: nn.Conv2d(3, 4, 3, stride=(1, 0)), r"Conv2d: stride must be >= 1; got \(1, 0\)"),
    (lambda r: nn.Conv2d(3, 4, 3, padding=-1), r"Conv2d: padding must be >= 0; got -1"),
    (lambda r: nn.Conv2d(3, 4, 3, dilation=1.5), r"Conv2d: dilation must be an int or a pair of ints \(h, w\); "
                                                 r"got 1.5"),
    (lambda r: nn.Conv2d(4, 4, 3, groups=True), r"Conv2d: groups must be an int >= 1; got True"),
    (lambda r: nn.BatchNorm2d(3)(randn(r, 4, 3)),
     r"BatchNorm2d\(3, .*\): expected a 4-D \(N, C, H, W\) input; got shape \(4, 3\)"),
    (lambda r: nn.BatchNorm1d(3)(randn(r, 4, 3, 2, 2)),
     r"BatchNorm1d\(3, .*\): expected a 2-D \(N, C\) or 3-D \(N, C, L\) input; "
     r"got shape \(4, 3, 2, 2\)"),
    (lambda r: nn.BatchNorm2d(16)(randn(r, 2, 8, 4, 4)),
     r"BatchNorm2d\(16, .*\): expected 16 features .*got 8 in an input of shape \(2, 8, 4, 4\)"),
    (lambda r: nn.BatchNorm1d(0), r"BatchNorm1d: num_features must be an int >= 1; got 0"),
    (lambda r: nn.BatchNorm1d(3)(randn(r, 1, 3)),
     r"BatchNorm1d\(3, .*\): expected more than 1 value per channel when training; got input of shape \(1, 3\)"),
    (lambda r: nn.BatchNorm1d(3)(randn(r, 4, 3, dtype=np.int64)),
     r"BatchNorm1d\(3, .*\): expected a floating-point input; got int64"),
    (lambda r: nn.Dropout(1.0), r"Dropout: p must be in \[0, 1\); got 1.0"),
    (lambda r: nn.Dropout("0.5"), r"Dropout: p must be in \[0, 1\); got '0.5'"),
    (lambda r: nn.LocalResponseNorm(0), r"LocalResponseNorm: size must be an int >= 1; got 0"),
    (lambda r: nn.LocalResponseNorm(3)(randn(r, 4, 3)),
     r"LocalResponseNorm\(3, alpha=.*\): expected an input of 3 or more dimensions \(N, C, \.\.\.\); "
     r"got shape \(4, 3\)"),
    (lambda r: nn.CrossEntropyLoss("avg"), r"CrossEntropyLoss: reduction must be 'mean', 'sum' or 'none'; got 'avg'"),
    (lambda r: nn.CrossEntropyLoss()(randn(r, 3, 4), np.array([0, 4, 1])),
     r"CrossEntropyLoss\(\): target 4 is out of range for 4 classes \(expected 0 <= target < 4\)"),
    (lambda r: nn.MSELoss()(randn(r, 2, 3), randn(r, 3, 2)),
     r"MSELoss\(\): the inputs must have the same shape; got \(2, 3\) and \(3, 2\)"),
    (lambda r: nn.MaxPool2d(2)(randn(r, 3, 4)),
     r"MaxPool2d\(kernel_size=2, stride=2, padding=0, ceil_mode=False\): expected a 4-D \(N, C, H, W\) input; "
     r"got shape \(3, 4\)"),
    (lambda r: nn.AvgPool2d(3)(randn(r, 1, 1, 2, 2)),
     r"AvgPool2d\(kernel_size=3, .*\): the 3x3 window does not fit the input of shape \(1, 1, 2, 2\)"),
    # Pooling layers check their settings when made, as Conv2d does, not at the first forward.
    (lambda r: nn.MaxPool2d(0), r"MaxPool2d: kernel_size must be >= 1; got 0"),
    (lambda r: nn.MaxPool2d((2, 2, 2)), r"MaxPool2d: kernel_size must be an int or a pair of ints \(h, w\); "
                                        r"got \(2, 2, 2\)"),
    (lambda r: nn.MaxPool2d(2, stride=0), r"MaxPool2d: stride must be >= 1; got 0"),
    (lambda r: nn.MaxPool2d(3, padding=2), r"MaxPool2d: padding must be at most half of kernel_size=\(3, 3\); got 2"),
    (lambda r: nn.AvgPool2d(2.0), r"AvgPool2d: kernel_size must be an int or a pair of ints \(h, w\); got 2.0"),
    (lambda r: nn.AvgPool2d(2, stride=(1, -1)), r"AvgPool2d: stride must be >= 1; got \(1, -1\)"),
    (lambda r: nn.AvgPool2d(2, padding=-1), r"AvgPool2d: padding must be >= 0; got -1"),
])
def test_errors_name_the_layer_and_shapes(rng, fn, pattern):
    with pytest.raises(ValueError, match=pattern):
        fn(rng)


def test_forward_checks_the_input_only(rng, monkeypatch):
    """A layer checks its settings once, in __init__: with every settings check made to fail
    afterwards, forward still runs (the input checks are all it does), and the functionals,
    which check their settings on every call, do not."""
    layers = [(nn.Conv2d(2, 4, 3, padding=1), (2, 2, 5, 5)), (nn.MaxPool2d(2), (1, 2, 4, 4)),
              (nn.AvgPool2d(3, stride=2, padding=1), (1, 2, 5, 5)), (nn.LocalResponseNorm(3), (2, 4, 3)),
              (nn.Dropout(0.5), (3, 4)), (nn.Linear(4, 3), (2, 4)), (nn.BatchNorm1d(4), (3, 4)),
              (nn.BatchNorm2d(2), (2, 2, 3, 3))]
    cross_entropy, mse = nn.CrossEntropyLoss(), nn.MSELoss(reduction="sum")

    def refuse(*args):
        raise AssertionError("a settings check ran again")

    for name in ("require", "check_int", "pair", "check_probability"):
        monkeypatch.setattr(_checks, name, refuse)
    for layer, shape in layers:
        layer(randn(rng, *shape))
    cross_entropy(randn(rng, 3, 4), np.array([0, 3, 1]))
    mse(randn(rng, 2, 3), randn(rng, 2, 3))
    x = randn(rng, 1, 2, 4, 4)
    for call in (lambda: F.conv2d(x, randn(rng, 3, 2, 3, 3)), lambda: F.max_pool2d(x, 2),
                 lambda: F.avg_pool2d(x, 2), lambda: F.local_response_norm(x, 3), lambda: F.dropout(x, 0.5),
                 lambda: F.mse_loss(x, x)):
        with pytest.raises(AssertionError, match="a settings check ran again"):
            call()


# --- cross-check against PyTorch --------------------------------------------------------

def _model(nn_):
    """The same layer stack in either framework (``nn_`` is torch.nn or minidl.nn). LRN gets a
    large alpha so that it changes the values noticeably."""
    return nn_.Sequential(
        nn_.Conv2d(3, 8, 3, padding=1), nn_.BatchNorm2d(8), nn_.ReLU(), nn_.MaxPool2d(2, ceil_mode=True),
        nn_.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=2.0), nn_.Conv2d(8, 6, 3, padding=1, groups=2),
        nn_.AvgPool2d(2, stride=1, padding=1, count_include_pad=False), nn_.AdaptiveAvgPool2d((2, 3)),
        nn_.Flatten(), nn_.Linear(36, 5), nn_.Dropout(0.5),
    )


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
def test_matches_pytorch(rng, training):
    torch = pytest.importorskip("torch")
    ref = _model(torch.nn).double()
    net = _model(nn).double()
    ref_sd = ref.state_dict()
    assert [(k, tuple(v.shape)) for k, v in ref_sd.items()] == [(k, v.shape) for k, v in net.state_dict().items()]
    net.load_state_dict({k: v.numpy() for k, v in ref_sd.items()})

    ref.train(training), net.train(training)
    ref[-1].eval(), net[-1].eval()  # dropout's random mask cannot match; everything else must
    x = rng.standard_normal((4, 3, 9, 9))
    gy = rng.standard_normal((4, 5))
    xt = torch.tensor(x, requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(gy))
    xm = mdl.tensor(x, requires_grad=True)
    ym = net(xm)
    ym.backward(mdl.tensor(gy))

    np.testing.assert_allclose(ym.numpy(), yt.detach().numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(xm.grad.numpy(), xt.grad.numpy(), rtol=1e-7, atol=1e-12)
    ref_params = dict(ref.named_parameters())
    for name, p in net.named_parameters():
        # the first conv's bias has zero gradient in training (batch norm removes it), so atol matters
        np.testing.assert_allclose(p.grad.numpy(), ref_params[name].grad.numpy(), rtol=1e-7, atol=1e-12,
                                   err_msg=name)
    for name, b in ref.named_buffers():
        np.testing.assert_allclose(net.state_dict()[name].numpy(), b.numpy(), rtol=1e-7, atol=0, err_msg=name)


@pytest.mark.torch
def test_state_dict_moves_back_to_pytorch(rng):
    torch = pytest.importorskip("torch")
    net = _model(nn)
    net(randn(rng, 2, 3, 9, 9))  # moves the running statistics away from their initial values
    ref = _model(torch.nn)
    ref.load_state_dict({k: torch.from_numpy(v.numpy().copy()) for k, v in net.state_dict().items()})
    net.eval(), ref.eval()
    x = rng.standard_normal((2, 3, 9, 9)).astype(np.float32)
    np.testing.assert_allclose(net(mdl.tensor(x)).numpy(), ref(torch.from_numpy(x)).detach().numpy(),
                               rtol=1e-4, atol=1e-5)

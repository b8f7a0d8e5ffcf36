"""Module machinery: registration, naming, state_dict round trips, modes, moving, printing."""
import itertools
from collections import OrderedDict

import numpy as np
import pytest

import minidl as mdl
from minidl import backend, nn
from minidl.nn import Module, Parameter


class Affine(Module):
    """y = x * scale + shift, with a buffer: the smallest module with all three kinds of state."""

    def __init__(self, n):
        super().__init__()
        self.scale = Parameter(np.ones(n, dtype=np.float32))
        self.shift = Parameter(np.zeros(n, dtype=np.float32))
        self.register_buffer("count", mdl.tensor(np.array(0, dtype=np.int64)))
        self.register_buffer("cache", mdl.tensor(np.zeros(n, dtype=np.float32)), persistent=False)

    def forward(self, x):
        return x * self.scale + self.shift


class Net(Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Sequential(nn.Linear(3, 3), Affine(3)))
        self.bn1 = nn.BatchNorm1d(3)
        self.head = nn.Linear(3, 2)

    def forward(self, x):
        return self.head(self.bn1(self.features(x)))


def test_assignment_registers_in_order_and_getattr_finds_it():
    m = Affine(2)
    assert list(m._parameters) == ["scale", "shift"]
    assert [n for n, _ in m.named_buffers()] == ["count", "cache"]
    assert m.scale is m._parameters["scale"]
    m.plain = 3  # a plain value is an ordinary attribute
    assert m.plain == 3 and "plain" not in m._parameters
    with pytest.raises(AttributeError, match="'Affine' object has no attribute 'missing'"):
        m.missing


def test_reassignment_keeps_position_and_switches_kind():
    m = Affine(2)
    m.scale = Parameter(np.full(2, 5, dtype=np.float32))
    assert list(m._parameters) == ["scale", "shift"] and m.scale.data[0] == 5
    m.cache = Parameter(np.zeros(2, dtype=np.float32))  # a Parameter moves a buffer name to _parameters
    assert list(m._parameters) == ["scale", "shift", "cache"] and [n for n, _ in m.named_buffers()] == ["count"]
    m.shift = None
    assert m.shift is None and "shift" not in m.state_dict()
    with pytest.raises(TypeError, match="cannot assign a Linear to parameter 'shift'"):
        m.shift = nn.Linear(1, 1)
    with pytest.raises(TypeError, match="parameter 'scale'.*Parameter or None"):
        m.scale = mdl.tensor(np.ones(2))
    with pytest.raises(TypeError, match="buffer 'count'"):
        m.count = np.zeros(())
    m.count = mdl.tensor(np.array(7))
    assert m.count.item() == 7 and [n for n, _ in m.named_buffers()] == ["count"]


def test_delattr_unregisters():
    m = Affine(2)
    del m.scale
    del m.count
    assert [n for n, _ in m.named_parameters()] == ["shift"]
    assert "count" not in m.state_dict()
    with pytest.raises(AttributeError):
        m.scale


def test_registration_errors():
    class NoInit(Module):
        def __init__(self):
            self.w = Parameter(np.ones(1))

    with pytest.raises(AttributeError, match=r"before Module.__init__\(\).*NoInit"):
        NoInit()
    m = Affine(2)
    with pytest.raises(KeyError, match="contain no '.'"):
        m.register_buffer("a.b", mdl.tensor(np.ones(1)))
    with pytest.raises(KeyError, match="'scale' already exists"):
        m.register_buffer("scale", mdl.tensor(np.ones(1)))
    with pytest.raises(TypeError, match="Tensor or None"):
        m.register_buffer("x", np.ones(1))
    with pytest.raises(TypeError, match="Parameter or None"):
        m.register_parameter("x", mdl.tensor(np.ones(1)))
    with pytest.raises(TypeError, match="Sequential: element 1 is a int"):
        nn.Sequential(nn.ReLU(), 3)


def test_forward_must_be_defined():
    with pytest.raises(NotImplementedError, match="Module has no forward"):
        Module()(1)


def test_named_parameters_buffers_modules():
    net = Net()
    assert [n for n, _ in net.named_parameters()] == [
        "features.0.weight", "features.0.bias", "features.2.0.weight", "features.2.0.bias",
        "features.2.1.scale", "features.2.1.shift", "bn1.weight", "bn1.bias", "head.weight", "head.bias"]
    assert [n for n, _ in net.named_buffers()] == [
        "features.2.1.count", "features.2.1.cache", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked"]
    assert [n for n, _ in net.named_modules()] == [
        "", "features", "features.0", "features.1", "features.2", "features.2.0", "features.2.1", "bn1", "head"]
    assert [n for n, _ in net.named_children()] == ["features", "bn1", "head"]
    assert list(net.children()) == [net.features, net.bn1, net.head]
    assert [n for n, _ in net.named_parameters(prefix="model")][0] == "model.features.0.weight"
    assert [n for n, _ in net.features.named_parameters(recurse=False)] == []
    assert [n for n, _ in net.head.named_parameters(recurse=False)] == ["weight", "bias"]
    assert len(list(net.parameters())) == 10 and len(list(net.modules())) == 9


def test_shared_parameters_and_modules_counted_once():
    shared = nn.Linear(3, 3)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(list(seq.parameters())) == 2
    assert [n for n, _ in seq.named_parameters()] == ["0.weight", "0.bias"]
    assert len(list(seq.modules())) == 3  # Sequential, Linear, ReLU
    # state_dict, like PyTorch's, lists the shared tensors under every name
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]

    a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    b.weight = a.weight  # tied weights
    both = nn.Sequential(a, b)
    assert [n for n, _ in both.named_parameters()] == ["0.weight", "0.bias", "1.bias"]


def test_state_dict_names_match_pytorch_conventions():
    net = Net()
    sd = net.state_dict()
    assert isinstance(sd, OrderedDict)
    assert list(sd) == [
        "features.0.weight", "features.0.bias", "features.2.0.weight", "features.2.0.bias",
        "features.2.1.scale", "features.2.1.shift", "features.2.1.count",  # 'cache' is not persistent
        "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
        "head.weight", "head.bias"]
    assert sd["bn1.num_batches_tracked"].dtype == np.int64 and sd["bn1.num_batches_tracked"].shape == ()
    assert all(not v.requires_grad and type(v) is mdl.Tensor for v in sd.values())
    assert np.shares_memory(sd["head.weight"].data, net.head.weight.data)
    named = nn.Sequential(OrderedDict(conv=nn.Linear(2, 2), act=nn.ReLU()))
    assert list(named.state_dict()) == ["conv.weight", "conv.bias"]
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight


def test_load_state_dict_round_trip_keeps_identity_and_dtype():
    mdl.manual_seed(0)
    src, dst = Net(), Net()
    weight = dst.head.weight
    sd = {k: v.numpy().astype(np.float64) if v.dtype.kind == "f" else v.numpy() for k, v in src.state_dict().items()}
    sd["bn1.num_batches_tracked"] = np.array(5)
    result = dst.load_state_dict(sd)
    assert result == ([], []) and result.missing_keys == [] and result.unexpected_keys == []
    assert dst.head.weight is weight and weight.dtype == np.float32
    for (k, a), b in zip(src.state_dict().items(), dst.state_dict().values()):
        if k != "bn1.num_batches_tracked":
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert dst.bn1.num_batches_tracked.item() == 5 and dst.bn1.num_batches_tracked.dtype == np.int64
    # Tensors are accepted as well as arrays, and loading copies: the source stays independent
    dst.load_state_dict(src.state_dict())
    src.head.bias.data[...] = 42
    assert not np.any(dst.head.bias.data == 42)


def test_load_state_dict_strict_lists_every_problem():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"], sd["bn1.running_var"]
    sd["head.weight"] = np.zeros((2, 4))
    sd["features.0.weight"] = np.zeros((3, 5))
    sd["extra.weight"] = np.zeros(1)
    sd["bn1.extra"] = np.zeros(1)
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert "Error(s) in loading state_dict for Net" in msg
    assert "missing keys (2): 'bn1.running_var', 'head.bias'" in msg
    assert "unexpected keys (2): 'extra.weight', 'bn1.extra'" in msg
    assert "shape mismatches (2)" in msg
    assert "'features.0.weight': expected (3, 4), got (3, 5)" in msg
    assert "'head.weight': expected (2, 3), got (2, 4)" in msg


def test_load_state_dict_error_leaves_the_module_unchanged():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 3))
    before = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match="shape mismatches"):
        net.load_state_dict({"0.weight": np.zeros((2, 2)), "0.bias": np.zeros(2),
                             "1.weight": np.zeros((2, 2)), "1.bias": np.zeros(3)})
    for k, v in net.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), before[k])


def _snapshot(module):
    """Every parameter and buffer (non-persistent ones too), bit for bit."""
    tensors = itertools.chain(module.named_parameters(), module.named_buffers())
    return [(name, t.dtype, t.shape, backend.as_numpy(t.data).tobytes()) for name, t in tensors]


@pytest.mark.parametrize("key, bad, pattern", [
    ("head.bias", np.array(["a", "b"]),
     r"'head.bias': expected real numbers or booleans \(to load as float32\), got an array of dtype <U1"),
    ("head.bias", np.array([1 + 2j, 0]), r"'head.bias': expected real numbers .* got an array of dtype complex128"),
    ("head.bias", np.array([1.0, None], dtype=object), r"'head.bias': .* got an array of dtype object"),
    ("head.bias", [0.5, 0.5], r"'head.bias': expected a Tensor or an array, got list"),
    ("head.bias", "oops", r"'head.bias': expected a Tensor or an array, got str"),
    ("head.bias", np.array([1e300, 0.0]), r"'head.bias': expected values within the range of float32, got 1e\+300"),
    ("bn1.num_batches_tracked", np.array(1.5),
     r"'bn1.num_batches_tracked': expected values that int64 holds exactly, got 1.5 \(in an array of float64\)"),
    ("bn1.num_batches_tracked", np.array(np.nan), r"'bn1.num_batches_tracked': expected values that int64 holds"),
    ("bn1.num_batches_tracked", np.array(2 ** 64 - 1, dtype=np.uint64),
     r"'bn1.num_batches_tracked': expected values that int64 holds exactly, got 18446744073709551615"),
], ids=["str", "complex", "object", "list", "not-an-array", "overflow", "fraction", "nan", "uint64"])
def test_load_state_dict_checks_every_value_before_writing_any(key, bad, pattern):
    mdl.manual_seed(0)
    net = Net()
    mdl.manual_seed(1)
    sd = Net().state_dict()  # other values, so that a partial load would show
    sd[key] = bad
    before = _snapshot(net)
    with pytest.raises(RuntimeError, match=r"Error\(s\) in loading state_dict for Net:\n  bad values \(1\):\n    "
                                           + pattern):
        net.load_state_dict(sd, strict=False)
    assert _snapshot(net) == before


def test_load_state_dict_accepts_exact_casts_and_lists_every_bad_value():
    net = Net()
    sd = net.state_dict()
    sd["bn1.num_batches_tracked"] = np.array(3.0)  # integral: loaded exactly
    sd["bn1.running_mean"] = np.array([True, False, True])
    sd["head.bias"] = np.array([1, 2], dtype=np.int8)
    net.load_state_dict(sd)
    assert net.bn1.num_batches_tracked.item() == 3 and net.bn1.num_batches_tracked.dtype == np.int64
    assert net.bn1.running_mean.data.tolist() == [1.0, 0.0, 1.0] and net.head.bias.dtype == np.float32
    sd["bn1.num_batches_tracked"] = np.array(-1, dtype=np.int64)
    sd["features.0.bias"] = None
    sd["head.bias"] = np.array([np.inf, np.nan], dtype=np.float64)  # not finite to begin with: loaded as it is
    del sd["head.weight"]
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    assert str(info.value).splitlines()[1:] == [
        "  missing keys (1): 'head.weight'",
        "  bad values (1):",
        "    'features.0.bias': expected a Tensor or an array, got NoneType",
    ]
    assert net.bn1.num_batches_tracked.item() == 3


def test_load_state_dict_non_strict():
    net = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 3))
    result = net.load_state_dict({"0.weight": np.ones((2, 2)), "9.weight": np.ones(1)}, strict=False)
    assert result.missing_keys == ["0.bias", "1.weight", "1.bias"]
    assert result.unexpected_keys == ["9.weight"]
    assert np.all(net[0].weight.data == 1)
    with pytest.raises(RuntimeError, match=r"'0.weight': expected \(2, 2\), got \(3, 2\)"):
        net.load_state_dict({"0.weight": np.ones((3, 2))}, strict=False)


def test_train_eval_propagate():
    net = Net()
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net.features.train(False)
    assert not net.features[2][1].training and net.head.training
    with pytest.raises(TypeError, match="True or False"):
        net.train("no")


def test_to_dtype_keeps_parameter_identity():
    net = Net()
    params = list(net.parameters())
    out = net(mdl.tensor(np.ones((4, 4), dtype=np.float32))).sum()
    out.backward()
    assert net.double() is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in params)
    assert all(p.requires_grad for p in params)
    assert net.bn1.running_mean.dtype == np.float64
    assert net.bn1.num_batches_tracked.dtype == np.int64  # integer buffers keep their dtype
    y = net(mdl.tensor(np.ones((4, 4))))
    assert y.dtype == np.float64
    net.to(np.float32)
    assert all(p.dtype == np.float32 for p in params)
    net.to(dtype="float64")
    assert all(p.dtype == np.float64 for p in params)
    net.float().to("cpu")
    assert all(p.dtype == np.float32 and p.device == "cpu" for p in params)
    with pytest.raises(TypeError, match="floating-point"):
        net.to(np.int32)
    with pytest.raises(mdl.DeviceError, match="unknown device 'gpu'"):
        net.to("gpu")


def _cupy_usable():
    try:
        backend.cupy()
        return True
    except mdl.DeviceError:
        return False


@pytest.mark.gpu
@pytest.mark.skipif(not _cupy_usable(), reason="needs CuPy and a CUDA GPU")
def test_to_cuda_keeps_identity_and_loads_host_arrays():
    mdl.manual_seed(0)
    net = Net()
    params = list(net.parameters())
    sd = {k: v.numpy().copy() for k, v in net.state_dict().items()}
    assert net.to("cuda") is net
    assert [id(p) for p in net.parameters()] == [id(p) for p in params]
    assert all(p.device.startswith("cuda") for p in params) and net.bn1.running_mean.device.startswith("cuda")
    y = net(mdl.tensor(np.ones((4, 4), dtype=np.float32)).to("cuda"))
    y.sum().backward()
    assert y.device.startswith("cuda") and params[0].grad.device.startswith("cuda")
    net.load_state_dict(sd)  # host arrays are copied onto each tensor's device
    assert all(p.device.startswith("cuda") for p in net.parameters())
    nn.init.kaiming_normal_(net.head.weight)
    assert net.head.weight.device.startswith("cuda")
    net.cpu()
    np.testing.assert_array_equal(net.features[0].weight.numpy(), sd["features.0.weight"])


@pytest.mark.gpu
@pytest.mark.skipif(not _cupy_usable(), reason="needs CuPy and a CUDA GPU")
def test_load_state_dict_mixes_host_and_device_values_and_checks_them_all_first():
    mdl.manual_seed(0)
    gpu_net, cpu_net = Net().to("cuda"), Net()
    mdl.manual_seed(1)
    host = {k: v.numpy().copy() for k, v in Net().state_dict().items()}
    mixed = {k: backend.to_device(a, "cuda") if i % 2 else a for i, (k, a) in enumerate(host.items())}
    for net in (gpu_net, cpu_net):
        before = _snapshot(net)
        bad = dict(mixed, **{"head.bias": backend.to_device(np.array([0.5, 1e40]), "cuda")})
        with pytest.raises(RuntimeError, match=r"'head.bias': expected values within the range of float32, got 1e\+40"):
            net.load_state_dict(bad)
        bad = dict(mixed, **{"bn1.num_batches_tracked": backend.to_device(np.array(0.5), "cuda")})
        with pytest.raises(RuntimeError, match=r"'bn1.num_batches_tracked': expected values that int64 holds"):
            net.load_state_dict(bad)
        assert _snapshot(net) == before
        net.load_state_dict(mixed)
        assert [(n, backend.as_numpy(t.data).tobytes()) for n, t in net.state_dict().items()] == \
            [(n, a.tobytes()) for n, a in host.items()]
    assert all(p.device.startswith("cuda") for p in gpu_net.parameters())
    assert all(p.device == "cpu" for p in cpu_net.parameters())


def test_zero_grad_requires_grad_apply():
    net = nn.Sequential(nn.Linear(3, 2), nn.Tanh(), nn.Linear(2, 1))
    net(mdl.tensor(np.ones((2, 3), dtype=np.float32))).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad.data == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    visited = []
    assert net.apply(lambda m: visited.append(type(m).__name__)) is net
    assert visited == ["Linear", "Tanh", "Linear", "Sequential"]


def test_forward_hooks():
    lin = nn.Linear(2, 2)
    seen = []
    handle = lin.register_forward_hook(lambda m, args, out: seen.append((m, args[0].shape, out.shape)))
    pre = lin.register_forward_pre_hook(lambda m, args: (args[0] * 0,))
    y = lin(mdl.tensor(np.ones((5, 2), dtype=np.float32)))
    assert seen == [(lin, (5, 2), (5, 2))]
    np.testing.assert_allclose(y.data, np.broadcast_to(lin.bias.data, (5, 2)))
    handle.remove()
    pre.remove()
    lin(mdl.tensor(np.ones((1, 2), dtype=np.float32)))
    assert len(seen) == 1


def test_containers():
    layers = [nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)]
    seq = nn.Sequential(*layers)
    assert len(seq) == 3 and list(seq) == layers and seq[-1] is layers[2]
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == layers[1:]
    assert list(sub.state_dict()) == ["2.weight", "2.bias"]  # slices keep the names
    with pytest.raises(IndexError, match="Sequential: index 3 is out of range for 3 modules"):
        seq[3]
    seq[1] = nn.Tanh()
    assert isinstance(seq[1], nn.Tanh)
    seq.append(nn.Sigmoid())
    assert [n for n, _ in seq.named_children()] == ["0", "1", "2", "3"]
    assert seq(mdl.tensor(np.ones((4, 2), dtype=np.float32))).shape == (4, 1)

    ml = nn.ModuleList([nn.Linear(1, 1)])
    ml.append(nn.Linear(1, 2)).extend([nn.ReLU(), nn.Linear(2, 2)])
    assert len(ml) == 4 and isinstance(ml[-1], nn.Linear) and len(ml[1:3]) == 2
    ml[2] = nn.Tanh()
    assert [type(m).__name__ for m in ml] == ["Linear", "Linear", "Tanh", "Linear"]

    class Holder(Module):
        def __init__(self):
            super().__init__()
            self.blocks = ml

    assert list(Holder().state_dict()) == ["blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
                                           "blocks.3.weight", "blocks.3.bias"]
    with pytest.raises(NotImplementedError):
        ml(1)


def test_repr_is_nested_like_pytorch():
    net = nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.ReLU(inplace=True),
        nn.Sequential(OrderedDict(pool=nn.MaxPool2d(2), flat=nn.Flatten())),
        nn.Linear(8, 2),
    )
    assert repr(net) == (
        "Sequential(\n"
        "  (0): Conv2d(3, 8, kernel_size=(3, 3), stride=(1, 1), padding=(1, 1), bias=False)\n"
        "  (1): ReLU(inplace=True)\n"
        "  (2): Sequential(\n"
        "    (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=False)\n"
        "    (flat): Flatten(start_dim=1, end_dim=-1)\n"
        "  )\n"
        "  (3): Linear(in_features=8, out_features=2, bias=True)\n"
        ")"
    )
    assert repr(nn.Tanh()) == "Tanh()"
    assert repr(nn.BatchNorm2d(4)) == "BatchNorm2d(4, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)"

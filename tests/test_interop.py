"""minidl.interop: .safetensors files that PyTorch reads and writes under the same names, and ONNX export
proven against onnxruntime on every model family."""
import os
import sys

import numpy as np
import pytest

import minidl as mdl
from minidl import nn
from minidl.interop import (OnnxExporterError, UnsupportedOperatorError, export_onnx, load_safetensors,
                            save_safetensors)
from minidl.nn import functional as F
from minidl.serialization import MissingFileError, SerializationError
from minidl_models import get_model


@pytest.fixture(scope="module")
def safetensors():
    return pytest.importorskip("safetensors.numpy")


@pytest.fixture(scope="module")
def safetensors_torch(torch):
    """safetensors' own loader and writer for PyTorch, the other side of the files."""
    return pytest.importorskip("safetensors.torch")


@pytest.fixture(scope="module")
def ort():
    pytest.importorskip("onnx")
    return pytest.importorskip("onnxruntime")


def assert_close(actual, expected, tol=1e-5):
    """Agreement to ``tol`` of the output's scale: max |actual - expected| / max |expected|."""
    assert actual.shape == expected.shape
    error = np.abs(actual - expected).max() / np.abs(expected).max()
    assert error <= tol, f"max abs error {error:.3g} of the output's scale, more than {tol}"


def images(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def evaluate(model, x):
    model.eval()
    with mdl.no_grad():
        return model(mdl.tensor(x)).numpy()


def randomize_batch_norms(model, seed=1):
    """Running statistics, scales and shifts away from their initial 0, 1, 1, 0, so that a
    mixed-up mean, variance, weight or bias shows in the output."""
    rng = np.random.default_rng(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.2, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            m.weight.data[...] = rng.uniform(0.5, 1.5, c)
            m.bias.data[...] = rng.normal(0, 0.2, c)
            m.num_batches_tracked.data[...] = 7
    return model


# --- safetensors ---------------------------------------------------------------------------------

def test_safetensors_round_trip_keeps_names_dtypes_shapes_and_metadata(safetensors, tmp_path):
    rng = np.random.default_rng(0)
    state = {
        "features.0.weight": mdl.tensor(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), requires_grad=True),
        "bn.num_batches_tracked": np.array(5, dtype=np.int64),
        "half": rng.standard_normal(6).astype(np.float16),
        "double": rng.standard_normal((2, 2)).astype(np.float64).T,  # not C-contiguous
        "big_endian": np.arange(3, dtype=">f4"),
        "mask": np.array([True, False, True]),
        "bytes": np.arange(4, dtype=np.uint8),
    }
    path = tmp_path / "weights.safetensors"
    save_safetensors(state, path, metadata={"format": "pt", "model": "test"})
    loaded = load_safetensors(path)
    assert set(loaded) == set(state)
    for name, value in state.items():
        expected = value.numpy() if isinstance(value, mdl.Tensor) else value
        assert loaded[name].dtype == expected.dtype.newbyteorder("=") and loaded[name].shape == expected.shape, name
        np.testing.assert_array_equal(loaded[name], expected, err_msg=name)
    with pytest.importorskip("safetensors").safe_open(str(path), "np") as f:
        assert f.metadata() == {"format": "pt", "model": "test"}
    assert os.listdir(tmp_path) == ["weights.safetensors"]  # no temporary left behind


class TorchTwin:
    """The module tree of a minidl LeNet-5 or VGG (``features``, an optional ``avgpool``, ``classifier``)
    written in torch.nn, so that its state_dict has the same names."""

    @staticmethod
    def layer(torch, m):
        tnn = torch.nn
        if isinstance(m, nn.Conv2d):
            return tnn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, m.dilation,
                              m.groups, bias=m.bias is not None)
        if isinstance(m, nn.BatchNorm2d):
            return tnn.BatchNorm2d(m.num_features, m.eps, m.momentum)
        if isinstance(m, nn.Linear):
            return tnn.Linear(m.in_features, m.out_features, bias=m.bias is not None)
        if isinstance(m, nn.MaxPool2d):
            return tnn.MaxPool2d(m.kernel_size, m.stride, m.padding, ceil_mode=m.ceil_mode)
        if isinstance(m, nn.AvgPool2d):
            return tnn.AvgPool2d(m.kernel_size, m.stride, m.padding, m.ceil_mode, m.count_include_pad)
        if isinstance(m, nn.Dropout):
            return tnn.Dropout(m.p)
        return {nn.ReLU: tnn.ReLU, nn.Tanh: tnn.Tanh}[type(m)]()

    @classmethod
    def of(cls, torch, model):
        layer = cls.layer
        pooled = model.avgpool.output_size if "avgpool" in model._modules else None

        class Twin(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.features = torch.nn.Sequential(*(layer(torch, m) for m in model.features))
                if pooled is not None:
                    self.avgpool = torch.nn.AdaptiveAvgPool2d(pooled)
                self.classifier = torch.nn.Sequential(*(layer(torch, m) for m in model.classifier))

            def forward(self, x):
                x = self.features(x)
                if pooled is not None:
                    x = self.avgpool(x)
                return self.classifier(x.flatten(1))

        return Twin()


def torch_outputs(torch, module, x):
    module.eval()
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()


@pytest.mark.parametrize("build", [lambda: get_model("lenet5"), lambda: get_model("vgg_small", batch_norm=True)],
                         ids=["lenet5", "vgg_small_bn"])
@pytest.mark.torch
def test_minidl_weights_load_into_pytorch(torch, safetensors_torch, tmp_path, build):
    mdl.manual_seed(0)
    model = randomize_batch_norms(build())
    path = tmp_path / "model.safetensors"
    save_safetensors(model.state_dict(), path)
    twin = TorchTwin.of(torch, model)
    twin.load_state_dict(safetensors_torch.load_file(path))  # strict: the same names, none missing
    x = images((2, 1, 32, 32))
    assert_close(torch_outputs(torch, twin, x), evaluate(model, x))
    for name, value in twin.state_dict().items():
        if name.endswith("num_batches_tracked"):
            assert value.dtype == torch.int64 and value.item() == 7, name


@pytest.mark.parametrize("build", [lambda: get_model("lenet5"), lambda: get_model("vgg_small", batch_norm=True)],
                         ids=["lenet5", "vgg_small_bn"])
@pytest.mark.torch
def test_pytorch_weights_load_into_minidl(torch, safetensors_torch, tmp_path, build):
    model = build()
    torch.manual_seed(0)
    twin = TorchTwin.of(torch, model)
    twin.train()
    with torch.no_grad():
        for seed in range(3):  # three batches move the running statistics, and count to 3
            twin(torch.from_numpy(images((4, 1, 32, 32), seed)))
    path = tmp_path / "torch.safetensors"
    safetensors_torch.save_file(twin.state_dict(), path)
    result = model.load_state_dict(load_safetensors(path))
    assert result.missing_keys == [] and result.unexpected_keys == []
    x = images((2, 1, 32, 32), seed=9)
    assert_close(evaluate(model, x), torch_outputs(torch, twin, x))
    counts = [b for name, b in model.state_dict().items() if name.endswith("num_batches_tracked")]
    assert all(c.dtype == np.int64 and c.item() == 3 for c in counts)
    assert len(counts) == sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())


def test_save_safetensors_refuses_what_is_not_an_array_and_keeps_the_old_file(safetensors, tmp_path):
    path = tmp_path / "w.safetensors"
    save_safetensors({"a": np.ones(2, np.float32)}, path)
    before = path.read_bytes()
    cases = [
        ({"a": np.ones(2), "lr": 0.1}, TypeError, "save_safetensors: 'lr' is a float; expected a Tensor or an array"),
        ({"a": [1.0, 2.0]}, TypeError, "'a' is a list"),
        ({3: np.ones(2)}, TypeError, "names must be strings; got the key 3"),
        ({"c": np.ones(2, np.complex64)}, TypeError, "save_safetensors: 'c': dtype complex64 is not supported"),
        ({"__metadata__": np.ones(2)}, ValueError, "reserved"),
        ([("a", np.ones(2))], TypeError, "expected a mapping of names to tensors"),
    ]
    for state, error, message in cases:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            save_safetensors(state, path)
    with pytest.raises(TypeError, match="metadata must map str to str; got 'epoch': 3"):
        save_safetensors({"a": np.ones(2)}, path, metadata={"epoch": 3})
    with pytest.raises(TypeError, match="path must be a str or os.PathLike; got int"):
        save_safetensors({"a": np.ones(2)}, 3)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["w.safetensors"]


def test_load_safetensors_names_missing_and_unreadable_files(safetensors, tmp_path):
    with pytest.raises(MissingFileError, match="there is no such file") as missing:
        load_safetensors(tmp_path / "nothing.safetensors")
    assert isinstance(missing.value, FileNotFoundError)
    save_safetensors({"w": np.ones((3, 3), np.float32)}, tmp_path / "good.safetensors")
    data = (tmp_path / "good.safetensors").read_bytes()
    for name, content in [("truncated", data[:-5]), ("garbage", b"not a safetensors file"), ("empty", b"")]:
        bad = tmp_path / f"{name}.safetensors"
        bad.write_bytes(content)
        with pytest.raises(SerializationError, match=f"cannot load .*{name}.safetensors.*not a readable safetensors"):
            load_safetensors(bad)
    with pytest.raises(SerializationError, match="it is not a file"):
        load_safetensors(tmp_path)


def test_missing_extras_name_the_pip_extra(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "safetensors.numpy", None)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match=r"save_safetensors needs the optional package 'safetensors'.*"
                                          r"pip install 'minidl\[safetensors\]'"):
        save_safetensors({}, tmp_path / "x")
    with pytest.raises(ImportError, match=r"load_safetensors needs .*minidl\[safetensors\]"):
        load_safetensors(tmp_path / "x")
    with pytest.raises(ImportError, match=r"export_onnx needs the optional package 'onnx'.*minidl\[onnx\]"):
        export_onnx(nn.ReLU(), tmp_path / "x.onnx", (3,))


# --- ONNX export -----------------------------------------------------------------------------------

def export_and_run(ort, model, path, input_shape, batches=(2,), opset=17, tol=1e-5):
    """Export ``model``, run the file in onnxruntime on random batches of each size, compare with
    minidl's eval forward, and return the loaded ONNX model."""
    import onnx

    export_onnx(model, path, input_shape, opset=opset)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    for i, n in enumerate(batches):
        x = images((n, *input_shape), seed=10 + i)
        got = session.run(None, {"input": x})
        with mdl.no_grad():
            expected = model.eval()(mdl.tensor(x))
        expected = expected if isinstance(expected, tuple) else (expected,)
        assert len(got) == len(expected)
        for g, e in zip(got, expected):
            assert_close(g, e.detach().numpy(), tol)
    return onnx.load(str(path))


ZOO = {
    "lenet5": ({}, (1, 32, 32)),
    "alexnet_small": ({}, (1, 32, 32)),
    "alexnet_small_ungrouped": ({"grouped": False}, (1, 32, 32)),
    "vgg_small": ({}, (1, 32, 32)),
    "vgg_small_bn": ({"batch_norm": True}, (1, 32, 32)),
    "googlenet_small": ({}, (1, 32, 32)),
    "resnet_small": ({}, (1, 32, 32)),
    # full size, at the paper's input size; a full VGG (over 130M parameters, 7.6 G multiply-adds an
    # image and more) would take longer than all of these together
    "resnet18": ({"num_classes": 10}, (3, 224, 224)),
    "resnet50": ({"num_classes": 10}, (3, 224, 224)),
    "googlenet": ({"num_classes": 10, "aux_logits": False}, (3, 224, 224)),
    "alexnet": ({"num_classes": 10}, (3, 227, 227)),  # grouped, as in the paper
}


@pytest.mark.parametrize("name", list(ZOO))
def test_zoo_models_export_and_match_onnxruntime(ort, tmp_path, name):
    kwargs, input_shape = ZOO[name]
    mdl.manual_seed(0)
    model = randomize_batch_norms(get_model(name.removesuffix("_ungrouped").removesuffix("_bn"), **kwargs))
    small = input_shape[1] == 32
    proto = export_and_run(ort, model, tmp_path / f"{name}.onnx", input_shape, batches=(2, 3) if small else (2,))
    state = model.state_dict()
    assert [i.name for i in proto.graph.initializer] == [k for k in state if not k.endswith("num_batches_tracked")]
    for init in proto.graph.initializer:
        np.testing.assert_array_equal(onnx_array(init), state[init.name].numpy(), err_msg=init.name)
    assert proto.graph.input[0].type.tensor_type.shape.dim[0].dim_param == "batch"
    assert proto.graph.output[0].type.tensor_type.shape.dim[0].dim_param == "batch"


def onnx_array(initializer):
    import onnx.numpy_helper

    return onnx.numpy_helper.to_array(initializer)


def op_types(proto):
    return [node.op_type for node in proto.graph.node]


def test_linear_layers_are_gemms_and_batch_norm_one_node(ort, tmp_path):
    model = randomize_batch_norms(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                                                nn.Linear(36, 5), nn.Tanh(), nn.Linear(5, 3, bias=False)))
    proto = export_and_run(ort, model, tmp_path / "m.onnx", (2, 5, 5))
    assert op_types(proto) == ["Conv", "BatchNormalization", "Relu", "Flatten", "Gemm", "Tanh", "Gemm"]
    bn = proto.graph.node[1]
    assert list(bn.input[1:]) == ["1.weight", "1.bias", "1.running_mean", "1.running_var"]
    assert proto.graph.node[0].output[0] == "0" and proto.graph.node[-1].output[0] == "output"


def test_pooling_lrn_and_convolution_settings(ort, tmp_path):
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=(2, 1), padding=(1, 2), dilation=(2, 1)),  # 11x4 -> 5x6
        nn.LocalResponseNorm(4, alpha=0.5, beta=0.75, k=2.0),  # an even window, with an alpha that shows
        nn.MaxPool2d(2, 2, padding=1, ceil_mode=True),  # -> 3x4: along H PyTorch drops a window in the padding
        nn.LocalResponseNorm(3, alpha=0.3, beta=0.6, k=1.5),
        nn.Conv2d(8, 8, 3, padding=1, groups=4),
        nn.AvgPool2d(3, 2, padding=1, ceil_mode=True),  # -> 2x3: a partial last window along W
        nn.AvgPool2d(2, 1, padding=1, count_include_pad=False),
        nn.ReLU())
    proto = export_and_run(ort, model, tmp_path / "m.onnx", (3, 11, 4), batches=(2, 1))
    pools = [n for n in proto.graph.node if n.op_type in ("MaxPool", "AveragePool")][-3:]
    # ONNX's ceil mode would keep the window PyTorch drops, so only the pool that gains one asks for it
    assert [next(a.i for a in n.attribute if a.name == "ceil_mode") for n in pools] == [0, 1, 0]
    assert op_types(proto).count("LRN") == 1  # the odd one; the even one is written out


class Mixed(nn.Module):
    """Adaptive pooling to a size that does not divide the input (slices, means and a stack), and
    the elementwise ops, softmaxes, reductions, indexing and a batched matmul."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3)
        self.pool = nn.AdaptiveAvgPool2d((3, 2))
        self.fc = nn.Linear(6, 6)
        self.w = nn.Parameter(np.random.default_rng(3).standard_normal((6, 5)).astype(np.float32))

    def forward(self, x):
        y = self.pool(self.conv(x))                              # (N, 4, 3, 2) from 5x5
        z = self.fc(y.reshape(y.shape[0], 4, 6))                 # a linear layer on a 3-D input: MatMul + Add
        a = z.sigmoid() * z.tanh() - z.abs().sqrt() / (z.exp() * 2.0)
        b = -(a ** 2) + (z * 0.5).relu().double().float() - (z.exp() * 2.0).log()
        h = (b @ self.w)[..., ::-1]                               # (N, 4, 5), reversed last axis
        c = mdl.cat([F.softmax(h, axis=1), F.log_softmax(h, axis=-1), h.mean(axis=2, keepdims=True),
                     h.sum(axis=2, keepdims=True)], axis=2)
        return c[:, 1:, :], c[:, 0]


@pytest.mark.parametrize("opset", [13, 17, 18])
def test_composite_model_with_every_elementwise_op(ort, tmp_path, opset):
    proto = export_and_run(ort, Mixed(), tmp_path / "m.onnx", (2, 5, 5), batches=(2, 3), opset=opset)
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1"]
    assert proto.opset_import[0].version == opset


def test_export_restores_modes_and_flags_and_keeps_frozen_parameters(ort, tmp_path):
    model = randomize_batch_norms(nn.Sequential(nn.Conv2d(2, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                                                nn.Flatten(), nn.Linear(36, 3)))
    model.train()
    model[1].eval()  # a mixed state comes back as it was
    model[0].bias.requires_grad = False  # a frozen bias is still written (the graph does not keep it otherwise)
    modes = [m.training for m in model.modules()]
    flags = [t.requires_grad for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values())]
    export_onnx(model, tmp_path / "m.onnx", (2, 5, 5))
    with pytest.raises(ValueError, match="has 3 channels"):  # a forward that fails restores them too
        export_onnx(model, tmp_path / "m.onnx", (3, 5, 5))
    assert [m.training for m in model.modules()] == modes
    assert [t.requires_grad for m in model.modules() for t in (*m._parameters.values(), *m._buffers.values())] == flags
    assert all(not m._forward_hooks for m in model.modules())
    proto = export_and_run(ort, model, tmp_path / "m.onnx", (2, 5, 5))  # dropout off, running statistics used
    assert "0.bias" in [i.name for i in proto.graph.initializer]


def test_a_model_returning_its_input_and_a_shared_output(ort, tmp_path):
    class Both(nn.Module):
        def forward(self, x):
            y = x.relu()
            return y, x, y

    proto = export_and_run(ort, Both(), tmp_path / "m.onnx", (3,))
    assert [o.name for o in proto.graph.output] == ["output_0", "output_1", "output_2"]


class Square(mdl.Function):
    def forward(self, x):
        return x * x

    def backward(self, gy):
        return 2 * self.inputs[0] * gy


def test_an_op_without_translation_is_named_with_the_supported_ones(ort, tmp_path):
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(1, 2, 3)

        def forward(self, x):
            return Square()(self.conv(x))

    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(UnsupportedOperatorError, match=r"uses the op Square, which has no ONNX translation; the "
                                                       r"ops export_onnx writes are Abs, Add, .*Conv2d, .*Transpose"):
        export_onnx(Custom(), path, (1, 5, 5))
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["m.onnx"]


def lambda_module(fn):
    class Fn(nn.Module):
        def forward(self, x):
            return fn(x)
    return Fn()


def test_graphs_onnx_cannot_express_are_refused_with_the_reason(ort, tmp_path):
    path = tmp_path / "m.onnx"
    cases = [
        (lambda_module(lambda x: x + 1.0), OnnxExporterError,
         "input 1 of Add is a constant from outside the model .* register it as a buffer"),
        (lambda_module(lambda x: x.reshape(-1)), OnnxExporterError,
         r"a reshape from \(2, 3, 4\) to \(24,\) .* does not keep the batch axis first"),
        (lambda_module(lambda x: mdl.cat([x, mdl.tensor(np.arange(24.0, dtype=np.float32).reshape(2, 3, 4))], 1)),
         OnnxExporterError, "a constant operand of Concat .* holds a single repeated value"),
        (lambda_module(lambda x: x[:, [0, 2]]), OnnxExporterError, "not advanced indexing"),
        (lambda_module(lambda x: x.detach() * 2.0), OnnxExporterError, "not computed from its input"),
        (lambda_module(lambda x: {"y": x}), OnnxExporterError, "the model returned dict; expected a Tensor"),
        (nn.Sequential(nn.BatchNorm1d(3, track_running_stats=False)), OnnxExporterError,
         r"BatchNorm1d\(3, .*\) has no running statistics"),
    ]
    for model, error, message in cases:
        with pytest.raises(error, match=message):
            export_onnx(model, path, (3, 4))
    with pytest.raises(ValueError, match=r"export_onnx: input_shape must be a tuple of positive ints without the "
                                         r"batch axis, e\.g\. \(3, 224, 224\); got \(3, 0\)"):
        export_onnx(nn.ReLU(), path, (3, 0))
    with pytest.raises(ValueError, match="export_onnx: input_shape must be .*; got 3"):
        export_onnx(nn.ReLU(), path, 3)
    with pytest.raises(ValueError, match=r"export_onnx: opset must be an int from 13 to \d+ .*; got 11"):
        export_onnx(nn.ReLU(), path, (3,), opset=11)
    with pytest.raises(TypeError, match="export_onnx: model must be a minidl.nn.Module; got function"):
        export_onnx(lambda x: x, path, (3,))
    assert not path.exists()


def test_a_batch_norm_model_round_trips_through_safetensors_into_minidl(tmp_path):
    from minidl_models import get_model

    mdl.manual_seed(0)
    model = get_model("vgg_small", batch_norm=True)
    save_safetensors(model.state_dict(), tmp_path / "m.safetensors")
    again = get_model("vgg_small", batch_norm=True)
    again.load_state_dict(load_safetensors(tmp_path / "m.safetensors"))  # strict: every shape as saved
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(again.state_dict()[name].numpy(), value.numpy(), err_msg=name)

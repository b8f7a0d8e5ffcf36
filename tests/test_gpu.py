"""The GPU path on a real CUDA device: every test here is marked ``gpu`` and the whole module
skips, with minidl's own message, where CuPy or a GPU is missing.

    python -m pytest -q -m gpu tests                   # or: bash benchmarks/gpu_check.sh

What it proves, on device 'cuda':
- every gradient-check case of ``tests/gradcases`` passes ``mdl.gradcheck`` (and
  ``mdl.gradgradcheck`` where the CPU test runs it) in float64 with its inputs on the GPU, its
  output is on the GPU and every kernel it called was a CUDA kernel;
- the CUDA kernels write into a device workspace, return the input where the columns are the
  input, and run launches larger than the grid; float16 and mixed dtypes run the reference on
  CuPy; no kernel reads a value back to the host (their results against the NumPy reference are
  ``test_kernels.py``'s tests, whose ``impl`` fixture runs them on the GPU too: run both files
  with ``-m gpu``);
- the layer stack of ``test_nn_layers.py`` equals minidl on the CPU (1e-10) and PyTorch on CUDA
  (1e-7) in float64; a LeNet-5 training step in float32 equals the CPU's (1e-5); devices, saving,
  seeding, the DataLoader and ``minidl train --device cuda`` work.

Inputs are put on the GPU with ``cupy.asarray`` (or ``Module.to``), so that each test depends only
on what it checks; ``Tensor.to`` has tests of its own. Shapes are small: the module is meant to
run in well under two minutes on one GPU, most of it CuPy compiling its kernels the first time.
"""
import contextlib
import os

import numpy as np
import pytest

import minidl as mdl
from minidl import backend

try:
    cp = backend.cupy()
except backend.DeviceError as e:
    pytest.skip(str(e), allow_module_level=True)

import sys  # noqa: E402

from conftest import ops_in_graph  # noqa: E402
from gradcases import all_cases  # noqa: E402
from minidl import cli, kernels, nn, training  # noqa: E402
from minidl.data import ArrayDataset, DataLoader  # noqa: E402
from minidl.kernels import cuda_impl, numpy_impl  # noqa: E402
from minidl.nn import functional as F  # noqa: E402
from minidl_models import lenet5  # noqa: E402
from test_kernels import DTYPES, assert_close, assert_same, kernel_calls  # noqa: E402
from test_nn_layers import _model  # noqa: E402

pytestmark = pytest.mark.gpu

DEVICE = "cuda"


def on_gpu(t, requires_grad=None):
    """A leaf tensor on the GPU with the values of ``t`` (a Tensor or a host array); it keeps
    ``t``'s requires_grad unless told otherwise. Built from a CuPy array, not with Tensor.to."""
    data = t.data if isinstance(t, mdl.Tensor) else t
    if requires_grad is None:
        requires_grad = t.requires_grad if isinstance(t, mdl.Tensor) else False
    return mdl.tensor(cp.asarray(data), requires_grad=requires_grad)


def outputs_of(result):
    return result if isinstance(result, tuple) else (result,)


@contextlib.contextmanager
def host_reads(monkeypatch):
    """Inside the block, every way a CuPy array's values reach the host (``get``, ``item``,
    ``tolist``, ``cupy.asnumpy``, ``bool``/``int``/``float``/``index``/``complex`` of an array) and
    every explicit device synchronisation is recorded by name in the list it yields: each of them
    makes the host wait for the GPU."""
    calls = []

    def counting(name, fn):
        def wrapper(*args, **kwargs):
            calls.append(name)
            return fn(*args, **kwargs)
        return wrapper

    with monkeypatch.context() as m:
        for name in ("get", "item", "tolist", "__bool__", "__int__", "__float__", "__index__", "__complex__"):
            if hasattr(cp.ndarray, name):
                m.setattr(cp.ndarray, name, counting(f"ndarray.{name}", getattr(cp.ndarray, name)))
        m.setattr(cp, "asnumpy", counting("cupy.asnumpy", cp.asnumpy))
        for name in ("deviceSynchronize", "streamSynchronize"):
            if hasattr(cp.cuda.runtime, name):
                with contextlib.suppress(AttributeError, TypeError):  # a compiled module may refuse
                    m.setattr(cp.cuda.runtime, name, counting(f"runtime.{name}", getattr(cp.cuda.runtime, name)))
        yield calls


# --- the gradient-check table ---------------------------------------------------------------

CASES = all_cases()
DOUBLE = [c for c in CASES if c.double]
# The ops that call minidl.kernels: on float64 CuPy arrays each must run cuda_impl.
KERNEL_OPS = {"Conv2d", "Conv2dGradInput", "Conv2dGradWeight", "MaxPool2d", "MaxPool2dGrad", "AvgPool2d",
              "AvgPool2dGrad", "LocalResponseNorm", "BatchNorm"}


@pytest.fixture
def case_arrays_on_gpu(monkeypatch):
    """The arrays that the case modules hold at module level (MaxPool2dGrad's argmax, made on
    the CPU) replaced by GPU copies for the test, so that the case functions run unchanged."""
    for name, module in list(sys.modules.items()):
        if name.startswith("gradcases."):
            for attr, value in list(vars(module).items()):
                if isinstance(value, np.ndarray):
                    monkeypatch.setattr(module, attr, cp.asarray(value))


@pytest.fixture
def implementations(monkeypatch):
    """The kernel modules that ``minidl.kernels`` dispatched to during the test, in a set."""
    chosen = set()
    choose = kernels.implementation

    def recording(*arrays):
        module = choose(*arrays)
        chosen.add(module)
        return module

    monkeypatch.setattr(kernels, "implementation", recording)
    return chosen


def _expected_device(case):
    # ToDevice's case moves its input to the host on purpose.
    return "cpu" if case.op == "ToDevice" else "cuda"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_gradcheck(case, case_arrays_on_gpu, implementations):
    inputs = [on_gpu(t) for t in case.make_inputs()]
    assert all(t.dtype == np.float64 for t in inputs if t.dtype.kind == "f")
    result = case.fn(*inputs)
    assert case.op in ops_in_graph(result), f"the case for {case.op} does not use it"
    for y in outputs_of(result):
        assert y.device.startswith(_expected_device(case)), (case.op, y.device)
        assert backend.is_cupy_array(y.data) == (_expected_device(case) == "cuda")
    assert mdl.gradcheck(case.fn, inputs, **case.kwargs)
    assert implementations <= {cuda_impl}, implementations
    if case.op in KERNEL_OPS:
        assert implementations == {cuda_impl}


@pytest.mark.parametrize("case", DOUBLE, ids=[c.id for c in DOUBLE])
def test_gradgradcheck(case, case_arrays_on_gpu, implementations):
    assert mdl.gradgradcheck(case.fn, [on_gpu(t) for t in case.make_inputs()], **case.kwargs)
    assert implementations <= {cuda_impl}, implementations


# --- what is particular to the CUDA kernels on a GPU ----------------------------------------

def run(f, *args, **kwargs):
    """``f`` on the GPU: the host arrays among ``args`` are copied to the device first and must
    come back unmodified; every output must be a CuPy array. Returns the outputs copied to the
    host (a tuple where ``f`` returns one)."""
    device_args = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    out = f(*device_args, **kwargs)
    for a, d in zip(args, device_args):
        if isinstance(a, np.ndarray):
            assert_same(d.get(), a)
    for o in outputs_of(out):
        assert backend.is_cupy_array(o), type(o)
    host = tuple(o.get() for o in outputs_of(out))
    return host if isinstance(out, tuple) else host[0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_im2col_into_a_workspace_of_a_non_contiguous_input(dtype):
    x = cp.asarray(np.random.default_rng(0).standard_normal((2, 6, 7, 3)).astype(dtype)).transpose(0, 3, 1, 2)
    for geometry in [((1, 1), (1, 1), (0, 0), (1, 1)), ((3, 2), (2, 1), (1, 1), (1, 2))]:
        expected = numpy_impl.im2col(x.get(), *geometry)
        out = cp.full(expected.shape, np.nan, dtype)
        assert cuda_impl.im2col(x, *geometry, out=out) is out
        assert_same(out.get(), expected)


def test_im2col_returns_the_input_where_the_columns_are_the_input():
    x = cp.asarray(np.random.default_rng(0).standard_normal((2, 3, 4, 5)))
    for geometry in [((1, 1), (1, 1), (0, 0), (1, 1)), ((4, 5), (2, 3), (0, 0), (1, 1))]:
        expected = numpy_impl.im2col(x.get(), *geometry)
        out = cp.zeros(expected.shape)
        col = cuda_impl.im2col(x, *geometry, out)
        assert cp.shares_memory(col, x) and not out.any()
        assert_same(col.get(), expected)


def test_launches_larger_than_the_grid_run_the_grid_stride_loops():
    # More work items than MAX_BLOCKS * BLOCK threads (65536 * 256): each thread takes several.
    from minidl.kernels.cuda_impl import _module

    capacity = _module.MAX_BLOCKS * _module.BLOCK
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 64, 56, 56)).astype(np.float32)
    geometry = ((3, 3), (1, 1), (1, 1), (1, 1))
    expected = numpy_impl.im2col(x, *geometry)
    assert expected.size > capacity
    assert_same(run(cuda_impl.im2col, x, *geometry), expected)
    x = rng.standard_normal((capacity // 8 + 5, 8)).astype(np.float32)
    gamma, beta = np.ones(8, np.float32), np.zeros(8, np.float32)
    for a, b in zip(run(cuda_impl.batch_norm_forward, x, gamma, beta, 1e-5),
                    numpy_impl.batch_norm_forward(x, gamma, beta, 1e-5)):
        assert_close(a, b)


# --- which implementation runs, and the fallback to the reference ---------------------------

KERNEL_NAMES = [name for name, *_ in kernel_calls(np.float32)]
# Exact in any dtype: copies and selections, which round nothing.
EXACT = {"im2col", "max_pool2d_forward"}


@pytest.mark.parametrize("name", KERNEL_NAMES)
def test_float16_runs_the_reference_on_the_gpu(name):
    args = dict((n, a) for n, *a in kernel_calls(np.float16))[name]
    device_args = [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
    assert kernels.implementation(*[a for a in device_args if backend.is_cupy_array(a)]) is numpy_impl
    ours = outputs_of(getattr(kernels, name)(*device_args))
    ref = outputs_of(getattr(numpy_impl, name)(*args))
    for a, b in zip(ours, ref):
        assert backend.is_cupy_array(a)
        a = a.get()
        if name in EXACT:
            assert_same(a, b)
        else:
            assert a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_allclose(a.astype(np.float64), b.astype(np.float64), rtol=2e-3,
                                       atol=2e-3 * max(1.0, float(np.abs(b.astype(np.float64)).max())), err_msg=name)


def test_mixed_dtypes_run_the_reference_on_the_gpu():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3, 5, 5)).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)  # float64 next to float32
    ours = kernels.batch_norm_forward(cp.asarray(x), cp.asarray(gamma), cp.asarray(beta), 1e-5)
    for a, b in zip(ours, numpy_impl.batch_norm_forward(x, gamma, beta, 1e-5)):
        assert backend.is_cupy_array(a)
        assert_close(a.get(), b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_no_kernel_reads_back_from_the_gpu(monkeypatch, dtype):
    calls = [(name, [cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args])
             for name, *args in kernel_calls(dtype)]
    cp.cuda.Device().synchronize()  # the inputs are on the device before counting starts
    for name, args in calls:
        assert kernels.implementation(*[a for a in args if backend.is_cupy_array(a)]) is cuda_impl
        with host_reads(monkeypatch) as reads:
            getattr(kernels, name)(*args)
        assert reads == [], f"{name} waited for the GPU: {reads}"


# --- layers, against minidl on the CPU and PyTorch on CUDA -----------------------------------

def _close_to_cpu(actual, expected, name=""):
    np.testing.assert_allclose(actual, expected, rtol=1e-10, atol=1e-12, err_msg=name)


@pytest.mark.parametrize("training", [True, False])
def test_layers_match_the_cpu(rng, training):
    mdl.manual_seed(0)
    cpu = _model(nn).double()
    gpu = _model(nn).double()
    gpu.load_state_dict(cpu.state_dict())
    assert gpu.to(DEVICE) is gpu
    x, gy = rng.standard_normal((4, 3, 9, 9)), rng.standard_normal((4, 5))
    results = []
    for net, move in ((cpu, lambda a: mdl.tensor(a)), (gpu, on_gpu)):
        net.train(training)
        net[-1].eval()  # dropout's random mask cannot match; everything else must
        xt = move(x)
        xt.requires_grad = True
        y = net(xt)
        y.backward(move(gy))
        results.append((y, xt.grad, net))
    (yc, gxc, _), (yg, gxg, _) = results
    assert yg.device.startswith("cuda") and gxg.device.startswith("cuda")
    _close_to_cpu(yg.numpy(), yc.numpy(), "output")
    _close_to_cpu(gxg.numpy(), gxc.numpy(), "input gradient")
    cpu_params = dict(cpu.named_parameters())
    for name, p in gpu.named_parameters():
        assert p.device.startswith("cuda") and p.grad.device.startswith("cuda"), name
        _close_to_cpu(p.grad.numpy(), cpu_params[name].grad.numpy(), name)
    cpu_state = cpu.state_dict()
    for name, t in gpu.state_dict().items():
        assert t.device.startswith("cuda"), name
        _close_to_cpu(t.numpy(), cpu_state[name].numpy(), name)


@pytest.mark.torch
@pytest.mark.parametrize("training", [True, False])
def test_layers_match_pytorch_on_cuda(torch, rng, training):
    if not torch.cuda.is_available():
        pytest.skip("PyTorch is installed without CUDA, or cannot see the GPU")
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    ref = _model(torch.nn).double().cuda()
    net = _model(nn).double()
    net.load_state_dict({k: v.detach().cpu().numpy() for k, v in ref.state_dict().items()})
    net.to(DEVICE)
    ref.train(training), net.train(training)
    ref[-1].eval(), net[-1].eval()
    x, gy = rng.standard_normal((4, 3, 9, 9)), rng.standard_normal((4, 5))
    xt = torch.tensor(x, device="cuda", requires_grad=True)
    yt = ref(xt)
    yt.backward(torch.tensor(gy, device="cuda"))
    xm = on_gpu(x, requires_grad=True)
    ym = net(xm)
    ym.backward(on_gpu(gy))

    def close(ours, theirs, name):
        np.testing.assert_allclose(ours.numpy(), theirs.detach().cpu().numpy(), rtol=1e-7, atol=1e-12, err_msg=name)

    close(ym, yt, "output")
    close(xm.grad, xt.grad, "input gradient")
    ref_params = dict(ref.named_parameters())
    for name, p in net.named_parameters():
        close(p.grad, ref_params[name].grad, name)
    state = net.state_dict()
    for name, b in ref.named_buffers():
        close(state[name], b, name)


# --- training LeNet-5 -------------------------------------------------------------------------

def _optimizer(name, params):
    if name == "sgd":
        return mdl.optim.SGD(params, lr=0.05, momentum=0.9)
    return mdl.optim.Adam(params, lr=1e-3)


def _lenet_pair():
    """LeNet-5 on the CPU and an exact copy of it on the GPU (float32)."""
    mdl.manual_seed(0)
    cpu = lenet5()
    gpu = lenet5()
    gpu.load_state_dict(cpu.state_dict())
    gpu.to(DEVICE)
    return cpu, gpu


def _batch(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, n)


def _relative_to(expected):
    """1e-5 relative, per element or, for elements near zero, to the tensor's largest magnitude."""
    return dict(rtol=1e-5, atol=1e-5 * float(np.abs(expected).max()))


@pytest.mark.skipif(os.environ.get("CUPY_TF32") == "1", reason="CUPY_TF32=1: CuPy's float32 GEMMs round to TF32")
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_lenet5_training_steps_match_the_cpu(optimizer):
    cpu, gpu = _lenet_pair()
    x, y = _batch()
    runs = []
    for model, move in ((cpu, mdl.tensor), (gpu, on_gpu)):
        opt = _optimizer(optimizer, model.parameters())
        losses, grads = [], []
        for _ in range(2):  # the second step reads the state the first one left (momentum, averages)
            loss = F.cross_entropy(model(move(x)), move(y))
            opt.zero_grad()
            loss.backward()
            losses.append(loss.item())
            grads.append({name: p.grad.numpy() for name, p in model.named_parameters()})
            opt.step()
        runs.append((losses, grads, {name: p.numpy() for name, p in model.named_parameters()}, opt))
    (cpu_losses, cpu_grads, cpu_params, _), (gpu_losses, gpu_grads, gpu_params, opt) = runs
    np.testing.assert_allclose(gpu_losses, cpu_losses, rtol=1e-5)
    for step in range(2):
        for name, g in cpu_grads[step].items():
            np.testing.assert_allclose(gpu_grads[step][name], g, **_relative_to(g), err_msg=f"step {step} {name}")
    for name, p in cpu_params.items():
        np.testing.assert_allclose(gpu_params[name], p, **_relative_to(p), err_msg=name)
    # the optimizer's state lives beside its parameter, on the GPU
    for p in gpu.parameters():
        state = opt.state[p]
        arrays = [v for v in state.values() if backend.is_array(v)]
        assert arrays, state
        for a in arrays:
            assert backend.is_cupy_array(a) and backend.device_of(a) == p.device


def test_module_to_cuda_keeps_the_parameters_and_moves_the_buffers():
    model = _model(nn)
    params = list(model.parameters())
    before = {name: t.numpy().copy() for name, t in model.state_dict().items()}
    opt = mdl.optim.SGD(params, lr=0.1)
    assert model.to(DEVICE) is model
    assert all(a is b for a, b in zip(model.parameters(), params))
    assert all(a is b for a, b in zip(opt.param_groups[0]["params"], params))
    for name, t in model.state_dict().items():
        assert t.device.startswith("cuda"), name
        assert backend.is_cupy_array(t.data)
        np.testing.assert_array_equal(t.numpy(), before[name], err_msg=name)
    model.eval()
    (model(on_gpu(np.ones((2, 3, 9, 9), np.float32))) ** 2).sum().backward()
    opt.step()  # the optimizer made before the move updates the moved parameters
    assert all(p.grad.device.startswith("cuda") for p in params)
    model.to("cpu")
    assert all(p.device == "cpu" and p.grad.device == "cpu" for p in params)


def test_state_dict_and_save_go_through_host_arrays_and_load_onto_the_gpu(tmp_path):
    mdl.manual_seed(0)
    model = lenet5().to(DEVICE)
    opt = mdl.optim.Adam(model.parameters(), lr=1e-3)
    x, y = (on_gpu(a) for a in _batch(16))
    for _ in range(2):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = model.state_dict()
    assert all(t.device.startswith("cuda") for t in state.values())  # shares memory with the model, as in PyTorch
    path = tmp_path / "checkpoint.npz"
    mdl.save({"model": state, "optimizer": opt.state_dict()}, path)
    loaded = mdl.load(path)
    for name, t in loaded["model"].items():
        assert t.device == "cpu" and type(t.data) is np.ndarray, name
        np.testing.assert_array_equal(t.numpy(), state[name].numpy(), err_msg=name)
    for saved in loaded["optimizer"]["state"].values():
        for value in saved.values():
            assert not backend.is_cupy_array(value.data if isinstance(value, mdl.Tensor) else value)

    fresh = lenet5().to(DEVICE)
    fresh.load_state_dict(loaded["model"])
    assert all(p.device.startswith("cuda") for p in fresh.parameters())  # loading keeps the device
    fresh_opt = mdl.optim.Adam(fresh.parameters(), lr=1e-3)
    fresh_opt.load_state_dict(loaded["optimizer"])
    for p in fresh.parameters():
        for value in fresh_opt.state[p].values():
            if backend.is_array(value):
                assert backend.device_of(value) == p.device
    with mdl.no_grad():
        np.testing.assert_allclose(fresh(x).numpy(), model(x).numpy(), rtol=1e-6, atol=1e-7)
    # and training continues from the loaded state as it would have from the saved one
    for net, o in ((model, opt), (fresh, fresh_opt)):
        loss = F.cross_entropy(net(x), y)
        o.zero_grad()
        loss.backward()
        o.step()
    for (name, a), b in zip(model.named_parameters(), fresh.parameters()):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-6, atol=1e-7, err_msg=name)


def test_manual_seed_repeats_dropout_masks_and_init_on_the_gpu():
    x = on_gpu(np.ones((4, 1000), np.float32))

    def draws(seed):
        mdl.manual_seed(seed)
        mask = F.dropout(x, 0.5).numpy()
        layer = nn.Linear(50, 40).to(DEVICE)
        nn.init.kaiming_uniform_(layer.weight)
        nn.init.normal_(layer.bias)
        assert backend.is_cupy_array(layer.weight.data)
        return mask, layer.weight.numpy(), layer.bias.numpy()

    first, again, other = draws(0), draws(0), draws(1)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, other):
        assert not np.array_equal(a, b)
    assert set(np.unique(first[0])) == {0.0, 2.0} and 0.45 < (first[0] == 0).mean() < 0.55


# --- Tensor.to, the DataLoader and the command line -----------------------------------------

def test_tensor_to_moves_between_the_host_and_the_gpu():
    a = np.arange(6.0).reshape(2, 3)
    for t in (mdl.tensor(a).to(DEVICE), mdl.tensor(a, device=DEVICE), mdl.tensor(a).cuda(), mdl.tensor(a).to("cuda:0")):
        assert t.device.startswith("cuda") and backend.is_cupy_array(t.data) and t.dtype == a.dtype
        np.testing.assert_array_equal(t.numpy(), a)
    g = on_gpu(a)
    for t in (g.to("cpu"), g.cpu()):
        assert t.device == "cpu" and type(t.data) is np.ndarray
        np.testing.assert_array_equal(t.data, a)
    with pytest.raises(mdl.DeviceError, match="different devices"):
        mdl.tensor(a) + g
    # the move is differentiable, in both directions: the gradient goes back where x was
    x = mdl.tensor(a, requires_grad=True)
    (x.to(DEVICE) * 2).sum().backward()
    assert x.grad.device == "cpu"
    np.testing.assert_array_equal(x.grad.numpy(), np.full_like(a, 2))
    x = on_gpu(a, requires_grad=True)
    (x.to("cpu") * 3).sum().backward()
    assert x.grad.device.startswith("cuda")
    np.testing.assert_array_equal(x.grad.numpy(), np.full_like(a, 3))


def test_dataloader_batches_move_to_the_gpu():
    rng = np.random.default_rng(0)
    images, labels = rng.integers(0, 256, (20, 1, 8, 8)).astype(np.uint8), rng.integers(0, 10, 20)
    loader = DataLoader(ArrayDataset(images, labels), batch_size=8, shuffle=True, seed=0)
    seen = 0
    for xb, yb in loader:
        xg, yg = xb.to(DEVICE), yb.to(DEVICE)
        for host, dev in ((xb, xg), (yb, yg)):
            assert dev.device.startswith("cuda") and dev.dtype == host.dtype and dev.shape == host.shape
            np.testing.assert_array_equal(dev.numpy(), host.numpy())
        seen += len(yg)
    assert seen == 20


def test_minidl_train_and_eval_on_cuda(tmp_path, monkeypatch, capsys):
    from test_cli import TinyDigits  # an MNIST-shaped dataset made in memory: no download

    monkeypatch.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
    status = cli.main(["train", "lenet5", "--dataset", "mnist", "--device", "cuda", "--subset", "128", "--epochs", "1",
                       "--out", str(tmp_path), "--quiet"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "epoch   1" in out and "test accuracy" in out
    weights = mdl.load(tmp_path / "model.npz")["model"]
    assert all(t.device == "cpu" for t in weights.values())
    assert cli.main(["eval", str(tmp_path / "model.npz"), "--device", "cuda"]) == 0
    assert "accuracy" in capsys.readouterr().out


# --- nothing waits for the GPU in a training step --------------------------------------------

@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_a_lenet5_step_never_reads_back_from_the_gpu(monkeypatch, optimizer):
    # Forward, backward and the optimizer step queue kernels only; the host waits for the GPU
    # where the program asks for a value (loss.item()), not inside minidl.
    mdl.manual_seed(0)
    model = lenet5().to(DEVICE)
    opt = _optimizer(optimizer, model.parameters())
    x, _ = _batch()
    x = on_gpu(x)
    gy = on_gpu(np.random.default_rng(1).standard_normal((32, 10)).astype(np.float32))
    for step in range(3):  # the first step also makes the optimizer's state and compiles the kernels
        cp.cuda.Device().synchronize()
        with host_reads(monkeypatch) as reads:
            opt.zero_grad()
            model(x).backward(gy)
            opt.step()
        assert reads == [], f"step {step} waited for the GPU: {reads}"

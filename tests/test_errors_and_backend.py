"""Bad input gets a clear error naming the op and the shapes; the NumPy/CuPy seam; anomaly detection."""
import subprocess
import sys

import numpy as np
import pytest

import minidl as mdl
from minidl import backend


def t(*shape):
    return mdl.tensor(np.ones(shape))


@pytest.mark.parametrize("fn, pattern", [
    (lambda: t(2, 3) + t(4, 3), r"add: shapes \(2, 3\) and \(4, 3\) cannot be broadcast"),
    (lambda: t(2, 3) * t(2), r"mul: shapes \(2, 3\) and \(2,\)"),
    (lambda: mdl.maximum(t(3), t(2)), r"maximum: shapes \(3,\) and \(2,\)"),
    (lambda: t(2, 3) @ t(4, 5), r"matmul: shapes \(2, 3\) and \(4, 5\) do not fit"),
    (lambda: t(2, 2, 3) @ t(3, 3, 4), r"matmul \(batch axes\): shapes \(2,\) and \(3,\)"),
    (lambda: t(2, 3).reshape(4, 2), r"reshape: cannot reshape a tensor of shape \(2, 3\) \(6 elements\) into \(4, 2\)"),
    (lambda: t(2, 3).reshape(4, -1), r"reshape: .*\(2, 3\).*\(4, -1\)"),
    (lambda: mdl.concat([t(2, 3), t(2, 4)], axis=0), r"concat: shapes \[\(2, 3\), \(2, 4\)\]"),
    (lambda: mdl.stack([t(2), t(3)]), r"stack: .*\(2,\), \(3,\)"),
    (lambda: t(2, 3).sum(axis=2), r"sum: axis 2 is out of range"),
    (lambda: t(2, 3).permute(0, 0), r"permute"),
    (lambda: t(2).clip(1, 0), r"clip: min 1 is greater than max 0"),
])
def test_shape_errors_name_the_op_and_shapes(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    err = info.value
    assert err.__cause__ is None and (err.__context__ is None or err.__suppress_context__)  # no NumPy trace


def typed(dtype, *shape):
    return mdl.tensor(np.ones(shape or (2,), dtype))


@pytest.mark.parametrize("fn, pattern", [
    (lambda: typed(bool) - typed(bool),
     r"^sub: not defined for bool tensors; got bool and bool \(convert first, e\.g\. x\.astype\(np\.int64\)\)$"),
    (lambda: -typed(bool), r"^neg: not defined for bool tensors; got bool"),
    (lambda: typed(np.int64).mean(),
     r"^mean: expected a floating-point input; got int64 \(convert first, e\.g\. x\.float\(\)\)$"),
    (lambda: typed(np.uint8).softmax(), r"^softmax: expected a floating-point input; got uint8"),
    (lambda: typed(np.int32) ** -2, r"^pow: integers to negative integer powers are not allowed \(int32 \*\* -2\)"),
    (lambda: typed(np.int8) + 200, r"^add: 200 does not fit in int8 \(range -128 to 127\)"),
    (lambda: typed(np.uint64) * typed(np.int32), r"^mul: no integer dtype holds both uint64 and int32"),
    (lambda: mdl.nn.functional.conv2d(typed(np.uint8, 1, 1, 3, 3), typed(np.float32, 1, 1, 2, 2)),
     r"^conv2d: expected a floating-point input; got uint8"),
    (lambda: mdl.nn.Conv2d(1, 1, 2)(typed(np.int64, 1, 1, 3, 3)),
     r"^Conv2d\(1, 1, .*\): expected a floating-point input; got int64"),
    (lambda: mdl.nn.functional.avg_pool2d(typed(bool, 1, 1, 2, 2), 2),
     r"^avg_pool2d: expected a floating-point input; got bool"),
    (lambda: mdl.nn.MaxPool2d(2)(typed(np.int16, 1, 1, 2, 2)),
     r"^MaxPool2d\(.*\): expected a floating-point input; got int16"),
])
def test_dtype_errors_name_the_op_and_dtypes(fn, pattern):
    with pytest.raises(ValueError, match=pattern) as info:
        fn()
    assert info.value.__context__ is None


def test_a_dtype_put_into_data_by_hand_is_refused_at_op_entry():
    x = mdl.tensor([1.0, 2.0])
    x.data = np.array([1j, 2j])  # past the check at creation
    for fn, op in [(lambda: x + 1, "add"), (lambda: x.exp(), "exp"), (lambda: x.sum(), "sum"),
                   (lambda: mdl.nn.functional.relu(x), "relu")]:
        with pytest.raises(TypeError, match=rf"^{op}: dtype complex128 is not supported; a tensor holds bool"):
            fn()


def test_index_out_of_bounds_names_the_shape():
    with pytest.raises(IndexError, match=r"getitem: .*\(tensor of shape \(2, 3\)\)"):
        t(2, 3)[5]


def test_cupy_is_never_imported_by_importing_minidl():
    code = "import minidl, sys; assert 'cupy' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_parse_device():
    assert backend.parse_device("cpu") == ("cpu", None)
    assert backend.parse_device("cuda") == ("cuda", None)
    assert backend.parse_device("cuda:1") == ("cuda", 1)
    for bad in ("gpu", "cuda:x", "cpu:0", 3):
        with pytest.raises(mdl.DeviceError):
            backend.parse_device(bad)


def _cupy_usable():
    try:
        backend.cupy()
        return True
    except mdl.DeviceError:
        return False


@pytest.mark.skipif(_cupy_usable(), reason="a GPU is usable here; this checks the message without one")
def test_asking_for_cuda_without_gpu_says_what_is_missing():
    with pytest.raises(mdl.DeviceError, match=r"CuPy|GPU") as info:
        mdl.tensor([1.0]).to("cuda")
    assert "cupy-cuda12x" in str(info.value) or "no usable GPU" in str(info.value) or "no GPU" in str(info.value)


class _FakeDevice:
    def __init__(self, i):
        self.id = i


class _FakeGpuArray(np.ndarray):
    """Looks like a cupy array to the seam (by module name), to test the device check without a GPU."""
    __module__ = "cupy._core.core"

    @property
    def device(self):
        return _FakeDevice(0)


def test_mixing_devices_raises_device_error_naming_the_op():
    gpu_like = np.ones(3).view(_FakeGpuArray)
    with pytest.raises(mdl.DeviceError, match=r"Add: inputs are on different devices \['cpu', 'cuda:0'\]"):
        backend.check_same_device("Add", [np.ones(3), gpu_like])


def test_get_array_module_on_cpu():
    assert backend.get_array_module(np.ones(2), mdl.tensor([1.0])) is np
    assert mdl.tensor([1.0]).device == "cpu"
    assert mdl.tensor([1.0]).to("cpu").device == "cpu"


def test_detect_anomaly_names_the_forward_op():
    x = mdl.tensor([1.0, -1.0], requires_grad=True)
    with mdl.detect_anomaly():
        with pytest.raises(mdl.AnomalyError, match=r"Log produced 1 NaN and 0 inf values in forward output 0"):
            with np.errstate(invalid="ignore"):
                (x * 2).log()


def test_detect_anomaly_names_the_backward_op():
    x = mdl.tensor([0.0, 4.0], requires_grad=True)
    with mdl.detect_anomaly():
        y = x.sqrt().sum()
        with pytest.raises(mdl.AnomalyError, match=r"1 inf values.*inside the backward of Sqrt"):
            with np.errstate(divide="ignore"):
                y.backward()


def test_without_anomaly_mode_nan_passes_silently():
    with np.errstate(invalid="ignore"):
        y = mdl.tensor([-1.0]).log()
    assert np.isnan(y.data).all()


def test_the_gpu_install_hint_fits_how_minidl_was_installed(monkeypatch):
    import os

    from minidl import backend

    root = os.path.dirname(os.path.dirname(os.path.abspath(backend.__file__)))
    assert backend._gpu_extra_hint() == f', or `pip install -e "{root}[gpu]"` (the extra, from this source checkout)'
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # as installed from an index: no setup.py
    assert backend._gpu_extra_hint() == ', or `pip install "minidl[gpu]"`'

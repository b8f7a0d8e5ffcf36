"""Oracles of their own: minidl against numbers computed without minidl and without PyTorch.

The kernel sets are held to each other elsewhere (tests/test_kernels.py), which cannot see a rule
they all get wrong alike; and much layer behaviour is checked only against PyTorch, which skips
where it is not installed. Each test here compares with small cases worked out by hand (the
derivation beside the numbers) or with tests/fixtures/kernel_oracles.npz, outputs of plain-Python
loops written from PyTorch's definitions (tests/fixtures/make_fixtures.py). They are the tests that
catch the bugs tools/mutate_suite.py found surviving the rest of the suite.
"""
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import nn
from minidl.kernels import numpy_impl

with np.load(Path(__file__).with_name("fixtures") / "kernel_oracles.npz") as npz:
    FIXTURES = dict(npz)


def cases(prefix):
    """The fixture's cases of one kind: 'max3' for the arrays max3_x, max3_y, ..."""
    return sorted({k.split("_")[0] for k in FIXTURES if k.startswith(prefix)})


@pytest.fixture(params=["numpy", "numba", "cuda-harness"])
def impl(request, monkeypatch):
    """Each kernel set, called directly: the reference, Numba, and the CUDA kernels run on the CPU."""
    if request.param == "numpy":
        return numpy_impl
    if request.param == "numba":
        pytest.importorskip("numba")
        from minidl.kernels import numba_impl

        return numba_impl
    from minidl.kernels import cuda_impl
    from minidl.kernels.cuda_impl import _module

    monkeypatch.setattr(_module, "function", request.getfixturevalue("cuda_harness").function)
    return cuda_impl


def pairs(geometry):
    """A case's stored geometry as the kernels take it: kernel, stride and padding pairs, then the flags."""
    kh, kw, sh, sw, ph, pw = (int(v) for v in geometry[:6])
    return (kh, kw), (sh, sw), (ph, pw), *(bool(v) for v in geometry[6:])


# --- the kernels against the plain-Python loops ---------------------------------------------------

def test_max_pool_values_and_first_tie_argmax(impl):
    for case in cases("max"):
        x = FIXTURES[f"{case}_x"]
        y, argmax = impl.max_pool2d_forward(x, *pairs(FIXTURES[f"{case}_geometry"]))
        np.testing.assert_array_equal(y, FIXTURES[f"{case}_y"], err_msg=case)
        np.testing.assert_array_equal(argmax, FIXTURES[f"{case}_argmax"], err_msg=case)


def test_avg_pool_divisors_forward_and_backward(impl):
    for case in cases("avg"):
        x, gy = FIXTURES[f"{case}_x"], FIXTURES[f"{case}_gy"]
        geometry = pairs(FIXTURES[f"{case}_geometry"])
        np.testing.assert_allclose(impl.avg_pool2d_forward(x, *geometry), FIXTURES[f"{case}_y"], rtol=1e-14,
                                   atol=1e-14, err_msg=case)
        np.testing.assert_allclose(impl.avg_pool2d_backward(gy, x.shape, *geometry), FIXTURES[f"{case}_gx"],
                                   rtol=1e-14, atol=1e-14, err_msg=case)


def test_lrn_windows_of_every_size(impl):
    for case in cases("lrn"):
        size, alpha, beta, k = FIXTURES[f"{case}_params"]
        y, _ = impl.lrn_forward(FIXTURES[f"{case}_x"], int(size), alpha, beta, k)
        np.testing.assert_allclose(y, FIXTURES[f"{case}_y"], rtol=1e-13, err_msg=case)


# --- the same rules, by hand, through the ops -------------------------------------------------------

@pytest.mark.usefixtures("kernel_set")
def test_max_pool_ties_send_the_gradient_to_the_first_pixel():
    # windows [[5, 5], [5, 5]] and [[1, 7], [7, 7]]: each max first appears at its window's top left,
    # the second one's at (0, 3)
    x = mdl.tensor(np.array([[[[5.0, 5.0, 1.0, 7.0], [5.0, 5.0, 7.0, 7.0]]]]), requires_grad=True)
    F.max_pool2d(x, 2).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[[[1, 0, 0, 1], [0, 0, 0, 0]]]])


@pytest.mark.usefixtures("kernel_set")
@pytest.mark.parametrize("count_include_pad, y, gx", [
    # windows [pad 1 2], [2 3 4], [4 pad] (ceil_mode's last one, cut at the end of the padding):
    # divisors 3, 3, 2 counting the padding, else 2, 3, 1; gx sums 1/divisor over the windows holding a pixel
    (True, [1, 3, 2], [1 / 3, 2 / 3, 1 / 3, 1 / 3 + 1 / 2]),
    (False, [3 / 2, 3, 4], [1 / 2, 1 / 2 + 1 / 3, 1 / 3, 1 / 3 + 1]),
])
def test_avg_pool_divisor_of_a_ceil_mode_edge_window(count_include_pad, y, gx):
    for axis in (2, 3):  # along the width, then the same along the height
        shape = [1, 1, 1, 1]
        shape[axis] = 4
        x = mdl.tensor(np.arange(1.0, 5.0).reshape(shape), requires_grad=True)
        kernel, stride, padding = [(1, 3), (1, 2), (0, 1)] if axis == 3 else [(3, 1), (2, 1), (1, 0)]
        out = F.avg_pool2d(x, kernel, stride, padding, ceil_mode=True, count_include_pad=count_include_pad)
        out.sum().backward()
        np.testing.assert_allclose(out.numpy().ravel(), y, rtol=1e-15)
        np.testing.assert_allclose(x.grad.numpy().ravel(), gx, rtol=1e-15)


@pytest.mark.usefixtures("kernel_set")
def test_lrn_window_of_an_even_size_reaches_down():
    # size 2: channel c sums the squares of channels c-1 and c (PyTorch's), so with x = 1, 2, 3, 4
    # the sums are 1, 1+4, 4+9, 9+16, and alpha/size = 1, k = 1, beta = 1 make y = x / (1 + sum)
    x = np.arange(1.0, 5.0).reshape(1, 4, 1, 1)
    y = F.local_response_norm(mdl.tensor(x), 2, alpha=2.0, beta=1.0, k=1.0).numpy().ravel()
    np.testing.assert_allclose(y, [1 / 2, 2 / 6, 3 / 14, 4 / 26], rtol=1e-15)


def test_batch_norm_sums_are_as_accurate_as_float64_allows(impl):
    # 2**18 float32 values per channel: a sum accumulated in float32 drifts by ~1e-5 of the total,
    # ~100 of its last-place units; pairwise or float64 sums stay within a few units.
    rng = np.random.default_rng(0)
    x, gy = (1.5 + 0.1 * rng.standard_normal((2, 16, 1, 128, 128))).astype(np.float32)
    gamma, beta = np.ones(1, np.float32), np.zeros(1, np.float32)
    _, mean, invstd = impl.batch_norm_forward(x, gamma, beta, 1e-5)
    _, _, gbeta = impl.batch_norm_backward(gy, x, gamma, mean, invstd)
    for got, exact in ((mean, x.astype(np.float64).mean()), (gbeta, gy.astype(np.float64).sum())):
        assert got.dtype == np.float32
        np.testing.assert_array_less(np.abs(got - exact), 4 * np.spacing(np.float32(exact)))


# --- layers ---------------------------------------------------------------------------------------

def test_dropout_draws_a_new_mask_every_call_and_repeats_after_reseeding():
    x = mdl.tensor(np.ones((64, 64)))
    for drop in (lambda x: F.dropout(x, 0.5), nn.Dropout(0.5)):
        mdl.manual_seed(3)
        first, second = drop(x).numpy(), drop(x).numpy()
        assert 0.4 < (first != second).mean() < 0.6  # two independent masks differ on half the elements
        mdl.manual_seed(3)
        np.testing.assert_array_equal(drop(x).numpy(), first)


def test_softmax_layers_normalise_along_their_dim():
    # softmax of log([1, 2, 3]) is [1, 2, 3] / 6; of log([1, 1, 2]), [1, 1, 2] / 4
    x = np.log([[1.0, 2.0, 3.0], [1.0, 1.0, 2.0]])
    expected = np.array([[1 / 6, 2 / 6, 3 / 6], [1 / 4, 1 / 4, 2 / 4]])
    for dim in (1, -1):
        np.testing.assert_allclose(nn.Softmax(dim=dim)(mdl.tensor(x)).numpy(), expected, rtol=1e-15)
        np.testing.assert_allclose(nn.LogSoftmax(dim=dim)(mdl.tensor(x)).numpy(), np.log(expected), rtol=1e-15)
    np.testing.assert_allclose(nn.Softmax(dim=0)(mdl.tensor(x.T)).numpy(), expected.T, rtol=1e-15)
    np.testing.assert_allclose(nn.Softmax(dim=1)(mdl.tensor(x[:, :, None])).numpy(), expected[:, :, None], rtol=1e-15)


def test_save_keeps_every_none(tmp_path):
    state = {"a": None, "b": [None, 1], "c": {"d": None, None: 2}, "e": (None,), "f": 0}
    mdl.save(state, tmp_path / "state.npz")
    assert mdl.load(tmp_path / "state.npz") == state

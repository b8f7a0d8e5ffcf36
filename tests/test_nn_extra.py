"""GELU, LayerNorm, Embedding, ModuleDict, cross-entropy with label smoothing and Tensor.float/double:
forward, gradients and second derivatives (minidl.testing's checks where they fit), PyTorch's values,
names and reprs, and the errors."""
import math
import re
from collections import OrderedDict

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import nn
from minidl.testing import OpTestCase, torch_function
from conftest import close, randn

_erf = np.vectorize(math.erf)


def _torch():
    import torch

    return torch


# --- GELU -----------------------------------------------------------------------------------------

def _gelu(x):
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _gelu_tanh(x):
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class TestGELU(OpTestCase):
    cases = [dict(shapes=[(3, 4)], id="function", op=F.gelu, reference=_gelu,
                  torch_reference="torch.nn.functional.gelu"),
             dict(shapes=[(2, 5)], id="layer", op=nn.GELU(), reference=_gelu,
                  torch_reference="torch.nn.functional.gelu"),
             dict(shapes=[(3, 4)], id="tanh-function", op=lambda x: F.gelu(x, approximate="tanh"),
                  reference=_gelu_tanh, torch_reference=torch_function("torch.nn.functional.gelu", approximate="tanh")),
             dict(shapes=[(2, 5)], id="tanh-layer", op=nn.GELU("tanh"), reference=_gelu_tanh,
                  torch_reference=torch_function("torch.nn.functional.gelu", approximate="tanh"))]


@pytest.mark.parametrize("approximate", ["none", "tanh"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_far_from_zero_matches_torch(torch, approximate, dtype):
    x = np.array([-40.0, -12.0, -6.0, -3.0, 3.0, 6.0, 12.0, 40.0, 1e4, -1e4], dtype)
    ours = F.gelu(mdl.tensor(x), approximate=approximate).numpy()
    theirs = torch.nn.functional.gelu(torch.from_numpy(x), approximate=approximate).numpy()
    assert ours.dtype == dtype
    # For negative x, 1 + erf(x / sqrt 2) cancels, in PyTorch's formula as in ours, so the rounding
    # of erf shows as an absolute error: 5.4e-7 at x = -3 in PyTorch's float32 (ours is within 1e-8 of
    # the float64 value there). Past x = -6 both are -0 in float32.
    eps = np.finfo(dtype).eps
    np.testing.assert_allclose(ours, theirs, rtol=4 * eps, atol=1e-6 if dtype == np.float32 else 4 * eps)
    np.testing.assert_allclose(ours, _gelu(x.astype(np.float64)) if approximate == "none"
                               else _gelu_tanh(x.astype(np.float64)), rtol=4 * eps, atol=4 * eps)
    np.testing.assert_array_equal(np.signbit(ours), np.signbit(theirs))


def test_gelu_settings_and_errors(torch):
    assert repr(nn.GELU()) == repr(torch.nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.GELU("tanh")) == repr(torch.nn.GELU("tanh"))
    with pytest.raises(ValueError, match="GELU: approximate must be 'none' or 'tanh'; got 'exact'"):
        nn.GELU("exact")
    with pytest.raises(ValueError, match="gelu: approximate must be 'none' or 'tanh'; got None"):
        F.gelu(mdl.tensor(np.ones(2)), approximate=None)
    with pytest.raises(ValueError, match=r"gelu: expected a floating-point input; got int64 \(convert first"):
        F.gelu(mdl.tensor(np.arange(3)))


# --- LayerNorm ------------------------------------------------------------------------------------

def _layer_norm(x, w=None, b=None, k=1, eps=1e-5):
    axes = tuple(range(x.ndim - k, x.ndim))
    y = (x - x.mean(axis=axes, keepdims=True)) / np.sqrt(x.var(axis=axes, keepdims=True) + eps)
    return y * (1 if w is None else w) + (0 if b is None else b)


def _torch_layer_norm(x, w, b):
    return _torch().nn.functional.layer_norm(x, (2, 3), w, b)


def _affine_inputs(rng, shapes, dtype):
    x, w, b = (rng.standard_normal(s) for s in shapes)
    return [x.astype(dtype), (1 + 0.5 * w).astype(dtype), b.astype(dtype)]


class TestLayerNorm(OpTestCase):
    cases = [dict(shapes=[(3, 4)], id="last-axis", op=lambda x: F.layer_norm(x, 4), reference=_layer_norm,
                  torch_reference=torch_function("torch.nn.functional.layer_norm", (4,))),
             dict(shapes=[(2, 2, 3), (2, 3), (2, 3)], id="affine-two-axes", batch_dim=(True, False, False),
                  op=lambda x, w, b: F.layer_norm(x, (2, 3), w, b), make_inputs=_affine_inputs,
                  reference=lambda x, w, b: _layer_norm(x, w, b, k=2), torch_reference=_torch_layer_norm),
             dict(shapes=[(2, 3, 5)], id="layer", op=nn.LayerNorm(5, eps=1e-3),
                  reference=lambda x: _layer_norm(x, eps=1e-3),
                  torch_reference=torch_function("torch.nn.functional.layer_norm", (5,), eps=1e-3))]


@pytest.mark.parametrize("kwargs, keys", [({}, ["weight", "bias"]), ({"bias": False}, ["weight"]),
                                          ({"elementwise_affine": False}, [])])
def test_layer_norm_layer_matches_torch(torch, kwargs, keys):
    ours, theirs = nn.LayerNorm((3, 4), **kwargs).double(), torch.nn.LayerNorm((3, 4), **kwargs).double()
    assert list(ours.state_dict()) == list(theirs.state_dict()) == keys
    assert repr(ours) == repr(theirs)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            p.copy_(torch.from_numpy(randn(3, 4, seed=len(name))))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})
    x = randn(2, 5, 3, 4) * 3 + 1
    xm, xt = mdl.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ym, yt = ours(xm), theirs(xt)
    close(ym.numpy(), yt.detach().numpy())
    g = randn(*ym.shape, seed=9)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.from_numpy(g))
    close(xm.grad.numpy(), xt.grad.numpy())
    for name, p in theirs.named_parameters():
        close(getattr(ours, name).grad.numpy(), p.grad.numpy())


def test_layer_norm_initialisation_and_dtypes():
    ln = nn.LayerNorm([2, 3])
    assert ln.normalized_shape == (2, 3) and ln.weight.dtype == np.float32
    np.testing.assert_array_equal(ln.weight.numpy(), np.ones((2, 3)))
    np.testing.assert_array_equal(ln.bias.numpy(), np.zeros((2, 3)))
    x = randn(4, 2, 3)
    y = ln(mdl.tensor(x.astype(np.float16)))  # float16 input, float32 parameters: computed in float32
    assert y.dtype == np.float16
    np.testing.assert_allclose(y.numpy(), _layer_norm(x.astype(np.float16).astype(np.float64), k=2), atol=2e-3)


def test_layer_norm_errors():
    x = mdl.tensor(np.zeros((2, 4), np.float32))
    with pytest.raises(ValueError, match=r"^LayerNorm\(\(3,\), eps=1e-05, elementwise_affine=True, bias=True\): "
                                         r"expected an input of shape \(\*, 3\) for normalized_shape=\(3,\); "
                                         r"got shape \(2, 4\)$"):
        nn.LayerNorm(3)(x)
    with pytest.raises(ValueError, match=r"layer_norm: expected an input of shape \(\*, 2, 4\) for "
                                         r"normalized_shape=\(2, 4\); got shape \(4,\)"):
        F.layer_norm(mdl.tensor(np.zeros(4)), (2, 4))
    for bad in (0, (), (3, 0), "3", 2.0):
        with pytest.raises(ValueError, match=re.escape("LayerNorm: normalized_shape must be an int >= 1 or a "
                                                       f"non-empty tuple of ints >= 1; got {bad!r}")):
            nn.LayerNorm(bad)
    with pytest.raises(ValueError, match=r"layer_norm: weight of shape \(3,\) does not match normalized_shape=\(4,\)"):
        F.layer_norm(x, 4, weight=mdl.tensor(np.ones(3, np.float32)))
    with pytest.raises(ValueError, match="layer_norm: expected a floating-point input; got int64"):
        F.layer_norm(mdl.tensor(np.zeros((2, 4), np.int64)), 4)
    with pytest.raises(ValueError, match="LayerNorm: elementwise_affine must be True or False; got 'yes'"):
        nn.LayerNorm(3, elementwise_affine="yes")


# --- Embedding ------------------------------------------------------------------------------------

INDEX = np.array([[0, 2, 4, 2], [4, 1, 0, 0], [3, 3, 3, 4]])


@pytest.mark.parametrize("padding_idx", [None, 4, -1, 0])
def test_embedding_layer_matches_torch(torch, padding_idx):
    ours, theirs = nn.Embedding(5, 3, padding_idx=padding_idx).double(), torch.nn.Embedding(5, 3, padding_idx).double()
    assert repr(ours) == repr(theirs) and list(ours.state_dict()) == ["weight"]
    assert ours.padding_idx == theirs.padding_idx
    ours.load_state_dict({"weight": theirs.weight.detach().numpy()})
    ym, yt = ours(mdl.tensor(INDEX)), theirs(torch.from_numpy(INDEX))
    assert ym.shape == (3, 4, 3)
    close(ym.numpy(), yt.detach().numpy())
    g = randn(3, 4, 3, seed=2)
    ym.backward(mdl.tensor(g))
    yt.backward(torch.from_numpy(g))
    close(ours.weight.grad.numpy(), theirs.weight.grad.numpy())  # repeats summed, the padding row 0


def test_embedding_function_matches_torch(torch):
    w = randn(6, 2)
    wm, wt = mdl.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    for index in (np.array(3), np.array([5, 5, 1]), np.zeros((2, 0, 3), np.int64), INDEX.astype(np.int32)):
        ym = F.embedding(index, wm, padding_idx=-2)
        yt = torch.nn.functional.embedding(torch.from_numpy(index), wt, padding_idx=4)
        assert ym.shape == tuple(yt.shape) == index.shape + (2,)
        close(ym.numpy(), yt.detach().numpy())
        (ym * ym).sum().backward()
        (yt * yt).sum().backward()
        close(wm.grad.numpy(), wt.grad.numpy())


def test_embedding_inputs_of_every_kind_and_a_nan_at_the_padding():
    w = mdl.tensor(np.arange(8.0).reshape(4, 2), requires_grad=True)
    for index in ([[1, 3]], np.array([[1, 3]]), mdl.tensor(np.array([[1, 3]]))):
        np.testing.assert_array_equal(F.embedding(index, w).numpy(), [[[2, 3], [6, 7]]])
    y = F.embedding(np.array([1, 2, 1]), w, padding_idx=1)
    y.backward(mdl.tensor(np.array([[np.nan, np.nan], [1.0, 2.0], [np.inf, 0.0]])))
    np.testing.assert_array_equal(w.grad.numpy(), [[0, 0], [0, 0], [1, 2], [0, 0]])  # nothing reaches row 1


def test_embedding_initialisation():
    mdl.manual_seed(0)
    emb = nn.Embedding(2000, 16, padding_idx=7)
    w = emb.weight.numpy()
    assert w.dtype == np.float32 and emb.weight.requires_grad
    np.testing.assert_array_equal(w[7], np.zeros(16))
    assert abs(w.mean()) < 0.01 and abs(w.std() - 1) < 0.01  # N(0, 1): 32000 samples, std errors below 0.006


def test_embedding_errors():
    emb = nn.Embedding(5, 3)
    with pytest.raises(ValueError, match=r"Embedding\(5, 3\): input must hold integer indices; got dtype float32"):
        emb(mdl.tensor(np.array([1.0], np.float32)))
    with pytest.raises(IndexError, match=r"Embedding\(5, 3\): index 5 is out of range for 5 embeddings "
                                         r"\(expected 0 <= index < 5\)"):
        emb(mdl.tensor(np.array([[0, 5], [1, 2]])))
    with pytest.raises(IndexError, match="embedding: index -1 is out of range for 5 embeddings"):
        F.embedding(np.array([2, -1]), emb.weight)
    with pytest.raises(ValueError, match=r"Embedding: padding_idx must be None or an int in \[-5, 5\) for 5 "
                                         r"embeddings; got 5"):
        nn.Embedding(5, 3, padding_idx=5)
    with pytest.raises(ValueError, match=r"embedding: padding_idx must be None or an int in \[-5, 5\)"):
        F.embedding(np.array([1]), emb.weight, padding_idx=-6)
    with pytest.raises(ValueError, match=r"embedding: expected a 2-D weight \(num_embeddings, embedding_dim\); "
                                         r"got shape \(5,\)"):
        F.embedding(np.array([1]), mdl.tensor(np.zeros(5, np.float32)))
    with pytest.raises(ValueError, match="Embedding: num_embeddings must be an int >= 1; got 0"):
        nn.Embedding(0, 3)


# --- ModuleDict -----------------------------------------------------------------------------------

def test_module_dict_names_match_torch(torch):
    def build(nn):
        return nn.ModuleDict(OrderedDict([("enc", nn.Linear(2, 3)), ("bn", nn.BatchNorm1d(3)),
                                          ("heads", nn.ModuleDict({"a": nn.Linear(3, 1), "b": nn.Linear(3, 2)}))]))

    ours, theirs = build(nn), build(torch.nn)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    assert [n for n, _ in ours.named_parameters()] == [n for n, _ in theirs.named_parameters()]
    assert repr(ours["heads"]) == repr(theirs["heads"])


def test_module_dict_is_a_dict_of_registered_modules():
    a, b, c = nn.Linear(2, 2), nn.ReLU(), nn.Linear(2, 1)
    d = nn.ModuleDict({"a": a, "b": b})
    assert len(d) == 2 and list(d) == ["a", "b"] and "a" in d and "z" not in d
    assert d["a"] is a and d.a is a
    assert list(d.keys()) == ["a", "b"] and list(d.values()) == [a, b] and list(d.items()) == [("a", a), ("b", b)]
    d["a"] = c  # a replacement keeps its place
    d["z"] = a
    assert list(d.items()) == [("a", c), ("b", b), ("z", a)]
    assert [n for n, _ in d.named_parameters()] == ["a.weight", "a.bias", "z.weight", "z.bias"]
    del d["b"]
    assert d.pop("a") is c and list(d) == ["z"]
    d.update([("p", b), ["q", c]])
    d.update(nn.ModuleDict({"r": nn.Tanh()}))
    d.update(OrderedDict(s=nn.Sigmoid()))
    assert list(d) == ["z", "p", "q", "r", "s"]
    d.eval()
    assert not any(m.training for m in d.modules())
    d.double()
    assert d["q"].weight.dtype == np.float64
    d.clear()
    assert len(d) == 0 and list(d.parameters()) == [] and len(nn.ModuleDict()) == 0


def test_module_dict_errors():
    d = nn.ModuleDict({"a": nn.ReLU()})
    with pytest.raises(KeyError, match=r"ModuleDict: no module 'b'; the keys are \['a'\]"):
        d["b"]
    with pytest.raises(KeyError, match="ModuleDict: no module 'b'"):
        del d["b"]
    with pytest.raises(KeyError, match="ModuleDict: no module 'b'"):
        d.pop("b")
    with pytest.raises(TypeError, match="ModuleDict: module name must be a string; got int"):
        d[1] = nn.ReLU()
    with pytest.raises(KeyError, match="ModuleDict: module name 'x.y' must be non-empty and contain no '.'"):
        d["x.y"] = nn.ReLU()
    with pytest.raises(KeyError, match="ModuleDict: attribute 'keys' already exists"):
        d["keys"] = nn.ReLU()
    with pytest.raises(TypeError, match=r"ModuleDict: int is not a Module \(child 'c'\)"):
        d["c"] = 3
    with pytest.raises(TypeError, match="ModuleDict.update: expected a mapping or an iterable of \\(key, module\\) "
                                        "pairs; got int"):
        d.update(3)
    with pytest.raises(TypeError, match="ModuleDict.update: element 1 must be a \\(key, module\\) pair; got ReLU"):
        nn.ModuleDict([("a", nn.ReLU()), nn.ReLU()])
    with pytest.raises(ValueError, match="ModuleDict.update: element 0 must be a \\(key, module\\) pair; got 3 items"):
        nn.ModuleDict([("a", nn.ReLU(), nn.Tanh())])
    with pytest.raises(NotImplementedError, match="ModuleDict has no forward"):
        d(mdl.tensor(np.ones(2)))


# --- cross-entropy with label smoothing -------------------------------------------------------------

TARGET = np.array([2, 0, 3, 3, 1])


def _class_inputs(rng, shapes, dtype):
    (n, c), _ = shapes
    return [(rng.standard_normal((n, c)) * 2).astype(dtype), rng.integers(0, c, n)]


def _smoothed_cross_entropy(eps, reduction):
    def reference(x, t):
        logp = x - x.max(axis=1, keepdims=True)
        logp = logp - np.log(np.exp(logp).sum(axis=1, keepdims=True))
        loss = -(1 - eps) * logp[np.arange(len(t)), t] - eps * logp.mean(axis=1)
        return {"mean": loss.mean(), "sum": loss.sum(), "none": loss}[reduction]
    return reference


def _case(eps, reduction, layer=False):
    op = (nn.CrossEntropyLoss(reduction=reduction, label_smoothing=eps) if layer
          else lambda x, t: F.cross_entropy(x, t, reduction, label_smoothing=eps))
    return dict(shapes=[(5, 4), (5,)], id=f"{'layer' if layer else 'function'}-{eps}-{reduction}", op=op,
                reference=_smoothed_cross_entropy(eps, reduction),
                torch_reference=torch_function("torch.nn.functional.cross_entropy", reduction=reduction,
                                               label_smoothing=eps))


class TestLabelSmoothing(OpTestCase):
    make_inputs = staticmethod(_class_inputs)
    cases = [_case(0.1, "mean"), _case(0.25, "sum"), _case(1.0, "none"), _case(0.3, "mean", layer=True),
             _case(0.0, "none", layer=True)]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_label_smoothing_gradient_is_softmax_minus_the_smoothed_target(reduction):
    x = mdl.tensor(randn(5, 4), requires_grad=True)
    loss = F.cross_entropy(x, TARGET, reduction, label_smoothing=0.2)
    (loss.sum() if reduction == "none" else loss).backward()
    p = np.exp(x.numpy()) / np.exp(x.numpy()).sum(axis=1, keepdims=True)
    close(x.grad.numpy(), (p - 0.8 * np.eye(4)[TARGET] - 0.2 / 4) / (5 if reduction == "mean" else 1))


def test_label_smoothing_errors():
    x = mdl.tensor(randn(5, 4))
    for bad in (1.5, -0.1, float("nan"), "0.1", True):
        with pytest.raises(ValueError, match=f"CrossEntropyLoss: label_smoothing must be a number in \\[0, 1\\]; "
                                             f"got {bad!r}"):
            nn.CrossEntropyLoss(label_smoothing=bad)
    with pytest.raises(ValueError, match=r"cross_entropy: label_smoothing must be a number in \[0, 1\]; got 2"):
        F.cross_entropy(x, TARGET, label_smoothing=2)
    assert nn.CrossEntropyLoss(label_smoothing=np.float32(0.5)).label_smoothing == 0.5


# --- Tensor.float and Tensor.double ------------------------------------------------------------------

def test_float_and_double_cast_and_pass_gradients_back(torch):
    labels = mdl.tensor(np.array([1, 2, 3]))
    assert labels.float().dtype == np.float32 and labels.double().dtype == np.float64
    assert not labels.float().requires_grad
    x = mdl.tensor(np.array([0.5, -1.5]), requires_grad=True)
    xt = torch.tensor([0.5, -1.5], dtype=torch.float64, requires_grad=True)
    y, yt = x.float(), xt.float()
    assert y.dtype == np.float32 and yt.dtype == torch.float32
    (y * y).sum().backward()
    (yt * yt).sum().backward()
    assert x.grad.dtype == np.float64 and xt.grad.dtype == torch.float64
    close(x.grad.numpy(), xt.grad.numpy())
    z = mdl.tensor(np.ones(2, np.float32), requires_grad=True)
    z.double().sum().backward()
    assert z.grad.dtype == np.float32
    assert x.double() is x  # already float64: no copy, as PyTorch returns self

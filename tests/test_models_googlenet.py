"""GoogLeNet (Inception v1): sizes and costs against the paper's Table 1, the auxiliary
heads, the loss weighting, and gradients through an Inception module."""
import numpy as np
import pytest

import minidl as mdl
from minidl_models.googlenet import MODELS, Inception, googlenet, googlenet_loss, googlenet_small
from minidl_models.summary import summary

# Table 1 of Szegedy et al. (2014), the Inception rows: depth (output channels), #1x1,
# #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, and the side of the output map.
TABLE1 = {
    "inception3a": (256, 64, 96, 128, 16, 32, 32, 28),
    "inception3b": (480, 128, 128, 192, 32, 96, 64, 28),
    "inception4a": (512, 192, 96, 208, 16, 48, 64, 14),
    "inception4b": (512, 160, 112, 224, 24, 64, 64, 14),
    "inception4c": (512, 128, 128, 256, 24, 64, 64, 14),
    "inception4d": (528, 112, 144, 288, 32, 64, 64, 14),
    "inception4e": (832, 256, 160, 320, 32, 128, 128, 14),
    "inception5a": (832, 256, 160, 320, 32, 128, 128, 7),
    "inception5b": (1024, 384, 192, 384, 48, 128, 128, 7),
}
STEM_DEPTH = 192  # the 3x3 convolution before 3a


def conv_cost(cin, cout, k, side):
    """(parameters with bias, multiply-adds) of a k x k convolution with a side x side output."""
    return cin * cout * k * k + cout, side * side * cin * cout * k * k


def derived_from_table():
    """Parameter counts and MACs of the paper's network, from Table 1 alone."""
    layers = [conv_cost(3, 64, 7, 112),  # conv 7x7/2
              conv_cost(64, 64, 1, 56), conv_cost(64, 192, 3, 56)]  # conv 1x1 reduce, 3x3
    cin = STEM_DEPTH
    for depth, c1, r3, c3, r5, c5, proj, side in TABLE1.values():
        assert c1 + c3 + c5 + proj == depth  # the table's depth column is the sum of its branches
        layers += [conv_cost(cin, c1, 1, side),
                   conv_cost(cin, r3, 1, side), conv_cost(r3, c3, 3, side),
                   conv_cost(cin, r5, 1, side), conv_cost(r5, c5, 5, side),
                   conv_cost(cin, proj, 1, side)]
        cin = depth
    layers.append((1024 * 1000 + 1000, 1024 * 1000))  # linear after the 7x7 average pool
    params = sum(p for p, _ in layers)
    macs = sum(m for _, m in layers)

    def aux(cin):  # 5x5/3 pool to 4x4, 1x1 conv 128, FC 1024, linear 1000
        return (cin * 128 + 128) + (128 * 4 * 4 * 1024 + 1024) + (1024 * 1000 + 1000)

    with_aux = params + aux(TABLE1["inception4a"][0]) + aux(TABLE1["inception4d"][0])
    return params, with_aux, macs


@pytest.fixture(scope="module")
def full():
    """The 1000-class network with auxiliary heads, and its summary (one eval forward at 224).
    Hooks record what that forward ran and returned."""
    model = googlenet()
    calls = {"aux1": 0, "aux2": 0}
    outputs = []

    def counter(name):
        def hook(module, args, out):
            calls[name] += 1
        return hook

    for name in calls:
        getattr(model, name).register_forward_hook(counter(name))
    model.register_forward_hook(lambda m, a, out: outputs.append(out))
    s = summary(model)
    return model, s, dict(calls), outputs


def test_table1_arithmetic_gives_the_expected_counts():
    params, with_aux, macs = derived_from_table()
    assert params == 6_998_552
    assert with_aux == 13_378_280
    assert round(macs / 1e9, 2) == 1.58


def test_parameter_counts_and_macs_match_table1(full):
    model, s, _, _ = full
    params, with_aux, macs = derived_from_table()
    assert s.total_params == s.trainable_params == with_aux == 13_378_280
    assert sum(p.numel() for p in googlenet(aux_logits=False).parameters()) == params == 6_998_552
    assert s.macs == macs  # eval mode: the auxiliary heads do not run, so they cost nothing
    assert round(s.macs / 1e9, 2) == 1.58


def test_eval_forward_returns_logits_only_and_skips_the_aux_heads(full):
    _, s, calls, outputs = full
    (out,) = outputs
    assert isinstance(out, mdl.Tensor) and out.shape == (1, 1000)
    assert calls == {"aux1": 0, "aux2": 0}
    rows = {r.name: r for r in s.rows}
    assert rows["aux1"].output_shape is None and rows["aux2"].output_shape is None


def test_spatial_sizes_per_stage(full):
    _, s, _, _ = full
    shapes = {r.name: r.output_shape for r in s.rows}
    assert shapes["conv1"] == (64, 112, 112)
    assert shapes["maxpool1"] == (64, 56, 56)
    assert shapes["conv3"] == (192, 56, 56)
    assert shapes["maxpool2"] == (192, 28, 28)
    assert shapes["maxpool3"] == (480, 14, 14)
    assert shapes["maxpool4"] == (832, 7, 7)
    for name, (depth, *_, side) in TABLE1.items():
        assert shapes[name] == (depth, side, side), name
    assert shapes["avgpool"] == (1024, 1, 1)
    assert shapes["fc"] == (1000,)


def test_layout_follows_the_paper(full):
    model, _, _, _ = full
    for name in TABLE1:
        module = getattr(model, name)
        assert module.branch3[1].conv.weight.shape[2:] == (5, 5), name  # a true 5x5, not torchvision's 3x3
        assert module.branch2[1].conv.weight.shape[2:] == (3, 3), name
    for pool in (model.maxpool1, model.maxpool2, model.maxpool3, model.maxpool4):
        assert (pool.kernel_size, pool.stride, pool.ceil_mode) == (3, 2, True)
    assert (model.lrn1.size, model.lrn1.alpha, model.lrn1.beta, model.lrn1.k) == (5, 1e-4, 0.75, 1.0)
    assert model.dropout.p == 0.4 and model.aux1.dropout.p == 0.7
    keys = model.state_dict().keys()
    for key in ("conv1.conv.weight", "conv3.conv.bias", "inception3a.branch1.conv.weight",
                "inception5b.branch4.1.conv.weight", "aux1.fc1.weight", "aux2.fc2.bias", "fc.weight"):
        assert key in keys


def test_train_forward_returns_main_and_aux_logits(full):
    model, _, calls, _ = full
    seen = []
    handle = model.aux2.register_forward_hook(lambda m, a, out: seen.append(out.shape))
    model.train()
    try:
        with mdl.no_grad():
            out = model(mdl.tensor(np.random.default_rng(0).standard_normal((1, 3, 224, 224)).astype(np.float32)))
    finally:
        model.eval()
        handle.remove()
    assert isinstance(out, tuple) and len(out) == 3
    assert [o.shape for o in out] == [(1, 1000)] * 3
    assert seen == [(1, 1000)]


def test_constructor_conventions():
    model = googlenet(num_classes=10, aux_logits=False, in_channels=1)
    assert model.input_shape == (1, 224, 224)
    assert model.conv1.conv.weight.shape == (64, 1, 7, 7) and model.fc.weight.shape == (10, 1024)
    assert not hasattr(model, "aux1")
    assert set(MODELS) == {"googlenet", "googlenet_small"}
    small = MODELS["googlenet_small"](num_classes=5, in_channels=3)
    assert small.input_shape == (3, 32, 32)
    small.eval()
    assert small(mdl.tensor(np.zeros((2, 3, 32, 32), np.float32))).shape == (2, 5)


def _log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def test_loss_weights_each_aux_head_by_0_3():
    rng = np.random.default_rng(1)
    zs = [rng.standard_normal((4, 6)) for _ in range(3)]
    target = np.array([0, 5, 2, 2])
    ce = [-_log_softmax(z)[np.arange(4), target].mean() for z in zs]
    outs = tuple(mdl.tensor(z, requires_grad=True) for z in zs)
    loss = googlenet_loss(outs, target)
    np.testing.assert_allclose(loss.item(), ce[0] + 0.3 * ce[1] + 0.3 * ce[2], rtol=1e-12)
    loss.backward()
    onehot = np.eye(6)[target]
    for out, z, weight in zip(outs, zs, (1.0, 0.3, 0.3)):
        np.testing.assert_allclose(out.grad.numpy(), weight * (np.exp(_log_softmax(z)) - onehot) / 4, atol=1e-12)
    np.testing.assert_allclose(googlenet_loss(mdl.tensor(zs[0]), target).item(), ce[0], rtol=1e-12)


def test_small_variant_stages_and_default_output():
    model = googlenet_small()
    assert model.input_shape == (1, 32, 32) and not hasattr(model, "aux1")
    shapes = {r.name: r.output_shape for r in summary(model).rows}
    assert shapes["conv1"] == (16, 16, 16)
    assert shapes["maxpool1"] == (48, 8, 8)
    assert shapes["maxpool2"] == (80, 4, 4)
    assert shapes["inception5a"] == (96, 4, 4)
    model.train()  # without aux heads, training mode gives plain logits for the usual loop
    assert model(mdl.tensor(np.zeros((2, 1, 32, 32), np.float32))).shape == (2, 10)


def test_small_variant_backward_reaches_every_parameter():
    mdl.manual_seed(0)
    model = googlenet_small(aux_logits=True)
    model.train()
    rng = np.random.default_rng(2)
    x = mdl.tensor(rng.standard_normal((6, 1, 32, 32)).astype(np.float32))
    target = np.array([0, 1, 2, 3, 4, 5])
    out = model(x)
    assert isinstance(out, tuple) and [o.shape for o in out] == [(6, 10), (6, 10)]
    googlenet_loss(out, target).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert np.isfinite(p.grad.numpy()).all() and np.abs(p.grad.numpy()).sum() > 0, name
    model.eval()
    assert isinstance(model(x), mdl.Tensor)


def test_inception_module_gradcheck():
    mdl.manual_seed(0)
    module = Inception(4, 2, 2, 3, 1, 2, 2).double()
    # a permutation of values 0.1 apart: no two inputs of a max-pool window tie, even perturbed
    x = mdl.tensor(np.random.default_rng(3).permutation(100).reshape(1, 4, 5, 5) * 0.1 - 5.0, requires_grad=True)
    assert module(x).shape == (1, 9, 5, 5)
    convs = [module.branch2[1].conv, module.branch3[1].conv, module.branch4[1].conv]  # 3x3, 5x5, projection
    weights = [mdl.tensor(c.weight.numpy().copy(), requires_grad=True) for c in convs]
    for c in convs:
        del c.weight  # unregister, so the closure can hand each conv gradcheck's copy of its weight

    def fn(x, *ws):
        for c, w in zip(convs, ws):
            c.weight = w
        return module(x)

    assert mdl.gradcheck(fn, [x, *weights])

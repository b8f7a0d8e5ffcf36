"""ResNet and its variants: sizes from the papers' tables, gradients through the blocks, the stride placement.

The expected parameter counts and MACs are derived here, independently of the
model code, by walking each paper's stage table (convolution k*k*cin*cout/groups,
batch norm 2*c, projection shortcuts, FC in*out + out; MACs = parameters of a
weight layer times the size of its output map), and checked against the
published figures too.
"""
import functools
import inspect

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import nn
from minidl_models import resnet, resnet_variants
from minidl_models.resnet import BasicBlock, Bottleneck, projection_shortcut
from minidl_models.resnet_variants import (PreActBasicBlock, PreActBottleneck, SEBottleneck, ZeroPadShortcut,
                                           preact_shortcut)
from minidl_models.summary import summary

ALL_MODELS = {**resnet.MODELS, **resnet_variants.MODELS}


@functools.cache
def build(name, **kwargs):
    """Each model is built once per test session (the big ones take a second or two)."""
    mdl.manual_seed(0)
    return ALL_MODELS[name](**kwargs)


def count_params(model):
    return sum(p.numel() for p in model.parameters())


# --- the papers' tables, as arithmetic ------------------------------------------------------

TABLE1 = {  # He et al. 2015, Table 1: block type and blocks per stage (conv2_x .. conv5_x)
    18: ("basic", [2, 2, 2, 2]),
    34: ("basic", [3, 4, 6, 3]),
    50: ("bottleneck", [3, 4, 6, 3]),
    101: ("bottleneck", [3, 4, 23, 3]),
    152: ("bottleneck", [3, 8, 36, 3]),
}


class Tally:
    """Adds up the parameters and multiply-accumulates of the layers named to it."""

    def __init__(self):
        self.params = 0
        self.macs = 0

    def conv(self, k, cin, cout, out_hw, groups=1):
        weights = k * k * (cin // groups) * cout
        self.params += weights
        self.macs += weights * out_hw * out_hw  # each output pixel uses every weight once

    def bn(self, c):
        self.params += 2 * c  # scale and shift

    def fc(self, cin, cout):
        self.params += cin * cout + cout
        self.macs += cin * cout


def paper_resnet(depth, stride_in_1x1=False, groups=1, width_per_group=64, se_reduction=None, num_classes=1000):
    """(params, MACs) at 224x224 of the ImageNet ResNet of Table 1 (ResNeXt with groups, SE with a reduction)."""
    kind, blocks = TABLE1[depth]
    t = Tally()
    t.conv(7, 3, 64, 112)  # 224 -> 112
    t.bn(64)
    cin, hw = 64, 56  # the 3x3/2 max pool
    for stage, n in enumerate(blocks):
        planes = 64 * 2 ** stage
        for b in range(n):
            stride = 2 if b == 0 and stage > 0 else 1
            out_hw = hw // stride
            if kind == "basic":
                cout = planes
                t.conv(3, cin, planes, out_hw)
                t.bn(planes)
                t.conv(3, planes, planes, out_hw)
                t.bn(planes)
            else:
                cout = 4 * planes
                width = planes * groups * width_per_group // 64
                t.conv(1, cin, width, out_hw if stride_in_1x1 else hw)  # unstrided, it runs on the input map
                t.bn(width)
                t.conv(3, width, width, out_hw, groups)
                t.bn(width)
                t.conv(1, width, cout, out_hw)
                t.bn(cout)
                if se_reduction:
                    t.fc(cout, cout // se_reduction)
                    t.fc(cout // se_reduction, cout)
            if stride != 1 or cin != cout:  # projection shortcut
                t.conv(1, cin, cout, out_hw)
                t.bn(cout)
            cin, hw = cout, out_hw
    t.fc(cin, num_classes)
    return t.params, t.macs


def paper_preact_resnet_params(depth, num_classes=1000):
    """Pre-activation units have the same convolutions; batch norm moves to each unit's input (the
    first unit's is the stem's), projections lose theirs, and one more closes the network."""
    kind, blocks = TABLE1[depth]
    t = Tally()
    t.conv(7, 3, 64, 112)
    t.bn(64)
    cin = 64
    for stage, n in enumerate(blocks):
        planes = 64 * 2 ** stage
        for b in range(n):
            if not (stage == 0 and b == 0):
                t.bn(cin)
            if kind == "basic":
                cout = planes
                t.conv(3, cin, planes, 1)
                t.bn(planes)
                t.conv(3, planes, planes, 1)
            else:
                cout = 4 * planes
                t.conv(1, cin, planes, 1)
                t.bn(planes)
                t.conv(3, planes, planes, 1)
                t.bn(planes)
                t.conv(1, planes, cout, 1)
            if (b == 0 and stage > 0) or cin != cout:
                t.conv(1, cin, cout, 1)
            cin = cout
    t.bn(cin)
    t.fc(cin, num_classes)
    return t.params


def paper_cifar_resnet_params(n, num_classes=10, widths=(16, 32, 64), in_channels=3):
    """He et al. 2015, Sec. 4.2: a 3x3 conv to 16, then 2n 3x3 layers at each of 16, 32, 64 filters
    (``widths``); option-A shortcuts have no parameters."""
    t = Tally()
    t.conv(3, in_channels, widths[0], 32)
    t.bn(widths[0])
    cin = widths[0]
    for width in widths:
        for _ in range(n):
            t.conv(3, cin, width, 1)
            t.bn(width)
            t.conv(3, width, width, 1)
            t.bn(width)
            cin = width
    t.fc(widths[-1], num_classes)
    return t.params


# --- sizes ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("depth, expected", [(18, 11_689_512), (34, 21_797_672), (50, 25_557_032),
                                             (101, 44_549_160), (152, 60_192_808)])
def test_imagenet_resnet_parameter_counts(depth, expected):
    derived, _ = paper_resnet(depth)
    assert derived == expected
    assert count_params(build(f"resnet{depth}")) == expected


@functools.cache
def resnet_summary(depth, stride_in_1x1=False):
    return summary(build(f"resnet{depth}", stride_in_1x1=stride_in_1x1))


@pytest.mark.parametrize("depth, stride_in_1x1, gmacs", [(18, False, 1.81), (50, False, 4.09), (50, True, 3.86)])
def test_imagenet_resnet_summary_params_macs_and_output(depth, stride_in_1x1, gmacs):
    s = resnet_summary(depth, stride_in_1x1)
    params, macs = paper_resnet(depth, stride_in_1x1)
    assert s.total_params == s.trainable_params == params
    assert s.macs == macs
    assert round(macs / 1e9, 2) == gmacs
    assert s.rows[-1].name == "fc" and s.rows[-1].output_shape == (1000,)
    assert build(f"resnet{depth}", stride_in_1x1=stride_in_1x1).input_shape == (3, 224, 224)


def test_resnext50_and_se_resnet50_parameter_counts():
    derived, _ = paper_resnet(50, groups=32, width_per_group=4)
    assert derived == 25_028_904
    assert count_params(build("resnext50_32x4d")) == derived
    derived, _ = paper_resnet(50, se_reduction=16)
    assert derived == 28_088_024
    assert count_params(build("se_resnet50")) == derived


@pytest.mark.parametrize("depth", [18, 50, 152])
def test_preact_resnet_parameter_counts(depth):
    assert count_params(build(f"preact_resnet{depth}")) == paper_preact_resnet_params(depth)


# The paper's Table 6 rounds these; 272,474 (sometimes quoted for ResNet-20) is what the two
# option-B projections at 16->32 and 32->64 would add: (16*32 + 2*32) + (32*64 + 2*64) = 2,752 more.
@pytest.mark.parametrize("depth, millions, exact", [(20, 0.27, 269_722), (32, 0.46, 464_154), (44, 0.66, 658_586),
                                                    (56, 0.85, 853_018), (110, 1.7, 1_727_962)])
def test_cifar_resnet_parameter_counts(depth, millions, exact):
    derived = paper_cifar_resnet_params((depth - 2) // 6)
    assert derived == exact
    assert round(derived / 1e6, 2 if depth < 110 else 1) == millions
    model = build(f"resnet{depth}")
    assert count_params(model) == derived
    assert model.input_shape == (3, 32, 32)


def test_small_variant_is_a_half_width_resnet8():
    derived = paper_cifar_resnet_params(1, widths=(8, 16, 32), in_channels=1)
    assert derived == 19_074
    assert count_params(build("resnet_small")) == derived


def test_state_dict_keys_follow_torchvision():
    keys = build("resnet50").state_dict()
    # 53 convolutions (stem, 16 bottlenecks x 3, 4 projections), each with a batch norm of 2
    # parameters and 3 buffers, and the classifier's weight and bias
    assert len(keys) == 53 + 53 * 5 + 2
    for key, shape in [("conv1.weight", (64, 3, 7, 7)), ("bn1.running_var", (64,)),
                       ("layer1.0.conv1.weight", (64, 64, 1, 1)), ("layer1.0.downsample.0.weight", (256, 64, 1, 1)),
                       ("layer2.0.conv2.weight", (128, 128, 3, 3)), ("layer2.0.downsample.1.weight", (512,)),
                       ("layer3.5.bn3.num_batches_tracked", ()), ("layer4.2.conv3.weight", (2048, 512, 1, 1)),
                       ("fc.weight", (1000, 2048)), ("fc.bias", (1000,))]:
        assert keys[key].shape == shape, key


def test_constructors_take_num_classes_and_in_channels():
    for name, make in ALL_MODELS.items():
        params = inspect.signature(make).parameters
        assert "num_classes" in params and "in_channels" in params, name
    model = build("resnet18", num_classes=7, in_channels=1)
    assert model.input_shape == (1, 224, 224)
    assert model.conv1.weight.shape == (64, 1, 7, 7) and model.fc.weight.shape == (7, 512)
    small = build("resnet_small")
    assert small.input_shape == (1, 32, 32) and small.fc.out_features == 10


def test_stride_in_1x1_applies_to_bottlenecks_only():
    with pytest.raises(ValueError, match="stride_in_1x1"):
        resnet.resnet18(stride_in_1x1=True)


# --- stride placement -----------------------------------------------------------------------------------

@pytest.mark.parametrize("stride_in_1x1", [False, True])
def test_stride_placement_in_the_first_bottleneck_of_layers_2_to_4(stride_in_1x1):
    model = build("resnet50", stride_in_1x1=stride_in_1x1)
    for i, stage in enumerate([model.layer1, model.layer2, model.layer3, model.layer4]):
        for b, block in enumerate(stage):
            stride = (2, 2) if i > 0 and b == 0 else (1, 1)
            assert block.conv1.stride == (stride if stride_in_1x1 else (1, 1))
            assert block.conv2.stride == ((1, 1) if stride_in_1x1 else stride)
            assert block.conv3.stride == (1, 1)
            if block.downsample is not None:
                assert block.downsample[0].stride == stride


def test_stride_placement_changes_only_the_first_1x1_output_shapes():
    on_3x3 = {(r.name, r.call): r.output_shape for r in resnet_summary(50, False).rows}
    on_1x1 = {(r.name, r.call): r.output_shape for r in resnet_summary(50, True).rows}
    assert on_3x3.keys() == on_1x1.keys()
    # a block calls its ReLU three times: after bn1 (moved), after bn2 and after the sum
    assert {call for name, call in on_3x3 if name == "layer2.0.relu"} == {1, 2, 3}
    moved = {(f"layer{i}.0.{m}", 1) for i in (2, 3, 4) for m in ("conv1", "bn1", "relu")}
    for key in on_3x3:
        if key in moved:
            (c, h, w), (c2, h2, w2) = on_3x3[key], on_1x1[key]
            assert c == c2 and (h, w) == (2 * h2, 2 * w2), key  # an unstrided 1x1 keeps the input's map
        else:
            assert on_3x3[key] == on_1x1[key], key
    assert on_3x3["fc", 1] == on_1x1["fc", 1] == (1000,)


# --- training ---------------------------------------------------------------------------------------

def forward_backward_all_params(model, x, num_classes):
    y = mdl.tensor(np.arange(x.shape[0]) % num_classes)
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    F.cross_entropy(out, y).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        assert p.grad.shape == p.shape and np.isfinite(p.grad.data).all(), name
    assert any(np.abs(p.grad.data).max() > 0 for p in model.parameters())


@pytest.mark.parametrize("name, shape", [("resnet_small", (4, 1, 32, 32)), ("resnet20", (4, 3, 32, 32))])
def test_cifar_resnet_forward_backward(name, shape):
    mdl.manual_seed(0)
    model = ALL_MODELS[name]()
    forward_backward_all_params(model, mdl.randn(*shape), 10)


@pytest.mark.parametrize("name", ["preact_resnet18", "preact_resnet50", "resnext50_32x4d", "se_resnet50"])
def test_imagenet_variant_forward_backward_on_a_small_image(name):
    mdl.manual_seed(0)
    model = ALL_MODELS[name](num_classes=5)
    forward_backward_all_params(model, mdl.randn(2, 3, 64, 64), 5)


def test_small_variant_learns():
    """A few SGD steps on a fixed batch bring the loss down: the gradients point the right way."""
    mdl.manual_seed(0)
    model = resnet_variants.resnet_small()
    opt = mdl.optim.SGD(model.parameters(), lr=0.2, momentum=0.9)
    x, y = mdl.randn(16, 1, 32, 32), mdl.tensor(np.arange(16) % 10)
    losses = []
    for _ in range(12):
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses


# --- gradients through the blocks ---------------------------------------------------------------------

BLOCKS = {
    "basic": lambda: BasicBlock(4, 4),
    "basic_projection": lambda: BasicBlock(4, 6, 2, projection_shortcut(4, 6, 2)),
    "bottleneck_projection_stride2": lambda: Bottleneck(4, 2, 2, projection_shortcut(4, 8, 2)),
    "bottleneck_stride_in_1x1": lambda: Bottleneck(4, 2, 2, projection_shortcut(4, 8, 2), stride_in_1x1=True),
    "resnext_bottleneck": lambda: Bottleneck(4, 2, 2, projection_shortcut(4, 8, 2), groups=2, width_per_group=64),
    "se_bottleneck": lambda: SEBottleneck(4, 2, 2, projection_shortcut(4, 8, 2), reduction=4),
    "option_a_basic": lambda: BasicBlock(4, 6, 2, ZeroPadShortcut(4, 6, 2)),
    "preact_basic": lambda: PreActBasicBlock(4, 4),
    "preact_bottleneck": lambda: PreActBottleneck(4, 2, 2, preact_shortcut(4, 8, 2)),
}


def small_block(name, training):
    mdl.manual_seed(1)
    block = BLOCKS[name]().double()
    rng = np.random.default_rng(2)
    for m in block.modules():  # non-trivial affine parameters and running statistics
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[...] = rng.uniform(0.5, 1.5, m.num_features)
            m.bias.data[...] = rng.uniform(-0.5, 0.5, m.num_features)
            m.running_mean.data[...] = rng.uniform(-0.5, 0.5, m.num_features)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, m.num_features)
    return block.train(training)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", list(BLOCKS))
def test_block_gradcheck(name, training):
    block = small_block(name, training)
    x = mdl.tensor(np.random.default_rng(3).standard_normal((2, 4, 6, 6)), requires_grad=True)
    # Hundreds of ReLUs see every perturbed input and weight, so some pre-activation lies within a
    # few 1e-6 of its kink (which the checker reports, at eps 1e-5 and 1e-6 alike); at 1e-7, none here does.
    eps = 1e-7
    assert mdl.gradcheck(block, x, eps=eps)

    # w.r.t. conv2's weight: the closure puts gradcheck's copy w in the parameter's place, so w is in the graph
    conv = block.conv2
    weight = conv.weight

    def block_with_weight(w):
        conv._parameters["weight"] = w
        return block(x.detach())

    try:
        assert mdl.gradcheck(block_with_weight, mdl.tensor(weight.data.copy(), requires_grad=True), eps=eps)
    finally:
        conv._parameters["weight"] = weight


# --- the blocks against an independent reference -----------------------------------------------------

def test_se_bottleneck_and_preact_block_match_torch():
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional

    def t(p):
        return torch.from_numpy(np.asarray(p.data, dtype=np.float64))

    def conv(m, y):
        return tf.conv2d(y, t(m.weight), stride=m.stride, padding=m.padding, groups=m.groups)

    def bn(m, y):
        return tf.batch_norm(y, None, None, t(m.weight), t(m.bias), training=True, eps=m.eps)

    x = np.random.default_rng(4).standard_normal((3, 4, 6, 6))
    xt = torch.from_numpy(x)

    block = small_block("se_bottleneck", True)
    out = tf.relu(bn(block.bn1, conv(block.conv1, xt)))
    out = tf.relu(bn(block.bn2, conv(block.conv2, out)))
    out = bn(block.bn3, conv(block.conv3, out))
    se = block.se
    gates = torch.sigmoid(tf.linear(tf.relu(tf.linear(out.mean((2, 3)), t(se.fc1.weight), t(se.fc1.bias))),
                                    t(se.fc2.weight), t(se.fc2.bias)))
    shortcut = bn(block.downsample[1], conv(block.downsample[0], xt))
    expected = tf.relu(out * gates[:, :, None, None] + shortcut)
    np.testing.assert_allclose(block(mdl.tensor(x)).data, expected.numpy(), rtol=1e-10, atol=1e-10)

    block = small_block("preact_bottleneck", True)
    act = tf.relu(bn(block.bn1, xt))
    out = conv(block.conv1, act)
    out = conv(block.conv2, tf.relu(bn(block.bn2, out)))
    out = conv(block.conv3, tf.relu(bn(block.bn3, out)))
    expected = out + conv(block.downsample[0], act)
    np.testing.assert_allclose(block(mdl.tensor(x)).data, expected.numpy(), rtol=1e-10, atol=1e-10)


def test_option_a_shortcut_subsamples_and_pads_with_zeros():
    x = mdl.tensor(np.arange(2 * 3 * 5 * 5, dtype=np.float32).reshape(2, 3, 5, 5))
    y = ZeroPadShortcut(3, 7, 2)(x)
    assert y.shape == (2, 7, 3, 3)
    np.testing.assert_array_equal(y.data[:, :3], x.data[:, :, ::2, ::2])
    assert not y.data[:, 3:].any()
    assert list(ZeroPadShortcut(3, 7, 2).parameters()) == []


def test_preact_first_unit_uses_the_stems_activation():
    model = build("preact_resnet18")
    assert model.layer1[0].bn1 is None
    assert all(block.bn1 is not None for stage in (model.layer1[1:], model.layer2) for block in stage)
    assert "layer1.0.bn1.weight" not in model.state_dict() and "layer1.1.bn1.weight" in model.state_dict()


def test_cifar_resnet_rejects_a_depth_that_is_not_6n_plus_2():
    with pytest.raises(ValueError, match="6n\\+2"):
        resnet_variants.CifarResNet(21)

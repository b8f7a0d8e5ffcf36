"""AlexNet, ZFNet and VGG against the papers' layer tables.

The expected parameter counts and MACs are derived here from the layer specs
as the papers print them (channels, kernel sizes, output sizes), written out
independently of the model code, and checked also against the published totals.
"""
import importlib

import numpy as np
import pytest

import minidl as mdl
import minidl.nn.functional as F
from minidl import nn
from minidl_models.alexnet import alexnet, alexnet_small, paper_lrn, zfnet
from minidl_models.summary import summary
from minidl_models.vgg import VGG, vgg, vgg11, vgg13, vgg16, vgg19, vgg_small

# the modules themselves: the package's namespace binds `alexnet` and `vgg` to the functions
alexnet_module = importlib.import_module("minidl_models.alexnet")
vgg_module = importlib.import_module("minidl_models.vgg")


# ---- arithmetic from the papers' tables ----------------------------------------------------

def conv_params(c_in, c_out, k, groups=1):
    return k * k * (c_in // groups) * c_out + c_out


def conv_macs(c_in, c_out, k, out_size, groups=1):
    return out_size * out_size * c_out * (c_in // groups) * k * k


def fc_params(layers):
    return sum(n_in * n_out + n_out for n_in, n_out in layers)


def fc_macs(layers):
    return sum(n_in * n_out for n_in, n_out in layers)


# Krizhevsky et al. 2012, Figure 2 / Section 3.5: (c_in, c_out, kernel, groups, output size).
# With two towers a kernel of conv2/4/5 sees half of the previous layer's maps.
def alexnet_convs(groups):
    return [(3, 96, 11, 1, 55), (96, 256, 5, groups, 27), (256, 384, 3, 1, 13),
            (384, 384, 3, groups, 13), (384, 256, 3, groups, 13)]


# Zeiler & Fergus 2013, Figure 3: dense layers, first conv 7x7/2.
ZFNET_CONVS = [(3, 96, 7, 1, 110), (96, 256, 5, 1, 26), (256, 384, 3, 1, 13), (384, 384, 3, 1, 13),
               (384, 256, 3, 1, 13)]

FC_1000 = [(256 * 6 * 6, 4096), (4096, 4096), (4096, 1000)]
VGG_FC_1000 = [(512 * 7 * 7, 4096), (4096, 4096), (4096, 1000)]

# Simonyan & Zisserman 2015, Table 1: per block (width, spatial size inside it at 224x224),
# then each column's kernel sizes per block.
VGG_BLOCKS = [(64, 224), (128, 112), (256, 56), (512, 28), (512, 14)]
TABLE1 = {
    "A": [[3], [3], [3, 3], [3, 3], [3, 3]],
    "A-LRN": [[3], [3], [3, 3], [3, 3], [3, 3]],
    "B": [[3, 3], [3, 3], [3, 3], [3, 3], [3, 3]],
    "C": [[3, 3], [3, 3], [3, 3, 1], [3, 3, 1], [3, 3, 1]],
    "D": [[3, 3], [3, 3], [3, 3, 3], [3, 3, 3], [3, 3, 3]],
    "E": [[3, 3], [3, 3], [3, 3, 3, 3], [3, 3, 3, 3], [3, 3, 3, 3]],
}


def vgg_convs(column):
    """(c_in, c_out, kernel, 1, output size) for every conv of a Table 1 column."""
    convs, c_in = [], 3
    for (width, size), kernels in zip(VGG_BLOCKS, TABLE1[column]):
        for k in kernels:
            convs.append((c_in, width, k, 1, size))
            c_in = width
    return convs


def expected(convs, fcs, batch_norm=False):
    params = sum(conv_params(c_in, c_out, k, g) for c_in, c_out, k, g, _ in convs) + fc_params(fcs)
    if batch_norm:
        params += sum(2 * c_out for _, c_out, _, _, _ in convs)  # BN's scale and shift per channel
    macs = sum(conv_macs(c_in, c_out, k, size, g) for c_in, c_out, k, g, size in convs) + fc_macs(fcs)
    return params, macs


def conv_sizes(model_summary):
    """Spatial output size of every Conv2d row of a summary, in order."""
    return [r.output_shape[1] for r in model_summary.rows if r.type == "Conv2d"]


# ---- AlexNet and ZFNet at full size --------------------------------------------------------

def assert_paper_lrn(model, positions):
    """LRN layers exactly at ``positions`` of model.features, each with AlexNet's constants
    in nn.LocalResponseNorm's convention (alpha = paper's alpha * n)."""
    found = [i for i, m in enumerate(model.features) if isinstance(m, nn.LocalResponseNorm)]
    assert found == list(positions)
    for i in found:
        lrn = model.features[i]
        assert (lrn.size, lrn.alpha, lrn.beta, lrn.k) == (5, 5e-4, 0.75, 2.0)


def test_alexnet_matches_the_paper():
    models = {grouped: alexnet(grouped=grouped) for grouped in (True, False)}
    for grouped, published in [(True, 60_965_224), (False, 62_378_344)]:
        convs = alexnet_convs(2 if grouped else 1)
        params, macs = expected(convs, FC_1000)
        s = summary(models[grouped])  # one batch-1 forward at 3x227x227
        assert s.total_params == s.trainable_params == params == published
        assert s.macs == macs
        assert conv_sizes(s) == [size for *_, size in convs]
        assert [r.output_shape for r in s.rows if r.type == "MaxPool2d"] == [(96, 27, 27), (256, 13, 13),
                                                                              (256, 6, 6)]
        assert s.rows[0].output_shape == (1000,)
        assert s.input_shape == (3, 227, 227)
    assert round(summary(models[True]).macs / 1e9, 3) == 0.724

    # the two towers only change the kernels' depth in conv2, conv4 and conv5
    grouped, single = models[True].state_dict(), models[False].state_dict()
    assert list(grouped) == list(single)
    differing = {k: (grouped[k].shape, single[k].shape) for k in grouped if grouped[k].shape != single[k].shape}
    assert differing == {
        "features.4.weight": ((256, 48, 5, 5), (256, 96, 5, 5)),     # conv2
        "features.10.weight": ((384, 192, 3, 3), (384, 384, 3, 3)),  # conv4
        "features.12.weight": ((256, 192, 3, 3), (256, 384, 3, 3)),  # conv5
    }

    model = models[True]
    assert [type(m).__name__ for m in model.features] == [
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
        "Conv2d", "ReLU", "LocalResponseNorm", "MaxPool2d",
        "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU", "MaxPool2d"]
    assert_paper_lrn(model, (2, 6))
    # dropout on the outputs of fc6 and fc7 ("the first two fully-connected layers")
    assert [type(m).__name__ for m in model.classifier] == ["Linear", "ReLU", "Dropout", "Linear", "ReLU",
                                                             "Dropout", "Linear"]
    assert all(m.p == 0.5 for m in model.classifier if isinstance(m, nn.Dropout))
    assert all(m.bias is not None for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))


def test_zfnet_counts_and_sizes_match_figure_3():
    params, macs = expected(ZFNET_CONVS, FC_1000)
    model = zfnet()
    s = summary(model)
    assert s.total_params == params == 62_357_608
    assert s.macs == macs
    assert conv_sizes(s) == [size for *_, size in ZFNET_CONVS]
    assert [r.output_shape for r in s.rows if r.type == "MaxPool2d"] == [(96, 55, 55), (256, 13, 13), (256, 6, 6)]
    assert s.rows[0].output_shape == (1000,)
    assert s.input_shape == (3, 224, 224)
    assert_paper_lrn(model, (3, 7))  # after the pools, as Figure 3 orders them


@pytest.mark.parametrize("build", [alexnet, zfnet])
def test_num_classes_and_in_channels_reach_the_end_layers(build):
    model = build(num_classes=10, in_channels=1)
    assert model.features[0].weight.shape[1] == 1
    assert model.input_shape[0] == 1
    assert model.classifier[6].weight.shape == (10, 4096)


# ---- LRN: the paper's constants ------------------------------------------------------------

def paper_formula(a, n=5, k=2.0, alpha=1e-4, beta=0.75):
    """Krizhevsky et al., Section 3.3, literally: b_i = a_i / (k + alpha * sum_j a_j^2)^beta,
    j from max(0, i - n/2) to min(N - 1, i + n/2) over the N channels."""
    b = np.empty_like(a)
    channels = a.shape[1]
    for i in range(channels):
        lo, hi = max(0, i - n // 2), min(channels - 1, i + n // 2)
        b[:, i] = a[:, i] / (k + alpha * (a[:, lo:hi + 1] ** 2).sum(axis=1)) ** beta
    return b


def test_lrn_uses_the_papers_constants():
    rng = np.random.default_rng(0)
    # activations of ~100 make alpha * sum a^2 (~5) comparable to k = 2; with unit-sized
    # inputs alpha = 1e-4 hides any mistake in the window or the alpha scaling
    a = 100 * rng.standard_normal((2, 9, 3, 4))
    ours = paper_lrn()(mdl.tensor(a)).data
    np.testing.assert_allclose(ours, paper_formula(a), rtol=1e-10)
    # the mapping matters: passing the paper's alpha unscaled gives a different layer
    naive = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2.0)(mdl.tensor(a)).data
    assert np.max(np.abs(naive - ours) / np.abs(ours)) > 0.1


def test_lrn_pool_stem_gradcheck():
    """Conv -> ReLU -> LRN (large alpha, so the normalisation matters) -> overlapping max pool."""
    mdl.manual_seed(0)
    stem = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.LocalResponseNorm(5, alpha=1.0, beta=0.75, k=2.0),
                         nn.MaxPool2d(3, 2)).double()
    rng = np.random.default_rng(5)
    x = mdl.tensor(rng.standard_normal((1, 2, 9, 9)), requires_grad=True)
    # finite differences are only valid away from the kinks: no pre-activation near 0
    # and no near-ties inside a pooling window (its top two values well apart)
    with mdl.no_grad():
        pre = stem[0](x).data
        normed = stem[:3](x).data
    assert np.min(np.abs(pre)) > 1e-3
    windows = np.lib.stride_tricks.sliding_window_view(normed, (3, 3), axis=(2, 3))[:, :, ::2, ::2]
    top2 = np.sort(windows.reshape(*windows.shape[:4], 9), axis=-1)[..., -2:]
    assert np.min(top2[..., 1] - top2[..., 0]) > 1e-3

    assert mdl.gradcheck(stem, x)
    conv = stem[0]

    def through_weight(w):
        return stem[1:](F.conv2d(x.detach(), w, conv.bias.detach()))

    assert mdl.gradcheck(through_weight, mdl.tensor(conv.weight.data.copy(), requires_grad=True))


# ---- VGG at full size ----------------------------------------------------------------------

PUBLISHED_VGG = {"A": 132_863_336, "A-LRN": 132_863_336, "B": 133_047_848, "C": 133_638_952,
                 "D": 138_357_544, "E": 143_667_240}


@pytest.mark.parametrize("column", ["A", "A-LRN", "B", "C", "D", "E"])
def test_vgg_columns_match_table_1(column):
    convs = vgg_convs(column)
    params, macs = expected(convs, VGG_FC_1000)
    model = vgg(column)
    s = summary(model)  # one batch-1 forward at 3x224x224 (D: 15.5 GMACs)
    assert s.total_params == params == PUBLISHED_VGG[column]
    assert s.macs == macs
    if column == "D":
        assert round(s.macs / 1e9, 2) == 15.47
    assert s.rows[0].output_shape == (1000,)
    assert conv_sizes(s) == [size for *_, size in convs]
    layers = [m for m in model.features if isinstance(m, nn.Conv2d)]
    assert [(m.kernel_size, m.padding) for m in layers] == [((k, k), (k // 2, k // 2)) for _, _, k, _, _ in convs]
    assert len(layers) + 3 == {"A": 11, "A-LRN": 11, "B": 13, "C": 16, "D": 16, "E": 19}[column]
    assert_paper_lrn(model, (2,) if column == "A-LRN" else ())


def test_vgg16_with_batch_norm():
    params, _ = expected(vgg_convs("D"), VGG_FC_1000, batch_norm=True)
    model = vgg16(batch_norm=True)
    # counted without a forward: the plain D column already ran one at full size
    assert sum(p.numel() for p in model.parameters()) == params == 138_365_992
    kinds = [type(m).__name__ for m in model.features[:7]]
    assert kinds == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "BatchNorm2d", "ReLU", "MaxPool2d"]


def test_vgg_named_constructors_are_the_table_columns(monkeypatch):
    # building all four at full size would cost seconds each: check the column they ask for
    calls = []
    monkeypatch.setattr(vgg_module, "vgg", lambda *args: calls.append(args))
    for build in (vgg11, vgg13, vgg16, vgg19):
        build(batch_norm=True, num_classes=10, in_channels=1)
    assert calls == [(column, True, 10, 1) for column in "ABDE"]


def test_vgg_rejects_unknown_columns():
    with pytest.raises(ValueError, match="'F'"):
        vgg("F")
    with pytest.raises(ValueError, match="conv5x5"):
        VGG("conv5x5", 10, 1, False, 16, 1, 8)


# ---- small instances: forward and backward -------------------------------------------------

def check_trains(model, x, num_classes=10):
    """One forward/backward: output shape, finite loss, a finite gradient for every parameter,
    and an SGD step that changes the weights."""
    y = mdl.tensor(np.arange(x.shape[0]) % num_classes)
    out = model(x)
    assert out.shape == (x.shape[0], num_classes)
    loss = F.cross_entropy(out, y)
    assert np.isfinite(loss.item())
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.shape == p.shape, name
        assert np.all(np.isfinite(p.grad.data)), name
    assert any(np.any(p.grad.data != 0) for p in model.parameters())
    before = model.features[0].weight.data.copy()
    mdl.optim.SGD(model.parameters(), lr=0.1).step()
    assert not np.array_equal(before, model.features[0].weight.data)


def images(shape, seed=0):
    return mdl.tensor(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


@pytest.mark.parametrize("grouped", [True, False])
def test_alexnet_small_trains(grouped):
    mdl.manual_seed(0)
    model = alexnet_small(grouped=grouped)
    assert model.input_shape == (1, 32, 32)
    assert model.features[4].weight.shape == ((64, 12, 5, 5) if grouped else (64, 24, 5, 5))
    assert_paper_lrn(model, (2, 6))
    check_trains(model, images((4, 1, 32, 32)))
    s = summary(model)
    assert [r.output_shape for r in s.rows if r.type == "MaxPool2d"] == [(24, 7, 7), (64, 3, 3), (64, 1, 1)]


@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_small_trains(batch_norm):
    mdl.manual_seed(0)
    model = vgg_small(batch_norm=batch_norm)
    assert model.input_shape == (1, 32, 32)
    check_trains(model, images((4, 1, 32, 32)))
    # column A's layout at an eighth of the widths: (c_in, c_out, kernel, output size)
    convs = [(1, 8, 3, 32), (8, 16, 3, 16), (16, 32, 3, 8), (32, 32, 3, 8), (32, 64, 3, 4), (64, 64, 3, 4),
             (64, 64, 3, 2), (64, 64, 3, 2)]
    fcs = [(64, 512), (512, 512), (512, 10)]
    s = summary(model)
    assert s.macs == sum(conv_macs(*c) for c in convs) + fc_macs(fcs)
    if not batch_norm:
        assert s.total_params == sum(conv_params(*c[:3]) for c in convs) + fc_params(fcs)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_narrow_vgg_with_lrn_and_1x1_convs_trains(batch_norm):
    """Columns A-LRN's and C's special layers in one narrow VGG on 3x8x8 images."""
    mdl.manual_seed(0)
    model = VGG("conv3-8 LRN maxpool conv3-8 conv1-16 maxpool", num_classes=5, in_channels=3,
                batch_norm=batch_norm, hidden=16, pooled_size=2, image_size=8)
    check_trains(model, images((3, 3, 8, 8)), num_classes=5)


@pytest.mark.parametrize("build", [alexnet_small, vgg_small])
def test_convolutions_start_with_he_initialisation(build):
    mdl.manual_seed(0)
    model = build()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    for conv in convs:
        fan_in = conv.weight.numel() // conv.weight.shape[0]
        std = np.sqrt(2 / fan_in)
        assert abs(conv.weight.data.std() / std - 1) < (0.2 if conv.weight.numel() > 1000 else 0.5)
        assert not conv.bias.data.any()
    # what the initialisation is for: the signal keeps its scale through the ReLU stack
    x = images((16, 1, 32, 32))
    with mdl.no_grad():
        feats = model.features(x).data
    ratio = np.sqrt((feats ** 2).mean() / (x.data ** 2).mean())
    assert 0.1 < ratio < 10


def test_single_channel_and_rgb_inputs():
    with mdl.no_grad():
        assert alexnet_small(in_channels=3).eval()(images((1, 3, 32, 32))).shape == (1, 10)
        assert vgg_small(num_classes=7, in_channels=3).eval()(images((1, 3, 32, 32))).shape == (1, 7)


def test_model_tables():
    assert alexnet_module.MODELS == {"alexnet": alexnet, "zfnet": zfnet, "alexnet_small": alexnet_small}
    assert vgg_module.MODELS == {"vgg": vgg, "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19,
                                 "vgg_small": vgg_small}

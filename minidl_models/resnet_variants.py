"""Variants of ResNet: pre-activation, ResNeXt, squeeze-and-excitation, and the CIFAR ResNets.

Pre-activation ResNet (He, Zhang, Ren & Sun, "Identity Mappings in Deep Residual
Networks", 2016), Fig. 4(e): each unit is

    x -> BN -> ReLU -> conv -> BN -> ReLU -> conv -> (+ x)

with nothing after the addition, so the shortcut path from any unit to any
later one is a pure identity and gradients reach early layers unchanged. The
stages are the ImageNet ResNets' (Table 1 of the 2015 paper, see
``minidl_models.resnet``). Following the paper, the first unit takes the
activation right after conv1 "before splitting into two paths" (so it has no
BN -> ReLU of its own), and the last unit gets an extra BN -> ReLU after its
addition. A projection shortcut (where the shape changes) is pre-activated too,
as the paper's appendix says: a strided 1x1 convolution applied to the unit's
activated input, with no batch norm of its own, like every other weight layer
of a pre-activation unit.

ResNeXt-50 32x4d (Xie, Girshick, Dollar, Tu & He, "Aggregated Residual
Transformations for Deep Neural Networks", 2017), Table 1: the bottleneck's 3x3
convolution becomes a grouped one with 32 groups ("cardinality") of 4 channels
at conv2, widths doubling with each stage; the stride is on the 3x3.

    stage  output   ResNeXt-50 (32x4d)
    conv1  112x112  7x7, 64, stride 2
    conv2  56x56    3x3 max pool, stride 2
                    [1x1, 128;  3x3, 128,  C=32; 1x1, 256 ] x3
    conv3  28x28    [1x1, 256;  3x3, 256,  C=32; 1x1, 512 ] x4
    conv4  14x14    [1x1, 512;  3x3, 512,  C=32; 1x1, 1024] x6
    conv5  7x7      [1x1, 1024; 3x3, 1024, C=32; 1x1, 2048] x3
           1x1      global average pool, 1000-d fc, softmax
    params 25.0 x 10^6 (25,028,904)

SE-ResNet-50 (Hu, Shen & Sun, "Squeeze-and-Excitation Networks", 2018), Fig. 3:
ResNet-50 whose bottlenecks rescale their residual branch channel by channel
before the addition, by weights computed from the branch itself:
global average pool -> FC C->C/16 -> ReLU -> FC C/16->C -> sigmoid.
28,088,024 params with biases in the two FC layers.

CIFAR ResNets (He et al., 2015, Sec. 4.2): 6n+2 layers on 32x32 images,

    output map size  32x32   16x16   8x8
    # layers         1+2n    2n      2n
    # filters        16      32      64

then global average pooling and a 10-way FC. Shortcuts are the paper's option
A: the identity, subsampled by 2 where the map halves and zero-padded where
the channels double, so they add no parameters.

    n       3       5       7       9       18
    depth   20      32      44      56      110
    params  0.27M   0.46M   0.66M   0.85M   1.7M
"""
import minidl as mdl
from minidl import nn
from minidl_models.init import he_init
from minidl_models.resnet import BasicBlock, Bottleneck, ResNet, conv1x1, conv3x3, make_stage


# --- pre-activation ------------------------------------------------------------------

def preact_shortcut(in_channels, out_channels, stride):
    """A strided 1x1 convolution on the pre-activated input; no batch norm (see the module docstring)."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride))


class PreActUnit(nn.Module):
    """What every pre-activation unit shares: BN -> ReLU on the input, then the residual
    branch (``residual``, defined by the subclass) plus the shortcut, and nothing after
    the addition. ``bn1`` may be None: then the input arrives already activated (the
    network's first unit)."""

    def forward(self, x):
        out = x if self.bn1 is None else self.relu(self.bn1(x))
        # a projection sees the activated input like every other weight layer; an identity keeps x untouched
        shortcut = x if self.downsample is None else self.downsample(out)
        return self.residual(out) + shortcut


class PreActBasicBlock(PreActUnit):
    """BN -> ReLU -> 3x3 conv (stride) -> BN -> ReLU -> 3x3 conv, plus the shortcut."""

    expansion = 1

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.downsample = downsample

    def residual(self, out):
        return self.conv2(self.relu(self.bn2(self.conv1(out))))


class PreActBottleneck(PreActUnit):
    """BN -> ReLU -> 1x1 conv -> BN -> ReLU -> 3x3 conv (stride) -> BN -> ReLU -> 1x1 conv (x4),
    plus the shortcut."""

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.relu = nn.ReLU()
        self.conv1 = conv1x1(in_channels, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.downsample = downsample

    def residual(self, out):
        out = self.conv2(self.relu(self.bn2(self.conv1(out))))
        return self.conv3(self.relu(self.bn3(out)))


class PreActResNet(ResNet):
    """ResNet with pre-activation units: the ImageNet stem (7x7/2 conv, BN, ReLU, 3x3/2 max pool),
    four stages, a final BN -> ReLU (``bn_final``), global average pooling and the classifier."""

    def __init__(self, block, layers, num_classes=1000, in_channels=3):
        super().__init__(block, layers, num_classes, in_channels, shortcut=preact_shortcut)
        # the stem's BN -> ReLU is the first unit's pre-activation, shared by both of its paths
        self.layer1[0].bn1 = None
        self.bn_final = nn.BatchNorm2d(self.fc.in_features)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.relu(self.bn_final(x))
        return self.fc(self.avgpool(x).flatten(1))


def preact_resnet18(num_classes=1000, in_channels=3):
    return PreActResNet(PreActBasicBlock, [2, 2, 2, 2], num_classes, in_channels)


def preact_resnet34(num_classes=1000, in_channels=3):
    return PreActResNet(PreActBasicBlock, [3, 4, 6, 3], num_classes, in_channels)


def preact_resnet50(num_classes=1000, in_channels=3):
    return PreActResNet(PreActBottleneck, [3, 4, 6, 3], num_classes, in_channels)


def preact_resnet101(num_classes=1000, in_channels=3):
    return PreActResNet(PreActBottleneck, [3, 4, 23, 3], num_classes, in_channels)


def preact_resnet152(num_classes=1000, in_channels=3):
    return PreActResNet(PreActBottleneck, [3, 8, 36, 3], num_classes, in_channels)


# --- ResNeXt -----------------------------------------------------------------------------

def resnext50_32x4d(num_classes=1000, in_channels=3):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, groups=32, width_per_group=4)


# --- squeeze-and-excitation --------------------------------------------------------------

class SqueezeExcitation(nn.Module):
    """Scale each channel of x by a weight in (0, 1) computed from all channels' means.

    Squeeze: global average pooling summarises each channel by one number.
    Excitation: a bottleneck MLP (C -> C/reduction -> C) with a sigmoid turns the
    summaries into per-channel gates, letting the block model dependencies
    between channels at a cost of about 2C^2/reduction parameters.
    """

    def __init__(self, channels, reduction=16):
        super().__init__()
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Linear(channels, channels // reduction)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(channels // reduction, channels)
        self.sigmoid = nn.Sigmoid()

    def forward(self, x):
        gates = self.sigmoid(self.fc2(self.relu(self.fc1(self.avgpool(x).flatten(1)))))
        return x * gates.reshape(x.shape[0], x.shape[1], 1, 1)


class SEBottleneck(Bottleneck):
    """A bottleneck whose residual branch passes through squeeze-and-excitation after bn3,
    before the shortcut is added."""

    def __init__(self, in_channels, planes, stride=1, downsample=None, stride_in_1x1=False, reduction=16):
        super().__init__(in_channels, planes, stride, downsample, stride_in_1x1)
        self.se = SqueezeExcitation(planes * self.expansion, reduction)

    def residual(self, x):
        return self.se(super().residual(x))


def se_resnet50(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return ResNet(SEBottleneck, [3, 4, 6, 3], num_classes, in_channels, stride_in_1x1=stride_in_1x1)


# --- CIFAR ResNets -----------------------------------------------------------------------

class ZeroPadShortcut(nn.Module):
    """Option A: the identity, taking every ``stride``-th pixel and appending zero channels
    up to ``out_channels``. No parameters, so shortcuts cost nothing but memory."""

    def __init__(self, in_channels, out_channels, stride):
        super().__init__()
        if out_channels < in_channels:
            raise ValueError(f"ZeroPadShortcut: can only add channels; got {in_channels} -> {out_channels}")
        self.stride = stride
        self.extra_channels = out_channels - in_channels

    def forward(self, x):
        x = x[:, :, ::self.stride, ::self.stride]
        xp = mdl.get_array_module(x.data)
        zeros = xp.zeros((x.shape[0], self.extra_channels) + tuple(x.shape[2:]), dtype=x.dtype)
        return mdl.cat([x, zeros], dim=1)

    def extra_repr(self):
        return f"stride={self.stride}, extra_channels={self.extra_channels}"


class CifarResNet(nn.Module):
    """The paper's CIFAR-10 ResNet of ``depth`` = 6n+2 layers: a 3x3 conv to ``widths[0]``
    channels, three stages of n basic blocks at ``widths`` (the first block of the second and
    third halving the map), global average pooling and the classifier."""

    def __init__(self, depth, num_classes=10, in_channels=3, widths=(16, 32, 64)):
        super().__init__()
        if depth < 8 or (depth - 2) % 6:
            raise ValueError(f"CifarResNet: depth must be 6n+2 with n >= 1 (8, 14, 20, ...); got {depth}")
        if len(widths) != 3:
            raise ValueError(f"CifarResNet: widths must give the filters of the three stages; got {widths!r}")
        n = (depth - 2) // 6
        self.input_shape = (in_channels, 32, 32)
        self.conv1 = conv3x3(in_channels, widths[0])
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        channels = widths[0]
        for i, width in enumerate(widths):
            stage = make_stage(BasicBlock, channels, width, n, 1 if i == 0 else 2, shortcut=ZeroPadShortcut)
            setattr(self, f"layer{i + 1}", stage)
            channels = width
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        he_init(self, mode="fan_out")

    def forward(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.avgpool(x).flatten(1))


def resnet20(num_classes=10, in_channels=3):
    return CifarResNet(20, num_classes, in_channels)


def resnet32(num_classes=10, in_channels=3):
    return CifarResNet(32, num_classes, in_channels)


def resnet44(num_classes=10, in_channels=3):
    return CifarResNet(44, num_classes, in_channels)


def resnet56(num_classes=10, in_channels=3):
    return CifarResNet(56, num_classes, in_channels)


def resnet110(num_classes=10, in_channels=3):
    return CifarResNet(110, num_classes, in_channels)


def resnet_small(num_classes=10, in_channels=1):
    """ResNet-8 at half width (8, 16, 32 filters; 19,074 parameters for 1 input channel): the CIFAR
    design at the size where one MNIST epoch (60,000 images at 32x32) trains in minutes on a CPU.
    ResNet-20 needs 13 times its multiply-adds (40.3 M per image against 3.0 M)."""
    return CifarResNet(8, num_classes, in_channels, widths=(8, 16, 32))


MODELS = {"preact_resnet18": preact_resnet18, "preact_resnet34": preact_resnet34,
          "preact_resnet50": preact_resnet50, "preact_resnet101": preact_resnet101,
          "preact_resnet152": preact_resnet152, "resnext50_32x4d": resnext50_32x4d, "se_resnet50": se_resnet50,
          "resnet20": resnet20, "resnet32": resnet32, "resnet44": resnet44, "resnet56": resnet56,
          "resnet110": resnet110, "resnet_small": resnet_small}

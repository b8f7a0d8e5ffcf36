"""ResNet (He, Zhang, Ren & Sun, "Deep Residual Learning for Image Recognition", 2015), Table 1.

    layer    output   18-layer       34-layer       50-layer         101-layer        152-layer
    conv1    112x112  7x7, 64, stride 2
                      3x3 max pool, stride 2
    conv2_x  56x56    [3x3, 64]x2    [3x3, 64]x3    [1x1, 64  ]x3    x3               x3
                      [3x3, 64]      [3x3, 64]      [3x3, 64  ]
                                                    [1x1, 256 ]
    conv3_x  28x28    [3x3,128]x2    x4             [1x1, 128 ]x4    x4               x8
                      [3x3,128]                     [3x3, 128 ]
                                                    [1x1, 512 ]
    conv4_x  14x14    [3x3,256]x2    x6             [1x1, 256 ]x6    x23              x36
                      [3x3,256]                     [3x3, 256 ]
                                                    [1x1, 1024]
    conv5_x  7x7      [3x3,512]x2    x3             [1x1, 512 ]x3    x3               x3
                      [3x3,512]                     [3x3, 512 ]
                                                    [1x1, 2048]
             1x1      global average pool, 1000-d fc, softmax
    FLOPs (paper)     1.8 x 10^9     3.6 x 10^9     3.8 x 10^9       7.6 x 10^9       11.3 x 10^9
    params            11,689,512     21,797,672     25,557,032       44,549,160       60,192,808
    MACs (ours)       1.81 G         3.66 G         4.09 G / 3.86 G  7.80 G / 7.57 G  11.51 G / 11.28 G

Every convolution is followed by batch norm and has no bias (the norm's shift
makes one redundant). The first block of conv3_x..conv5_x halves the map with a
stride of 2, and where a block changes the shape its shortcut is a projection,
a strided 1x1 convolution plus batch norm (the paper's option B); elsewhere the
shortcut is the identity. The paper's "FLOPs" are multiply-adds of the
convolutions and the FC layer, with a bottleneck's stride on its first 1x1
convolution (``stride_in_1x1=True``, the second MAC figure above). Putting it on
the 3x3 instead (the default, as torchvision does) runs that 1x1 on the larger
map: it costs more, but where a strided 1x1 convolution skips three of every
four input pixels, a strided 3x3 still sees them all.

Module names follow torchvision (``conv1 bn1 relu maxpool layer1..layer4
avgpool fc``; blocks with ``conv1 bn1 conv2 bn2 [conv3 bn3] downsample``), so a
``state_dict`` has torchvision's keys and shapes.

The variants (pre-activation, ResNeXt, SE, the CIFAR ResNets) are in
``minidl_models.resnet_variants``.
"""
from minidl import nn
from minidl_models.init import he_init


def conv3x3(in_channels, out_channels, stride=1, groups=1):
    """3x3 convolution with padding 1, so only the stride changes the map size."""
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, groups=groups, bias=False)


def conv1x1(in_channels, out_channels, stride=1):
    return nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)


def projection_shortcut(in_channels, out_channels, stride):
    """The paper's option B: a strided 1x1 convolution and batch norm match the block's output shape."""
    return nn.Sequential(conv1x1(in_channels, out_channels, stride), nn.BatchNorm2d(out_channels))


class BasicBlock(nn.Module):
    """Two 3x3 convolutions (Fig. 5 left): relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))."""

    expansion = 1  # output channels = planes * expansion

    def __init__(self, in_channels, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = conv3x3(in_channels, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def residual(self, x):
        """F(x), the branch that the shortcut is added to (SE blocks rescale it)."""
        return self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)


class Bottleneck(nn.Module):
    """1x1 (reduce) -> 3x3 -> 1x1 (expand by 4), Fig. 5 right; each followed by batch norm.

    The 1x1 convolutions make the 3x3 one cheap: it runs on ``width`` channels,
    a quarter of the block's output. ``stride_in_1x1`` chooses which convolution
    carries the block's stride (see the module docstring). ``groups`` and
    ``width_per_group`` make it a ResNeXt block: the 3x3 convolution splits into
    ``groups`` paths of ``width_per_group * planes / 64`` channels each, so the
    defaults (1, 64) give ``width = planes``.
    """

    expansion = 4

    def __init__(self, in_channels, planes, stride=1, downsample=None, stride_in_1x1=False, groups=1,
                 width_per_group=64):
        super().__init__()
        width = groups * width_per_group * planes // 64
        stride_1x1, stride_3x3 = (stride, 1) if stride_in_1x1 else (1, stride)
        self.conv1 = conv1x1(in_channels, width, stride_1x1)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = conv3x3(width, width, stride_3x3, groups)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = conv1x1(width, planes * self.expansion)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample

    def residual(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        return self.bn3(self.conv3(out))

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return self.relu(self.residual(x) + shortcut)


def make_stage(block, in_channels, planes, num_blocks, stride, shortcut=projection_shortcut, **block_kwargs):
    """A Sequential of ``num_blocks`` blocks. Only the first may change the shape (stride, channels),
    so only it may need a non-identity ``shortcut(in_channels, out_channels, stride)``."""
    out_channels = planes * block.expansion
    downsample = None
    if stride != 1 or in_channels != out_channels:
        downsample = shortcut(in_channels, out_channels, stride)
    blocks = [block(in_channels, planes, stride, downsample, **block_kwargs)]
    blocks += [block(out_channels, planes, **block_kwargs) for _ in range(num_blocks - 1)]
    return nn.Sequential(*blocks)


class ResNet(nn.Module):
    """The ImageNet ResNets: a 7x7/2 stem and a 3x3/2 max pool (224 -> 56), four stages at
    64, 128, 256, 512 ``planes`` (output channels ``planes * block.expansion``), the last three
    starting with a stride of 2, then global average pooling and a fully connected classifier.

    ``layers`` is the number of blocks per stage; ``shortcut`` builds the projection where a stage
    changes the shape; ``block_kwargs`` go to every block.
    """

    def __init__(self, block, layers, num_classes=1000, in_channels=3, shortcut=projection_shortcut,
                 **block_kwargs):
        super().__init__()
        self.input_shape = (in_channels, 224, 224)
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = 64
        for i, num_blocks in enumerate(layers):
            planes = 64 * 2 ** i
            stage = make_stage(block, channels, planes, num_blocks, 1 if i == 0 else 2, shortcut, **block_kwargs)
            setattr(self, f"layer{i + 1}", stage)
            channels = planes * block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)
        # He et al.'s initialisation, with the fan-out form the ResNet paper uses
        he_init(self, mode="fan_out")

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def _basic_resnet(name, layers, num_classes, stride_in_1x1, in_channels):
    if stride_in_1x1:
        raise ValueError(f"{name}: stride_in_1x1 applies to bottleneck blocks (resnet50/101/152); "
                         f"{name}'s basic blocks have no 1x1 convolution")
    return ResNet(BasicBlock, layers, num_classes, in_channels)


def resnet18(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return _basic_resnet("resnet18", [2, 2, 2, 2], num_classes, stride_in_1x1, in_channels)


def resnet34(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return _basic_resnet("resnet34", [3, 4, 6, 3], num_classes, stride_in_1x1, in_channels)


def resnet50(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return ResNet(Bottleneck, [3, 4, 6, 3], num_classes, in_channels, stride_in_1x1=stride_in_1x1)


def resnet101(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return ResNet(Bottleneck, [3, 4, 23, 3], num_classes, in_channels, stride_in_1x1=stride_in_1x1)


def resnet152(num_classes=1000, stride_in_1x1=False, in_channels=3):
    return ResNet(Bottleneck, [3, 8, 36, 3], num_classes, in_channels, stride_in_1x1=stride_in_1x1)


MODELS = {"resnet18": resnet18, "resnet34": resnet34, "resnet50": resnet50, "resnet101": resnet101,
          "resnet152": resnet152}

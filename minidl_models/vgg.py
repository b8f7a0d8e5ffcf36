"""VGG (Simonyan & Zisserman, 2015): the columns of the paper's Table 1.

Each column is written below in the table's own notation: ``conv3-64`` is a
3x3 convolution with 64 output channels (stride 1, padding 1, so the size is
kept), ``conv1-256`` a 1x1 one (column C), ``LRN`` AlexNet's local response
normalisation with AlexNet's constants (column A-LRN; it follows the first
convolution's ReLU, where AlexNet puts it), ``maxpool`` a 2x2 max pool with
stride 2. Every convolution is followed by a ReLU.

    column  weight layers  params (1000 classes)
    A       11             132,863,336
    A-LRN   11             132,863,336   (LRN has no parameters)
    B       13             133,047,848
    C       16             133,638,952
    D       16             138,357,544   (15.47 G MACs at 224x224)
    E       19             143,667,240

For 3x224x224 inputs the five pools leave 512x7x7 = 25,088 features for the
classifier, FC-4096, FC-4096 (ReLU, dropout 0.5 on each, as in AlexNet) and
FC-num_classes. As in torchvision, an adaptive average pool to 7x7 sits in
between: the identity at 224x224, and what lets the same weights run on other
image sizes (the paper instead turned the classifier into convolutions at test
time).

Convolutions are initialised as He et al. (2015) derive for ReLU networks
(`minidl_models.init.he_init`).

``batch_norm=True`` inserts a BatchNorm2d after each convolution, before its
ReLU (a later addition, not in the paper; D then has 138,365,992 params).
"""
import re

from minidl import nn
from minidl_models.alexnet import dropout_classifier, paper_lrn
from minidl_models.init import he_init

CONFIGS = {
    "A": "conv3-64 maxpool conv3-128 maxpool conv3-256 conv3-256 maxpool "
         "conv3-512 conv3-512 maxpool conv3-512 conv3-512 maxpool",
    "A-LRN": "conv3-64 LRN maxpool conv3-128 maxpool conv3-256 conv3-256 maxpool "
             "conv3-512 conv3-512 maxpool conv3-512 conv3-512 maxpool",
    "B": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 maxpool "
         "conv3-512 conv3-512 maxpool conv3-512 conv3-512 maxpool",
    "C": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 conv1-256 maxpool "
         "conv3-512 conv3-512 conv1-512 maxpool conv3-512 conv3-512 conv1-512 maxpool",
    "D": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool conv3-256 conv3-256 conv3-256 maxpool "
         "conv3-512 conv3-512 conv3-512 maxpool conv3-512 conv3-512 conv3-512 maxpool",
    "E": "conv3-64 conv3-64 maxpool conv3-128 conv3-128 maxpool "
         "conv3-256 conv3-256 conv3-256 conv3-256 maxpool conv3-512 conv3-512 conv3-512 conv3-512 maxpool "
         "conv3-512 conv3-512 conv3-512 conv3-512 maxpool",
}

# vgg_small: column A at an eighth of its widths, small enough to train on MNIST on a CPU
SMALL_CONFIG = ("conv3-8 maxpool conv3-16 maxpool conv3-32 conv3-32 maxpool conv3-64 conv3-64 maxpool "
                "conv3-64 conv3-64 maxpool")


def make_features(config, in_channels=3, batch_norm=False):
    """The convolutional part of a column written in Table 1's notation (see the module docstring).
    Returns (layers, channels of the last convolution)."""
    layers, channels = [], in_channels
    for token in config.split():
        conv = re.fullmatch(r"conv(\d+)-(\d+)", token)
        if token == "maxpool":
            layers.append(nn.MaxPool2d(2, 2))
        elif token == "LRN":
            layers.append(paper_lrn())
        elif conv:
            kernel, out = int(conv[1]), int(conv[2])
            # padding (k-1)/2 keeps the size: 1 for conv3, none for conv1
            layers.append(nn.Conv2d(channels, out, kernel, padding=kernel // 2))
            if batch_norm:
                layers.append(nn.BatchNorm2d(out))
            layers.append(nn.ReLU())
            channels = out
        else:
            raise ValueError(f"vgg: unknown layer {token!r} in config {config!r}")
    return nn.Sequential(*layers), channels


class VGG(nn.Module):
    """``features`` (convolutions and pools), ``avgpool`` (adaptive, to ``pooled_size``) and
    ``classifier`` (two hidden layers of ``hidden`` units)."""

    def __init__(self, config, num_classes, in_channels, batch_norm, hidden, pooled_size, image_size):
        super().__init__()
        self.features, channels = make_features(config, in_channels, batch_norm)
        self.avgpool = nn.AdaptiveAvgPool2d((pooled_size, pooled_size))
        self.classifier = dropout_classifier(channels * pooled_size * pooled_size, hidden, num_classes)
        self.input_shape = (in_channels, image_size, image_size)
        # the paper initialised A from N(0, 0.01) and the deeper columns from A's trained layers,
        # then found that Glorot & Bengio's random initialisation makes that unnecessary; He's
        # is its form for ReLU networks
        he_init(self)

    def forward(self, x):
        return self.classifier(self.avgpool(self.features(x)).flatten(1))


def vgg(config, batch_norm=False, num_classes=1000, in_channels=3):
    """The VGG column ``config`` of Table 1: 'A', 'A-LRN', 'B', 'C', 'D' or 'E'; input 3x224x224."""
    if config not in CONFIGS:
        raise ValueError(f"vgg: config must be one of {', '.join(CONFIGS)}; got {config!r}")
    return VGG(CONFIGS[config], num_classes, in_channels, batch_norm, hidden=4096, pooled_size=7, image_size=224)


def vgg11(batch_norm=False, num_classes=1000, in_channels=3):
    """VGG column A (11 weight layers)."""
    return vgg("A", batch_norm, num_classes, in_channels)


def vgg13(batch_norm=False, num_classes=1000, in_channels=3):
    """VGG column B (13 weight layers)."""
    return vgg("B", batch_norm, num_classes, in_channels)


def vgg16(batch_norm=False, num_classes=1000, in_channels=3):
    """VGG column D (16 weight layers, all 3x3)."""
    return vgg("D", batch_norm, num_classes, in_channels)


def vgg19(batch_norm=False, num_classes=1000, in_channels=3):
    """VGG column E (19 weight layers)."""
    return vgg("E", batch_norm, num_classes, in_channels)


def vgg_small(num_classes=10, in_channels=1, batch_norm=False):
    """Column A at an eighth of its widths, for 1x32x32 inputs (MNIST padded by 2):

        conv3-8, maxpool                  -> 8x16x16
        conv3-16, maxpool                 -> 16x8x8
        conv3-32, conv3-32, maxpool       -> 32x4x4
        conv3-64, conv3-64, maxpool       -> 64x2x2
        conv3-64, conv3-64, maxpool       -> 64x1x1
        fc 64 -> 512 -> 512 -> num_classes, dropout 0.5 after the hidden layers

    The five pools take 32x32 to 1x1 as they take 224x224 to 7x7.
    """
    return VGG(SMALL_CONFIG, num_classes, in_channels, batch_norm, hidden=512, pooled_size=1, image_size=32)


MODELS = {"vgg": vgg, "vgg11": vgg11, "vgg13": vgg13, "vgg16": vgg16, "vgg19": vgg19, "vgg_small": vgg_small}

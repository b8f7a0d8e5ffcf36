"""AlexNet (Krizhevsky, Sutskever & Hinton, 2012) and ZFNet (Zeiler & Fergus, 2013).

AlexNet, as the paper's Figure 2 and Section 3 describe it (input 3x227x227:
the paper writes 224, but only 227 makes an 11x11 stride-4 convolution give
55x55):

    conv1  96 11x11 /4            -> 96x55x55      34,944 params   105.4 M MACs
           ReLU, LRN, max 3x3 /2  -> 96x27x27
    conv2  256 5x5 pad 2, 2 groups -> 256x27x27    307,456         223.9 M
           ReLU, LRN, max 3x3 /2  -> 256x13x13
    conv3  384 3x3 pad 1          -> 384x13x13    885,120         149.5 M
    conv4  384 3x3 pad 1, 2 groups -> 384x13x13    663,936         112.1 M
    conv5  256 3x3 pad 1, 2 groups -> 256x13x13    442,624          74.8 M
           ReLU, max 3x3 /2       -> 256x6x6
    fc6    9216 -> 4096, ReLU, dropout 0.5      37,752,832          37.7 M
    fc7    4096 -> 4096, ReLU, dropout 0.5      16,781,312          16.8 M
    fc8    4096 -> 1000                          4,097,000           4.1 M
                                        total   60,965,224         724.4 M

(every conv is followed by a ReLU). The paper split the net across two GPUs; a
layer whose kernels see only their own GPU's half of the previous layer is a
grouped convolution with groups=2 (conv2, conv4, conv5; conv3 and the fully
connected layers read both halves). ``grouped=False`` gives the single-tower
variant (62,378,344 params).

Pooling windows of 3 with stride 2 overlap ("overlapping pooling", Section 3.4).
Dropout: "setting to zero the output of each hidden neuron with probability
0.5 ... in the first two fully-connected layers", i.e. on the outputs of fc6
and fc7, where Caffe's reference model also puts it.

Local response normalisation (Section 3.3) follows the ReLU of conv1 and conv2:

    b_c = a_c / (k + alpha * sum of a_j^2 over the n channels j around c)^beta

with n=5, k=2, alpha=1e-4, beta=0.75. ``nn.LocalResponseNorm`` follows PyTorch,
which divides its alpha by the window size, so the paper's alpha is passed as
alpha * n = 5e-4.

Initialisation: He et al. (2015) for the convolutions (see `minidl_models.init`), not
the paper's N(0, 0.01) with biases of 1, which belongs to its training recipe.
"""
from minidl import nn
from minidl_models.init import he_init

# The paper's LRN constants, mapped to nn.LocalResponseNorm (see the module docstring).
LRN_SIZE, LRN_K, LRN_ALPHA, LRN_BETA = 5, 2.0, 1e-4, 0.75


def paper_lrn():
    """AlexNet's LRN layer (n=5, k=2, alpha=1e-4, beta=0.75 in the paper's formula)."""
    return nn.LocalResponseNorm(LRN_SIZE, alpha=LRN_ALPHA * LRN_SIZE, beta=LRN_BETA, k=LRN_K)


def dropout_classifier(in_features, hidden, num_classes):
    """Two hidden fully connected layers with ReLU and dropout 0.5 on their outputs, then the
    class scores: AlexNet's fc6-fc8, which ZFNet and VGG kept."""
    return nn.Sequential(
        nn.Linear(in_features, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(hidden, num_classes),
    )


class AlexNet(nn.Module):
    """Convolutional ``features``, flattened into a ``classifier``: the layout of AlexNet,
    ZFNet and alexnet_small, which differ only in the layers they are given."""

    def __init__(self, features, classifier, input_shape):
        super().__init__()
        self.features = features
        self.classifier = classifier
        self.input_shape = input_shape
        he_init(self)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def alexnet(num_classes=1000, grouped=True, in_channels=3):
    """AlexNet for 3x227x227 inputs; ``grouped`` keeps the paper's two-GPU connectivity."""
    g = 2 if grouped else 1
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 11, stride=4), nn.ReLU(), paper_lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(96, 256, 5, padding=2, groups=g), nn.ReLU(), paper_lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1, groups=g), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1, groups=g), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    return AlexNet(features, dropout_classifier(256 * 6 * 6, 4096, num_classes), (in_channels, 227, 227))


def zfnet(num_classes=1000, in_channels=3):
    """ZFNet (Zeiler & Fergus, 2013, Figure 3) for 3x224x224 inputs.

        conv1  96 7x7 /2 pad 1         -> 96x110x110
               ReLU, max 3x3 /2, LRN   -> 96x55x55
        conv2  256 5x5 /2              -> 256x26x26
               ReLU, max 3x3 /2, LRN   -> 256x13x13
        conv3  384 3x3 pad 1, ReLU     -> 384x13x13
        conv4  384 3x3 pad 1, ReLU     -> 384x13x13
        conv5  256 3x3 pad 1, ReLU     -> 256x13x13
               max 3x3 /2              -> 256x6x6
        fc6, fc7, fc8 as AlexNet's              total 62,357,608 params

    Zeiler & Fergus shrank AlexNet's first layer (11x11/4 -> 7x7/2) after their
    visualisations showed aliasing and dead filters there, and made layers 3-5
    dense (no groups): they trained on one GPU.

    Choices where the paper is not explicit:

    * Input 224x224, the paper's crop. A 7x7/2 conv gives Figure 3's 110x110
      only with one pixel of padding (or a 225 input); we pad by 1.
    * Figure 3's 55x55 and 13x13 after the 3x3/2 pools need the last partial
      window (110 -> 55, 26 -> 13), so the pools use ``ceil_mode=True`` (it
      leaves 13 -> 6 unchanged).
    * "Contrast normalized across feature maps" after the first two pools: we
      use AlexNet's LRN with AlexNet's constants, in the paper's order
      (ReLU, pool, normalise).
    """
    features = nn.Sequential(
        nn.Conv2d(in_channels, 96, 7, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
        paper_lrn(),
        nn.Conv2d(96, 256, 5, stride=2), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True), paper_lrn(),
        nn.Conv2d(256, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2, ceil_mode=True),
    )
    return AlexNet(features, dropout_classifier(256 * 6 * 6, 4096, num_classes), (in_channels, 224, 224))


def alexnet_small(num_classes=10, in_channels=1, grouped=True):
    """AlexNet's ideas at MNIST scale, for 1x32x32 inputs (MNIST padded by 2), at a quarter of
    AlexNet's convolution widths:

        conv1  24 5x5 /2 pad 2        -> 24x16x16   (a large stride first, as 11x11/4)
               ReLU, LRN, max 3x3 /2  -> 24x7x7
        conv2  64 5x5 pad 2, 2 groups -> 64x7x7
               ReLU, LRN, max 3x3 /2  -> 64x3x3
        conv3  96 3x3 pad 1           -> 96x3x3
        conv4  96 3x3 pad 1, 2 groups -> 96x3x3
        conv5  64 3x3 pad 1, 2 groups -> 64x3x3
               ReLU, max 3x3 /2       -> 64x1x1
        fc     64 -> 512 -> 512 -> num_classes, dropout 0.5 after the hidden layers

    The feature maps shrink 32 -> 16 -> 7 -> 3 -> 1 as AlexNet's 227 -> 55 -> 27 -> 13 -> 6.
    """
    g = 2 if grouped else 1
    features = nn.Sequential(
        nn.Conv2d(in_channels, 24, 5, stride=2, padding=2), nn.ReLU(), paper_lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(24, 64, 5, padding=2, groups=g), nn.ReLU(), paper_lrn(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 96, 3, padding=1), nn.ReLU(),
        nn.Conv2d(96, 96, 3, padding=1, groups=g), nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1, groups=g), nn.ReLU(), nn.MaxPool2d(3, 2),
    )
    return AlexNet(features, dropout_classifier(64, 512, num_classes), (in_channels, 32, 32))


MODELS = {"alexnet": alexnet, "zfnet": zfnet, "alexnet_small": alexnet_small}

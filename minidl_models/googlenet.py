"""GoogLeNet, the network behind Inception v1 (Szegedy et al., 2014, "Going deeper with convolutions").

Table 1 of the paper, for a 3x224x224 input. Every convolution (the reductions
and projections inside the Inception modules too) is followed by a ReLU; every
3x3/2 max pool rounds its output size up (ceil mode), which is what takes
112 -> 56 -> 28 -> 14 -> 7.

    name          type, patch/stride   output      #1x1 #3x3red #3x3 #5x5red #5x5 pool proj
    conv1         conv 7x7/2, pad 3    112x112x64
    maxpool1      max pool 3x3/2       56x56x64
    lrn1          LRN (Figure 3)
    conv2, conv3  conv 1x1, 3x3 pad 1  56x56x192             64  192
    lrn2          LRN (Figure 3)
    maxpool2      max pool 3x3/2       28x28x192
    inception3a                        28x28x256     64      96  128      16   32        32
    inception3b                        28x28x480    128     128  192      32   96        64
    maxpool3      max pool 3x3/2       14x14x480
    inception4a                        14x14x512    192      96  208      16   48        64
    inception4b                        14x14x512    160     112  224      24   64        64
    inception4c                        14x14x512    128     128  256      24   64        64
    inception4d                        14x14x528    112     144  288      32   64        64
    inception4e                        14x14x832    256     160  320      32  128       128
    maxpool4      max pool 3x3/2       7x7x832
    inception5a                        7x7x832      256     160  320      32  128       128
    inception5b                        7x7x1024     384     192  384      48  128       128
    avgpool       avg pool 7x7/1       1x1x1024
    dropout       dropout (40%)
    fc            linear               1x1x1000

An Inception module runs four branches on the same input and stacks their
outputs along the channels: a 1x1 convolution; a 1x1 reduction then a 3x3; a
1x1 reduction then a 5x5 (a true 5x5, as in the paper: torchvision's port uses
a 3x3 there); a 3x3/1 max pool then a 1x1 projection.

While training, two auxiliary classifiers read the outputs of 4a and 4d: a 5x5/3
average pool (14x14 -> 4x4), a 1x1 convolution to 128 channels, a 1024-unit
fully connected layer, 70% dropout and a linear classifier. Their losses are
added with weight 0.3 (`googlenet_loss`); at inference they are
discarded.

The paper's network has no batch normalisation (that came with Inception v2), so
every convolution and linear layer carries a bias. With true 5x5 branches and
biases everywhere the counts at 1000 classes are 6,998,552 parameters without the
auxiliary heads and 13,378,280 with them (each head is ~3.19M, mostly its 2048x1024
layer), and a forward pass costs 1.58 G multiply-adds, in line with the paper's
budget of 1.5 billion. (Table 1's params column is rounded, a little differently
row by row, so it is no use for an exact count.)

The paper gives no constants for its local response normalisation; we use
those of the BVLC Caffe reimplementation of GoogLeNet (size 5, alpha 1e-4,
beta 0.75, k 1). Caffe divides alpha by the size as minidl does, so they carry
over unchanged.
"""
from minidl import concat, nn
from minidl.nn import functional as F
from minidl_models.init import he_init

AUX_LOSS_WEIGHT = 0.3  # the paper's discount on each auxiliary classifier's loss


class ConvReLU(nn.Module):
    """A convolution with bias followed by a ReLU: the paper's unit of depth."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.conv(x))


class Inception(nn.Module):
    """The four-branch module of Table 1; output channels c1x1 + c3x3 + c5x5 + pool_proj,
    spatial size unchanged (each branch pads to keep it)."""

    def __init__(self, in_channels, c1x1, c3x3red, c3x3, c5x5red, c5x5, pool_proj):
        super().__init__()
        self.branch1 = ConvReLU(in_channels, c1x1, 1)
        # the 1x1 reductions are what make the 3x3 and 5x5 affordable: 4e's 5x5 sees 32 channels, not 528
        self.branch2 = nn.Sequential(ConvReLU(in_channels, c3x3red, 1), ConvReLU(c3x3red, c3x3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvReLU(in_channels, c5x5red, 1), ConvReLU(c5x5red, c5x5, 5, padding=2))
        # the pooling branch keeps its input's channel count, so a 1x1 projection bounds it
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1), ConvReLU(in_channels, pool_proj, 1))

    def forward(self, x):
        return concat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], axis=1)


class InceptionAux(nn.Module):
    """An auxiliary classifier: 5x5/3 average pool, 1x1 conv, fully connected + ReLU,
    dropout 0.7, linear. ``pooled`` is the side of the pooled map (4 for a 14x14 input)."""

    def __init__(self, in_channels, num_classes, pooled=4, reduce=128, hidden=1024):
        super().__init__()
        self.avgpool = nn.AvgPool2d(5, stride=3)
        self.conv = ConvReLU(in_channels, reduce, 1)
        self.fc1 = nn.Linear(reduce * pooled * pooled, hidden)
        self.relu = nn.ReLU()
        self.dropout = nn.Dropout(0.7)
        self.fc2 = nn.Linear(hidden, num_classes)

    def forward(self, x):
        x = self.conv(self.avgpool(x)).flatten(1)
        return self.fc2(self.dropout(self.relu(self.fc1(x))))


def _outputs(logits, aux):
    """(logits, aux1, ...) while the auxiliary heads run, else the logits alone."""
    return (logits, *aux) if aux else logits


class GoogLeNet(nn.Module):
    """The paper's network; in training mode with ``aux_logits`` the forward pass returns
    ``(logits, aux1, aux2)``, otherwise the logits."""

    def __init__(self, num_classes=1000, aux_logits=True, in_channels=3):
        super().__init__()
        self.input_shape = (in_channels, 224, 224)
        self.aux_logits = aux_logits
        self.conv1 = ConvReLU(in_channels, 64, 7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.lrn1 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.conv2 = ConvReLU(64, 64, 1)
        self.conv3 = ConvReLU(64, 192, 3, padding=1)
        self.lrn2 = nn.LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=1.0)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        if aux_logits:
            self.aux1 = InceptionAux(512, num_classes)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        if aux_logits:
            self.aux2 = InceptionAux(528, num_classes)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        # the paper's 7x7/1 average pool; adaptive, so other input sizes still reach the classifier
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(1024, num_classes)
        he_init(self)

    def criterion(self, outputs, target):
        """The paper's training loss, `googlenet_loss`; ``minidl train`` uses it."""
        return googlenet_loss(outputs, target)

    def forward(self, x):
        aux = []
        run_aux = self.aux_logits and self.training
        x = self.lrn1(self.maxpool1(self.conv1(x)))
        x = self.maxpool2(self.lrn2(self.conv3(self.conv2(x))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        x = self.inception4a(x)
        if run_aux:
            aux.append(self.aux1(x))
        x = self.inception4d(self.inception4c(self.inception4b(x)))
        if run_aux:
            aux.append(self.aux2(x))
        x = self.maxpool4(self.inception4e(x))
        x = self.inception5b(self.inception5a(x))
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return _outputs(logits, aux)


class GoogLeNetSmall(nn.Module):
    """GoogLeNet's ideas at MNIST scale, for 32x32 inputs: a strided stem convolution,
    Inception modules with 1x1 reductions and true 5x5 branches, ceil-mode 3x3/2 max
    pools between stages (16 -> 8 -> 4), global average pooling, dropout, one linear
    layer, and an optional auxiliary head on 4a.

        name         type, patch/stride  output     #1x1 #3x3red #3x3 #5x5red #5x5 pool proj
        conv1        conv 5x5/2, pad 2   16x16x16
        inception3a                      16x16x48     12      12   16       4   12         8
        maxpool1     max pool 3x3/2      8x8x48
        inception4a                      8x8x64       16      12   24       4   12        12
        inception4b                      8x8x80       24      16   32       4   12        12
        maxpool2     max pool 3x3/2      4x4x80
        inception5a                      4x4x96       32      16   32       4   16        16
        avgpool      global average      1x1x96
        dropout      dropout (40%)
        fc           linear              num_classes

    The auxiliary head reads 4a: 5x5/3 average pool (8x8 -> 2x2), 1x1 conv to 32, 64 units.

    Narrow as it is, a NumPy step costs more in pooling and memory traffic than in
    multiply-adds (2.2M per image), so depth was cut rather than width: the stem is one
    strided convolution (the paper's conv/2 + pool/2 would pool a 32x32 map) and stage 3
    has one module. The LRN layers are left out: they change little (the batch-norm
    Inception dropped them) and cost time on a CPU.

    ``aux_logits`` defaults to off so that the plain cross-entropy of the training loop
    applies; with it on, train with `googlenet_loss`.
    """

    def __init__(self, num_classes=10, aux_logits=False, in_channels=1):
        super().__init__()
        self.input_shape = (in_channels, 32, 32)
        self.aux_logits = aux_logits
        self.conv1 = ConvReLU(in_channels, 16, 5, stride=2, padding=2)
        self.inception3a = Inception(16, 12, 12, 16, 4, 12, 8)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception4a = Inception(48, 16, 12, 24, 4, 12, 12)
        if aux_logits:
            self.aux1 = InceptionAux(64, num_classes, pooled=2, reduce=32, hidden=64)
        self.inception4b = Inception(64, 24, 16, 32, 4, 12, 12)
        self.maxpool2 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception5a = Inception(80, 32, 16, 32, 4, 16, 16)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(0.4)
        self.fc = nn.Linear(96, num_classes)
        he_init(self)

    def criterion(self, outputs, target):
        """The paper's training loss, `googlenet_loss`; ``minidl train`` uses it."""
        return googlenet_loss(outputs, target)

    def forward(self, x):
        aux = []
        x = self.maxpool1(self.inception3a(self.conv1(x)))
        x = self.inception4a(x)
        if self.aux_logits and self.training:
            aux.append(self.aux1(x))
        x = self.maxpool2(self.inception4b(x))
        x = self.inception5a(x)
        logits = self.fc(self.dropout(self.avgpool(x).flatten(1)))
        return _outputs(logits, aux)


def googlenet_loss(outputs, target):
    """The paper's training loss: cross-entropy of the main classifier plus 0.3 times that
    of each auxiliary one, given the tuple a training-mode forward returns; plain
    cross-entropy given a single tensor of logits."""
    if not isinstance(outputs, tuple):
        return F.cross_entropy(outputs, target)
    logits, *aux = outputs
    loss = F.cross_entropy(logits, target)
    for a in aux:
        loss = loss + AUX_LOSS_WEIGHT * F.cross_entropy(a, target)
    return loss


def googlenet(num_classes=1000, aux_logits=True, in_channels=3):
    return GoogLeNet(num_classes, aux_logits, in_channels)


def googlenet_small(num_classes=10, in_channels=1, aux_logits=False):
    return GoogLeNetSmall(num_classes, aux_logits, in_channels)


MODELS = {"googlenet": googlenet, "googlenet_small": googlenet_small}

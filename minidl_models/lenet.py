"""LeNet-5 (LeCun et al., 1998), as the seeds define it.

    input 1x32x32 (MNIST's 28x28 padded by 2)
    C1  conv 1->6, 5x5        -> 6x28x28     156 params
        tanh, 2x2 average pool -> 6x14x14
    C3  conv 6->16, 5x5       -> 16x10x10  2,416 params
        tanh, 2x2 average pool -> 16x5x5
    C5  conv 16->120, 5x5     -> 120x1x1  48,120 params
        tanh
    F6  linear 120->84                    10,164 params
        tanh
        linear 84->10                        850 params
                                   total  61,706

``activation='relu', pool='max'`` gives the modern variant.
"""
from minidl import nn

ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU, "sigmoid": nn.Sigmoid}
POOLS = {"avg": nn.AvgPool2d, "max": nn.MaxPool2d}


class LeNet5(nn.Module):
    input_shape = (1, 32, 32)

    def __init__(self, num_classes=10, activation="tanh", pool="avg", in_channels=1):
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"lenet5: activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        if pool not in POOLS:
            raise ValueError(f"lenet5: pool must be one of {sorted(POOLS)}; got {pool!r}")
        act, pooling = ACTIVATIONS[activation], POOLS[pool]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5), act(), pooling(2),
            nn.Conv2d(6, 16, 5), act(), pooling(2),
            nn.Conv2d(16, 120, 5), act(),
        )
        self.classifier = nn.Sequential(nn.Linear(120, 84), act(), nn.Linear(84, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


def lenet5(num_classes=10, activation="tanh", pool="avg", in_channels=1):
    return LeNet5(num_classes, activation, pool, in_channels)

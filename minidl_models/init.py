"""Initialising the convolutions of the deep families (He et al., 2015).

minidl's default for a convolution, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) as in PyTorch, has a sixth
of the variance 2/fan that keeps a ReLU network's signal steady: each layer then shrinks the signal's
variance about sixfold, and without batch norm the class scores of a deep network hardly depend on
the image at the start. Measured on MNIST, SGD (lr 0.01, momentum 0.9, batch 64): alexnet_small and
vgg_small were still at chance after 300 steps with the default, and near 90% test accuracy with He
initialisation; googlenet_small, after 200 Adam steps, 70% against 88%.
"""
from minidl import nn
from minidl.nn import init


def he_init(model, mode="fan_in"):
    """N(0, 2/fan) weights and zero biases for every convolution of ``model``. ``mode`` picks the
    fan: 'fan_in' keeps the forward signal's variance steady, 'fan_out' the gradients' (as the
    ResNet paper uses). Linear layers keep their default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            init.kaiming_normal_(m.weight, mode=mode, nonlinearity="relu")
            if m.bias is not None:
                init.zeros_(m.bias)
    return model

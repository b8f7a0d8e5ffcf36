"""minidl_models: the classic CNN families built on minidl.

    from minidl_models import get_model, summary
    model = get_model("resnet50")
    print(summary(model))            # at the paper's input size, model.input_shape
    model = load("runs/latest/model.npz")   # a model minidl train saved, ready: predict(model, image)

Every constructor takes ``num_classes`` and ``in_channels``; each family also has a
small variant for 32x32 images (``lenet5``, ``alexnet_small``, ``vgg_small``,
``googlenet_small``, ``resnet_small`` and the CIFAR ResNets) that trains on a CPU.
"""
from minidl_models import alexnet as _alexnet, googlenet as _googlenet, resnet as _resnet
from minidl_models import resnet_variants as _resnet_variants, vgg as _vgg
from minidl_models.alexnet import alexnet, alexnet_small, zfnet
from minidl_models.googlenet import googlenet, googlenet_loss, googlenet_small
from minidl_models.lenet import LeNet5, lenet5
from minidl_models.loading import load, predict
from minidl_models.resnet import resnet18, resnet34, resnet50, resnet101, resnet152
from minidl_models.summary import ModelSummary, summary
from minidl_models.vgg import vgg, vgg11, vgg13, vgg16, vgg19, vgg_small

# Every model buildable from its name alone (``vgg`` needs a column, so it is called directly).
MODELS = {"lenet5": lenet5}
for _module in (_alexnet, _vgg, _googlenet, _resnet, _resnet_variants):
    MODELS.update({name: make for name, make in _module.MODELS.items() if name != "vgg"})
del _module


def model_constructor(name):
    """The function that builds model ``name``; an unknown name lists the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name]


def get_model(name, **kwargs):
    """Build a model by name; an unknown name lists the valid ones."""
    return model_constructor(name)(**kwargs)



__all__ = ["LeNet5", "MODELS", "ModelSummary", "alexnet", "alexnet_small", "get_model",
           "googlenet", "googlenet_loss", "googlenet_small", "lenet5", "load", "model_constructor", "predict",
           "resnet18", "resnet34", "resnet50", "resnet101", "resnet152", "summary", "vgg", "vgg11", "vgg13", "vgg16",
           "vgg19", "vgg_small", "zfnet"]

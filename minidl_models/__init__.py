"""minidl_models: the classic CNN families built on minidl.

    from minidl_models import get_model
    model = get_model("lenet5")
"""
from minidl_models.lenet import LeNet5, lenet5
from minidl_models.summary import ModelSummary, summary

MODELS = {"lenet5": lenet5}


def get_model(name, **kwargs):
    """Build a model by name; an unknown name lists the valid ones."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(sorted(MODELS))}")
    return MODELS[name](**kwargs)


__all__ = ["LeNet5", "MODELS", "ModelSummary", "get_model", "lenet5", "summary"]

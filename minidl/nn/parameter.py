"""Parameter: a tensor that a Module registers as learnable."""
from minidl.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that requires grad. ``data`` may be an ndarray or a Tensor
    (whose array is taken, cut from any graph)."""

    def __init__(self, data, requires_grad=True):
        super().__init__(data.data if isinstance(data, Tensor) else data, requires_grad=requires_grad)

    def __repr__(self):
        return "Parameter containing:\n" + super().__repr__()

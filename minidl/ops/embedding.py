"""Embedding lookup: the rows of a weight matrix picked by integer indices."""
import numpy as np

from minidl import _checks, backend
from minidl.ops._util import FLOAT_ONLY, op_dtype
from minidl.ops.shape import GetItemGrad
from minidl.tensor import Function, Tensor


class Embedding(Function):
    """y[p] = weight[index[p]] for every position p of the integer array ``index``: y has shape
    index.shape + (embedding_dim,).

    y is linear in weight, and row k of weight reaches every position that holds k, so
    dL/dweight[k] = sum of gy[p] over the positions p with index[p] == k: a scatter-add of gy
    (`GetItemGrad`, whose own backward is the lookup again, so it can be differentiated again). Row
    ``padding_idx``, if given, gets no gradient, as in PyTorch: its positions are left out of the
    scatter, so not even a NaN reaches it.
    """

    keep_inputs = keep_outputs = ()

    def __init__(self, index, padding_idx):
        self.index, self.padding_idx = index, padding_idx

    def forward(self, weight):
        self.weight_shape = weight.shape
        return weight[self.index]

    def backward(self, gy):
        index = self.index
        if self.padding_idx is not None:
            kept = index != self.padding_idx
            index, gy = index[kept], gy[kept]
        return GetItemGrad((index,), self.weight_shape)(gy)


def check_embedding_weight(where, weight):
    """ValueError naming ``where`` unless weight is a floating-point (num_embeddings, embedding_dim) matrix."""
    if weight.ndim != 2:
        raise ValueError(f"{where}: expected a 2-D weight (num_embeddings, embedding_dim); "
                         f"got shape {tuple(weight.shape)}")
    op_dtype(where, FLOAT_ONLY, (weight,), "weight")


def check_padding_idx(where, padding_idx, num_embeddings):
    """``padding_idx`` as a row in [0, num_embeddings), a negative one counted from the end as in
    PyTorch, or None; a layer runs this once, when it is made."""
    if padding_idx is None:
        return None
    if not (_checks.is_int(padding_idx) and -num_embeddings <= padding_idx < num_embeddings):
        _checks.fail(where, "padding_idx", padding_idx,
                     f"None or an int in [-{num_embeddings}, {num_embeddings}) for {num_embeddings} embeddings")
    return int(padding_idx) % num_embeddings


def check_embedding_input(where, index, num_embeddings):
    """The indices as an integer array; ValueError naming ``where`` and the dtype for other dtypes,
    IndexError naming the index and the range for one outside [0, num_embeddings)."""
    t = index.data if isinstance(index, Tensor) else index if backend.is_array(index) else np.asarray(index)
    if t.dtype.kind not in "iu":
        raise ValueError(f"{where}: input must hold integer indices; got dtype {t.dtype} (convert first, e.g. "
                         "x.long())")
    bad = (t < 0) | (t >= num_embeddings)
    if bool(bad.any()):  # where t lives: free for host indices, a wait for the GPU for device ones
        raise IndexError(f"{where}: index {int(t[bad][0])} is out of range for {num_embeddings} "
                         f"embeddings (expected 0 <= index < {num_embeddings})")
    return t


def _embedding(index, weight, padding_idx):
    """The lookup on checked arguments (``index`` from check_embedding_input): embedding and
    nn.Embedding both end here."""
    return Embedding(backend.to_device(index, weight.device), padding_idx)(weight)


def embedding(input, weight, padding_idx=None):
    """The rows of ``weight`` (num_embeddings, embedding_dim) at the integer indices ``input``, of
    any shape: the result has shape input.shape + (embedding_dim,). Repeated indices accumulate
    their gradients; row ``padding_idx`` gets none (its values are returned as they are)."""
    op = "embedding"
    check_embedding_weight(op, weight)
    padding_idx = check_padding_idx(op, padding_idx, weight.shape[0])
    return _embedding(check_embedding_input(op, input, weight.shape[0]), weight, padding_idx)

"""The embedding layer: a lookup table of learned vectors, one per index."""
import numpy as np

from minidl import _checks
from minidl.nn import init
from minidl.nn.module import Module
from minidl.nn.parameter import Parameter
from minidl.ops import embedding


class Embedding(Module):
    """Maps integer indices of any shape to rows of ``weight`` (num_embeddings, embedding_dim):
    an input of shape S gives S + (embedding_dim,).

    Initialised as PyTorch does: weight from N(0, 1), with row ``padding_idx`` (if given; a negative
    one counts from the end) set to 0. That row gets no gradient, so it stays what it is, the
    vector of a padding token.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None):
        super().__init__()
        self.num_embeddings = _checks.check_int("Embedding", "num_embeddings", num_embeddings, 1)
        self.embedding_dim = _checks.check_int("Embedding", "embedding_dim", embedding_dim, 0)
        self.padding_idx = embedding.check_padding_idx("Embedding", padding_idx, self.num_embeddings)
        self.weight = Parameter(np.empty((self.num_embeddings, self.embedding_dim), dtype=np.float32))
        self.reset_parameters()

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            self.weight.data[self.padding_idx] = 0

    def forward(self, input):
        name = _checks.layer_name(self)
        index = embedding.check_embedding_input(name, input, self.num_embeddings)
        return embedding._embedding(index, self.weight, self.padding_idx)

    def extra_repr(self):
        return f"{self.num_embeddings}, {self.embedding_dim}" + (
            "" if self.padding_idx is None else f", padding_idx={self.padding_idx}")

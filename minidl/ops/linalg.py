"""Matrix multiplication, batched and broadcast as ``numpy.matmul``."""
import numpy as np

from minidl.ops._util import NUMBER, binary_operands, broadcast_shape, cast_all, op_dtype
from minidl.ops.reduction import sum_to
from minidl.tensor import Function, result_type


def _matrix_T(t):
    """Swap the last two axes."""
    perm = tuple(range(t.ndim - 2)) + (t.ndim - 1, t.ndim - 2)
    return t.transpose(perm)


class MatMul(Function):
    """y = a @ b, with leading (batch) axes broadcast.

    For one matrix pair, y_ij = sum_k a_ik b_kj, so dL/da_ik = sum_j gy_ij b_kj
    (dL/da = gy @ b^T) and dL/db = a^T @ gy. With batch axes the same holds per
    batch, and a broadcast operand sums its gradient over the batches it was
    reused in. A 1-D operand is treated as a row (a) or column (b) vector.
    """

    keep_outputs = ()

    def forward(self, a, b):
        return a @ b

    def backward(self, gy):
        a, b = self.inputs
        a2 = a if a.ndim > 1 else a.reshape(1, -1)
        b2 = b if b.ndim > 1 else b.reshape(-1, 1)
        out2 = np.broadcast_shapes(a2.shape[:-2], b2.shape[:-2]) + (a2.shape[-2], b2.shape[-1])
        gy2 = gy.reshape(out2)
        ga = sum_to(gy2 @ _matrix_T(b2), a2.shape).reshape(a.shape) if self.needs_input_grad[0] else None
        gb = sum_to(_matrix_T(a2) @ gy2, b2.shape).reshape(b.shape) if self.needs_input_grad[1] else None
        return ga, gb


def matmul(a, b):
    """a @ b. Mixed dtypes promote by PyTorch's rules (PyTorch itself refuses them); bool is refused."""
    a, b = binary_operands("matmul", NUMBER, a, b)
    if a.ndim == 0 or b.ndim == 0:
        raise ValueError(f"matmul: operands need at least one dimension; got shapes {a.shape} and {b.shape}")
    k_a = a.shape[-1]
    k_b = b.shape[-2] if b.ndim > 1 else b.shape[0]
    if k_a != k_b:
        raise ValueError(
            f"matmul: shapes {a.shape} and {b.shape} do not fit: a's last axis ({k_a}) must equal "
            f"b's {'second-to-last' if b.ndim > 1 else 'only'} axis ({k_b})"
        )
    broadcast_shape("matmul (batch axes)", a.shape[:-2], b.shape[:-2])
    return MatMul()(a, b)


def check_linear_input(where, x, weight, bias):
    """ValueError naming ``where`` unless x's last axis, weight (out_features, in_features) and bias fit."""
    if weight.ndim != 2:
        raise ValueError(f"{where}: weight must be 2-D (out_features, in_features); got shape {weight.shape}")
    if x.ndim == 0 or x.shape[-1] != weight.shape[1]:
        raise ValueError(
            f"{where}: input of shape {x.shape} has {x.shape[-1] if x.ndim else 0} features, but the weight "
            f"of shape {weight.shape} expects {weight.shape[1]}"
        )
    if bias is not None and bias.shape != (weight.shape[0],):
        raise ValueError(f"{where}: bias of shape {bias.shape} does not match {weight.shape[0]} output features")
    op_dtype(where, NUMBER, (x, weight))


def _linear(x, weight, bias):
    """x @ weight.T + bias on checked arguments: linear and nn.Linear both end here. MatMul is
    called directly because check_linear_input has already checked what matmul would."""
    if x.dtype != weight.dtype:
        x, weight = cast_all(result_type("linear", (x.data, weight.data)), (x, weight))
    y = MatMul()(x, weight.T)
    return y if bias is None else y + bias


def linear(x, weight, bias=None):
    """y = x @ weight.T + bias, with weight of shape (out_features, in_features) as in PyTorch.

    Composed of matmul, transpose and add, so its gradients (and second
    derivatives) come from theirs: dL/dx = gy @ W, dL/dW = gy^T x, dL/db = sum of gy.
    """
    check_linear_input("linear", x, weight, bias)
    return _linear(x, weight, bias)

"""Gradient-check cases for the core ops (minidl.ops)."""
import numpy as np

import minidl as mdl
from minidl import ops
from gradcases import Inp, cases_for

# Shapes: scalars, size-1 dimensions, and broadcasting in every direction.
UNARY = [[()], [(1,)], [(4,)], [(2, 3)], [(1, 3, 1)], [(2, 1, 3)]]
BINARY = [[(), ()], [(3,), (3,)], [(2, 3), (3,)], [(2, 1), (1, 3)], [(), (2, 3)],
          [(2, 3, 1), (1,)], [(1,), (2, 2)], [(2, 1, 3), (4, 1)]]


def unary(kind):
    return [[Inp(tuple(s[0]), kind)] for s in UNARY]


def same_shape(kind_b):
    """Pairs of one shape, the second drawn as ``kind_b``."""
    return [[Inp(tuple(s[0])), Inp(tuple(s[0]), kind_b)] for s in UNARY]


def binary(kind_a="any", kind_b="any"):
    return [[Inp(tuple(a), kind_a), Inp(tuple(b), kind_b)] for a, b in BINARY]


REDUCE_ARGS = [((2, 3, 4), None, False), ((2, 3, 4), 0, False), ((2, 3, 4), (0, 2), True),
               ((2, 3, 4), -1, True), ((), None, False), ((1,), 0, False), ((3, 1), 1, False)]


def reductions(op, method, kind="any"):
    out = []
    for shape, axis, keep in REDUCE_ARGS:
        out += cases_for(op, lambda x, axis=axis, keep=keep: getattr(x, method)(axis=axis, keepdims=keep),
                         [[Inp(shape, kind)]], double=True)
    return out


CASES = (
    cases_for("Add", lambda a, b: a + b, binary(), double=True)
    + cases_for("Sub", lambda a, b: a - b, binary(), double=True)
    + cases_for("Mul", lambda a, b: a * b, binary(), double=True)
    + cases_for("Div", lambda a, b: a / b, binary("any", "nonzero"), double=True)
    + cases_for("Pow", lambda a, b: a ** b, binary("positive", "any"), double=True)
    + cases_for("Maximum", lambda a, b: mdl.maximum(a, b),
                [[Inp((2, 3), "distinct"), Inp((2, 3), "distinct")], [Inp((2, 3), "distinct"), Inp((), "any")],
                 [Inp((3, 1), "distinct"), Inp((1, 4), "distinct")]], double=True)
    + cases_for("Neg", lambda x: -x, unary("any"), double=True)
    + cases_for("PowScalar", lambda x: x ** 3, unary("any"), double=True)
    + cases_for("PowScalar", lambda x: x ** -1.5, unary("positive"), double=True)
    + cases_for("PowScalar", lambda x: x ** 0.5, [[Inp((2, 3), "positive")]], double=True)
    + cases_for("Exp", lambda x: x.exp(), unary("any"), double=True)
    + cases_for("Log", lambda x: x.log(), unary("positive"), double=True)
    + cases_for("Sqrt", lambda x: x.sqrt(), unary("positive"), double=True)
    + cases_for("Abs", lambda x: x.abs(), unary("nonzero"), double=True)
    # values in (-2, 2), clipped at -0.6 / 0.9: none within eps of a bound
    + cases_for("Clip", lambda x: x.clip(-0.6, 0.9), unary("distinct"), double=True)
    + cases_for("Clip", lambda x: x.clip(min=0.05), [[Inp((3, 4), "distinct")]], double=True)
    + reductions("Sum", "sum")
    + reductions("Mean", "mean")
    + reductions("Max", "max", "distinct")
    + reductions("Min", "min", "distinct")
    + cases_for("Max", lambda x: x.max(dim=1, keepdim=True), [[Inp((2, 3), "distinct")]])
    + cases_for("BroadcastTo", lambda x: x.broadcast_to((2, 3, 4)), [[(3, 1)], [()], [(1, 4)]], double=True)
    + cases_for("SumTo", lambda x: ops.sum_to(x, (3, 1)), [[(2, 3, 4)], [(3, 4)]], double=True)
    + cases_for("SumTo", lambda x: ops.sum_to(x, ()), [[(2, 3)]], double=True)
    + cases_for("MatMul", lambda a, b: a @ b,
                [[(2, 3), (3, 4)], [(3,), (3, 4)], [(2, 3), (3,)], [(3,), (3,)], [(2, 2, 3), (3, 4)],
                 [(2, 1, 2, 3), (3, 3, 2)], [(1, 1), (1, 1)]], double=True)
    + cases_for("Reshape", lambda x: x.reshape(3, -1), [[(2, 3)], [(3, 1, 2)]], double=True)
    + cases_for("Reshape", lambda x: x.flatten(), [[(2, 3, 2)]])
    + cases_for("Reshape", lambda x: x.reshape(()), [[(1, 1)]])
    + cases_for("Transpose", lambda x: x.T, [[(2, 3)], [(2, 3, 4)]], double=True)
    + cases_for("Transpose", lambda x: x.transpose(0, 2), [[(2, 3, 4)]])
    + cases_for("Transpose", lambda x: x.permute(2, 0, 1), [[(2, 3, 4)]])
    + cases_for("GetItem", lambda x: x[1], [[(3, 2)]], double=True)
    + cases_for("GetItem", lambda x: x[:, 1:3], [[(2, 4)]], double=True)
    + cases_for("GetItem", lambda x: x[..., None, -1], [[(2, 3)]])
    # advanced indexing with repeats: the gradient of a repeated index must accumulate
    + cases_for("GetItem", lambda x: x[np.array([0, 2, 0, 0])], [[(3, 2)]], double=True)
    + cases_for("GetItem", lambda x: x[[1, 1], [0, 0]], [[(2, 2)]], double=True)
    + cases_for("GetItem", lambda x: x[np.array([[True, False, True], [False, True, True]])], [[(2, 3)]])
    + cases_for("GetItem", lambda x, i: x[np.arange(3), i], [[Inp((3, 4)), Inp((3,), "int", False, 4)]])
    + cases_for("GetItemGrad", lambda g: ops.shape.GetItemGrad((np.array([0, 2, 0]),), (4, 2))(g),
                [[(3, 2)]], double=True)
    + cases_for("Concat", lambda a, b: mdl.concat([a, b], axis=1), [[(2, 1), (2, 3)]], double=True)
    + cases_for("Concat", lambda a, b, c: mdl.cat([a, b, c], dim=0), [[(1, 3), (2, 3), (1, 3)]])
    + cases_for("Concat", lambda a, b: mdl.stack([a, b], axis=-1), [[(2, 3), (2, 3)]])
    + cases_for("Cast", lambda x: ops.shape.Cast(np.float64)(x), [[(2, 3)]], double=True)
    # A round trip through float32: the identity up to float32's rounding (~1e-7 relative). Its jumps
    # look like kinks unless the step dwarfs them, and a float64 error bar cannot see them: a large
    # step (the function is linear) and a fixed tolerance above float32's rounding.
    + cases_for("Cast", lambda x: x.astype(np.float32).astype(np.float64), [[(2, 3)]], eps=0.1, rtol=1e-5)
    + cases_for("ToDevice", lambda x: ops.shape.ToDevice("cpu")(x), [[(2, 3)]], double=True)
    + cases_for("ReLU", lambda x: x.relu(), unary("nonzero"), double=True)
    + cases_for("Tanh", lambda x: x.tanh(), unary("any"), double=True)
    + cases_for("Sigmoid", lambda x: x.sigmoid(), unary("any"), double=True)
    # The activations' gradients as Functions of (gy, y), one shape for both (they do not broadcast);
    # y away from ReLU's kink at 0, where the mask jumps.
    + cases_for("TanhGrad", lambda gy, y: ops.TanhGrad()(gy, y), same_shape("any"), double=True)
    + cases_for("SigmoidGrad", lambda gy, y: ops.SigmoidGrad()(gy, y), same_shape("any"), double=True)
    + cases_for("ReLUGrad", lambda gy, y: ops.ReLUGrad()(gy, y), same_shape("nonzero"), double=True)
    + cases_for("Softmax", lambda x: x.softmax(axis=-1), [[(4,)], [(2, 3)], [(2, 1)], [(2, 3, 2)]], double=True)
    + cases_for("Softmax", lambda x: x.softmax(dim=0), [[(3, 2)]], double=True)
    + cases_for("LogSoftmax", lambda x: x.log_softmax(axis=-1), [[(4,)], [(2, 3)], [(2, 3, 2)]], double=True)
    + cases_for("LogSoftmax", lambda x: mdl.log_softmax(x, axis=1), [[(2, 3, 2)]], double=True)
)

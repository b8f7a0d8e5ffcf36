"""Every built-in differentiable operation: forward and backward side by side,
with the derivation in each class's docstring."""
from minidl.ops.activation import (LogSoftmax, ReLU, ReLUGrad, Sigmoid, SigmoidGrad, Softmax, Tanh, TanhGrad,
                                   log_softmax, relu, sigmoid, softmax, tanh)
from minidl.ops.arithmetic import (Abs, Add, Clip, Div, Exp, Log, Maximum, Mul, Neg, Pow, PowScalar, Sqrt, Sub,
                                   abs, add, clip, div, exp, log, maximum, mul, neg, pow, sqrt, sub)
from minidl.ops.linalg import MatMul, matmul
from minidl.ops.reduction import (BroadcastTo, Max, Mean, Min, Sum, SumTo, broadcast_to, max, mean, min, sum,
                                  sum_to)
from minidl.ops.shape import (Cast, Concat, GetItem, GetItemGrad, Reshape, ToDevice, Transpose, cast, cat, concat,
                              flatten, getitem, permute, reshape, squeeze, stack, to_device, transpose, unsqueeze)

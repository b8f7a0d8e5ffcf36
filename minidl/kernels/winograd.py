"""Winograd's F(2x2, 3x3): a 3x3, stride-1 convolution with 2.25x fewer multiplications.

Lavin & Gray (2015). In one dimension, two outputs of a 3-tap filter g over four inputs d,
``y0 = d0 g0 + d1 g1 + d2 g2`` and ``y1 = d1 g0 + d2 g1 + d3 g2``, take 6 multiplications
directly but 4 as ``y = A^T [(G g) * (B^T d)]`` (elementwise product in the middle), with

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]].

Nesting it over rows and columns gives a 2x2 output tile from a 4x4 input tile d and a 3x3
filter g as ``Y = A^T [U * V] A`` with ``U = G g G^T`` and ``V = B^T d B``: 16
multiplications instead of 36. Summed over input channels, the elementwise product at each
of the 16 positions (a, b) of the tile becomes a matrix product over channels,

    M[ab] (OC, tiles) = U[ab] (OC, C) @ V[ab] (C, tiles),

so the convolution is: transform the input tiles (``kernels.winograd_input_transform``), 16
GEMMs, transform back (``kernels.winograd_output_transform``). Neighbouring 4x4 input tiles
overlap by two pixels, as neighbouring 2x2 output tiles need.

The gradients stay in the same family:
- input: the gradient of a 3x3, stride-1 convolution with padding p is the convolution of
  gy, padded by 2 - p, with the filters flipped and their in/out channels swapped, again
  3x3 with stride 1, so `conv` computes it too;
- weight: Y is linear in U, so dL/dU[ab] = dM[ab] @ V[ab]^T with ``dM = A gy_tile A^T``
  (``kernels.winograd_output_transform_adjoint``), and dL/dg = G^T dL/dU G.

The algorithm is exact in real arithmetic; in floating point the transforms add a few
roundings (the 1/2 in G is exact), so results agree with im2col to rounding, not bit for bit.
"""
from minidl import backend, kernels

G = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def applies(kernel, stride, padding, dilation, groups):
    """Whether F(2x2, 3x3) computes this convolution and both of its gradients: a 3x3 kernel,
    stride 1, no dilation or groups, and padding of at most 2 (the input gradient pads by 2 - p)."""
    return (tuple(kernel) == (3, 3) and stride == (1, 1) and dilation == (1, 1) and groups == 1
            and max(padding) <= 2)


def tiles(out_size):
    """The number of 2x2 output tiles: ceil(OH/2) * ceil(OW/2) per sample."""
    return ((out_size[0] + 1) // 2) * ((out_size[1] + 1) // 2)


def _kron_g(xp, dtype):
    """G (x) G, (16, 9): vec(G g G^T) = (G (x) G) vec(g) with row-major vec, so the transform of
    every filter at once is one GEMM rather than OC*C tiny 4x3 @ 3x3 @ 3x4 products."""
    g = xp.asarray(G, dtype=dtype)
    return xp.kron(g, g)


def weight_transform(w):
    """U = G g G^T for every (out, in) filter pair: (OC, C, 3, 3) -> (16, OC, C)."""
    xp = backend.get_array_module(w)
    oc, c = w.shape[:2]
    return xp.matmul(_kron_g(xp, w.dtype), w.reshape(oc * c, 9).T).reshape(16, oc, c)


def weight_transform_adjoint(gu):
    """dL/dg = G^T dL/dU G: (16, OC, C) -> (OC, C, 3, 3)."""
    xp = backend.get_array_module(gu)
    oc, c = gu.shape[1:]
    return xp.matmul(gu.reshape(16, oc * c).T, _kron_g(xp, gu.dtype)).reshape(oc, c, 3, 3)


def flipped_transposed(w):
    """The filters of the input gradient: rotated by 180 degrees, in/out channels swapped."""
    return w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3)


def conv(x, u, padding, out_shape):
    """y (``out_shape``) = the 3x3, stride-1 convolution of x with the filters whose transform is u."""
    xp = backend.get_array_module(x)
    v = kernels.winograd_input_transform(x, padding)
    return kernels.winograd_output_transform(xp.matmul(u, v), out_shape)


def weight_grad(x, gy, padding):
    """dL/dU (16, OC, C) of the convolution of x (padding ``padding``) whose output gradient is gy."""
    v = kernels.winograd_input_transform(x, padding)
    gm = kernels.winograd_output_transform_adjoint(gy)
    return backend.get_array_module(x).matmul(gm, v.transpose(0, 2, 1))

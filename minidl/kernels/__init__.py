"""Array kernels: one interface, several implementations, and the choice between them.

The ops in ``minidl.ops`` call the functions below; each forwards to the
implementation that fits its arrays (`implementation`):

- NumPy arrays run the kernel set of the ``kernels`` setting (``mdl.config.kernels``):
  ``numpy_impl`` (the reference, always present) or ``numba_impl`` (compiled, parallel
  over the batch and channels; float32 and float64 only, other dtypes fall back to the
  reference, which promotes like NumPy);
- CuPy arrays run ``cuda_impl``, CUDA kernels that minidl owns (float32 and float64 only;
  other dtypes, or a mix of them, fall back to the reference, which is written against the
  array module ``xp`` and runs unchanged on the GPU).

A new implementation is a module with these functions; the same tests run on each.

Conventions shared by every implementation:
- images are NCHW; ``kernel``, ``stride``, ``padding`` and ``dilation`` are
  ``(h, w)`` pairs of ints;
- the elementwise kernels (tanh, erf and the activations' gradients) take arrays of one shape:
  nothing broadcasts;
- outputs keep the input's dtype (float32 stays float32);
- inputs are never modified, except by `adam_update`, an update in place.
"""
import os

import numpy as np

from minidl import backend
from minidl.config import config

KERNEL_SETS = ("auto", "numpy", "numba")


def _import_numba():
    """The numba module, or ImportError naming the fix. Imported on first use, so that importing
    minidl never pays Numba's import time nor breaks with a broken Numba install."""
    try:
        import numba
    except ImportError as e:
        raise ImportError(
            f"kernels 'numba' asked for, but Numba cannot be imported ({e}). Install it with "
            "`pip install numba`, or choose the NumPy kernels: mdl.config.kernels = 'numpy' or "
            "MINIDL_KERNELS=numpy."
        ) from None
    return numba


def _resolve(name, source):
    if name not in KERNEL_SETS:
        raise ValueError(f"{source}: unknown kernel set {name!r}; expected one of {', '.join(KERNEL_SETS)}")
    if name == "auto":
        try:
            _import_numba()
        except ImportError:
            return "numpy"
        return "numba"
    if name == "numba":
        _import_numba()
    return name


config.register(
    "kernels", lambda: _resolve(os.environ.get("MINIDL_KERNELS", "auto"), "MINIDL_KERNELS"), per_thread=False,
    check=lambda name: _resolve(name, "config.kernels"),
    doc="The CPU kernels: 'numba' (compiled, parallel), 'numpy' (the reference) or 'auto' (Numba when it "
        "imports). Reads back resolved, as 'numpy' or 'numba'. The default comes from $MINIDL_KERNELS. "
        "Per process: it picks an implementation, and every thread gets the same answers from either.")


_COMPILED_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}


def implementation(*arrays):
    """The kernel module that runs on ``arrays``: see the module docstring. The compiled sets
    take one float dtype, float32 or float64, for all their float arrays (index arrays such
    as argmax are int64), so any other mix goes to the reference, which promotes like NumPy."""
    dtypes = {a.dtype for a in arrays if a.dtype.kind == "f"}
    compiled = len(dtypes) == 1 and dtypes <= _COMPILED_DTYPES
    if any(backend.is_cupy_array(a) for a in arrays):
        if compiled:
            from minidl.kernels import cuda_impl

            return cuda_impl
    elif compiled and config.kernels == "numba":
        from minidl.kernels import numba_impl

        return numba_impl
    from minidl.kernels import numpy_impl

    return numpy_impl


def numba_kernels_on_disk():
    """Whether Numba's on-disk cache holds compiled minidl kernels: False on a fresh install (or
    after an update), where the first calls compile them, seconds each, once per machine; None
    when the kernels in use are not Numba's or its cache cannot be inspected. A program can say
    so before its first step instead of seeming to hang."""
    if config.kernels != "numba":
        return None
    import sys

    numba = _import_numba()
    from minidl.kernels import numba_impl  # noqa: F401 - loads every kernel module

    prefix = numba_impl.__name__ + "."
    dispatchers = [v for name, module in list(sys.modules.items()) if name.startswith(prefix)
                   for v in vars(module).values() if isinstance(v, numba.core.registry.CPUDispatcher)]
    try:
        # Numba writes a function's index file when it caches a compilation of it; a kernel that
        # this machine never needed (a dtype never used) has none, so any one of them will do.
        return any(os.path.exists(d._cache._cache_file._index_path) for d in dispatchers)
    except AttributeError:  # another Numba's private layout
        return None


def conv_output_size(size, kernel, stride, padding, dilation=1, ceil_mode=False):
    """Output length along one axis, with PyTorch's rule for ``ceil_mode``: a
    window that would start inside the right padding only is dropped."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def im2col(x, kernel, stride, padding, dilation, out=None, fold_batch=False):
    """Unroll the receptive fields of ``x`` (N, C, H, W) into columns.

    Returns ``col`` of shape (N, C*kh*kw, OH*OW): row ``(c*kh + i)*kw + j`` of
    sample n, column ``oh*OW + ow`` holds
    ``x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw]`` (0 outside the image).
    Rows are ordered like ``weight.reshape(OC, C*kh*kw)``, so a convolution is
    the batched GEMM ``weight2d @ col`` whose result reshapes to
    (N, OC, OH, OW) without a transpose.

    With ``fold_batch`` the same entries are laid out (C*kh*kw, N*OH*OW), the samples side by
    side along each row (column ``n*OH*OW + oh*OW + ow``): the convolution of the whole batch is
    then one GEMM ``weight2d @ col``, with the inner dimension of its gradients N*OH*OW.

    ``out``, if given, is a C-contiguous array of that shape and x's dtype to write the columns
    into (the convolution's reused workspace). Where the columns are x's own elements (see
    `columns_view`) an implementation may return that view of x instead, read-only where its arrays
    can be, and leave ``out`` untouched.
    """
    return implementation(x).im2col(x, kernel, stride, padding, dilation, out, fold_batch)


def columns_view(x, kernel, stride, padding, fold_batch):
    """The columns of `im2col` as a view of x where they are x's own elements in some order, else
    None: a 1x1 kernel with stride 1 (per sample, or folded for one sample), or one window over the
    whole image (per sample (N, C*h*w, 1), folded the transposed (C*h*w, N)); no padding, x
    C-contiguous. The folded view is not C-contiguous; GEMMs take it without a copy."""
    n, c, h, w = x.shape
    if padding != (0, 0) or not x.flags.c_contiguous:
        return None
    if kernel == (h, w):
        return x.reshape(n, c * h * w).T if fold_batch else x.reshape(n, c * h * w, 1)
    if kernel == (1, 1) and stride == (1, 1) and (n == 1 or not fold_batch):
        return x.reshape(c, h * w) if fold_batch else x.reshape(n, c, h * w)
    return None


def col2im(col, x_shape, kernel, stride, padding, dilation, fold_batch=False):
    """The adjoint of `im2col` (not its inverse): every column entry is
    added back to the pixel it was read from, so a pixel that sits in several
    windows receives the sum. ``<im2col(x), c> == <x, col2im(c)>`` for all x, c,
    in either layout (``fold_batch`` as in `im2col`)."""
    return implementation(col).col2im(col, x_shape, kernel, stride, padding, dilation, fold_batch)


def max_pool2d_forward(x, kernel, stride, padding, ceil_mode):
    """Max over each window (padding counts as -inf). Returns ``(y, argmax)``:
    ``argmax`` (int64, same shape as y) is the flat index ``h*W + w`` of the
    chosen input pixel in its (H, W) plane; on ties the first in row-major
    window order wins, as in PyTorch."""
    return implementation(x).max_pool2d_forward(x, kernel, stride, padding, ceil_mode)


def max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding):
    """Route each output gradient to the input pixel its max came from (summing
    where windows overlap on the same pixel): gx of shape ``x_shape``. Each pixel's
    sum is taken in float64, over its windows in increasing (oh, ow) order, then
    rounded to gy's dtype, so every implementation gets the same bits. The window
    geometry (that of the forward; the output size is gy's) lets an implementation
    gather per pixel over the windows that can hold it instead of scattering."""
    return implementation(gy).max_pool2d_backward(gy, argmax, x_shape, kernel, stride, padding)


def avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad):
    """Mean over each window, with PyTorch's divisor: with
    ``count_include_pad`` the window clipped to the padded image, else the
    number of real pixels in it."""
    return implementation(x).avg_pool2d_forward(x, kernel, stride, padding, ceil_mode, count_include_pad)


def avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad):
    """Spread each output gradient evenly (by the same divisor) over its window."""
    return implementation(gy).avg_pool2d_backward(gy, x_shape, kernel, stride, padding, ceil_mode, count_include_pad)


def lrn_forward(x, size, alpha, beta, k):
    """Local response normalisation across channels (PyTorch's convention):
    ``scale = k + alpha/size * sum of x^2 over the size channels centred on c``
    (the window is cut at the channel ends), ``y = x * scale**-beta``.
    Returns ``(y, scale)``."""
    return implementation(x).lrn_forward(x, size, alpha, beta, k)


def lrn_backward(x, y, scale, gy, size, alpha, beta, k):
    """Closed-form gradient of `lrn_forward`:
    ``gx_c = gy_c * scale_c**-beta - 2 alpha beta / size * x_c *
    sum over windows containing c of gy_j * y_j / scale_j``."""
    return implementation(x, y, scale, gy).lrn_backward(x, y, scale, gy, size, alpha, beta, k)


def batch_norm_forward(x, gamma, beta, eps):
    """Training-mode batch norm (the paper's Algorithm 1) over every axis but
    axis 1. Returns ``(y, mean, invstd)`` with mean and biased-variance
    ``invstd = 1/sqrt(var + eps)`` per channel."""
    return implementation(x, gamma, beta).batch_norm_forward(x, gamma, beta, eps)


def batch_norm_backward(gy, x, gamma, mean, invstd):
    """Closed-form gradient of `batch_norm_forward`. With m values per
    channel and ``xhat = (x - mean) * invstd``:
    ``gbeta = sum gy``, ``ggamma = sum gy * xhat``,
    ``gx = gamma * invstd / m * (m * gy - gbeta - xhat * ggamma)``.
    Returns ``(gx, ggamma, gbeta)``."""
    return implementation(gy, x, gamma, mean, invstd).batch_norm_backward(gy, x, gamma, mean, invstd)


def winograd_input_transform(x, padding):
    """The input side of Winograd's F(2x2, 3x3) convolution (3x3 kernel, stride 1).

    The output of a 3x3 convolution is cut into 2x2 tiles; tile (ty, tx) of sample n needs
    the 4x4 patch ``d`` of the zero-padded input starting at row ``2*ty - ph`` and column
    ``2*tx - pw``. Returns ``v`` of shape (16, C, N*TH*TW) with ``TH = ceil(OH/2)``,
    ``TW = ceil(OW/2)``: ``v[4*a + b, c, (n*TH + ty)*TW + tx] = (B^T d B)[a, b]`` for
    channel c. The layout makes the channel sum one batched GEMM per tile position,
    (16, OC, C) @ (16, C, tiles); rows and columns past the input read 0.
    """
    return implementation(x).winograd_input_transform(x, padding)


def winograd_output_transform(m, out_shape):
    """The output side of F(2x2, 3x3): ``m`` of shape (16, OC, N*TH*TW), laid out as
    `winograd_input_transform`'s result, becomes ``y`` of shape ``out_shape``
    (N, OC, OH, OW) with ``y``'s 2x2 tile (ty, tx) equal to ``A^T m_tile A``. The parts of
    the last tiles that fall past OH or OW are dropped."""
    return implementation(m).winograd_output_transform(m, out_shape)


def winograd_output_transform_adjoint(gy):
    """The adjoint of `winograd_output_transform` (gy (N, OC, OH, OW) -> (16, OC,
    N*TH*TW)): each 2x2 tile of gy, zero past OH and OW, becomes ``A gy_tile A^T``. It takes
    the output gradient into the transformed domain, where the weight gradient is a GEMM."""
    return implementation(gy).winograd_output_transform_adjoint(gy)


def tanh_forward(x):
    """``y = tanh x``, elementwise. The reference is the array module's tanh; the compiled
    implementations round differently, within the error each documents. In float32 Numba and
    CUDA both compute one rational approximation, in the same operations (the same bits on the
    CPU and the GPU), within 6.2 ulp of tanh (`numba_impl.activation`); in float64 Numba calls
    NumPy's tanh (the reference's bits) and CUDA its own, within 1 ulp."""
    return implementation(x).tanh_forward(x)


def erf_forward(x):
    """``y = erf x``, elementwise, for the exact GELU; its gradient is composed of other ops
    (`minidl.ops.special.Erf`). The reference and the Numba kernels compute Python's ``math.erf``
    (the C library's erf) in float64 and round it to x's dtype, the same bits; CUDA computes its
    ``erff`` or ``erf``, within 2 ulp (CUDA's documented bounds). Every implementation keeps the
    sign of zero and takes +-inf to +-1 and NaN to NaN."""
    return implementation(x).erf_forward(x)


def tanh_backward(gy, y):
    """The gradient of `tanh_forward` from its output: ``gx = gy * (1 - y*y)``, each of the three
    operations rounded to the inputs' dtype in that order (``y*y``, then ``1 - y*y``, then the
    product with gy; no fused multiply-add), so that every implementation returns the
    reference's bits."""
    return implementation(gy, y).tanh_backward(gy, y)


def sigmoid_backward(gy, y):
    """The gradient of the sigmoid from its output: ``gx = (gy * y) * (1 - y)``, each of the three
    operations rounded to the inputs' dtype in that order, so that every implementation returns
    the reference's bits."""
    return implementation(gy, y).sigmoid_backward(gy, y)


def relu_backward(gy, y):
    """The gradient of ReLU from its output: ``gx = gy`` where ``y > 0``, else +0, also where y is
    NaN and whatever gy is there (an inf or NaN gradient does not pass a unit that is off). Nothing
    is rounded. PyTorch's ``threshold_backward`` agrees except where y is NaN: it passes gy there."""
    return implementation(gy, y).relu_backward(gy, y)


def adam_update(param, grad, exp_avg, exp_avg_sq, beta1, beta2, step_size, bias2_sqrt, eps, weight_decay):
    """One Adam step on one parameter, in place: the one kernel that changes its inputs, since an
    update is in place by nature (``grad`` is only read). With ``g = grad + weight_decay * param``
    (just ``grad`` when weight_decay is 0): ``exp_avg = exp_avg * beta1 + (1 - beta1) * g``,
    ``exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * g * g``, then ``param = param - step_size *
    exp_avg / (sqrt(exp_avg_sq) / bias2_sqrt + eps)``; the numbers are rounded to the arrays' dtype
    first and every operation in that order, so every implementation gives the reference's bits.
    `minidl.optim.Adam` passes ``step_size = lr / (1 - beta1**t)``, ``bias2_sqrt = sqrt(1 -
    beta2**t)``. Returns None."""
    implementation(param, grad, exp_avg, exp_avg_sq).adam_update(param, grad, exp_avg, exp_avg_sq, beta1, beta2,
                                                                 step_size, bias2_sqrt, eps, weight_decay)

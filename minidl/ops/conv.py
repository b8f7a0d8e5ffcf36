"""2-D convolution as im2col + GEMM, with gradients that are themselves convolutions.

Unrolling every receptive field of ``x`` into a column (``im2col``) turns the
convolution into one matrix product per sample, ``W2d @ col``, which BLAS runs
fast. ``col2im`` is the *adjoint* of ``im2col``, not its inverse: it adds every
column entry back onto the pixel it was read from, so a pixel that sits in
several windows receives the sum. That is exactly what the chain rule needs
(the gradient of a copy is the sum of the copies' gradients), and it is why
``col2im(im2col(x)) != x`` whenever windows overlap.

The op is three Functions that are each other's backward, so second
derivatives come for free (DeZero's design):

    y  = Conv2d(x, W[, b])        gx = Conv2dGradInput(gy, W)     gW = Conv2dGradWeight(x, gy)

Each is linear in each of its two arguments, and each one's backward is
written with the other two.

Layout: the GEMMs run either one per sample, columns (N, C*kh*kw, OH*OW), or batch folded,
columns (C*kh*kw, N*OH*OW), one GEMM for the whole chunk of samples whose result (OC, N*OH*OW)
is written back to (N, OC, OH, OW) in the same pass as the bias add. Folding pays where a
sample has few output positions, which leave its own GEMMs small (`fold_batch`).

Memory: the columns of a big layer are large (C*kh*kw times the output size
per sample), so every Function processes the batch in chunks of samples whose
workspace fits under a limit, 256 MiB by default (the ``workspace_limit`` setting). The
columns are written into one buffer per thread that is kept between calls, so a big
layer does not ask the OS for fresh memory (and page-fault it in) on every call.

Algorithms: 3x3, stride-1 layers can run Winograd's F(2x2, 3x3) instead
(``minidl.kernels.winograd``; the ``conv_algorithm`` setting), for the forward pass and
both gradients. Every GEMM here and there is an explicit ``xp.matmul`` call, so a
benchmark can time the GEMMs apart from the data movement around them.
"""
import threading

import numpy as np

from minidl import _checks, backend, kernels
from minidl.config import config
from minidl.kernels import winograd
from minidl.ops._util import FLOAT_ONLY, op_dtype
from minidl.tensor import Function, Tensor

_scratch = threading.local()  # each thread's reused workspace buffer (see _workspace)
_ALGORITHMS = ("auto", "im2col", "winograd")


def _check_workspace_limit(nbytes):
    if not _checks.is_int(nbytes) or nbytes < 1:
        raise ValueError(f"config.workspace_limit: expected a positive number of bytes; got {nbytes!r}")
    return int(nbytes)


def _check_algorithm(name):
    if name not in _ALGORITHMS:
        raise ValueError(f"config.conv_algorithm: expected one of {', '.join(map(repr, _ALGORITHMS))}; got {name!r}")
    return name


config.register(
    "workspace_limit", 256 * 2 ** 20, per_thread=False, check=_check_workspace_limit,
    doc="The most bytes of scratch memory (im2col columns) a convolution may use at once (default 256 MiB). "
        "A layer whose columns would exceed it runs over the batch in chunks of samples; one sample is the "
        "smallest chunk, so a single sample bigger than the limit still runs. Results do not depend on it. "
        "Per process: it is a memory budget for the program (each thread keeps one buffer of at most this size).")
config.register(
    "conv_algorithm", "auto", per_thread=False, check=_check_algorithm,
    doc="How convolutions are computed, forward and both gradients: 'im2col' (im2col + GEMM everywhere), "
        "'winograd' (Winograd F(2x2, 3x3) wherever it applies: 3x3 kernel, stride 1, no dilation or groups, "
        "padding <= 2; im2col elsewhere) or 'auto' (Winograd where it applies and measured faster, see "
        "minidl.ops.conv.algorithm_for). Winograd agrees with im2col to rounding, not bit for bit. Per process: "
        "it picks an algorithm, and every thread gets the same answers from it.")


def _batch_chunks(n, bytes_per_sample):
    """Slices over the batch whose workspace stays under the limit."""
    step = max(1, config.workspace_limit // max(1, bytes_per_sample))
    return [slice(start, min(n, start + step)) for start in range(0, n, step)]


def _workspace(xp, shape, dtype):
    """Scratch memory for one chunk's columns, kept between calls in a per-thread buffer (at
    most the workspace limit; a bigger single sample gets a fresh array).

    A fresh NumPy array above glibc's mmap threshold (at most 32 MiB) is new memory from the
    OS every time, and writing it page-faults page by page: filling 64 MiB took 28 ms fresh and
    9 ms reused (2 cores). Columns of the larger layers are that big on every call. CuPy keeps
    its own memory pool, so on the GPU this is a plain allocation.
    """
    nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
    limit = config.workspace_limit
    if xp is not np or nbytes > limit:
        return xp.empty(shape, dtype=dtype)
    buffer = getattr(_scratch, "buffer", None)
    if buffer is None or buffer.nbytes < nbytes or buffer.nbytes > limit:  # a lowered limit frees the old one
        buffer = _scratch.buffer = np.empty(nbytes, dtype=np.uint8)
    return buffer[:nbytes].view(dtype).reshape(shape)


def _chunked(xp, shape, dtype, elements_per_sample, chunk):
    """An array of ``shape`` whose samples ``s`` (a slice) are ``chunk(s)``, computed in
    chunks whose workspace of ``elements_per_sample`` per sample stays under the limit."""
    chunks = _batch_chunks(shape[0], elements_per_sample * dtype.itemsize)
    if len(chunks) == 1:
        return chunk(chunks[0])
    out = xp.empty(shape, dtype=dtype)
    for s in chunks:
        out[s] = chunk(s)
    return out


def _batch_last(a):
    """(n, G, rows, L) -> (G, rows, n*L): the samples side by side along the last axis (a copy)."""
    n, g, rows, length = a.shape
    return a.transpose(1, 2, 0, 3).reshape(g, rows, n * length)


def _unfold(y2, b, out):
    """out (n, OC, L) = y2 (OC, n, L) with its first two axes swapped, plus the bias b (OC,) if
    given: the batch-folded GEMM's result written back in NCHW order, one pass for both."""
    xp = backend.get_array_module(y2)
    y2 = y2.transpose(1, 0, 2)
    if b is None:
        out[...] = y2
    else:
        xp.add(y2, b.reshape(-1, 1), out=out)


def fold_batch(length):
    """Whether a convolution with ``length`` = OH*OW output positions per sample runs its GEMMs
    batch folded (one over the batch, the columns laid out (K, N*L)) rather than one per sample."""
    # Measured on 2 cores (float32, Numba kernels, best of 9; per-sample time / folded time for
    # forward, input gradient, weight gradient): LeNet-5 at batch 256, L = 784: 1.1, 1.1, 1.0;
    # L = 100: 1.2-1.4, 1.0-1.3, 1.5-1.7; L = 1: 2.0, 1.7, 100 (one sample's weight-gradient GEMM
    # is an outer product). Batch 8: VGG 512 channels at 14x14 (L = 196): 1.0, 1.1, 1.4; ResNet
    # 512 at 7x7: 1.0, 1.4, 1.5; 1x1 1024 at 14x14: 1.4, 1.0, 1.5; but 256 channels at 14x14:
    # 0.8-0.9 for all three. From L = 3,025 up (AlexNet conv1, VGG 64 at 56x56, ResNet conv1)
    # folding lost: 0.7-1.0.
    return length <= 1024


def _hw(value):
    """(h, w) from a setting conv_settings has already checked; an int is taken too, since the
    Functions are also built by hand (tests/gradcases), and checking here would check every call."""
    return (value, value) if isinstance(value, int) else tuple(value)


class _Conv(Function):
    """Geometry shared by the three convolution Functions: stride, padding and
    dilation as (h, w) pairs, and the number of groups.

    Grouped convolution splits the C input and OC output channels into G
    groups; group g's outputs see only group g's inputs. Since the rows of
    ``col`` are ordered (c, i, j), the rows of one group are contiguous, so
    ``col`` viewed as (N, G, Cg*kh*kw, L) and the weight viewed as
    (G, OC/G, Cg*kh*kw) make the whole layer one batched matmul.
    """

    keep_inputs, keep_outputs = (0, 1), ()  # the gradient for each input is made from the other one

    def __init__(self, stride=1, padding=0, dilation=1, groups=1):
        self.stride, self.padding, self.dilation = _hw(stride), _hw(padding), _hw(dilation)
        self.groups = int(groups)

    def _settings(self):
        return dict(stride=self.stride, padding=self.padding, dilation=self.dilation, groups=self.groups)

    def _output_size(self, in_size, kernel):
        return tuple(kernels.conv_output_size(in_size[a], kernel[a], self.stride[a], self.padding[a],
                                              self.dilation[a]) for a in (0, 1))

    def _winograd(self, kernel, channels, out_size, xp):
        """Whether this layer (``channels`` = (in, out), forward output ``out_size``) runs Winograd;
        the three Functions of one layer ask with the same numbers, so they agree."""
        return algorithm_for(kernel, self.stride, self.padding, self.dilation, self.groups, channels,
                             out_size, on_gpu=xp is not np) == "winograd"

    def _im2col(self, x, kernel, fold_batch=False):
        """The columns of x, written into the workspace, in either layout (`kernels.im2col`)."""
        oh, ow = self._output_size(x.shape[2:], kernel)
        n, rows = x.shape[0], x.shape[1] * kernel[0] * kernel[1]
        shape = (rows, n * oh * ow) if fold_batch else (n, rows, oh * ow)
        out = _workspace(backend.get_array_module(x), shape, x.dtype)
        return kernels.im2col(x, kernel, self.stride, self.padding, self.dilation, out, fold_batch)

    def _col2im(self, col, x_shape, kernel, fold_batch=False):
        return kernels.col2im(col, x_shape, kernel, self.stride, self.padding, self.dilation, fold_batch)


class Conv2d(_Conv):
    """y = conv2d(x, W) + b: x (N, C, H, W), W (OC, C/G, kh, kw), b (OC,) or none -> y (N, OC, OH, OW).

    Forward: with ``col = im2col(x)`` of shape (N, C*kh*kw, L), L = OH*OW, and
    ``W2 = W.reshape(OC, C*kh*kw)`` (one group for brevity),

        y[n] = W2 @ col[n].

    Backward, for fixed x this is linear in W:
    dL/dW2 = sum_n dL/dy[n] @ col[n]^T, summed over the batch because the same
    W produced every sample; that is `Conv2dGradWeight`. For fixed W it
    is linear in col: dL/dcol[n] = W2^T @ dL/dy[n], and since col = im2col(x)
    is linear with adjoint col2im, dL/dx = col2im(W2^T @ dL/dy). Scattering each
    output's gradient back through the kernel onto the input is a transposed
    convolution of gy with W: `Conv2dGradInput`. The bias, added to every output
    position of its channel, gets the sum of gy over N, OH and OW. It is added here, in
    place (batch folded, in the pass that writes the output back), rather than by a
    broadcast add that would make another array of the output's size.
    """

    def forward(self, x, w, b=None):
        xp = backend.get_array_module(x)
        n, g = x.shape[0], self.groups
        oc, cg, kh, kw = w.shape
        oh, ow = self._output_size(x.shape[2:], (kh, kw))
        dtype = xp.result_type(x.dtype, w.dtype, *(() if b is None else (b.dtype,)))
        if self._winograd((kh, kw), (cg, oc), (oh, ow), xp):
            u = winograd.weight_transform(w)
            y = _chunked(xp, (n, oc, oh, ow), dtype, (cg + oc) * 16 * winograd.tiles((oh, ow)),
                         lambda s: winograd.conv(x[s], u, self.padding, (x[s].shape[0], oc, oh, ow)))
            if b is not None:
                y += b.reshape(1, oc, 1, 1)
            return y
        k, length = cg * kh * kw, oh * ow
        w2 = w.reshape(g, oc // g, k)
        y = xp.empty((n, oc, length), dtype=dtype)
        if fold_batch(length):
            for s in _batch_chunks(n, (g * k + oc) * length * x.dtype.itemsize):
                col = self._im2col(x[s], (kh, kw), fold_batch=True).reshape(g, k, -1)
                # (G, OCg, K) @ (G, K, n*L) -> (OC, n, L), written back as (n, OC, L) with the bias
                _unfold(xp.matmul(w2, col).reshape(oc, -1, length), b, y[s])
        else:
            for s in _batch_chunks(n, g * k * length * x.dtype.itemsize):
                col = self._im2col(x[s], (kh, kw))
                # (G, OCg, K) @ (n, G, K, L) -> (n, G, OCg, L): already (n, OC, OH, OW) in memory
                xp.matmul(w2, col.reshape(-1, g, k, length), out=y[s].reshape(-1, g, oc // g, length))
            if b is not None:
                y += b.reshape(1, oc, 1)
        return y.reshape(n, oc, oh, ow)

    def backward(self, gy):
        x, w = self.inputs[:2]
        gx = Conv2dGradInput(x.shape[2:], **self._settings())(gy, w) if self.needs_input_grad[0] else None
        gw = Conv2dGradWeight(w.shape[2:], **self._settings())(x, gy) if self.needs_input_grad[1] else None
        if len(self.needs_input_grad) == 2:
            return gx, gw
        return gx, gw, gy.sum(axis=(0, 2, 3)) if self.needs_input_grad[2] else None


class Conv2dGradInput(_Conv):
    """gx = the transposed convolution of gy (N, OC, OH, OW) with W (OC, C/G, kh, kw):
    ``col2im(W2^T @ gy)``, of shape (N, C, H, W) with (H, W) = ``in_size``.

    ``in_size`` is needed because with a stride > 1 several input sizes give
    the same output size (the floor in the output-size rule).

    It is the input gradient of `Conv2d`: for fixed W, gx = T(gy) where T
    is the adjoint of the linear map x -> conv(x, W), i.e.
    <gx', T(gy)> = <conv(gx', W), gy> for every gx'. Reading that identity
    with an upstream gradient ggx in place of gx' gives both gradients:
    dL/dgy = conv(ggx, W) (`Conv2d`), and, as a function of W,
    <conv(ggx, W), gy> has gradient Conv2dGradWeight(ggx, gy).
    """

    def __init__(self, in_size, stride=1, padding=0, dilation=1, groups=1):
        super().__init__(stride, padding, dilation, groups)
        self.in_size = tuple(int(v) for v in in_size)

    def forward(self, gy, w):
        xp = backend.get_array_module(gy)
        n, g = gy.shape[0], self.groups
        oc, cg, kh, kw = w.shape
        length = gy.shape[2] * gy.shape[3]
        w2t = w.reshape(g, oc // g, cg * kh * kw).transpose(0, 2, 1)
        gy4 = gy.reshape(n, g, oc // g, length)
        dtype = xp.result_type(gy.dtype, w.dtype)
        shape = (n, g * cg) + self.in_size
        if self._winograd((kh, kw), (cg, oc), gy.shape[2:], xp):
            u = winograd.weight_transform(winograd.flipped_transposed(w))
            pad = (2 - self.padding[0], 2 - self.padding[1])
            return _chunked(xp, shape, dtype, (cg + oc) * 16 * winograd.tiles(self.in_size),
                            lambda s: winograd.conv(gy[s], u, pad, (gy[s].shape[0],) + shape[1:]))

        k = cg * kh * kw
        folded = fold_batch(length)

        def chunk(s):
            m = gy4[s].shape[0]
            if folded:  # (G, K, OCg) @ (G, OCg, n*L) -> (G, K, n*L): the columns' gradient, batch folded
                ws = _workspace(xp, (g, k, m * length), dtype)
                gcol = xp.matmul(w2t, _batch_last(gy4[s]), out=ws).reshape(g * k, m * length)
            else:
                ws = _workspace(xp, (m, g, k, length), dtype)
                gcol = xp.matmul(w2t, gy4[s], out=ws).reshape(m, g * k, length)
            return self._col2im(gcol, (m, g * cg) + self.in_size, (kh, kw), fold_batch=folded)

        return _chunked(xp, shape, dtype, g * k * length + (oc * length if folded else 0), chunk)

    def backward(self, ggx):
        gy, w = self.inputs
        g_gy = Conv2d(**self._settings())(ggx, w) if gy.requires_grad else None
        g_w = Conv2dGradWeight(w.shape[2:], **self._settings())(ggx, gy) if w.requires_grad else None
        return g_gy, g_w


class Conv2dGradWeight(_Conv):
    """gW = sum over the batch of gy[n] @ im2col(x)[n]^T, per group: the weight
    gradient of `Conv2d`, shape (OC, C/G, kh, kw) with (kh, kw) =
    ``kernel_size``.

    It is bilinear in (x, gy). For an upstream gradient ggW,
    <ggW, gW> = sum_n trace(ggW2^T gy[n] col[n]^T) = sum_n <ggW2 @ col[n], gy[n]>
    = <conv(x, ggW), gy>. So dL/dgy = conv(x, ggW) (`Conv2d`), and
    dL/dx is the input gradient of conv(x, ggW) at upstream gy,
    Conv2dGradInput(gy, ggW).
    """

    def __init__(self, kernel_size, stride=1, padding=0, dilation=1, groups=1):
        super().__init__(stride, padding, dilation, groups)
        self.kernel_size = tuple(int(v) for v in kernel_size)

    def forward(self, x, gy):
        xp = backend.get_array_module(x)
        n, c = x.shape[:2]
        oc, g = gy.shape[1], self.groups
        kh, kw = self.kernel_size
        k = c // g * kh * kw
        length = gy.shape[2] * gy.shape[3]
        if self._winograd((kh, kw), (c, oc), gy.shape[2:], xp):
            gu = 0
            for s in _batch_chunks(n, (c + oc) * 16 * winograd.tiles(gy.shape[2:]) * gy.dtype.itemsize):
                gu = gu + winograd.weight_grad(x[s], gy[s], self.padding)
            return winograd.weight_transform_adjoint(gu)
        gy4 = gy.reshape(n, g, oc // g, length)
        gw = xp.zeros((g, oc // g, k), dtype=xp.result_type(x.dtype, gy.dtype))
        if fold_batch(length):
            # (G, OCg, n*L) @ (G, n*L, K): one GEMM per group whose inner dimension is the batch's
            for s in _batch_chunks(n, (g * k + oc) * length * gw.dtype.itemsize):
                col = self._im2col(x[s], (kh, kw), fold_batch=True).reshape(g, k, -1)
                gw += xp.matmul(_batch_last(gy4[s]), col.transpose(0, 2, 1))
        else:
            # one GEMM per sample, then the sum over the batch: workspace per sample is its
            # columns plus its (G, OCg, K) product
            for s in _batch_chunks(n, (c * kh * kw * length + oc * k) * gw.dtype.itemsize):
                col = self._im2col(x[s], (kh, kw)).reshape(-1, g, k, length)
                gw += xp.matmul(gy4[s], col.transpose(0, 1, 3, 2)).sum(axis=0)
        return gw.reshape(oc, c // g, kh, kw)

    def backward(self, ggw):
        x, gy = self.inputs
        g_x = Conv2dGradInput(x.shape[2:], **self._settings())(gy, ggw) if x.requires_grad else None
        g_gy = Conv2d(**self._settings())(x, ggw) if gy.requires_grad else None
        return g_x, g_gy


def algorithm_for(kernel, stride, padding, dilation, groups, channels, out_size, on_gpu=False):
    """'winograd' or 'im2col': what the ``conv_algorithm`` setting runs for a layer with these
    (h, w) pairs, groups, ``channels`` = (in, out) and output size (OH, OW), on the CPU or
    (``on_gpu``) on CuPy arrays."""
    algorithm = config.conv_algorithm
    if algorithm == "im2col" or not winograd.applies(kernel, stride, padding, dilation, groups):
        return "im2col"
    if algorithm == "winograd":
        return "winograd"
    # Measured forward + backward on 2 cores, both algorithms interleaved (Winograd / im2col
    # time): 0.8-0.9 for VGG's 64 channels at 56x56, 0.7-0.9 for 256 at 14x14, 256 at 2x2 and
    # 16 at 32x32, about 1 for 128 at 4x4, but 1.1-1.5 for 32 at 16x16 and 64 at 8x8, and 2 for
    # 512 at 1x1: Winograd's 16 GEMMs have only C as their inner dimension (im2col's one has 9C),
    # which pays off with many output tiles or many channels, and an output smaller than one 2x2
    # tile wastes most of its work. The NumPy reference's transforms are 10-30x slower than
    # Numba's, which leaves im2col ahead there. Nothing has been measured on a GPU, where
    # 'auto' keeps im2col and cuBLAS's one large GEMM per chunk.
    if on_gpu:
        return "im2col"
    many = min(channels) >= 128 or out_size[0] * out_size[1] >= 1024
    fits = min(channels) >= 16 and min(out_size) >= 2
    return "winograd" if config.kernels == "numba" and fits and many else "im2col"


def conv_settings(where, stride, padding, dilation, groups):
    """stride, padding and dilation as checked (h, w) pairs, and groups as an int; ValueError
    naming ``where`` (the op or the layer) otherwise. The layer runs this once, when it is made."""
    return (_checks.pair(where, "stride", stride, 1), _checks.pair(where, "padding", padding, 0),
            _checks.pair(where, "dilation", dilation, 1), _checks.check_int(where, "groups", groups, 1))


def check_conv_input(where, x, weight, bias, stride, padding, dilation, groups):
    """ValueError naming ``where`` and the offending shapes unless x, weight and bias fit each other
    and the settings (as conv_settings returns them): what must be checked on every call. Each must
    be floating-point on its own (an integer image is a missing conversion, not something to promote);
    float widths may differ, and the output has the wider one."""
    _checks.check_ndim(where, x, (4,), "4-D (N, C, H, W)")
    for name, t in (("input", x), ("weight", weight), ("bias", bias)):
        if t is not None:
            op_dtype(where, FLOAT_ONLY, (t,), name)
    if weight.ndim != 4:
        raise ValueError(
            f"{where}: weight must be 4-D (out_channels, in_channels/groups, kh, kw); got shape {weight.shape}"
        )
    if 0 in weight.shape:
        raise ValueError(f"{where}: weight of shape {weight.shape} has an empty dimension")
    c, oc = x.shape[1], weight.shape[0]
    if c % groups or oc % groups:
        raise ValueError(
            f"{where}: groups={groups} must divide both the input channels ({c}, input shape {x.shape}) "
            f"and the output channels ({oc}, weight shape {weight.shape})"
        )
    if weight.shape[1] * groups != c:
        raise ValueError(
            f"{where}: input of shape {x.shape} has {c} channels, but weight of shape {weight.shape} with "
            f"groups={groups} expects {weight.shape[1] * groups} (in_channels/groups={weight.shape[1]} "
            f"x groups={groups})"
        )
    extent = tuple(dilation[a] * (weight.shape[2 + a] - 1) + 1 for a in (0, 1))
    padded = tuple(x.shape[2 + a] + 2 * padding[a] for a in (0, 1))
    if extent[0] > padded[0] or extent[1] > padded[1]:
        raise ValueError(
            f"{where}: kernel {weight.shape[2:]} with dilation {dilation} spans {extent} pixels, more than "
            f"the padded input {padded} (input {x.shape[2:]} plus padding {padding} on each side)"
        )
    if bias is not None and bias.shape != (oc,):
        raise ValueError(
            f"{where}: bias of shape {bias.shape} does not match the {oc} output channels of weight "
            f"{weight.shape}; expected shape ({oc},)"
        )


def _conv2d(x, weight, bias, stride, padding, dilation, groups):
    """The convolution itself, on checked arguments: conv2d and nn.Conv2d both end here."""
    f = Conv2d(stride, padding, dilation, groups)
    return f(x, weight) if bias is None else f(x, weight, bias)


def conv2d(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """2-D cross-correlation over NCHW images, with PyTorch's semantics.

    ``weight`` has shape (out_channels, in_channels/groups, kh, kw); ``stride``,
    ``padding`` (zeros on both sides) and ``dilation`` are ints or (h, w) pairs.
    Output size per axis: floor((H + 2p - d(k-1) - 1) / s) + 1.

    Computed as im2col + batched GEMM in chunks of samples (bounded workspace,
    the ``workspace_limit`` setting). Note that col2im, used by the gradient,
    is the adjoint of im2col, not its inverse: overlapping windows are summed,
    so col2im(im2col(x)) differs from x. The bias is added with broadcasting
    (its gradient, the sum of gy over N, H and W, comes from that add).
    """
    x = x if isinstance(x, Tensor) else Tensor(x)
    weight = weight if isinstance(weight, Tensor) else Tensor(weight)
    if bias is not None and not isinstance(bias, Tensor):
        bias = Tensor(bias)
    settings = conv_settings("conv2d", stride, padding, dilation, groups)
    check_conv_input("conv2d", x, weight, bias, *settings)
    return _conv2d(x, weight, bias, *settings)

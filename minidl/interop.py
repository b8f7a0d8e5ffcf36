"""Interoperability: weights in ``.safetensors`` files under PyTorch's names, and ONNX export.

safetensors
    ``save_safetensors(state_dict, path)`` writes the arrays of a state dict into one
    ``.safetensors`` file, and ``load_safetensors(path)`` reads one back as a dict of NumPy arrays.
    A minidl ``state_dict()`` has exactly the keys PyTorch gives the same module tree (``features.0.weight``,
    ``bn1.running_mean``, ``bn1.num_batches_tracked``), so such a file loads into the PyTorch twin of
    the model with ``module.load_state_dict(safetensors.torch.load_file(path))``, and a file PyTorch
    wrote loads into the minidl model with ``model.load_state_dict(load_safetensors(path))``. The
    format holds only named arrays and a string-to-string header, so opening a file runs no code.
    Needs the ``safetensors`` extra (``pip install 'minidl[safetensors]'``).

ONNX
    ``export_onnx(model, path, input_shape)`` writes an inference graph of the model. minidl builds
    its graph as the program runs, so the exporter runs the model once, in eval mode, on a dummy
    batch that requires grad, and walks the recorded graph of `Function` nodes from the output back
    to the input, writing each as ONNX nodes. Parameters and buffers become initializers named by
    their ``state_dict()`` names; the batch axis is dynamic, every other size is the traced one. In
    eval mode a batch norm layer is arithmetic with its running statistics as constants, so the
    exporter records each call of the layer as one op instead and writes it as one
    BatchNormalization node that reads them. Needs the ``onnx`` extra (``pip install
    'minidl[onnx]'``, which brings onnxruntime to run the result).
"""
import contextlib
import importlib
import itertools
import os

import numpy as np

from minidl import __version__, _checks, backend, kernels
from minidl.nn.module import Module
from minidl.nn.normalization import BatchNorm1d, BatchNorm2d
from minidl.ops import activation, arithmetic, conv, linalg, normalization, pooling, reduction, shape
from minidl.serialization import MissingFileError, SerializationError, atomic_open
from minidl.tensor import Function, Tensor, check_dtype, enable_grad


def _require(module, extra, where):
    """Import an optional dependency, or say which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        package = module.split(".")[0]
        raise ImportError(f"{where} needs the optional package {package!r}, which is not installed: "
                          f"pip install 'minidl[{extra}]' (or pip install {package})") from e


def _fspath(where, path):
    try:
        return os.fsdecode(os.fspath(path))
    except TypeError:
        raise TypeError(f"{where}: path must be a str or os.PathLike; got {type(path).__name__}") from None


# --- safetensors -----------------------------------------------------------------------------

def save_safetensors(state_dict, path, metadata=None):
    """Write ``state_dict`` (a mapping from str names to Tensors or arrays, as ``Module.state_dict()``
    gives) to ``path`` in the safetensors format, atomically: the file appears complete or not at all,
    and an old file at ``path`` stays intact if anything fails. ``metadata`` is an optional dict of
    str to str, stored in the file's header. Every entry is checked before anything is written: a
    value that is not a Tensor or an array (a Python number, a list, None), or of a dtype no tensor
    holds, is refused with a TypeError naming its key."""
    where = "save_safetensors"
    st = _require("safetensors.numpy", "safetensors", where)
    if not hasattr(state_dict, "items"):
        raise TypeError(f"{where}: expected a mapping of names to tensors (e.g. model.state_dict()); "
                        f"got {type(state_dict).__name__}")
    path = _fspath(where, path)
    arrays = {}
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"{where}: names must be strings; got the key {key!r} of type {type(key).__name__}")
        if key == "__metadata__":
            raise ValueError(f"{where}: the name '__metadata__' is reserved by the safetensors format for its "
                             "header; rename that entry")
        array = value.data if isinstance(value, Tensor) else value
        if not backend.is_array(array):
            raise TypeError(f"{where}: {key!r} is a {type(value).__name__}; expected a Tensor or an array")
        check_dtype(f"{where}: {key!r}", array.dtype)
        # safetensors stores little-endian, C-ordered bytes (asarray keeps a 0-d array 0-d)
        arrays[key] = np.asarray(backend.as_numpy(array), dtype=array.dtype.newbyteorder("<"), order="C")
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise TypeError(f"{where}: metadata must be a dict of str to str or None; got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not (isinstance(k, str) and isinstance(v, str)):
                raise TypeError(f"{where}: metadata must map str to str; got {k!r}: {v!r}")
    data = st.save(arrays, metadata=metadata)
    with atomic_open(path) as f:
        f.write(data)


def load_safetensors(path):
    """The arrays of the ``.safetensors`` file at ``path``, as a dict from names to NumPy arrays, which
    ``Module.load_state_dict`` takes. A missing file raises `MissingFileError` (a FileNotFoundError);
    a file that is not a readable safetensors file (truncated, corrupted, or holding a dtype NumPy
    lacks, such as bfloat16) raises `SerializationError` naming it."""
    where = "load_safetensors"
    st = _require("safetensors.numpy", "safetensors", where)
    path = _fspath(where, path)
    if not os.path.isfile(path):
        if not os.path.exists(path):
            raise MissingFileError(f"{where}: cannot load {path!r}: there is no such file")
        raise SerializationError(f"{where}: cannot load {path!r}: it is not a file")
    try:
        return dict(st.load_file(path))
    except Exception as e:  # the format's SafetensorError has no public class to catch it by
        raise SerializationError(f"{where}: cannot load {path!r}: it is not a readable safetensors file "
                                 f"({type(e).__name__}: {e})") from e


# --- ONNX export ------------------------------------------------------------------------------

MIN_OPSET = 13  # the first opset whose Squeeze, Unsqueeze and ReduceSum take their axes as an input
_BATCH = 2  # the dummy batch's size: not 1, so that the batch axis can be told from the sizes of 1
_INT64_MAX, _INT64_MIN = np.iinfo(np.int64).max, np.iinfo(np.int64).min
_PROTOBUF_LIMIT = 2 ** 31 - 1  # bytes: one ONNX file is one protobuf message


class OnnxExporterError(RuntimeError):
    """A model that `export_onnx` cannot write as ONNX; the message says what and why."""


class UnsupportedOperatorError(OnnxExporterError):
    """The traced graph holds an op with no ONNX translation; the message names it and lists those
    that have one."""


class _ModuleCall(Function):
    """Stands in the traced graph for one call of a layer that is written as a single ONNX node
    (batch norm): its output, linked to its input, with the layer kept for its settings."""

    keep_inputs = keep_outputs = ()

    def __init__(self, module, result):
        self.module, self.result = module, result

    def forward(self, x):
        return self.result


def _record_batch_norm(module, args, out):
    return _ModuleCall(module, out.data)(args[0])


@contextlib.contextmanager
def _tracing(model):
    """The model in eval mode with every floating-point parameter and buffer requiring grad (so that
    the graph keeps each as a leaf, frozen ones too), batch norm layers recorded as one op each, and
    every module's output kept alive (a Concat's output holds its constant operands' values, which
    the graph does not keep); yields the list of (module name, output) that the forward fills.
    Everything is restored afterwards, each module's own mode included."""
    modules = list(model.named_modules())
    modes = [(m, m.training) for _, m in modules]
    tensors = [(t, t.requires_grad) for _, m in modules
               for t in itertools.chain(m._parameters.values(), m._buffers.values()) if t is not None]
    outputs, handles = [], []

    def keep(name):
        def hook(module, args, out):
            outputs.append((name, out))
        return hook

    try:
        model.eval()
        for t, _ in tensors:
            if t.dtype.kind == "f":
                t.requires_grad = True
        for name, m in modules:
            if isinstance(m, (BatchNorm1d, BatchNorm2d)):
                handles.append(m.register_forward_hook(_record_batch_norm))
            handles.append(m.register_forward_hook(keep(name)))
        yield outputs
    finally:
        for h in handles:
            h.remove()
        for t, flag in tensors:
            t.requires_grad = flag
        for m, mode in modes:
            m.training = mode


def _key(t):
    """A value of the graph: output ``t._index`` of its creator, or the leaf itself."""
    return ("leaf", id(t)) if t.creator is None else (id(t.creator), t._index)


def _check_input_shape(where, input_shape):
    if not (isinstance(input_shape, (tuple, list)) and input_shape
            and all(_checks.is_int(n) and n >= 1 for n in input_shape)):
        _checks.fail(where, "input_shape", input_shape,
                     "a tuple of positive ints without the batch axis, e.g. (3, 224, 224)")
    return tuple(int(n) for n in input_shape)


def export_onnx(model, path, input_shape, opset=17):
    """Write ``model`` (a `Module`) to ``path`` as an ONNX model for inference, atomically.

    ``input_shape`` is one input's shape without the batch axis, e.g. ``(3, 224, 224)``; the graph's
    input ``input`` has shape ``(batch, *input_shape)`` with the batch axis dynamic, and its output
    ``output`` (``output_0``, ``output_1``, ... for a model that returns a tuple) keeps the batch axis
    where the model's output has it first. The model runs once, in eval mode and with its parameters
    requiring grad, on a dummy batch, and its mode and flags are restored afterwards. Parameters and
    buffers become initializers under their ``state_dict()`` names; buffers the graph does not read
    (batch norm's ``num_batches_tracked``) are left out. The result passes ``onnx.checker`` before
    it is written.

    Ops written: Conv2d (groups, dilation, padding, stride), linear layers (as Gemm), MatMul,
    Transpose, Add, Sub, Mul, Div, ReLU, Tanh, Sigmoid, Softmax, LogSoftmax, Neg, Exp, Log, Sqrt, Abs,
    PowScalar, max and average pooling (``ceil_mode``, ``count_include_pad``; global pooling as
    GlobalAveragePool), adaptive average pooling (what it is made of), LocalResponseNorm, batch norm
    layers in eval mode, Reshape and flatten (keeping the batch axis), Concat (a constant operand
    only if it holds one repeated value, as zero padding does), basic indexing (ints and slices),
    Cast, Mean and Sum. Another op raises `UnsupportedOperatorError` naming it; a graph that ONNX
    cannot express with a dynamic batch (a reshape that moves the batch axis, a constant the graph
    does not keep) raises `OnnxExporterError` saying why. ``opset`` is the ONNX opset version, 13 or
    later. Needs the ``onnx`` extra.
    """
    where = "export_onnx"
    onnx = _require("onnx", "onnx", where)
    if not isinstance(model, Module):
        raise TypeError(f"{where}: model must be a minidl.nn.Module; got {type(model).__name__}")
    input_shape = _check_input_shape(where, input_shape)
    latest = onnx.defs.onnx_opset_version()
    if not (_checks.is_int(opset) and MIN_OPSET <= opset <= latest):
        _checks.fail(where, "opset", opset, f"an int from {MIN_OPSET} to {latest} (the installed onnx's latest)")
    path = _fspath(where, path)
    data = _Exporter(onnx, model, input_shape, int(opset)).export().SerializeToString()
    onnx.checker.check_model(data, full_check=True)
    with atomic_open(path) as f:
        f.write(data)


def _elementwise(op):
    """The translation of an op that is one ONNX node ``op`` of the same inputs."""
    def write(self, f):
        self.node(op, self.inputs(f), [self.output(f)])
    return write


class _Exporter:
    """One export: the trace, the walk, and the ONNX nodes, constants and initializers it writes."""

    def __init__(self, onnx, model, input_shape, opset):
        self.onnx, self.helper, self.model, self.opset = onnx, onnx.helper, model, opset
        self.input_shape = input_shape
        self.nodes, self.used, self.taken = [], set(), set()
        self.count = itertools.count()

    # --- trace and walk ---------------------------------------------------------------------
    def export(self):
        model = self.model
        params = list(model.parameters())
        dtype = next((p.dtype for p in params if p.dtype.kind == "f"), np.dtype(np.float32))
        device = params[0].device if params else "cpu"
        sample = np.random.default_rng(0).standard_normal((_BATCH,) + self.input_shape).astype(dtype)
        self.x = Tensor(backend.to_device(sample, device), requires_grad=True)
        # state_dict(keep_vars=True) holds the Parameters and buffers themselves: names by identity
        self.names = {}
        for name, t in model.state_dict(keep_vars=True).items():
            self.names.setdefault(id(t), name)
        with _tracing(model) as module_outputs, enable_grad():
            result = model(self.x)
            outputs = list(result) if isinstance(result, (tuple, list)) else [result]
            if not outputs or not all(isinstance(y, Tensor) for y in outputs):
                raise OnnxExporterError(f"export_onnx: the model returned {type(result).__name__}; expected a "
                                        "Tensor or a tuple of Tensors")
            return self._build(outputs, module_outputs, dtype)

    def _build(self, outputs, module_outputs, dtype):
        helper = self.helper
        order = self._walk(outputs)
        self._plan_gemms(order)
        self.values = {("leaf", id(self.x)): "input"}
        output_names = ["output"] if len(outputs) == 1 else [f"output_{i}" for i in range(len(outputs))]
        self.taken.update(output_names, ["input"])
        named = {}  # a value by the graph's output it is, else by the innermost module whose output it is
        for y, name in zip(outputs, output_names):
            if y.creator is None and y is not self.x:
                raise OnnxExporterError("export_onnx: the model's output is not computed from its input in a "
                                        "recorded graph (does its forward use no_grad() or detach()?)")
            named.setdefault(_key(y), name)
        modules = {}
        for name, out in module_outputs:  # a layer's hook runs before its container's
            if name and isinstance(out, Tensor):
                modules.setdefault(_key(out), name)
        for f in order:
            for i in range(len(f._outputs)):
                key = (id(f), i)
                self.values[key] = named.get(key) or self.fresh(
                    modules.get(key) or type(getattr(f, "module", f)).__name__)
        for f in order:
            if id(f) not in self.fused:
                self._translate(f)
        for y, name in zip(outputs, output_names):  # an output that is the input, or one returned twice
            if self.values[_key(y)] != name:
                self.node("Identity", [self.values[_key(y)]], [name])
        elem = helper.np_dtype_to_tensor_dtype(dtype)
        graph_input = helper.make_tensor_value_info("input", elem, ["batch", *self.input_shape])
        graph_outputs = [helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(y.dtype),
                                                       ["batch" if i == 0 and n == _BATCH else n
                                                        for i, n in enumerate(y.shape)])
                         for y, name in zip(outputs, output_names)]
        initializers = self._initializers()
        graph = helper.make_graph(self.nodes, type(self.model).__name__, [graph_input], graph_outputs, initializers)
        opsets = [helper.make_opsetid("", self.opset)]
        proto = helper.make_model(graph, opset_imports=opsets, producer_name="minidl", producer_version=__version__)
        proto.ir_version = helper.find_min_ir_version_for(opsets)
        return proto

    def _walk(self, outputs):
        """Every Function behind the outputs, in an order where each comes after those it reads:
        increasing generation, which is one more than that of the newest input."""
        seen, order = set(), []
        stack = [y.creator for y in outputs if y.creator is not None]
        while stack:
            f = stack.pop()
            if id(f) in seen:
                continue
            seen.add(id(f))
            order.append(f)
            stack += [e.creator for e in f._edges if e is not None and e.creator is not None]
        order.sort(key=lambda f: f.generation)
        self.consumers, self.depends = {}, set()
        for f in order:
            for i, e in enumerate(f._edges):
                if e is None:
                    continue
                self.consumers.setdefault(_key(e), []).append((f, i))
                if e is self.x or (e.creator is not None and id(e.creator) in self.depends):
                    self.depends.add(id(f))
        for y in outputs:
            self.consumers.setdefault(_key(y), []).append((None, 0))
        return order

    def _plan_gemms(self, order):
        """Find the linear layers, x @ W.T + b with x 2-D and W and b parameters, to write each as
        one Gemm: ``self.gemms`` maps the MatMul to (its Transpose, the bias Add or None), and
        ``self.fused`` holds the Functions that Gemm writes, which are not written on their own."""
        self.gemms, self.fused = {}, set()
        for m in order:
            if type(m) is not linalg.MatMul or m._edges[1] is None:
                continue
            t = m._edges[1].creator
            if not (type(t) is shape.Transpose and t.axes == (1, 0) and self._state_leaf(t._edges[0])
                    and self.consumers[(id(t), 0)] == [(m, 1)] and m.inputs[0].ndim == 2):
                continue
            add = None
            users = self.consumers[(id(m), 0)]
            if len(users) == 1 and type(users[0][0]) is arithmetic.Add and users[0][1] == 0:
                bias = users[0][0]._edges[1]
                if self._state_leaf(bias) and bias.shape == (t._edges[0].shape[0],):
                    add = users[0][0]
                    self.fused.add(id(add))
            self.fused.add(id(t))
            self.gemms[id(m)] = (t, add)

    def _state_leaf(self, e):
        """Whether edge ``e`` is a parameter or buffer of the model."""
        return e is not None and e.creator is None and id(e) in self.names

    # --- values -----------------------------------------------------------------------------
    def node(self, op, inputs, outputs, **attributes):
        self.nodes.append(self.helper.make_node(op, inputs, outputs, name=outputs[0], **attributes))

    def fresh(self, base):
        """A value name not used yet: ``base``, or ``base`` with a number."""
        name = base
        while name in self.taken:
            name = f"{base}_{next(self.count)}"
        self.taken.add(name)
        return name

    def constant(self, value, dtype=None):
        """A Constant node holding ``value`` (an array or a list), named fresh."""
        array = np.asarray(backend.as_numpy(value) if backend.is_array(value) else value, dtype=dtype)
        name = self.fresh("const")
        self.node("Constant", [], [name], value=self.onnx.numpy_helper.from_array(np.asarray(array, order="C"), name))
        return name

    def tensor(self, t):
        """The value of a leaf tensor: the graph's input, an initializer (a parameter or buffer, by
        its state_dict name) or, for any other tensor, a constant."""
        if t is self.x:
            return "input"
        name = self.names.get(id(t))
        if name is None:
            return self.constant(t.data)
        self.used.add(name)
        return name

    def input(self, f, i):
        """The value that input ``i`` of Function ``f`` reads."""
        e = f._edges[i]
        if e is None:  # a constant: written if f kept it
            kept = f.inputs[i]
            if kept is None:
                raise OnnxExporterError(
                    f"export_onnx: input {i} of {type(f).__name__} is a constant from outside the model (a Python "
                    "number, or a tensor that is no parameter or buffer), which the recorded graph does not keep "
                    f"for {type(f).__name__}, so it cannot be written; register it as a buffer of the model")
            return self.tensor(kept)
        if e.creator is None:
            return self.tensor(e)
        return self.values[(id(e.creator), e._index)]

    def inputs(self, f):
        return [self.input(f, i) for i in range(len(f._edges))]

    def output(self, f):
        return self.values[(id(f), 0)]

    def _initializers(self):
        """The parameters and buffers the graph reads, in state_dict order."""
        numpy_helper = self.onnx.numpy_helper
        state = self.model.state_dict(keep_vars=True)
        arrays = [(name, backend.as_numpy(state[name].data)) for name in state if name in self.used]
        total = sum(a.nbytes for _, a in arrays)
        if total > _PROTOBUF_LIMIT:
            raise OnnxExporterError(f"export_onnx: the weights take {total / 2 ** 30:.2f} GiB, more than the 2 GiB "
                                    "one ONNX file (a protobuf message) can hold")
        return [numpy_helper.from_array(np.asarray(a, order="C"), name) for name, a in arrays]

    # --- translation --------------------------------------------------------------------------
    def _translate(self, f):
        write = self._TRANSLATIONS.get(type(f))
        if write is None:
            supported = ", ".join(sorted(cls.__name__ for cls in self._TRANSLATIONS if cls is not _ModuleCall))
            raise UnsupportedOperatorError(
                f"export_onnx: the model's forward uses the op {type(f).__name__}, which has no ONNX translation; "
                f"the ops export_onnx writes are {supported}, and BatchNorm1d/BatchNorm2d layers")
        write(self, f)

    _relu, _tanh, _sigmoid = _elementwise("Relu"), _elementwise("Tanh"), _elementwise("Sigmoid")
    _neg, _exp, _log = _elementwise("Neg"), _elementwise("Exp"), _elementwise("Log")
    _sqrt, _abs = _elementwise("Sqrt"), _elementwise("Abs")
    _add, _sub, _mul, _div = _elementwise("Add"), _elementwise("Sub"), _elementwise("Mul"), _elementwise("Div")

    def _pow_scalar(self, f):
        x = f.inputs[0]
        self.node("Pow", [self.input(f, 0), self.constant(f.c, dtype=x.dtype)], [self.output(f)])

    def _softmax(self, f, op="Softmax"):
        if not _checks.is_int(f.axis):
            raise OnnxExporterError(f"export_onnx: {type(f).__name__} over the axes {f.axis!r}: ONNX's {op} "
                                    "normalises over one axis")
        self.node(op, self.inputs(f), [self.output(f)], axis=int(f.axis))

    def _log_softmax(self, f):
        self._softmax(f, "LogSoftmax")

    def _conv2d(self, f):
        kh, kw = f.inputs[1].shape[2:]
        (ph, pw), (sh, sw), (dh, dw) = f.padding, f.stride, f.dilation
        self.node("Conv", self.inputs(f), [self.output(f)], kernel_shape=[kh, kw], strides=[sh, sw],
                  pads=[ph, pw, ph, pw], dilations=[dh, dw], group=f.groups)

    def _matmul(self, f):
        plan = self.gemms.get(id(f))
        if plan is None:
            self.node("MatMul", self.inputs(f), [self.output(f)])
            return
        transpose, add = plan
        inputs = [self.input(f, 0), self.input(transpose, 0)] + ([self.input(add, 1)] if add else [])
        self.node("Gemm", inputs, [self.output(add or f)], transB=1)

    def _transpose(self, f):
        self.node("Transpose", self.inputs(f), [self.output(f)], perm=list(f.axes))

    def _pool_ceil_mode(self, f, x_shape, kernel, stride, padding, ceil_mode):
        """ONNX's ceil_mode attribute for PyTorch's rule. ONNX's ceil mode keeps a last window that
        starts in the right padding, which PyTorch (and minidl) drop; when they drop it the size is
        the floor mode's, so ceil mode is asked for only where it adds the window PyTorch keeps."""
        if not ceil_mode:
            return 0
        adds = [kernels.conv_output_size(n, k, s, p, 1, True) > kernels.conv_output_size(n, k, s, p, 1, False)
                for n, k, s, p in zip(x_shape[2:], kernel, stride, padding)]
        if any(adds) and not all(adds):
            onnx_sizes = [-(-(n + 2 * p - k) // s) + 1 for n, k, s, p in zip(x_shape[2:], kernel, stride, padding)]
            torch_sizes = [kernels.conv_output_size(n, k, s, p, 1, True)
                           for n, k, s, p in zip(x_shape[2:], kernel, stride, padding)]
            if onnx_sizes != torch_sizes:
                raise OnnxExporterError(
                    f"export_onnx: {type(f).__name__} with ceil_mode on an input of {tuple(x_shape[2:])} keeps a "
                    "partial last window along one axis and drops one that starts in the padding along the "
                    f"other (output {tuple(torch_sizes)}); ONNX's ceil_mode cannot do both")
        return int(any(adds))

    def _pool_attributes(self, f, kernel, stride, padding, ceil_mode):
        return dict(kernel_shape=list(kernel), strides=list(stride), pads=[*padding, *padding],
                    ceil_mode=self._pool_ceil_mode(f, f.x_shape, kernel, stride, padding, ceil_mode))

    def _max_pool2d(self, f):
        self.node("MaxPool", self.inputs(f), [self.output(f)],
                  **self._pool_attributes(f, f.kernel, f.stride, f.padding, f.ceil_mode))

    def _avg_pool2d(self, f):
        kernel, stride, padding, ceil_mode, count_include_pad = f.args
        if tuple(kernel) == tuple(f.x_shape[2:]) and tuple(padding) == (0, 0):  # one window: the whole map
            self.node("GlobalAveragePool", self.inputs(f), [self.output(f)])
            return
        self.node("AveragePool", self.inputs(f), [self.output(f)], count_include_pad=int(count_include_pad),
                  **self._pool_attributes(f, kernel, stride, padding, ceil_mode))

    def _local_response_norm(self, f):
        size, alpha, beta, k = f.args
        x, y = self.input(f, 0), self.output(f)
        if size % 2:
            # ONNX's LRN divides alpha by size too; its window is centred, as PyTorch's is for odd sizes
            self.node("LRN", [x], [y], size=size, alpha=alpha, beta=beta, bias=k)
            return
        # PyTorch's even window reaches size//2 channels back and size//2 - 1 forward, ONNX's the
        # opposite, and onnxruntime refuses even sizes: average the squares over PyTorch's window
        # with a pool over a new channel axis, as PyTorch's own local_response_norm does.
        dtype, rest = f.inputs[0].dtype, [0] * (f.inputs[0].ndim - 2)
        axis = self.constant([1], np.int64)
        square, channels, mean, summed, scaled, scale, power = (self.fresh("lrn") for _ in range(7))
        self.node("Mul", [x, x], [square])
        self.node("Unsqueeze", [square, axis], [channels])
        self.node("AveragePool", [channels], [mean], kernel_shape=[size] + [1] * len(rest),
                  pads=[size // 2] + rest + [(size - 1) // 2] + rest, count_include_pad=1)
        self.node("Squeeze", [mean, axis], [summed])
        self.node("Mul", [summed, self.constant(alpha, dtype)], [scaled])  # alpha * mean = alpha / size * sum
        self.node("Add", [scaled, self.constant(k, dtype)], [scale])
        self.node("Pow", [scale, self.constant(-beta, dtype)], [power])
        self.node("Mul", [x, power], [y])

    def _batch_norm_layer(self, f):
        m = f.module
        if m.running_mean is None or m.running_var is None:
            raise OnnxExporterError(
                f"export_onnx: {_checks.layer_name(m)} has no running statistics (track_running_stats=False), so "
                "it normalises with each batch's own statistics in eval mode too, which ONNX's "
                "BatchNormalization cannot express")
        dtype = m.running_mean.dtype
        scale = self.tensor(m.weight) if m.weight is not None else self.constant(np.ones(m.num_features, dtype))
        bias = self.tensor(m.bias) if m.bias is not None else self.constant(np.zeros(m.num_features, dtype))
        self.node("BatchNormalization",
                  [self.input(f, 0), scale, bias, self.tensor(m.running_mean), self.tensor(m.running_var)],
                  [self.output(f)], epsilon=float(m.eps))

    def _reshape(self, f):
        x, y, in_shape, out_shape = self.input(f, 0), self.output(f), tuple(f.in_shape), tuple(f.shape)
        if id(f) not in self.depends:  # a parameter's reshape: every size is fixed
            self.node("Reshape", [x, self.constant(out_shape, np.int64)], [y])
            return
        if not (in_shape and out_shape and in_shape[0] == out_shape[0]):
            raise OnnxExporterError(
                f"export_onnx: a reshape from {in_shape} to {out_shape} (traced with a batch of {_BATCH}) does not "
                "keep the batch axis first, which the exported graph's dynamic batch cannot follow")
        if len(out_shape) == 2 and out_shape[1] == int(np.prod(in_shape[1:], dtype=np.int64)):
            self.node("Flatten", [x], [y], axis=1)
        else:  # 0: the input's size along that axis, the batch
            self.node("Reshape", [x, self.constant((0,) + out_shape[1:], np.int64)], [y])

    def _concat(self, f):
        inputs = [None if e is None else self.input(f, i) for i, e in enumerate(f._edges)]
        like = next(name for name in inputs if name is not None)
        offsets = np.cumsum([0] + list(f.sizes))
        for i, size in enumerate(f.sizes):
            if inputs[i] is None and size:
                inputs[i] = self._filled_like(f, like, int(offsets[i]), size)
        self.node("Concat", [name for name in inputs if name is not None], [self.output(f)], axis=int(f.axis))

    def _filled_like(self, f, like, offset, size):
        """A constant operand of Concat that the graph does not keep, read back from the output: one
        repeated value (zero padding) becomes ConstantOfShape with ``like``'s runtime shape but
        ``size`` along the axis, so that it follows the batch."""
        out = f._outputs[0]()
        values = None
        if out is not None:
            values = backend.as_numpy(out.data[(slice(None),) * f.axis + (slice(offset, offset + size),)])
        if values is None or not (values == values.flat[0]).all():
            raise OnnxExporterError(
                f"export_onnx: a constant operand of Concat (axis {f.axis}, {size} wide) is not kept by the recorded "
                "graph; the exporter writes one only if it holds a single repeated value, such as zero padding"
                + (", and the Concat's output was not a module's output" if values is None else ""))
        shape_of, target = self.fresh("shape"), self.fresh("shape")
        self.node("Shape", [like], [shape_of])
        self.node("ScatterElements", [shape_of, self.constant([f.axis], np.int64), self.constant([size], np.int64)],
                  [target], axis=0)
        filled = self.fresh("filled")
        value = self.onnx.numpy_helper.from_array(np.array([values.flat[0]], dtype=values.dtype), "value")
        self.node("ConstantOfShape", [target], [filled], value=value)
        return filled

    def _getitem(self, f):
        index, ndim = f.index, len(f.in_shape)
        parts = index if isinstance(index, tuple) else (index,)
        if not all(_checks.is_int(p) or isinstance(p, slice) or p is Ellipsis for p in parts) \
                or sum(p is Ellipsis for p in parts) > 1:
            raise OnnxExporterError(f"export_onnx: indexing with {index!r}: the exporter writes basic indexing "
                                    "(ints, slices and one ...), not advanced indexing or None")
        if Ellipsis in parts:
            at = parts.index(Ellipsis)
            parts = parts[:at] + (slice(None),) * (ndim - len(parts) + 1) + parts[at + 1:]
        ranges, squeeze = [], []  # (start, end, axis, step) of each axis sliced
        for axis, p in enumerate(parts):
            if _checks.is_int(p):
                p = int(p)
                ranges.append((p, p + 1 if p != -1 else _INT64_MAX, axis, 1))
                squeeze.append(axis)
            elif p.start is not None or p.stop is not None or p.step not in (None, 1):
                step = 1 if p.step is None else int(p.step)
                # an omitted bound is the end the step starts from or runs to, as ONNX clamps it
                start = int(p.start) if p.start is not None else (0 if step > 0 else _INT64_MAX)
                end = int(p.stop) if p.stop is not None else (_INT64_MAX if step > 0 else _INT64_MIN)
                ranges.append((start, end, axis, step))
        x, y = self.input(f, 0), self.output(f)
        if not ranges:
            self.node("Identity", [x], [y])
            return
        sliced = self.fresh("slice") if squeeze else y
        self.node("Slice", [x] + [self.constant(list(v), np.int64) for v in zip(*ranges)], [sliced])
        if squeeze:
            self.node("Squeeze", [sliced, self.constant(squeeze, np.int64)], [y])

    def _cast(self, f):
        self.node("Cast", self.inputs(f), [self.output(f)], to=self.helper.np_dtype_to_tensor_dtype(f.dtype))

    def _reduce(self, f, op):
        x, y, axes = self.input(f, 0), self.output(f), list(f.axes)
        if op == "ReduceMean" and self.opset < 18:  # its axes became an input in opset 18
            self.node(op, [x], [y], axes=axes, keepdims=int(f.keepdims))
        else:
            self.node(op, [x, self.constant(axes, np.int64)], [y], keepdims=int(f.keepdims))

    def _mean(self, f):
        self._reduce(f, "ReduceMean")

    def _sum(self, f):
        self._reduce(f, "ReduceSum")

    _TRANSLATIONS = {
        activation.ReLU: _relu, activation.Tanh: _tanh, activation.Sigmoid: _sigmoid,
        activation.Softmax: _softmax, activation.LogSoftmax: _log_softmax,
        arithmetic.Add: _add, arithmetic.Sub: _sub, arithmetic.Mul: _mul, arithmetic.Div: _div,
        arithmetic.Neg: _neg, arithmetic.Exp: _exp, arithmetic.Log: _log, arithmetic.Sqrt: _sqrt,
        arithmetic.Abs: _abs, arithmetic.PowScalar: _pow_scalar,
        conv.Conv2d: _conv2d, linalg.MatMul: _matmul, shape.Transpose: _transpose,
        pooling.MaxPool2d: _max_pool2d, pooling.AvgPool2d: _avg_pool2d,
        normalization.LocalResponseNorm: _local_response_norm, _ModuleCall: _batch_norm_layer,
        shape.Reshape: _reshape, shape.Concat: _concat, shape.GetItem: _getitem, shape.Cast: _cast,
        reduction.Mean: _mean, reduction.Sum: _sum,
    }

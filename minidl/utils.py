"""Looking at the autograd graph: `plot_graph` writes it in Graphviz's DOT language.

    import minidl as mdl
    from minidl.utils import plot_graph

    x = mdl.tensor([[1.0, 2.0]], requires_grad=True)
    y = (x * x).sum()
    print(plot_graph(y))                 # DOT source, a str
    plot_graph(y, "graph.dot")           # the same, written to a file
    plot_graph(y, "graph.svg")           # rendered by Graphviz's `dot` program

The graph is the chain of links that the forward pass leaves behind (see
`minidl.tensor`): a tensor made by an operation points to the Function that
made it (``tensor.creator``), and that Function knows where each of its inputs
came from (``function.next_functions``). Walking those links back from the
output visits exactly what ``backward()`` will visit. An input tensor the
program has dropped is still drawn, from the shape and dtype the graph keeps;
a constant input (one that needs no gradient) is drawn where its Function keeps
it for its backward. Tensors are drawn as ellipses (their shape and
dtype; the name too where ``params`` gives one), Functions as boxes (the op's
class name), and edges run the way data flows in the forward pass:
input -> function -> output.

``backward()`` frees the graph as it goes (unless ``retain_graph=True``): a
Function it has passed no longer knows its inputs. Such a Function is drawn with
the note "inputs freed", and nothing behind it can be reached, so plot the graph
before calling ``backward()``.

Only the standard library and the ``dot`` program are used; Graphviz is not a
Python dependency (``apt install graphviz``, ``brew install graphviz``, or
https://graphviz.org/download/).
"""
import os
import shutil
import subprocess

from minidl.serialization import atomic_open
from minidl.tensor import Tensor, _key

__all__ = ["GraphvizNotFoundError", "plot_graph"]

# Formats that plot_graph hands to `dot -T<format>`; any other suffix gets the DOT source.
RENDERED_FORMATS = ("svg", "png", "pdf")


class GraphvizNotFoundError(RuntimeError):
    """Rendering a graph needs Graphviz's ``dot`` program, and it is not on PATH."""


def _names_of(params):
    """id(tensor) -> name, from a Module (its parameters and buffers), a dict or (name, tensor) pairs."""
    if params is None:
        return {}
    if hasattr(params, "named_parameters"):
        pairs = list(params.named_parameters())
        if hasattr(params, "named_buffers"):
            pairs += list(params.named_buffers())
    elif isinstance(params, dict):
        pairs = list(params.items())
    else:
        pairs = list(params)
    return {id(t): str(name) for name, t in pairs if isinstance(t, Tensor)}


def _quote(text):
    """A DOT double-quoted string; ``\\n`` in ``text`` stays a DOT line break."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape(shape):
    return "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"


def _walk(outputs):
    """Tensors and Functions reachable backwards from ``outputs``, in the order first met
    (breadth first; a Function's inputs and outputs in their own order), and the edges."""
    tensors, functions, edges = [], [], []
    seen_t, seen_f = {}, {}

    def add_tensor(t):
        """``t`` is a Tensor, or the graph's edge of a dropped one (it has a shape and a dtype)."""
        key = _key(t)
        if key not in seen_t:
            seen_t[key] = f"t{len(tensors)}"
            tensors.append(t)
        return seen_t[key]

    queue = []
    for y in outputs:
        add_tensor(y)
        if y.creator is not None:
            queue.append(y.creator)
    i = 0
    while i < len(queue):
        f = queue[i]
        i += 1
        if id(f) in seen_f:
            continue
        seen_f[id(f)] = fid = f"f{len(functions)}"
        functions.append(f)
        for kept, edge in zip(f.inputs or (), f._edges or ()):
            x = kept if kept is not None else edge
            if x is None:
                continue  # a constant its Function did not keep
            if x.creator is not None:
                alive = x.creator._outputs[x._index]()
                x = x if alive is None else alive  # the tensor itself while the program holds it
                if id(x.creator) not in seen_f:
                    queue.append(x.creator)
            edges.append((add_tensor(x), fid))
        for i, ref in enumerate(f._outputs or ()):
            y = ref()
            if y is not None:
                edges.append((fid, add_tensor(y)))
            elif (id(f), i) in seen_t:  # dropped by the program, drawn from its consumer's edge
                edges.append((fid, seen_t[(id(f), i)]))
    return tensors, functions, seen_t, seen_f, edges


def _to_dot(outputs, params=None, rankdir="TB", title=None):
    """The DOT source of the graph behind ``outputs`` (see `plot_graph`)."""
    outputs = [outputs] if isinstance(outputs, Tensor) else list(outputs)
    for y in outputs:
        if not isinstance(y, Tensor):
            raise TypeError(f"plot_graph: expected a Tensor or a sequence of Tensors; got {type(y).__name__}")
    names = _names_of(params)
    tensors, functions, tensor_ids, function_ids, edges = _walk(outputs)
    output_ids = {_key(y) for y in outputs}

    lines = ["digraph minidl {", f"  rankdir={rankdir};", '  graph [fontname="Helvetica", fontsize=12];',
             '  node [fontname="Helvetica", fontsize=10];', '  edge [arrowsize=0.6];']
    if title:
        lines.append(f"  label={_quote(title)}; labelloc=t;")
    for t in tensors:
        label = f"{_shape(t.shape)} {t.dtype}"
        if id(t) in names:
            label = names[id(t)] + "\n" + label
        if _key(t) in output_ids:
            style = ', style="filled,bold", fillcolor="#fde9c9"'  # what plot_graph was given
        elif t.creator is None and t.requires_grad:
            style = ', style=filled, fillcolor="#d7e8fb"'  # a leaf that gets a .grad
        elif t.creator is None:
            style = ', style=filled, fillcolor="#eeeeee"'  # a constant: data, targets
        else:
            style = ""
        lines.append(f"  {tensor_ids[_key(t)]} [shape=ellipse, label={_quote(label)}{style}];")
    for f in functions:
        label = type(f).__name__ + ("\n(inputs freed)" if f._edges is None else "")
        lines.append(f"  {function_ids[id(f)]} [shape=box, label={_quote(label)}];")
    for a, b in edges:
        lines.append(f"  {a} -> {b};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def plot_graph(output, path=None, *, params=None, rankdir="TB", title=None):
    """Draw the autograd graph that ends in ``output`` (a Tensor or a sequence of them).

    Returns the graph as Graphviz DOT source (a str): one ellipse per tensor,
    labelled with its shape and dtype, one box per Function, labelled with the
    op's class name (``Conv2d``, ``MatMul``, ...), and edges input -> function
    -> output. A tensor used twice is one node with two outgoing edges, as it
    is one object in the graph. Colours: the outputs given (orange), leaves
    that require grad (blue: parameters, inputs being differentiated),
    constants (grey).

    ``params`` names tensors: a Module (its ``named_parameters()`` and
    ``named_buffers()``, so a weight shows as ``features.0.weight``), a dict
    ``{name: tensor}`` or an iterable of ``(name, tensor)`` pairs.

    With ``path``, the result is also written there (atomically): rendered by
    Graphviz's ``dot`` when the name ends in ``.svg``, ``.png`` or ``.pdf``,
    else as the DOT source (``.dot``, ``.gv``). Rendering without ``dot`` on
    PATH raises `GraphvizNotFoundError`, which says how to install it.
    ``rankdir`` is Graphviz's direction ("TB" top to bottom, "LR" left to
    right); ``title`` is drawn above the graph.
    """
    dot = _to_dot(output, params=params, rankdir=rankdir, title=title)
    if path is None:
        return dot
    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lower().lstrip(".")
    if fmt in RENDERED_FORMATS:
        data = _render(dot, fmt, path)
    else:
        data = dot.encode("utf-8")
    with atomic_open(path) as f:
        f.write(data)
    return dot


def _render(dot, fmt, path):
    """``dot -T<fmt>`` of the DOT source, as bytes."""
    program = shutil.which("dot")
    if program is None:
        raise GraphvizNotFoundError(
            f"plot_graph: rendering {path!r} needs the program 'dot' from Graphviz, and it is not on PATH. "
            "Install Graphviz (Debian/Ubuntu: apt install graphviz; macOS: brew install graphviz; others: "
            "https://graphviz.org/download/), or write the DOT source instead (a path ending in .dot) and "
            "render it elsewhere."
        )
    result = subprocess.run([program, f"-T{fmt}"], input=dot.encode("utf-8"), capture_output=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"plot_graph: {program} -T{fmt} failed (exit status {result.returncode}): "
                           f"{result.stderr.decode(errors='replace').strip()}")
    return result.stdout

"""minidl.utils.plot_graph: the DOT it writes for small graphs, node for node and edge for edge,
the clear error when Graphviz is missing, and a real rendering when it is not."""
import re
import shutil

import numpy as np
import pytest

import minidl as mdl
from minidl import nn, utils
from minidl.utils import GraphvizNotFoundError, plot_graph


def parse(dot):
    """(nodes, edges) of DOT written by plot_graph: {id: (shape, label)} and a list of (a, b)."""
    nodes = {m[1]: (m[2], m[3].replace("\\n", "\n"))
             for m in re.finditer(r'^  (\w+) \[shape=(\w+), label="((?:[^"\\]|\\.)*)"', dot, re.M)}
    edges = re.findall(r"^  (\w+) -> (\w+);$", dot, re.M)
    return nodes, edges


def labelled(dot):
    """The edges with each end replaced by its label, as a sorted list: independent of node ids."""
    nodes, edges = parse(dot)
    return sorted((nodes[a][1], nodes[b][1]) for a, b in edges)


def test_tiny_graph_exact_structure():
    x = mdl.tensor(np.ones((2, 3), np.float32), requires_grad=True)
    w = mdl.tensor(np.ones((3, 1), np.float32), requires_grad=True)
    y = (x @ w).tanh().sum()
    dot = plot_graph(y, params={"x": x, "w": w})
    assert dot.startswith("digraph minidl {") and dot.rstrip().endswith("}")
    nodes, edges = parse(dot)
    assert nodes == {
        "t0": ("ellipse", "() float32"),
        "t1": ("ellipse", "(2, 1) float32"),
        "t2": ("ellipse", "(2, 1) float32"),
        "t3": ("ellipse", "x\n(2, 3) float32"),
        "t4": ("ellipse", "w\n(3, 1) float32"),
        "f0": ("box", "Sum"),
        "f1": ("box", "Tanh"),
        "f2": ("box", "MatMul"),
    }
    assert sorted(edges) == sorted([("t3", "f2"), ("t4", "f2"), ("f2", "t2"), ("t2", "f1"), ("f1", "t1"),
                                    ("t1", "f0"), ("f0", "t0")])


def test_shared_subexpression_is_one_node():
    x = mdl.tensor(np.ones(4, np.float64), requires_grad=True)
    h = x.exp()                   # used twice below
    y = (h * h + h).sum()
    nodes, edges = parse(plot_graph(y))
    exp_nodes = [k for k, (shape, label) in nodes.items() if label == "Exp"]
    assert len(exp_nodes) == 1
    (h_id,) = [b for a, b in edges if a == exp_nodes[0]]
    consumers = sorted(nodes[b][1] for a, b in edges if a == h_id)
    assert consumers == ["Add", "Mul", "Mul"]  # h * h: two edges into the one Mul
    assert sorted(label for shape, label in nodes.values() if shape == "box") == ["Add", "Exp", "Mul", "Sum"]
    assert len([k for k, (shape, _) in nodes.items() if shape == "ellipse"]) == 5  # x, h, h*h, h*h+h, y


def test_module_names_its_parameters():
    mdl.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 2), nn.ReLU())
    dot = plot_graph(model(mdl.randn(4, 3)), params=model)
    labels = {label for _, label in parse(dot)[0].values()}
    assert "0.weight\n(2, 3) float32" in labels and "0.bias\n(2,) float32" in labels
    assert ("(4, 3) float32", "Transpose") not in labelled(dot)  # the input goes into the MatMul
    assert ("(4, 3) float32", "MatMul") in labelled(dot)


def test_several_outputs_and_a_freed_graph():
    x = mdl.tensor(np.ones(3, np.float32), requires_grad=True)
    a, b = x.exp(), x.tanh()
    nodes, _ = parse(plot_graph([a, b]))
    assert sorted(label for shape, label in nodes.values() if shape == "box") == ["Exp", "Tanh"]
    y = (x * 2).sum()
    y.backward()
    assert "Sum\n(inputs freed)" in {label for _, label in parse(plot_graph(y))[0].values()}


def test_rejects_what_is_not_a_tensor():
    with pytest.raises(TypeError, match="Tensor"):
        plot_graph(np.ones(3))


def test_writes_dot_source(tmp_path):
    x = mdl.tensor(np.ones(2, np.float32), requires_grad=True)
    dot = plot_graph(x.exp(), tmp_path / "g.dot")
    assert (tmp_path / "g.dot").read_text() == dot
    assert [p.name for p in tmp_path.iterdir()] == ["g.dot"]  # no temporary file left behind


def test_missing_dot_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(utils.shutil, "which", lambda name: None)
    x = mdl.tensor(np.ones(2, np.float32), requires_grad=True)
    with pytest.raises(GraphvizNotFoundError) as info:
        plot_graph(x.exp(), tmp_path / "g.svg")
    message = str(info.value)
    assert "Graphviz" in message and "apt install graphviz" in message and "'dot'" in message
    assert not isinstance(info.value, FileNotFoundError)
    assert list(tmp_path.iterdir()) == []
    assert plot_graph(x.exp(), tmp_path / "g.dot")  # writing the source needs no Graphviz


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_renders_svg_with_dot(tmp_path):
    x = mdl.tensor(np.ones((2, 2), np.float32), requires_grad=True)
    plot_graph((x @ x).sum(), tmp_path / "g.svg", params={"x": x})
    svg = (tmp_path / "g.svg").read_text()
    assert "<svg" in svg and "MatMul" in svg and "Sum" in svg

"""The README's first command runs examples/autograd_tour.py: it must keep working."""
import os
import runpy


def test_autograd_tour_runs_and_learns(capsys):
    path = os.path.join(os.path.dirname(__file__), os.pardir, "examples", "autograd_tour.py")
    runpy.run_path(path, run_name="__main__")
    out = capsys.readouterr().out
    assert "gradcheck(Cube): True" in out and "gradgradcheck(Cube): True" in out
    last = [line for line in out.splitlines() if line.startswith("step")][-1]
    assert float(last.split("accuracy")[1].strip().rstrip("%")) > 90


def _example(name):
    return os.path.join(os.path.dirname(__file__), os.pardir, "examples", name)


def test_the_pytorch_style_script_trains_on_minidl(monkeypatch, capsys):
    from minidl.data import datasets
    from test_cli import TinyDigits

    monkeypatch.setattr(datasets, "MNIST", TinyDigits)  # MNIST's format, no download
    main = runpy.run_path(_example("pytorch_style_mnist.py"))["main"]
    model, history = main(["--epochs", "3", "--batch-size", "16", "--max-norm", "0.4"])
    out = capsys.readouterr().out
    assert out.count("val acc") == 3 and "lr 0.00e+00" in out  # the cosine schedule ends at 0
    assert history[-1][1] >= 0.75 and history[-1][0] < history[0][0]
    norms = (model.fc2.weight.numpy().astype("float64") ** 2).sum(axis=1) ** 0.5
    assert 0.4 * (1 - 1e-3) < norms.max() <= 0.4 * (1 + 1e-6)  # the in-place constraint binds


def test_the_pytorch_style_script_is_pytorch_but_for_its_imports(torch, monkeypatch, capsys):
    """The script's body runs unchanged on PyTorch, with the imports its comment gives. torchvision is
    not installed here, so a stand-in gives its MNIST (the same images) and the two transforms."""
    import sys
    import types

    import numpy as np
    from test_cli import TinyDigits

    source = open(_example("pytorch_style_mnist.py")).read()
    ours = ("import minidl as torch\nfrom minidl import nn, optim\nimport minidl.nn.functional as F\n"
            "from minidl.data import DataLoader, Subset, random_split\nfrom minidl.data import datasets, transforms\n")
    theirs = ("import torch\nfrom torch import nn, optim\nimport torch.nn.functional as F\n"
              "from torch.utils.data import DataLoader, Subset, random_split\n"
              "from torchvision import datasets, transforms\n")
    assert source.count(ours) == 1
    assert "".join(f"#   {line}\n" for line in theirs.splitlines()) in source  # the comment says so

    class MNIST(torch.utils.data.Dataset):
        def __init__(self, root, train=True, download=True, transform=None):
            self.images, self.labels, self.transform = TinyDigits(train=train).data, TinyDigits(train=train).targets, transform

        def __len__(self):
            return len(self.images)

        def __getitem__(self, i):
            return self.transform(self.images[i]), int(self.labels[i])

    vision = types.ModuleType("torchvision")
    vision.datasets = types.SimpleNamespace(MNIST=MNIST)
    vision.transforms = types.SimpleNamespace(
        Compose=lambda steps: lambda x: [x := step(x) for step in steps][-1],
        ToTensor=lambda: lambda x: torch.from_numpy(x.astype(np.float32) / 255),  # (1, 28, 28) already
        Normalize=lambda mean, std: lambda x: (x - mean[0]) / std[0])
    monkeypatch.setitem(sys.modules, "torchvision", vision)
    namespace = {"__name__": "pytorch_style_mnist"}
    exec(compile(source.replace(ours, theirs), "pytorch_style_mnist.py (PyTorch)", "exec"), namespace)
    model, history = namespace["main"](["--epochs", "3", "--batch-size", "16", "--max-norm", "0.4"])
    assert isinstance(model, torch.nn.Module) and capsys.readouterr().out.count("val acc") == 3
    assert history[-1][1] >= 0.75

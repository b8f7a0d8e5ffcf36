"""One training step (forward + backward + SGD) of whole models, minidl next to PyTorch CPU.

Models: LeNet-5 (batch 64, 1x32x32), ResNet-18 at CIFAR size (batch 32, 3x32x32) and ResNet-50 at
ImageNet size (batch 8, 3x224x224). Each (library, model) pair runs in a fresh subprocess, so its peak
memory (the process's maximum resident set size, interpreter and library included) is its own.

    python benchmarks/bench_models.py [--steps 5] [--models lenet5 resnet18 resnet50] [--json out.json]
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# _common first, before NumPy loads: it sets this process's threads
from _common import machine_header, try_import_torch, write_json  # noqa: E402
import numpy as np  # noqa: E402


CASES = {  # name: (batch, input shape, classes)
    "lenet5": (64, (1, 32, 32), 10),
    "resnet18": (32, (3, 32, 32), 10),
    "resnet50": (8, (3, 224, 224), 1000),
}


def minidl_step(name, batch, shape, classes):
    import minidl as mdl
    import minidl.nn.functional as F
    from minidl_models import get_model

    mdl.manual_seed(0)
    model = get_model(name, num_classes=classes, in_channels=shape[0])
    opt = mdl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = mdl.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = mdl.tensor(rng.integers(0, classes, batch))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_model(torch, name, in_channels, classes):
    """The same architectures, written with torch.nn (no torchvision CPU build exists here)."""
    nn = torch.nn
    if name == "lenet5":
        return nn.Sequential(nn.Conv2d(in_channels, 6, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5),
                             nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(16, 120, 5), nn.Tanh(), nn.Flatten(),
                             nn.Linear(120, 84), nn.Tanh(), nn.Linear(84, classes))

    class Block(nn.Module):
        def __init__(self, cin, planes, stride, bottleneck):
            super().__init__()
            out = planes * (4 if bottleneck else 1)
            if bottleneck:
                self.body = nn.Sequential(
                    nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, out, 1, bias=False), nn.BatchNorm2d(out))
            else:
                self.body = nn.Sequential(
                    nn.Conv2d(cin, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(),
                    nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes))
            self.short = (nn.Sequential(nn.Conv2d(cin, out, 1, stride, bias=False), nn.BatchNorm2d(out))
                          if stride != 1 or cin != out else nn.Identity())

        def forward(self, x):
            return torch.relu(self.body(x) + self.short(x))

    bottleneck, layers = {"resnet18": (False, [2, 2, 2, 2]), "resnet50": (True, [3, 4, 6, 3])}[name]
    mods = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, n in enumerate(layers):
        planes = 64 * 2 ** i
        for j in range(n):
            mods.append(Block(cin, planes, 2 if (j == 0 and i > 0) else 1, bottleneck))
            cin = planes * (4 if bottleneck else 1)
    mods += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(cin, classes)]
    return nn.Sequential(*mods)


def torch_step(name, batch, shape, classes):
    torch = try_import_torch()
    torch.manual_seed(0)
    model = torch_model(torch, name, shape[0], classes)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, classes, batch))

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def child(library, name, steps):
    """Runs in the subprocess: time ``steps`` steps after one warm-up, print JSON."""
    batch, shape, classes = CASES[name]
    step = (minidl_step if library == "minidl" else torch_step)(name, batch, shape, classes)
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    print(json.dumps({"seconds": statistics.median(times), "peak_mib": peak_mib}))


def run_child(library, name, steps):
    done = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", library, name, "--steps", str(steps)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{library} {name} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per model (median reported)")
    p.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", default=None)
    p.add_argument("--child", nargs=2, metavar=("LIBRARY", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return child(args.child[0], args.child[1], args.steps)

    for line in machine_header():
        print(line)
    have_torch = try_import_torch() is not None
    print(f"\ntraining step (forward + backward + SGD momentum), float32, median of {args.steps} steps; "
          "peak = max RSS of the process\n")
    print(f"{'model':10} {'batch':>5} {'input':>11} | {'minidl s':>9} {'torch s':>8} {'ratio':>6} | "
          f"{'minidl MiB':>10} {'torch MiB':>9}")
    rows = []
    for name in args.models:
        batch, shape, _ = CASES[name]
        ours = run_child("minidl", name, args.steps)
        ref = run_child("torch", name, args.steps) if have_torch else None
        rows.append({"model": name, "batch": batch, "minidl": ours, "torch": ref})
        r = (f"{ref['seconds']:8.3f} {ours['seconds'] / ref['seconds']:6.2f}" if ref else f"{'-':>8} {'-':>6}")
        rm = f"{ref['peak_mib']:9.0f}" if ref else f"{'-':>9}"
        print(f"{name:10} {batch:5d} {'x'.join(map(str, shape)):>11} | {ours['seconds']:9.3f} {r} | "
              f"{ours['peak_mib']:10.0f} {rm}")
    write_json(args.json, {"rows": rows})


if __name__ == "__main__":
    main()

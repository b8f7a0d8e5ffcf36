"""One training step (forward + backward + SGD) of whole models, minidl next to PyTorch CPU.

Models: LeNet-5 (batch 64, 1x32x32), ResNet-18 at CIFAR size (batch 32, 3x32x32) and ResNet-50 at
ImageNet size (batch 8, 3x224x224); ``--batch`` and ``--image-size`` change the batch and the
ResNets' input size. Each (library, model) pair runs in fresh processes of its own, minidl's and
PyTorch's alternating for ``--rounds`` rounds (CPU), each from the environment the benchmark was
started with, so neither library's thread settings reach the other, and its peak memory (the
process's maximum resident set size, interpreter and library included) is its own. The table gives
the median step time over the rounds and the largest peak.

With ``--device cuda`` both libraries train on the GPU; every step is timed between device
synchronisations, the first step (kernel compiles, cuBLAS and cuDNN set-up) is reported apart from
the median, and peak memory is GPU memory: for minidl the most bytes in use in CuPy's memory pool
during a step (tracked by a CuPy memory hook) and the most the pool held, for PyTorch
``torch.cuda.max_memory_allocated`` and ``max_memory_reserved``. Full float32 unless ``--tf32``.

    python benchmarks/bench_models.py [--steps 5] [--rounds 2] [--models lenet5 resnet18 resnet50] [--json out.json]
                                      [--batch 64] [--image-size 224] [--device cuda [--tf32]]
"""
import argparse
import os
import resource
import statistics
import sys
import time

import numpy as np

from minidl.bench.common import (Device, add_device_option, gpu_times, machine_header, measured_side, report_side,
                                 run_script, run_side, select_device, side_header, start_cuda_report, torch_lenet5,
                                 try_import_torch, write_json)

SIDE = measured_side()  # "minidl" or "torch" in a process that run_side started, else None


CASES = {  # name: (batch, input shape, classes)
    "lenet5": (64, (1, 32, 32), 10),
    "resnet18": (32, (3, 32, 32), 10),
    "resnet50": (8, (3, 224, 224), 1000),
}


def minidl_step(name, batch, shape, classes, device=Device()):
    import minidl as mdl
    import minidl.nn.functional as F
    from minidl_models import get_model

    mdl.manual_seed(0)
    model = get_model(name, num_classes=classes, in_channels=shape[0]).to(device.name)
    opt = mdl.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = device.tensor(rng.standard_normal((batch,) + shape).astype(np.float32))
    y = device.tensor(rng.integers(0, classes, batch))

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
        return torch_lenet5(torch, in_channels, classes)

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


def torch_step(name, batch, shape, classes, device="cpu"):
    torch = try_import_torch()
    torch.manual_seed(0)
    model = torch_model(torch, name, shape[0], classes).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch,) + shape).astype(np.float32)).to(device)
    y = torch.from_numpy(rng.integers(0, classes, batch)).to(device)

    def step():
        loss = torch.nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def case(name, batch=None, image_size=None):
    """(batch, input shape, classes) of model ``name``, with the batch and the image size overridden
    where given."""
    default_batch, shape, classes = CASES[name]
    if image_size is not None:
        shape = shape[:1] + (image_size, image_size)
    return batch or default_batch, shape, classes


def cupy_peak_bytes(step, device):
    """(peak in use, pool held) bytes of CuPy's memory pool over one call of ``step``: every array
    alive counts, the model's and the optimizer's too. The peak is tracked by a memory hook on every
    allocation and free (which costs time, so this call is not one of the timed steps); None where
    this CuPy has no hooks."""
    from minidl import backend

    cp = backend.cupy()
    pool = cp.get_default_memory_pool()
    device.sync()
    peak = None
    try:
        class Peak(cp.cuda.MemoryHook):
            name = "bench_models_peak"

            def __init__(self):
                self.used = self.peak = pool.used_bytes()

            def malloc_postprocess(self, **kwargs):
                if kwargs.get("mem_ptr", 1):
                    self.used += kwargs["mem_size"]
                    self.peak = max(self.peak, self.used)

            def free_postprocess(self, **kwargs):
                self.used -= kwargs["mem_size"]

        hook = Peak()
    except AttributeError:
        step()
    else:
        with hook:
            step()
            device.sync()
        peak = hook.peak
    return peak, pool.total_bytes()


def child_cuda(library, name, steps, batch, shape, classes, device):
    """The GPU run of `child`: synchronised step times, the first on its own, and GPU memory."""
    if library == "minidl":
        step = minidl_step(name, batch, shape, classes, device)
        first, median = gpu_times(step, device.sync, steps)
        used, held = cupy_peak_bytes(step, device)
    else:
        torch = try_import_torch()
        step = torch_step(name, batch, shape, classes, device.torch_device(torch))
        torch.cuda.reset_peak_memory_stats()
        first, median = gpu_times(step, lambda: device.torch_sync(torch), steps)
        used, held = torch.cuda.max_memory_allocated(), torch.cuda.max_memory_reserved()
    report_side({"seconds": median, "first_step_s": first,
                 "peak_mib": None if used is None else used / 2 ** 20, "held_mib": held / 2 ** 20})


def child(name, steps, batch=None, image_size=None, device=Device()):
    """Runs in a process of one library (`SIDE`): time ``steps`` steps after one warm-up, report."""
    batch, shape, classes = case(name, batch, image_size)
    if device.cuda:
        return child_cuda(SIDE, name, steps, batch, shape, classes, device)
    step = (minidl_step if SIDE == "minidl" else torch_step)(name, batch, shape, classes)
    step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
    report_side({"seconds": statistics.median(times), "peak_mib": peak_mib,
                 "header": side_header(try_import_torch() if SIDE == "torch" else None)})


def run_child(library, name, steps, extra=()):
    return run_side(os.path.abspath(__file__), library, ["--child", name, "--steps", str(steps), *extra])


def over_rounds(results):
    """One row's cell from its processes: the median step time and the largest peak."""
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_mib": max(r["peak_mib"] for r in results), "rounds": results}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=5, help="timed steps per model (median reported)")
    p.add_argument("--rounds", type=int, default=2, help="processes per library and model, alternating (CPU)")
    p.add_argument("--models", nargs="+", default=list(CASES), choices=list(CASES))
    p.add_argument("--json", default=None)
    p.add_argument("--batch", type=int, default=None, help="batch size for every model (default: each model's own)")
    p.add_argument("--image-size", type=int, default=None, metavar="PIXELS",
                   help="square input size for the ResNets (default: each model's own; LeNet-5 takes 32 only)")
    add_device_option(p)
    p.add_argument("--child", metavar="MODEL", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.image_size is not None and "lenet5" in args.models and args.image_size != 32 and not args.child:
        p.error("lenet5 takes 32x32 images only; leave it out of --models to change --image-size")
    device = select_device(p, args)
    if args.child:
        return child(args.child, args.steps, args.batch, args.image_size, device)
    extra = [*(["--batch", str(args.batch)] if args.batch else []),
             *(["--image-size", str(args.image_size)] if args.image_size else [])]
    if device.cuda:
        return main_cuda(args, device, extra + ["--device", "cuda"] + (["--tf32"] if device.tf32 else []))

    for line in machine_header():
        print(line)
    have_torch = try_import_torch() is not None
    print(f"\ntraining step (forward + backward + SGD momentum), float32, median of {args.steps} steps in each "
          f"process; each library in {args.rounds} process(es) of its own per model, alternating, and the median "
          "of those; peak = the largest max RSS of its processes\n")
    rows = []
    for name in args.models:
        batch, shape, _ = case(name, args.batch, args.image_size)
        runs = {library: [] for library in ("minidl", "torch") if library == "minidl" or have_torch}
        for _ in range(args.rounds):
            for library, results in runs.items():
                results.append(run_child(library, name, args.steps, extra))
        if not rows:  # the first model's processes say how each library computes, above the table
            for library, results in runs.items():
                print(f"{library} processes: {results[0]['header']}")
            print(f"\n{'model':10} {'batch':>5} {'input':>11} | {'minidl s':>9} {'torch s':>8} {'ratio':>6} | "
                  f"{'minidl MiB':>10} {'torch MiB':>9}")
        ours = over_rounds(runs["minidl"])
        ref = over_rounds(runs["torch"]) if have_torch else None
        rows.append({"model": name, "batch": batch, "minidl": ours, "torch": ref})
        r = (f"{ref['seconds']:8.3f} {ours['seconds'] / ref['seconds']:6.2f}" if ref else f"{'-':>8} {'-':>6}")
        rm = f"{ref['peak_mib']:9.0f}" if ref else f"{'-':>9}"
        print(f"{name:10} {batch:5d} {'x'.join(map(str, shape)):>11} | {ours['seconds']:9.3f} {r} | "
              f"{ours['peak_mib']:10.0f} {rm}")
    write_json(args.json, {"rows": rows})


def main_cuda(args, device, extra):
    torch, torch_device = start_cuda_report(device)
    have_torch = torch_device is not None
    precision = "TF32 allowed" if device.tf32 else "full float32"
    print(f"\ntraining step (forward + backward + SGD momentum) on cuda, float32 ({precision}), median of "
          f"{args.steps} steps, each between device synchronisations; 1st = the first step in the process.\n"
          "GPU memory, MiB: used = the most in use at once during a step (minidl: CuPy's pool, tracked by a "
          "memory hook; torch: max_memory_allocated), held = the most the allocator kept from the GPU "
          "(CuPy's pool total; torch: max_memory_reserved)\n")
    print(f"{'model':10} {'batch':>5} {'input':>11} | {'minidl s':>9} {'torch s':>8} {'ratio':>6} | "
          f"{'minidl 1st':>10} {'torch 1st':>9} | {'minidl used':>11} {'held':>7} | {'torch used':>10} {'held':>7}")
    rows = []
    for name in args.models:
        batch, shape, _ = case(name, args.batch, args.image_size)
        results = {}
        for library in ("minidl", "torch") if have_torch else ("minidl",):
            try:
                results[library] = run_child(library, name, args.steps, extra)
            except RuntimeError as e:  # e.g. out of GPU memory: report it, go on with the next run
                lines = str(e).strip().splitlines()
                print(f"{name}: {library} failed: {lines[-1] if lines else e}")
        ours, ref = results.get("minidl"), results.get("torch")
        rows.append({"model": name, "batch": batch, "input": list(shape), "minidl": ours, "torch": ref})
        if ours is None:
            continue

        def cell(result, key, spec, width):
            value = result.get(key) if result else None
            return f"{value:{width}{spec}}" if value is not None else f"{'-':>{width}}"

        ratio = f"{ours['seconds'] / ref['seconds']:6.2f}" if ref else f"{'-':>6}"
        print(f"{name:10} {batch:5d} {'x'.join(map(str, shape)):>11} | {ours['seconds']:9.3f} "
              f"{cell(ref, 'seconds', '.3f', 8)} {ratio} | {cell(ours, 'first_step_s', '.2f', 10)} "
              f"{cell(ref, 'first_step_s', '.2f', 9)} | {cell(ours, 'peak_mib', '.0f', 11)} "
              f"{cell(ours, 'held_mib', '.0f', 7)} | {cell(ref, 'peak_mib', '.0f', 10)} "
              f"{cell(ref, 'held_mib', '.0f', 7)}")
    write_json(args.json, {"device": "cuda", "tf32": device.tf32, "rows": rows})


if __name__ == "__main__":
    sys.exit(run_script(__file__, main))

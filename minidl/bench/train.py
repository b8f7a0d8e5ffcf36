"""LeNet-5 training throughput: minidl next to the identical network in PyTorch CPU, same optimizer.

One training step is forward, cross-entropy, backward and an Adam update on a batch of 1x32x32
float32 images. Synthetic data: the arithmetic is the same as on MNIST, and no download is needed.

On the CPU each framework runs in a process of its own, minidl's and PyTorch's alternating for
``--rounds`` rounds (each process times every batch size); the table gives each side's median over
the rounds and their ratio. ``--same-process`` times both in this one process instead, for
profiling: there each framework's threads and settings reach the other's, so its ratio is not a
fair comparison.

With ``--device cuda`` both run on the GPU (PyTorch CUDA beside minidl's CUDA kernels), every step
timed between device synchronisations and the first step of each (kernel compiles, library
set-up) reported apart from the median; full float32 unless ``--tf32``.

    minidl bench train [--batch-sizes 64 256] [--steps 30] [--rounds 3] [--kernels numba]
                       [--json out.json] [--same-process] [--device cuda [--tf32]]
"""
import argparse
import statistics
import time

import numpy as np

from minidl.bench.common import (Device, add_device_option, add_kernels_option, gpu_times, machine_header,
                                 measured_side, report_side, run_sides, select_device, select_kernels, side_header,
                                 start_cuda_report, torch_lenet5, try_import_torch, write_json)


def images_per_second(step, batch_size, steps, warmup=3):
    """Median over ``steps`` timed steps (after ``warmup`` untimed ones) of batch_size / step time."""
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return batch_size / statistics.median(times)


def minidl_step(batch_size, device=Device()):
    import minidl as mdl
    import minidl.nn.functional as F
    from minidl_models import lenet5

    mdl.manual_seed(0)
    model = lenet5().to(device.name)
    opt = mdl.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = device.tensor(rng.standard_normal((batch_size, 1, 32, 32)).astype(np.float32))
    y = device.tensor(rng.integers(0, 10, batch_size))

    def step():
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def torch_step(torch, batch_size, device="cpu"):
    nn = torch.nn
    torch.manual_seed(0)
    model = torch_lenet5(torch).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((batch_size, 1, 32, 32)).astype(np.float32)).to(device)
    y = torch.from_numpy(rng.integers(0, 10, batch_size)).to(device)

    def step():
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    p.add_argument("--rounds", type=int, default=3, help="processes per framework, alternating (CPU)")
    p.add_argument("--same-process", action="store_true",
                   help="time both frameworks in this process (for profiling; not a fair comparison)")
    add_kernels_option(p)
    p.add_argument("--json", default=None)
    add_device_option(p)
    args = p.parse_args(argv)
    device = select_device(p, args)
    if measured_side() == "torch":  # a PyTorch process builds nothing of minidl
        return measure_side(args)
    select_kernels(args)
    if measured_side() == "minidl":
        return measure_side(args)
    if device.cuda:
        return main_cuda(args, device)

    for line in machine_header():
        print(line)
    if args.same_process:
        torch = try_import_torch()
        print(f"\nLeNet-5 training step (forward + backward + Adam), float32, median of {args.steps} steps, "
              "BOTH IN THIS ONE PROCESS (for profiling: not a fair comparison)\n")
        measured = [{"minidl": images_per_second(minidl_step(bs), bs, args.steps),
                     "torch": images_per_second(torch_step(torch, bs), bs, args.steps) if torch else None}
                    for bs in args.batch_sizes]
    else:
        child = ["--batch-sizes", *map(str, args.batch_sizes), "--steps", str(args.steps)]
        child += ["--kernels", args.kernels] if args.kernels else []
        sides = ("minidl", "torch") if try_import_torch() else ("minidl",)
        runs = run_sides("train", child, args.rounds, sides)
        print(f"\nLeNet-5 training step (forward + backward + Adam), float32, median of {args.steps} steps in each "
              f"process; each framework in {args.rounds} process(es) of its own, alternating, and the median of "
              "those\n")
        for side in sides:
            print(f"{side} processes: {runs[side][0]['header']}")
        print()
        measured = [{side: statistics.median(run["images_per_s"][i] for run in runs[side]) for side in sides}
                    for i in range(len(args.batch_sizes))]
    print(f"{'batch':>6} {'minidl img/s':>13} {'torch img/s':>12} {'minidl/torch':>13}")
    rows = []
    for bs, m in zip(args.batch_sizes, measured):
        ours, ref = m["minidl"], m.get("torch")
        rows.append({"batch_size": bs, "minidl_images_per_s": ours, "torch_images_per_s": ref})
        ratio = f"{ours / ref:13.2f}" if ref else f"{'-':>13}"
        ref_s = f"{ref:12.0f}" if ref else f"{'-':>12}"
        print(f"{bs:6d} {ours:13.0f} {ref_s} {ratio}")
    import minidl as mdl

    write_json(args.json, {"kernels": mdl.config.kernels, "same_process": args.same_process,
                           "rounds": None if args.same_process else args.rounds, "rows": rows})


def measure_side(args):
    """In a process `run_sides` started: time this side at every batch size and report."""
    torch = try_import_torch() if measured_side() == "torch" else None
    step = (lambda bs: torch_step(torch, bs)) if measured_side() == "torch" else minidl_step
    report_side({"header": side_header(torch),
                 "images_per_s": [images_per_second(step(bs), bs, args.steps) for bs in args.batch_sizes]})


def main_cuda(args, device):
    """The same steps on the GPU: images/s from the median step, each step between device
    synchronisations, and each library's first step (kernel compiles, set-up) on its own."""
    torch, torch_device = start_cuda_report(device)
    precision = "TF32 allowed" if device.tf32 else "full float32"
    print(f"\nLeNet-5 training step (forward + backward + Adam) on cuda, float32 ({precision}), median of "
          f"{args.steps} steps, each between device synchronisations; 1st = the first step in the process\n")
    print(f"{'batch':>6} {'minidl img/s':>13} {'torch img/s':>12} {'minidl/torch':>13} {'minidl 1st s':>13} "
          f"{'torch 1st s':>12}")
    rows = []
    for bs in args.batch_sizes:
        first, median = gpu_times(minidl_step(bs, device), device.sync, args.steps, warmup=2)
        ref_first = ref_median = None
        if torch_device is not None:
            ref_first, ref_median = gpu_times(torch_step(torch, bs, torch_device), lambda: device.torch_sync(torch),
                                              args.steps, warmup=2)
        ours, ref = bs / median, (bs / ref_median if ref_median else None)
        rows.append({"batch_size": bs, "minidl_images_per_s": ours, "torch_images_per_s": ref,
                     "minidl_first_step_s": first, "torch_first_step_s": ref_first})
        ratio = f"{ours / ref:13.2f}" if ref else f"{'-':>13}"
        ref_s = f"{ref:12.0f}" if ref else f"{'-':>12}"
        ref_first_s = f"{ref_first:12.3f}" if ref_first else f"{'-':>12}"
        print(f"{bs:6d} {ours:13.0f} {ref_s} {ratio} {first:13.3f} {ref_first_s}")
    import minidl as mdl

    write_json(args.json, {"device": "cuda", "tf32": device.tf32, "kernels": mdl.config.kernels, "rows": rows})

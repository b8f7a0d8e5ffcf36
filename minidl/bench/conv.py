"""Convolution speed: every way minidl runs a layer, next to PyTorch CPU, on the standard layers.

For each layer, the median time in float32 of a forward pass and of forward + backward
(gradients for the input, weight and bias) with: the NumPy reference kernels (im2col + GEMM),
the Numba kernels with im2col, and the Numba kernels with Winograd F(2x2, 3x3) where it applies
(3x3, stride 1). 'auto' names the one minidl runs by default; its speed is given relative to
PyTorch (torch time / minidl time, so 0.8 means 80% of PyTorch's speed) and to the NumPy
reference, with geometric means over the suite. %gemm is the share of auto's forward +
backward time spent inside np.matmul, which runs every GEMM of minidl's convolutions; the rest
is data movement (im2col, col2im, the Winograd transforms, the bias). The machine's float32
GEMM rate and the Numba first-call (compile or cache load) time are printed for context.

On the CPU minidl and PyTorch each run the whole suite in processes of their own, alternating for
``--rounds`` rounds, each process from the environment the benchmark was started with (so neither
library's thread settings reach the other); every time is the median over the rounds.

With ``--device cuda`` every layer runs on the GPU instead, next to PyTorch CUDA: minidl's CUDA
kernels with im2col and with Winograd, each forward and forward + backward timed between device
synchronisations, the first call of the process (kernel compiles, cuBLAS and cuDNN set-up)
apart from the median of the later ones; full float32 unless ``--tf32``.

    minidl bench conv [--quick] [--repeat 5] [--rounds 2] [--json out.json] [--device cuda [--tf32]]
"""
import argparse
import os
import statistics
import time

import numpy as np

import minidl as mdl
from minidl.bench.common import (add_device_option, gpu_times, machine_header, measured_side, median_time,
                                 report_side, run_sides, select_device, side_header, start_cuda_report,
                                 try_import_torch, write_json)
from minidl.kernels import conv_output_size
from minidl.kernels import winograd
from minidl.ops import conv
from minidl.ops.conv import conv2d

# name, input (N, C, H, W), out channels, kernel, stride, padding
SUITE = [
    ("LeNet conv1", (128, 1, 32, 32), 6, 5, 1, 0),
    ("LeNet conv2", (128, 6, 14, 14), 16, 5, 1, 0),
    ("AlexNet conv1", (8, 3, 227, 227), 96, 11, 4, 0),
    ("VGG 3x3", (8, 64, 56, 56), 64, 3, 1, 1),
    ("ResNet 3x3", (8, 256, 14, 14), 256, 3, 1, 1),
    ("ResNet 1x1", (8, 1024, 14, 14), 256, 1, 1, 0),
]


def gemm_gflops(repeat, n=2048):
    a = np.random.default_rng(0).standard_normal((n, n)).astype(np.float32)
    return 2 * n ** 3 / median_time(lambda: a @ a, repeat=repeat) / 1e9


def compile_seconds():
    """Seconds for the first call of the Numba conv kernels in this process."""
    x = np.ones((1, 16, 6, 6), np.float32)
    w = np.ones((16, 16, 3, 3), np.float32)
    t0 = time.perf_counter()
    with mdl.using_config("kernels", "numba"):
        for algorithm in ("im2col", "winograd"):
            with mdl.using_config("conv_algorithm", algorithm):
                _minidl_step(x, w, np.ones(16, np.float32), 1, 1)()
    return time.perf_counter() - t0


def output_size(shape, k, stride, pad):
    return tuple(conv_output_size(size, k, stride, pad) for size in shape[2:])


def forward_macs(shape, oc, k, stride, pad):
    n, c = shape[:2]
    oh, ow = output_size(shape, k, stride, pad)
    return n * oc * oh * ow * c * k * k


def measure_minidl(x_np, w_np, b_np, stride, pad, repeat):
    """(forward, forward + backward) median seconds with the current kernels and algorithm."""
    x, w, b = mdl.tensor(x_np), mdl.tensor(w_np), mdl.tensor(b_np)

    def forward():
        with mdl.no_grad():
            conv2d(x, w, b, stride=stride, padding=pad)

    forward_backward = _minidl_step(x_np, w_np, b_np, stride, pad)
    return median_time(forward, repeat=repeat), median_time(forward_backward, repeat=repeat)


def _minidl_step(x_np, w_np, b_np, stride, pad):
    xg, wg, bg = (mdl.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    with mdl.no_grad():
        gy = mdl.tensor(np.ones(conv2d(xg, wg, bg, stride=stride, padding=pad).shape, np.float32))

    def forward_backward():
        xg.grad = wg.grad = bg.grad = None
        conv2d(xg, wg, bg, stride=stride, padding=pad).backward(gy)

    return forward_backward


def gemm_share(x_np, w_np, b_np, stride, pad, repeat):
    """The fraction of a forward + backward pass spent inside np.matmul, where every GEMM of
    minidl's convolutions runs (minidl/ops/conv.py): the median over ``repeat`` passes."""
    step = _minidl_step(x_np, w_np, b_np, stride, pad)
    step()
    matmul, inside = np.matmul, []

    def timed(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return matmul(*args, **kwargs)
        finally:
            inside.append(time.perf_counter() - t0)

    shares = []
    np.matmul = timed
    try:
        for _ in range(repeat):
            inside.clear()
            t0 = time.perf_counter()
            step()
            shares.append(sum(inside) / (time.perf_counter() - t0))
    finally:
        np.matmul = matmul
    return statistics.median(shares)


def measure_torch(torch, x_np, w_np, b_np, stride, pad, repeat):
    F = torch.nn.functional
    x, w, b = (torch.from_numpy(a) for a in (x_np, w_np, b_np))

    def forward():
        with torch.no_grad():
            F.conv2d(x, w, b, stride=stride, padding=pad)

    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
    gy = torch.ones_like(F.conv2d(x, w, b, stride=stride, padding=pad))

    def forward_backward():
        xg.grad = wg.grad = bg.grad = None
        F.conv2d(xg, wg, bg, stride=stride, padding=pad).backward(gy)

    return median_time(forward, repeat=repeat), median_time(forward_backward, repeat=repeat)


def layer_inputs(shape, oc, k, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape).astype(np.float32)
    w = (rng.standard_normal((oc, shape[1], k, k)) / np.sqrt(shape[1] * k * k)).astype(np.float32)
    return x, w, rng.standard_normal(oc).astype(np.float32)


# minidl's ways of running a layer: (label, kernels, conv algorithm). The first is the NumPy
# reference the targets are relative to; 'auto' is what minidl runs by default (Numba kernels).
CONFIGS = [("numpy", "numpy", "im2col"), ("im2col", "numba", "im2col"), ("winograd", "numba", "winograd")]


def auto_choice(shape, oc, k, stride, pad):
    """The CONFIGS label that minidl's default ('auto') runs for a layer."""
    return conv.algorithm_for((k, k), (stride, stride), (pad, pad), (1, 1), 1, (shape[1], oc),
                              output_size(shape, k, stride, pad))


def geomean(values):
    values = [v for v in values if v]
    return float(np.exp(np.mean(np.log(values)))) if values else None


def measure_minidl_suite(suite, repeat):
    """In a minidl process: the GEMM rate, the kernels' first call, and every config's times and
    auto's GEMM share on each layer of ``suite``."""
    peak, cold = gemm_gflops(repeat), compile_seconds()
    ours, shares = [], []
    for _, shape, oc, k, s, pad in suite:
        inputs = layer_inputs(shape, oc, k)
        times = {}
        for label, kernel_set, algorithm in CONFIGS:
            if algorithm == "winograd" and not winograd.applies((k, k), (s, s), (pad, pad), (1, 1), 1):
                times[label] = (None, None)
                continue
            with mdl.using_config("kernels", kernel_set), mdl.using_config("conv_algorithm", algorithm):
                times[label] = measure_minidl(*inputs, s, pad, repeat)
        ours.append(times)
        with mdl.using_config("kernels", "numba"), mdl.using_config("conv_algorithm", "auto"):
            shares.append(gemm_share(*inputs, s, pad, repeat))
    return {"header": side_header(), "gemm_gflops": peak, "first_call_s": cold, "times": ours, "shares": shares}


def median_cells(runs):
    """The median over processes of every time in a (nested) result, cell by cell; None stays None."""
    first = runs[0]
    if isinstance(first, dict):
        return {key: median_cells([run[key] for run in runs]) for key in first}
    if isinstance(first, (list, tuple)):
        return [median_cells([run[i] for run in runs]) for i in range(len(first))]
    return None if first is None else statistics.median(runs)


def main(argv=None, prog=None):
    p = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the batch (LeNet 32, the others 2)")
    p.add_argument("--repeat", type=int, default=5, help="rounds per measurement; the median is reported")
    p.add_argument("--rounds", type=int, default=2, help="processes per library, alternating (CPU)")
    p.add_argument("--json", default=None, help="also write the results here")
    add_device_option(p)
    args = p.parse_args(argv)
    device = select_device(p, args)
    if device.cuda:
        return main_cuda(args, device)
    suite = [(name, (max(2, shape[0] // 4),) + shape[1:] if args.quick else shape, oc, k, s, pad)
             for name, shape, oc, k, s, pad in SUITE]
    if measured_side() == "minidl":
        return report_side(measure_minidl_suite(suite, args.repeat))
    if measured_side() == "torch":
        torch = try_import_torch()
        return report_side({"header": side_header(torch),
                            "times": [measure_torch(torch, *layer_inputs(shape, oc, k), s, pad, args.repeat)
                                      for _, shape, oc, k, s, pad in suite]})

    for line in machine_header():
        print(line)
    sides = ("minidl", "torch") if try_import_torch() else ("minidl",)
    runs = run_sides("conv", ["--repeat", str(args.repeat)] + (["--quick"] if args.quick else []),
                     args.rounds, sides)
    peak, ours, shares = (median_cells([run[key] for run in runs["minidl"]]) for key in ("gemm_gflops", "times", "shares"))
    cold = runs["minidl"][0]["first_call_s"]
    theirs = median_cells([run["times"] for run in runs["torch"]]) if "torch" in runs else [(None, None)] * len(suite)
    for side in sides:
        print(f"{side} processes: {runs[side][0]['header']}")
    print(f"float32 GEMM (np.matmul 2048x2048): {peak:.1f} GFLOP/s")
    print(f"Numba kernels: first call in the first minidl process {cold:.2f} s (a cold compile when the on-disk "
          "cache is empty, else loading it); every time below is warm")
    if hasattr(os, "getloadavg"):  # other work on the machine skews every number below
        print("load average (1, 5, 15 min) after the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"\nconv2d float32, milliseconds, median of {args.repeat} rounds in each process and of {args.rounds} "
          "process(es) per library, alternating. numpy = the NumPy reference kernels "
          "(im2col); im2col and winograd = Numba kernels; auto = what minidl runs by default.\n"
          "vs torch = torch time / auto time (speed, higher is better); vs numpy = numpy time / auto time; "
          "%gemm = share of auto's forward+backward time inside np.matmul.")
    rows = []
    for phase, index in (("forward", 0), ("forward + backward", 1)):
        print(f"\n{phase}")
        head = (f"{'layer':13} {'input':>15} {'out':>4} {'k':>2} {'s':>1} {'p':>1} | {'torch':>7} {'numpy':>7} "
                f"{'im2col':>7} {'winograd':>8} | {'auto':>8} {'vs torch':>8} {'vs numpy':>8}"
                + (f" {'%gemm':>5}" if index else ""))
        print(head)
        print("-" * len(head))
        speed, gain = [], []
        for (name, shape, oc, k, stride, pad), times, ref, share in zip(suite, ours, theirs, shares):
            choice = auto_choice(shape, oc, k, stride, pad)
            auto = times[choice][index]
            speed.append(ref[index] / auto if ref[index] else None)
            gain.append(times["numpy"][index] / auto)
            cells = " ".join(f"{times[c][index] * 1e3:{w}.2f}" if times[c][index] else f"{'-':>{w}}"
                             for c, w in (("numpy", 7), ("im2col", 7), ("winograd", 8)))
            torch_cell = f"{ref[index] * 1e3:7.2f}" if ref[index] else f"{'-':>7}"
            speed_cell = f"{speed[-1]:8.2f}" if speed[-1] else f"{'-':>8}"
            print(f"{name:13} {'x'.join(map(str, shape)):>15} {oc:4d} {k:2d} {stride:1d} {pad:1d} | {torch_cell} "
                  f"{cells} | {choice:>8} {speed_cell} {gain[-1]:8.2f}" + (f" {100 * share:4.0f}%" if index else ""))
            if index:
                flops = 2 * forward_macs(shape, oc, k, stride, pad)
                rows.append({"layer": name, "input": list(shape), "out_channels": oc, "kernel": k,
                             "stride": stride, "padding": pad, "forward_flops": flops, "auto": choice,
                             "gemm_share": share, "torch_s": list(ref),
                             **{f"{label}_s": list(times[label]) for label, _, _ in CONFIGS}})
        s, g = geomean(speed), geomean(gain)
        width = len(head) - 17 - (6 if index else 0)  # up to the "vs torch" column
        print(f"{'geometric mean':<{width}}" + (f"{s:8.2f}" if s else f"{'-':>8}") + f" {g:8.2f}")
    write_json(args.json, {"gemm_gflops": peak, "numba_first_call_s": cold, "quick": args.quick,
                           "repeat": args.repeat, "rounds": args.rounds, "rows": rows})


# --- on a GPU ---------------------------------------------------------------------------------
# minidl's ways of running a layer on CuPy arrays: (label, conv algorithm). Any float32 CuPy array
# runs minidl.kernels.cuda_impl; the CPU kernel set only enters through 'auto's choice of algorithm.
CUDA_CONFIGS = [("im2col", "im2col"), ("winograd", "winograd")]


def cuda_gemm_gflops(device, n=4096):
    """float32 GEMM rate of cupy.matmul on an n x n product (TF32 where --tf32 allowed it)."""
    a = device.array(np.random.default_rng(0).standard_normal((n, n)).astype(np.float32))
    _, seconds = gpu_times(lambda: a @ a, device.sync, repeat=10)
    return 2 * n ** 3 / seconds / 1e9


def cuda_compile_seconds(device):
    """Seconds of the first forward + backward on the GPU of a small layer with each algorithm:
    NVRTC compiling minidl's kernels and CuPy its own (or loading them from CuPy's on-disk cache)."""
    x, w, b = (np.ones(shape, np.float32) for shape in ((1, 16, 6, 6), (16, 16, 3, 3), (16,)))
    t0 = time.perf_counter()
    for algorithm in ("im2col", "winograd"):
        with mdl.using_config("conv_algorithm", algorithm):
            _minidl_cuda_step(device, x, w, b, 1, 1)()
    device.sync()
    return time.perf_counter() - t0


def _minidl_cuda_step(device, x_np, w_np, b_np, stride, pad):
    xg, wg, bg = (device.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    with mdl.no_grad():
        gy = device.tensor(np.ones(conv2d(xg, wg, bg, stride=stride, padding=pad).shape, np.float32))

    def forward_backward():
        xg.grad = wg.grad = bg.grad = None
        conv2d(xg, wg, bg, stride=stride, padding=pad).backward(gy)

    return forward_backward


def measure_minidl_cuda(device, x_np, w_np, b_np, stride, pad, repeat):
    """((first, median) forward, (first, median) forward + backward) seconds on the GPU."""
    x, w, b = (device.tensor(a) for a in (x_np, w_np, b_np))

    def forward():
        with mdl.no_grad():
            conv2d(x, w, b, stride=stride, padding=pad)

    return (gpu_times(forward, device.sync, repeat),
            gpu_times(_minidl_cuda_step(device, x_np, w_np, b_np, stride, pad), device.sync, repeat))


def gemm_share_cuda(device, x_np, w_np, b_np, stride, pad, repeat):
    """The share of a forward + backward pass on the GPU spent in cupy.matmul, which runs every GEMM
    of minidl's convolutions: each GEMM is bracketed by device synchronisations, so that its time is
    its own, and so is the pass it is part of; the median over ``repeat`` passes."""
    cp = mdl.backend.cupy()
    step = _minidl_cuda_step(device, x_np, w_np, b_np, stride, pad)
    step()
    matmul, inside = cp.matmul, []

    def timed(*args, **kwargs):
        device.sync()
        t0 = time.perf_counter()
        try:
            return matmul(*args, **kwargs)
        finally:
            device.sync()
            inside.append(time.perf_counter() - t0)

    shares = []
    cp.matmul = timed
    try:
        for _ in range(repeat):
            inside.clear()
            device.sync()
            t0 = time.perf_counter()
            step()
            device.sync()
            shares.append(sum(inside) / (time.perf_counter() - t0))
    finally:
        cp.matmul = matmul
    return statistics.median(shares)


def measure_torch_cuda(torch, device, x_np, w_np, b_np, stride, pad, repeat):
    F = torch.nn.functional
    x, w, b = (torch.from_numpy(a).to("cuda") for a in (x_np, w_np, b_np))

    def sync():
        device.torch_sync(torch)

    def forward():
        with torch.no_grad():
            F.conv2d(x, w, b, stride=stride, padding=pad)

    xg, wg, bg = (t.clone().requires_grad_() for t in (x, w, b))
    gy = torch.ones_like(F.conv2d(x, w, b, stride=stride, padding=pad))

    def forward_backward():
        xg.grad = wg.grad = bg.grad = None
        F.conv2d(xg, wg, bg, stride=stride, padding=pad).backward(gy)

    return gpu_times(forward, sync, repeat), gpu_times(forward_backward, sync, repeat)


def main_cuda(args, device):
    torch, torch_device = start_cuda_report(device)
    repeat = 3 * args.repeat
    suite = [(name, (max(2, shape[0] // 4),) + shape[1:] if args.quick else shape, oc, k, s, pad)
             for name, shape, oc, k, s, pad in SUITE]
    cold = cuda_compile_seconds(device)
    peak = cuda_gemm_gflops(device)
    ours, shares = [], []
    for _, shape, oc, k, s, pad in suite:
        inputs = layer_inputs(shape, oc, k)
        times = {}
        for label, algorithm in CUDA_CONFIGS:
            if algorithm == "winograd" and not winograd.applies((k, k), (s, s), (pad, pad), (1, 1), 1):
                times[label] = ((None, None), (None, None))
                continue
            with mdl.using_config("conv_algorithm", algorithm):
                times[label] = measure_minidl_cuda(device, *inputs, s, pad, repeat)
        ours.append(times)
        with mdl.using_config("conv_algorithm", "auto"):
            shares.append(gemm_share_cuda(device, *inputs, s, pad, args.repeat))
    theirs = [((None, None), (None, None))] * len(suite)
    if torch_device is not None:
        theirs = [measure_torch_cuda(torch, device, *layer_inputs(shape, oc, k), s, pad, repeat)
                  for _, shape, oc, k, s, pad in suite]

    precision = "TF32 allowed" if device.tf32 else "full float32"
    print(f"float32 GEMM (cupy.matmul 4096x4096, {precision}): {peak:.0f} GFLOP/s")
    print(f"CUDA kernels: first forward + backward in this process {cold:.2f} s (NVRTC and CuPy compiling, "
          "or loading CuPy's on-disk cache); the medians below are warm")
    print(f"\nconv2d float32 on cuda ({precision}), milliseconds: median of {repeat} calls, each between device "
          "synchronisations. im2col and winograd = minidl's CUDA kernels around cuBLAS GEMMs; auto = what minidl "
          "runs by default; 1st = auto's first call on that layer (algorithm and memory set-up), torch 1st the same.\n"
          "vs torch = torch time / auto time (speed, higher is better); %gemm = share of auto's forward+backward "
          "time inside cupy.matmul, with a synchronisation around each GEMM.")
    rows = []
    for phase, index in (("forward", 0), ("forward + backward", 1)):
        print(f"\n{phase}")
        head = (f"{'layer':13} {'input':>15} {'out':>4} {'k':>2} {'s':>1} {'p':>1} | {'torch':>7} {'1st':>7} | "
                f"{'im2col':>7} {'winograd':>8} | {'auto':>8} {'1st':>7} {'vs torch':>8}"
                + (f" {'%gemm':>5}" if index else ""))
        print(head)
        print("-" * len(head))
        speed = []
        for (name, shape, oc, k, stride, pad), times, ref, share in zip(suite, ours, theirs, shares):
            choice = auto_choice(shape, oc, k, stride, pad)
            first, auto = times[choice][index]
            ref_first, ref_median = ref[index]
            speed.append(ref_median / auto if ref_median else None)

            def ms(v, w):
                return f"{v * 1e3:{w}.2f}" if v else f"{'-':>{w}}"

            print(f"{name:13} {'x'.join(map(str, shape)):>15} {oc:4d} {k:2d} {stride:1d} {pad:1d} | "
                  f"{ms(ref_median, 7)} {ms(ref_first, 7)} | {ms(times['im2col'][index][1], 7)} "
                  f"{ms(times['winograd'][index][1], 8)} | {choice:>8} {ms(first, 7)} "
                  + (f"{speed[-1]:8.2f}" if speed[-1] else f"{'-':>8}") + (f" {100 * share:4.0f}%" if index else ""))
            if index:
                rows.append({"layer": name, "input": list(shape), "out_channels": oc, "kernel": k, "stride": stride,
                             "padding": pad, "forward_flops": 2 * forward_macs(shape, oc, k, stride, pad),
                             "auto": choice, "gemm_share": share,
                             "torch": {"forward_s": list(ref[0]), "forward_backward_s": list(ref[1])},
                             **{label: {"forward_s": list(times[label][0]), "forward_backward_s": list(times[label][1])}
                                for label, _ in CUDA_CONFIGS}})
        s = geomean(speed)
        width = len(head) - 8 - (6 if index else 0)  # up to the "vs torch" column
        print(f"{'geometric mean':<{width}}" + (f"{s:8.2f}" if s else f"{'-':>8}"))
    write_json(args.json, {"device": "cuda", "tf32": device.tf32, "gemm_gflops": peak, "first_call_s": cold,
                           "quick": args.quick, "repeat": repeat, "times": "(first call, median) seconds",
                           "rows": rows})

"""Convolution speed: minidl's NumPy im2col + GEMM next to PyTorch CPU on the standard layers.

For each layer: the median time of a forward pass and of forward + backward (gradients for the
input, weight and bias), in float32, the ratio minidl / torch, and the achieved GFLOP/s
(2 * MACs for a forward, 3x that for forward + backward: the input and weight gradients are
each a GEMM as large as the forward one). The machine's float32 GEMM rate (a large np.matmul)
is printed as the ceiling an im2col convolution can approach.

    python benchmarks/bench_conv.py [--quick] [--repeat 5] [--kernels numba] [--json out.json]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _common import (add_kernels_option, machine_header, median_time, select_kernels,  # noqa: E402
                     try_import_torch, write_json)

import minidl as mdl  # noqa: E402
from minidl.ops.conv import conv2d  # noqa: E402

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


def forward_macs(shape, oc, k, stride, pad):
    n, c, h, w = shape
    out = [(size + 2 * pad - k) // stride + 1 for size in (h, w)]
    return n * oc * out[0] * out[1] * c * k * k


def measure_minidl(x_np, w_np, b_np, stride, pad, repeat):
    x, w, b = mdl.tensor(x_np), mdl.tensor(w_np), mdl.tensor(b_np)

    def forward():
        with mdl.no_grad():
            conv2d(x, w, b, stride=stride, padding=pad)

    xg, wg, bg = (mdl.tensor(a, requires_grad=True) for a in (x_np, w_np, b_np))
    gy = mdl.tensor(np.ones(conv2d(x, w, b, stride=stride, padding=pad).shape, np.float32))

    def forward_backward():
        xg.grad = wg.grad = bg.grad = None
        conv2d(xg, wg, bg, stride=stride, padding=pad).backward(gy)

    return median_time(forward, repeat=repeat), median_time(forward_backward, repeat=repeat)


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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a quarter of the batch (LeNet 32, the others 2)")
    p.add_argument("--repeat", type=int, default=5, help="rounds per measurement; the median is reported")
    add_kernels_option(p)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    select_kernels(args)

    for line in machine_header():
        print(line)
    torch = try_import_torch()
    suite = [(name, (max(2, shape[0] // 4),) + shape[1:] if args.quick else shape, oc, k, s, pad)
             for name, shape, oc, k, s, pad in SUITE]
    peak = gemm_gflops(args.repeat)
    # One library at a time: OpenBLAS's and PyTorch's idle worker threads spin for a while after
    # each call, and interleaving the two on few cores would time each against the other's spinning.
    ours = [measure_minidl(*layer_inputs(shape, oc, k), s, pad, args.repeat) for _, shape, oc, k, s, pad in suite]
    theirs = [(None, None)] * len(suite)
    if torch is not None:
        time.sleep(1)
        theirs = [measure_torch(torch, *layer_inputs(shape, oc, k), s, pad, args.repeat)
                  for _, shape, oc, k, s, pad in suite]

    print(f"float32 GEMM (np.matmul 2048x2048): {peak:.1f} GFLOP/s")
    if hasattr(os, "getloadavg"):  # other work on the machine skews every number below
        print("load average (1, 5, 15 min) after the run: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"\nconv2d float32, median of {args.repeat} rounds; ratio = minidl time / torch time; "
          f"f+b = forward + backward (3x the forward FLOPs); %gemm = minidl GF/s / GEMM rate\n")
    head = (f"{'layer':13} {'input':>15} {'out':>4} {'k':>2} {'s':>1} {'p':>1} | {'fwd ms':>7} {'torch':>7} "
            f"{'ratio':>5} {'GF/s':>5} {'%gemm':>5} {'torch':>5} | {'f+b ms':>7} {'torch':>7} {'ratio':>5} "
            f"{'GF/s':>5} {'%gemm':>5} {'torch':>5}")
    print(head)
    print("-" * len(head))
    rows = []
    for (name, shape, oc, k, stride, pad), mine, ref in zip(suite, ours, theirs):
        flops = 2 * forward_macs(shape, oc, k, stride, pad)
        cells = []
        for mult, t, tt in ((1, mine[0], ref[0]), (3, mine[1], ref[1])):
            rate = mult * flops / t / 1e9
            cells.append(f"{t * 1e3:7.2f} " + (f"{tt * 1e3:7.2f} {t / tt:5.2f} " if tt else f"{'-':>7} {'-':>5} ")
                         + f"{rate:5.1f} {100 * rate / peak:4.0f}% "
                         + (f"{mult * flops / tt / 1e9:5.1f}" if tt else f"{'-':>5}"))
        print(f"{name:13} {'x'.join(map(str, shape)):>15} {oc:4d} {k:2d} {stride:1d} {pad:1d} | {cells[0]} | "
              f"{cells[1]}")
        rows.append({"layer": name, "input": list(shape), "out_channels": oc, "kernel": k, "stride": stride,
                     "padding": pad, "forward_flops": flops, "minidl_forward_s": mine[0],
                     "minidl_forward_backward_s": mine[1], "torch_forward_s": ref[0],
                     "torch_forward_backward_s": ref[1]})
    write_json(args.json, {"kernels": mdl.get_kernels(), "gemm_gflops": peak, "quick": args.quick, "repeat": args.repeat,
                           "rows": rows})


if __name__ == "__main__":
    main()

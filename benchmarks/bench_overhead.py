"""Per-op overhead: how long a small add and its backward take in minidl, NumPy and PyTorch.

For tiny arrays the arithmetic is nothing; what is measured is the framework's bookkeeping per op
(wrapping arrays, recording the graph, walking it backward).

    python benchmarks/bench_overhead.py [--size 16] [--json out.json]
"""
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# _common first, before NumPy loads: it sets this process's threads
from _common import machine_header, median_time, try_import_torch, write_json  # noqa: E402
import numpy as np  # noqa: E402

import minidl as mdl  # noqa: E402




def measure(size):
    rng = np.random.default_rng(0)
    a_np = rng.standard_normal((size, size)).astype(np.float32)
    b_np = rng.standard_normal((size, size)).astype(np.float32)
    rows = []

    rows.append(("numpy", "a + b", median_time(lambda: a_np + b_np)))

    a, b = mdl.tensor(a_np), mdl.tensor(b_np)
    rows.append(("minidl", "a + b (no grad)", median_time(lambda: a + b)))
    ag, bg = mdl.tensor(a_np, requires_grad=True), mdl.tensor(b_np, requires_grad=True)
    rows.append(("minidl", "a + b (recording)", median_time(lambda: ag + bg)))
    g = mdl.tensor(np.ones_like(a_np))

    def fwd_bwd():
        ag.grad = bg.grad = None
        (ag + bg).backward(g)

    rows.append(("minidl", "a + b, backward", median_time(fwd_bwd)))

    torch = try_import_torch()
    if torch is not None:
        ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
        rows.append(("torch", "a + b (no grad)", median_time(lambda: ta + tb)))
        tag, tbg = ta.clone().requires_grad_(), tb.clone().requires_grad_()
        rows.append(("torch", "a + b (recording)", median_time(lambda: tag + tbg)))
        tgrad = torch.ones_like(ta)

        def torch_fwd_bwd():
            tag.grad = tbg.grad = None
            (tag + tbg).backward(tgrad)

        rows.append(("torch", "a + b, backward", median_time(torch_fwd_bwd)))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=16, help="arrays are size x size float32")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)

    for line in machine_header():
        print(line)
    rows = measure(args.size)
    numpy_us = rows[0][2] * 1e6
    print(f"\nper-op overhead, {args.size}x{args.size} float32, median of 7 rounds\n")
    print(f"{'library':8} {'operation':22} {'us/call':>9} {'x numpy':>8} {'x torch':>8}")
    torch_by_op = {op: t for lib, op, t in rows if lib == "torch"}
    for lib, op, t in rows:
        ref = torch_by_op.get(op)
        vs_torch = f"{t / ref:8.2f}" if ref else f"{'-':>8}"
        print(f"{lib:8} {op:22} {t * 1e6:9.2f} {t * 1e6 / numpy_us:8.1f} {vs_torch}")
    write_json(args.json, {"size": args.size, "rows": [{"library": l, "op": o, "seconds": t} for l, o, t in rows]})


if __name__ == "__main__":
    main()

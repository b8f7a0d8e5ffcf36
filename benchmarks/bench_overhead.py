"""Per-op overhead: how long a small add and its backward take in minidl, NumPy and PyTorch.

For tiny arrays the arithmetic is nothing; what is measured is the framework's bookkeeping per op
(wrapping arrays, recording the graph, walking it backward). The last row is the cost per op of a
whole graph, a chain of multiplies and adds with a sum at the end, forward and backward, divided by
its number of ops: a single op's backward is mostly the cost of starting one, which a graph pays
once. minidl (with NumPy's bare add for scale) and PyTorch run in processes of their own,
alternating for ``--rounds`` rounds, each from the environment the benchmark was started with;
every time is the median over the rounds.

    python benchmarks/bench_overhead.py [--size 16] [--rounds 3] [--json out.json]
"""
import argparse
import os
import statistics
import sys

import numpy as np

from minidl.bench.common import (machine_header, measured_side, median_time, report_side, run_script, run_sides,
                                 side_header, try_import_torch, write_json)

SIDE = measured_side()  # "minidl" or "torch" in a process that run_sides started, else None


def operands(size):
    rng = np.random.default_rng(0)
    return (rng.standard_normal((size, size)).astype(np.float32),
            rng.standard_normal((size, size)).astype(np.float32))


CHAIN = 50  # (y * b + b) pairs in the chain, then a sum: 2 * CHAIN + 1 ops


def chain_per_op(x, b):
    """Seconds per op of the chain on ``x`` (requires grad) and the constant ``b``, forward and
    backward; the same code runs on minidl's tensors and on PyTorch's."""

    def run():
        x.grad = None
        y = x
        for _ in range(CHAIN):
            y = y * b + b
        y.sum().backward()

    return median_time(run) / (2 * CHAIN + 1)


def measure_minidl(size):
    """(library, operation, seconds) rows of NumPy's bare add and of minidl's."""
    import minidl as mdl

    a_np, b_np = operands(size)
    rows = [("numpy", "a + b", median_time(lambda: a_np + b_np))]

    a, b = mdl.tensor(a_np), mdl.tensor(b_np)
    rows.append(("minidl", "a + b (no grad)", median_time(lambda: a + b)))
    ag, bg = mdl.tensor(a_np, requires_grad=True), mdl.tensor(b_np, requires_grad=True)
    rows.append(("minidl", "a + b (recording)", median_time(lambda: ag + bg)))
    g = mdl.tensor(np.ones_like(a_np))

    def fwd_bwd():
        ag.grad = bg.grad = None
        (ag + bg).backward(g)

    rows.append(("minidl", "a + b, backward", median_time(fwd_bwd)))
    rows.append(("minidl", "chain, per op", chain_per_op(ag, b)))
    return rows


def measure_torch(torch, size):
    a_np, b_np = operands(size)
    ta, tb = torch.from_numpy(a_np), torch.from_numpy(b_np)
    rows = [("torch", "a + b (no grad)", median_time(lambda: ta + tb))]
    tag, tbg = ta.clone().requires_grad_(), tb.clone().requires_grad_()
    rows.append(("torch", "a + b (recording)", median_time(lambda: tag + tbg)))
    tgrad = torch.ones_like(ta)

    def torch_fwd_bwd():
        tag.grad = tbg.grad = None
        (tag + tbg).backward(tgrad)

    rows.append(("torch", "a + b, backward", median_time(torch_fwd_bwd)))
    rows.append(("torch", "chain, per op", chain_per_op(tag, tb)))
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=16, help="arrays are size x size float32")
    p.add_argument("--json", default=None, help="also write the results here")
    p.add_argument("--rounds", type=int, default=3, help="processes per library, alternating")
    args = p.parse_args(argv)
    if SIDE == "minidl":
        return report_side({"header": side_header(), "rows": measure_minidl(args.size)})
    if SIDE == "torch":
        torch = try_import_torch()
        return report_side({"header": side_header(torch), "rows": measure_torch(torch, args.size)})

    for line in machine_header():
        print(line)
    sides = ("minidl", "torch") if try_import_torch() else ("minidl",)
    runs = run_sides(os.path.abspath(__file__), ["--size", str(args.size)], args.rounds, sides)
    for side in sides:
        print(f"{side} processes: {runs[side][0]['header']}")
    rows = [(lib, op, statistics.median(run["rows"][i][2] for run in runs[side]))
            for side in sides for i, (lib, op, _) in enumerate(runs[side][0]["rows"])]
    numpy_us = rows[0][2] * 1e6
    print(f"\nper-op overhead, {args.size}x{args.size} float32, median of 7 rounds in each process and of "
          f"{args.rounds} process(es) per library, alternating\n")
    print(f"{'library':8} {'operation':22} {'us/call':>9} {'x numpy':>8} {'x torch':>8}")
    torch_by_op = {op: t for lib, op, t in rows if lib == "torch"}
    for lib, op, t in rows:
        ref = torch_by_op.get(op)
        vs_torch = f"{t / ref:8.2f}" if ref else f"{'-':>8}"
        print(f"{lib:8} {op:22} {t * 1e6:9.2f} {t * 1e6 / numpy_us:8.1f} {vs_torch}")
    write_json(args.json, {"size": args.size, "rows": [{"library": l, "op": o, "seconds": t} for l, o, t in rows]})


if __name__ == "__main__":
    sys.exit(run_script(__file__, main))

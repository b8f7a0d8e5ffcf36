"""What a gradient checker catches: bugs injected into the backward of every registered op.

Every kind of bug in tests/gradmutants.py (a scale error of 1e-6 or 1e-4, one element off, a
flipped sign, a transposed gradient, a broadcast not accumulated, the gradient of the wrong input,
and two double-backward bugs) is put into the backward of every op in tests/gradcases, case by
case, wherever it changes what is checked. Each mutant is then judged by minidl's gradcheck (in
its automatic mode and in its directional mode) and, where PyTorch is installed, by
``torch.autograd.gradcheck`` with its defaults (eps=1e-6, atol=1e-5, rtol=1e-3), which checks the
same minidl forward and mutated backward wrapped in a ``torch.autograd.Function``. The report is
the catch rate per kind of bug, and the false alarms on the correct ops over ``--seeds`` draws.

PyTorch's double backward cannot run through a wrapped minidl backward, so the double-backward
rows have no PyTorch column. Each checker runs in a process of its own. The last row, seconds for
all checks, says what each checker costs here; PyTorch's includes the minidl forward and backward
it wraps, so it is not a comparison of the two frameworks' speed, and no ratio is printed.

    python benchmarks/bench_gradcheck.py [--seeds 3] [--json out.json]
"""
import argparse
import os
import sys
import time

import numpy as np

import minidl as mdl
from minidl.bench.common import (machine_header, measured_side, report_side, run_script, run_sides, side_header,
                                 try_import_torch, write_json)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))
from gradcases import all_cases  # noqa: E402
from gradmutants import KINDS, changes_gradient, mutant, mutants_of  # noqa: E402

CHECKERS = {"minidl": ["minidl auto", "minidl directional"], "torch": ["torch gradcheck"]}


def torch_checker(torch):
    """A checker with minidl's interface that runs torch.autograd.gradcheck on the case's minidl
    function, forward and backward, wrapped as a torch.autograd.Function."""

    def check(fn, inputs, order):
        if order != 1:
            return None  # not available through the wrapper

        class Wrapped(torch.autograd.Function):
            @staticmethod
            def forward(ctx, *ts):
                xs = [mdl.tensor(t.detach().numpy().copy(), requires_grad=t.requires_grad) for t in ts]
                ys = fn(*xs)
                ys = ys if isinstance(ys, tuple) else (ys,)
                ctx.minidl = xs, ys
                out = tuple(torch.from_numpy(np.array(y.data, copy=True)) for y in ys)
                return out if len(out) > 1 else out[0]

            @staticmethod
            def backward(ctx, *gys):
                xs, ys = ctx.minidl
                targets = [x for x in xs if x.requires_grad]
                gs = iter(mdl.grad(list(ys), targets, grad_outputs=[mdl.tensor(g.numpy()) for g in gys],
                                   retain_graph=True, allow_unused=True))
                out = []
                for x in xs:
                    g = next(gs) if x.requires_grad else None
                    out.append(None if g is None else torch.from_numpy(np.array(g.data, copy=True)))
                return tuple(out)

        ts = [torch.tensor(np.asarray(x.data, dtype=np.float64 if x.dtype.kind == "f" else x.dtype),
                           requires_grad=x.requires_grad) for x in inputs]
        return torch.autograd.gradcheck(Wrapped.apply, ts, raise_exception=False)

    return check


def minidl_checker(mode):
    def check(fn, inputs, order, **kwargs):
        try:
            (mdl.gradcheck if order == 1 else mdl.gradgradcheck)(fn, inputs, mode=mode, **kwargs)
        except mdl.GradcheckError:
            return False
        return True

    return check


def measure(side, seeds):
    """{checker: {"caught": {kind: [caught, mutants]}, "missed": [...], "false_alarms": [n, checks],
    "alarmed": [...], "seconds": s}}: missed and alarmed name the case and the bug."""
    if side == "torch":
        checkers = {"torch gradcheck": torch_checker(try_import_torch())}
    else:
        checkers = {"minidl auto": minidl_checker("auto"), "minidl directional": minidl_checker("directional")}
    results = {name: {"caught": {k.name: [0, 0] for k in KINDS}, "missed": [], "false_alarms": [0, 0],
                      "alarmed": [], "seconds": 0.0} for name in checkers}
    cases = all_cases()
    for case in cases:
        inputs = case.make_inputs()
        # minidl's checker gets the case's own settings; PyTorch's its defaults, as a user's would
        kwargs = case.kwargs if side == "minidl" else {}
        mutants = [(k, w) for k, w in mutants_of(case, inputs) if changes_gradient(case, inputs, k, w)]
        for name, check in checkers.items():
            r, t0 = results[name], time.perf_counter()
            for seed in range(seeds):
                for order in (1, 2) if case.double else (1,):
                    passed = check(case.fn, case.make_inputs(seed), order, **kwargs)
                    if passed is not None:
                        r["false_alarms"][0] += not passed
                        r["false_alarms"][1] += 1
                        if not passed:
                            r["alarmed"].append(f"{case.id}, seed {seed}, order {order}")
            for kind, which in mutants:
                with mutant(case.op, kind, which):
                    passed = check(case.fn, case.make_inputs(), kind.order, **kwargs)
                if passed is not None:
                    r["caught"][kind.name][0] += not passed
                    r["caught"][kind.name][1] += 1
                    if passed:
                        r["missed"].append(f"{kind.name} in {case.id}, inputs {which}")
            r["seconds"] += time.perf_counter() - t0
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="draws of each correct case, for false alarms")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()

    side = measured_side()
    if side is not None:
        header = side_header(try_import_torch() if side == "torch" else None)
        report_side({"header": header, "results": measure(side, args.seeds)})
        return

    print("\n".join(machine_header()))
    sides = ("minidl", "torch") if try_import_torch() is not None else ("minidl",)
    if len(sides) == 1:
        print("PyTorch is not installed: its column is left out")
    runs = run_sides(os.path.abspath(__file__), ["--seeds", str(args.seeds)], rounds=1, sides=sides)
    results = {}
    for side in sides:
        print(f"{side}: {runs[side][0]['header']}")
        results.update(runs[side][0]["results"])
    names = [n for side in sides for n in CHECKERS[side]]
    n_cases = len(all_cases())
    print(f"\n{n_cases} cases of {len({c.op for c in all_cases()})} registered ops; mutants that leave a "
          "case's checked values unchanged are not counted\n")
    width = max(len(k.name) for k in KINDS) + 2
    print(f"{'bug':<{width}}" + "".join(f"{n:>22}" for n in names))

    def cell(caught, total):
        return f"{caught}/{total} ({100 * caught / total:.3g}%)" if total else "n/a"

    for kind in KINDS:
        print(f"{kind.name:<{width}}" + "".join(f"{cell(*results[n]['caught'][kind.name]):>22}" for n in names))
    print(f"{'false alarms, correct ops':<{width}}" + "".join(f"{cell(*results[n]['false_alarms']):>22}"
                                                            for n in names))
    print(f"{'seconds, all checks':<{width}}" + "".join(f"{results[n]['seconds']:>22.1f}" for n in names))
    for n in names:
        for what, label in (("missed", "missed"), ("alarmed", "false alarms")):
            items = results[n][what]
            if items:
                shown = "; ".join(items[:8]) + (f"; and {len(items) - 8} more" if len(items) > 8 else "")
                print(f"{n}, {label}: {shown}")
    if args.json:
        write_json(args.json, {"header": machine_header(), "seeds": args.seeds, "results": results})


if __name__ == "__main__":
    sys.exit(run_script(__file__, main))

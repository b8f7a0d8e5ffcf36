"""Data-parallel training on MPI: LeNet-5 training throughput on 1 and 2 ranks, the time spent
reducing per step, and a model of how it would scale over more ranks on a network.

Measured, each in processes of its own, alternating for ``--rounds`` rounds:

    1 process x 2 threads     the usual run on this machine
    2 ranks x 1 thread        mpiexec -n 2: the same global batch split over the ranks
    1 process x 1 thread      what one rank computes alone: the model's compute time

A step is what ``minidl train`` does: `minidl.training.Trainer` on a DistributedSampler's share
of a global batch of synthetic 1x32x32 images (Adam), its loss, counts and gradients reduced
over the ranks. "in all_reduce" is the time per step inside minidl.distributed's reductions,
including the wait for the slower rank; "Allreduce alone" is one Allreduce of the gradients'
bytes after a barrier, the transfer itself.

The model: a step on N ranks with global batch B takes

    t(N) = t1(B / N)  +  2 (N - 1) / N * S / bandwidth  +  2 (N - 1) * latency  +  2 log2(N) * latency

t1(b) the 1-thread process's measured step at batch b (each rank's share: measured at every B / N,
since the cost per image is not constant), S the gradients' bytes, the last terms a ring Allreduce
of the gradients and two small reductions (the loss and counts, and the layout check). Each rank
is assumed to have one core to itself, as here. ``--bandwidths`` and ``--latency`` set the network.

    python benchmarks/bench_distributed.py [--batch-sizes 64 256] [--steps 60] [--rounds 3] [--json out.json]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

import numpy as np

from minidl.bench.common import environment_for, machine_header, report_side, run_script, side_header, write_json

WARMUP = 5
SETUPS = {  # name: (ranks, threads per rank)
    "1 process x 2 threads": (1, 2),
    "2 ranks x 1 thread": (2, 1),
    "1 process x 1 thread": (1, 1),
}


def measure(batch_size, steps):
    """Train LeNet-5 for WARMUP + ``steps`` steps of global batch ``batch_size`` (this process's
    share of it on several ranks); median seconds per step, in the reductions per step, and of one
    Allreduce of the gradients alone."""
    import minidl as mdl
    from minidl import distributed
    from minidl.data import DataLoader, TensorDataset
    from minidl.training import Trainer
    from minidl_models import lenet5

    world = distributed.world_size()
    mdl.manual_seed(0)
    model = lenet5()
    n = batch_size * (WARMUP + steps)
    rng = np.random.default_rng(0)
    data = TensorDataset(rng.standard_normal((n, 1, 32, 32)).astype(np.float32), rng.integers(0, 10, n))
    loader = (DataLoader(data, batch_size // world, sampler=distributed.DistributedSampler(data, seed=0)) if world > 1
              else DataLoader(data, batch_size, shuffle=True, seed=0))
    opt = mdl.optim.Adam(model.parameters(), lr=1e-3)
    ends, in_reductions, depth = [], [0.0], [0]
    reductions = {name: getattr(distributed, name) for name in ("all_reduce", "all_reduce_gradients")}

    def timed(fn):
        def call(*args, **kwargs):  # the outermost call only: all_reduce_gradients calls all_reduce
            depth[0] += 1
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    in_reductions[-1] += time.perf_counter() - t0
        return call

    step = opt.step

    def step_and_time():
        step()
        ends.append(time.perf_counter())
        in_reductions.append(0.0)

    opt.step = step_and_time
    for name, fn in reductions.items():
        setattr(distributed, name, timed(fn))
    try:
        trainer = Trainer(model, opt, loader, progress=False)
        started = time.perf_counter()
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet  # the epoch line
            try:
                trainer.fit()
            finally:
                sys.stdout = stdout
    finally:
        for name, fn in reductions.items():
            setattr(distributed, name, fn)
    times = np.diff([started] + ends)[WARMUP:]
    result = {"step_s": statistics.median(times), "reduce_s": statistics.median(in_reductions[WARMUP:-1]),
              "gradient_bytes": int(sum(p.data.nbytes for p in model.parameters()))}
    if world > 1:
        flat = np.zeros(result["gradient_bytes"] // 4, np.float32)
        alone = []
        for _ in range(50):
            distributed.barrier()
            t0 = time.perf_counter()
            distributed.all_reduce(flat)
            alone.append(time.perf_counter() - t0)
        result["allreduce_alone_s"] = statistics.median(alone)
    return result


def child(args):
    from minidl import distributed

    if distributed.launched_world_size() > 1:
        distributed.init()
    sizes = sorted({s for b in args.batch_sizes for s in (shares(b) if args.shares else [b])})
    results = {str(b): measure(b, args.steps) for b in sizes}
    if distributed.rank() == 0:
        report_side({"header": side_header(), "results": results})


def run_setup(ranks, threads, args):
    environment = environment_for("minidl", OMP_NUM_THREADS=str(threads))
    command = [sys.executable, os.path.abspath(__file__), "--child", "--steps", str(args.steps), "--batch-sizes",
               *map(str, args.batch_sizes)] + (["--shares"] if (ranks, threads) == (1, 1) else [])
    if ranks > 1:
        command = [shutil.which("mpiexec") or "mpiexec", "-n", str(ranks), *command]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:3])} ... failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


RANKS = (1, 2, 4, 8, 16, 32, 64)


def shares(batch):
    """Each rank's batch for the modelled numbers of ranks."""
    return [batch // n for n in RANKS if batch % n == 0]


def model_step(compute, ranks, gradient_bytes, bandwidth_bits, latency):
    """Seconds per step on ``ranks`` ranks, each computing its share in ``compute`` seconds, by the
    model in the module docstring."""
    ring = 2 * (ranks - 1) / ranks * gradient_bytes * 8 / bandwidth_bits + 2 * (ranks - 1) * latency
    small = 2 * np.log2(ranks) * latency if ranks > 1 else 0.0
    return compute + ring + small


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 256])
    p.add_argument("--steps", type=int, default=60, help="timed steps per batch size (after 5 untimed)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--bandwidths", type=float, nargs="+", default=[10, 100], help="network, in Gb/s")
    p.add_argument("--latency", type=float, default=10e-6, help="seconds per message on the network")
    p.add_argument("--json", default=None)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--shares", action="store_true", help=argparse.SUPPRESS)  # the model's per-rank batches
    args = p.parse_args()
    if any(b % 2 for b in args.batch_sizes):
        p.error("--batch-sizes must be even: two ranks split each batch")
    if args.child:
        return child(args)
    from minidl import distributed

    if not distributed.is_available() or shutil.which("mpiexec") is None:
        sys.exit("bench_distributed needs mpi4py and mpiexec: pip install -e \".[mpi]\"")
    for line in machine_header():
        print(line)
    print(f"mpiexec: {shutil.which('mpiexec')}; {args.rounds} rounds, alternating the setups, each in processes "
          f"of its own; {args.steps} timed steps per batch size; medians")
    runs = {name: [] for name in SETUPS}
    for _ in range(args.rounds):
        for name, (ranks, threads) in SETUPS.items():
            runs[name].append(run_setup(ranks, threads, args))
    for name in SETUPS:
        print(f"  {name}: {runs[name][0]['header']}")

    def median(name, batch, key):
        return statistics.median(r["results"][str(batch)][key] for r in runs[name])

    report = {"header": machine_header(), "runs": runs, "model": {}}
    print("\nLeNet-5 training, Adam, synthetic 1x32x32 images; global batch B")
    print(f"{'B':>5} {'setup':<24} {'step ms':>9} {'img/s':>8} {'in all_reduce ms':>17} {'Allreduce alone ms':>19}"
          f" {'vs 1 x 2 threads':>17}")
    for b in args.batch_sizes:
        base = median("1 process x 2 threads", b, "step_s")
        for name in ("1 process x 2 threads", "2 ranks x 1 thread", "1 process x 1 thread"):
            step = median(name, b, "step_s")
            reduce_ms = f"{median(name, b, 'reduce_s') * 1e3:.3f}" if SETUPS[name][0] > 1 else "-"
            alone = f"{median(name, b, 'allreduce_alone_s') * 1e3:.3f}" if SETUPS[name][0] > 1 else "-"
            print(f"{b:>5} {name:<24} {step * 1e3:>9.2f} {b / step:>8.0f} {reduce_ms:>17} {alone:>19} "
                  f"{base / step:>16.2f}x")
    gradient_bytes = runs["2 ranks x 1 thread"][0]["results"][str(args.batch_sizes[0])]["gradient_bytes"]
    print(f"\nModel of N ranks, one core each, on a network (latency {args.latency * 1e6:.0f} us per message; "
          f"gradients {gradient_bytes / 1e3:.0f} kB per step):")
    for b in args.batch_sizes:
        alone = {share: median("1 process x 1 thread", share, "step_s") for share in shares(b)}
        two = median("2 ranks x 1 thread", b, "step_s")
        print(f"  B = {b}. On this machine, 2 ranks: a rank alone takes {alone[b // 2] * 1e3:.2f} ms for its "
              f"{b // 2} images, the Allreduce alone {median('2 ranks x 1 thread', b, 'allreduce_alone_s') * 1e3:.3f} "
              f"ms; the step takes {two * 1e3:.2f} ms, {median('2 ranks x 1 thread', b, 'reduce_s') * 1e3:.2f} of "
              f"them in minidl's reductions, waiting for the other rank included")
        print(f"    {'N':>5} {'images/rank':>11} {'1 rank ms':>9} " +
              " ".join(f"{f'{bw:g} Gb/s img/s':>16} {'efficiency':>10}" for bw in args.bandwidths))
        report["model"][str(b)] = []
        for share in shares(b):
            ranks = b // share
            cells, row = [], {"ranks": ranks, "compute_s": alone[share]}
            for bw in args.bandwidths:
                t = model_step(alone[share], ranks, gradient_bytes, bw * 1e9, args.latency)
                efficiency = alone[b] / (ranks * t)
                cells.append(f"{b / t:>16.0f} {efficiency:>10.0%}")
                row[f"{bw:g}"] = {"images_per_s": b / t, "efficiency": efficiency}
            report["model"][str(b)].append(row)
            print(f"    {ranks:>5} {share:>11} {alone[share] * 1e3:>9.2f} " + " ".join(cells))
    print("efficiency: images/s per rank against one rank alone. A step has a fixed cost (Python, ~60 small "
          "kernels) that every rank pays whatever its share, so once a share is a few images the ranks add "
          "little but that; the network adds the rest.")
    write_json(args.json, report)


if __name__ == "__main__":
    sys.exit(run_script(__file__, main))

"""The main job end to end: ``minidl train lenet5 --dataset mnist`` next to PyTorch CPU training the
same LeNet-5 with the same recipe on the same MNIST files.

The recipe is minidl's default: 9 epochs of Adam at lr 2e-3, multiplied by 0.3 every 3 epochs,
batch 64, the 28x28 digits padded to 32x32 and normalised, each training image moved by up to 2
pixels. The PyTorch process reads, pads, normalises and shifts the images with minidl's data
pipeline, so both train on the very same batches in the same order; the network, the loss, the
backward pass and the optimizer are PyTorch's own. Each side runs in processes of its own,
alternating for ``--rounds`` rounds, each from the environment the benchmark was started with.

Reported per side (median over the rounds): the training time to the first epoch at 99.0% test
accuracy or more (the epochs' training loops, without their evaluations), the wall time of the
whole job (data loading, training, evaluations, and for minidl its checkpoints and metrics), and
the final test accuracy.

    python benchmarks/bench_main_job.py [--rounds 1] [--epochs 9] [--subset N] [--data-root DIR]
"""
import argparse
import json
import os
import statistics
import sys
import tempfile
import time

from minidl.bench.common import (machine_header, measured_side, report_side, run_script, run_sides, side_header,
                                 torch_lenet5, try_import_torch, write_json)

SIDE = measured_side()  # "minidl" or "torch" in a process that run_sides started, else None

TARGET = 0.99


def time_to_target(epochs):
    """Training seconds up to the first epoch whose test accuracy reaches TARGET, or None."""
    total = 0.0
    for row in epochs:
        total += row["time_s"]
        if row["test_acc"] >= TARGET:
            return total
    return None


def run_minidl(args):
    """``minidl train`` itself, in this process, into a temporary run directory."""
    from minidl import cli

    with tempfile.TemporaryDirectory() as out:
        argv = ["train", "lenet5", "--dataset", "mnist", "--epochs", str(args.epochs), "--out", out, "--quiet"]
        argv += (["--subset", str(args.subset)] if args.subset else []) + (
            ["--data-root", args.data_root] if args.data_root else [])
        started = time.perf_counter()
        status = cli.main(argv)
        wall = time.perf_counter() - started
        if status != 0:
            raise SystemExit(f"minidl train exited with {status}")
        with open(os.path.join(out, "metrics.jsonl")) as f:
            epochs = [json.loads(line) for line in f]
    return wall, epochs


def run_torch(torch, args):
    """The same job in PyTorch: minidl's data pipeline, PyTorch's LeNet-5, loss, backward and Adam."""
    from minidl.cli import DEFAULTS
    from minidl.data import DataLoader
    from minidl.training import load_datasets

    started = time.perf_counter()
    nn = torch.nn
    torch.manual_seed(0)
    train, test = load_datasets("mnist", args.data_root, args.subset, (32, 32), DEFAULTS["augment"])
    model = torch_lenet5(torch)
    opt = torch.optim.Adam(model.parameters(), lr=DEFAULTS["lr"])
    scheduler = torch.optim.lr_scheduler.StepLR(opt, DEFAULTS["lr_step"], DEFAULTS["lr_gamma"])
    loader = DataLoader(train, DEFAULTS["batch_size"], shuffle=True, seed=DEFAULTS["seed"])
    test_loader = DataLoader(test, 1000)
    epochs = []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        for x, y in loader.batches(epoch):
            loss = nn.functional.cross_entropy(model(torch.from_numpy(x.numpy())), torch.from_numpy(y.numpy()))
            opt.zero_grad()
            loss.backward()
            opt.step()
        train_time = time.perf_counter() - t0
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                correct += int((model(torch.from_numpy(x.numpy())).argmax(1).numpy() == y.numpy()).sum())
        epochs.append({"epoch": epoch + 1, "time_s": train_time, "test_acc": correct / len(test)})
        scheduler.step()
    return time.perf_counter() - started, epochs


def measure_side(args):
    torch = try_import_torch() if SIDE == "torch" else None
    wall, epochs = run_torch(torch, args) if SIDE == "torch" else run_minidl(args)
    report_side({"header": side_header(torch), "wall_s": wall, "to_target_s": time_to_target(epochs),
                 "test_acc": epochs[-1]["test_acc"], "epochs": [{k: r[k] for k in ("time_s", "test_acc")}
                                                                for r in epochs]})


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="processes per side, alternating")
    p.add_argument("--epochs", type=int, default=9)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images (quick runs)")
    p.add_argument("--data-root", default=None, help="folder with the MNIST files (default: minidl's search)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if SIDE is not None:
        return measure_side(args)

    for line in machine_header():
        print(line)
    sides = ("minidl", "torch") if try_import_torch() else ("minidl",)
    child = ["--epochs", str(args.epochs)] + (["--subset", str(args.subset)] if args.subset else []) + (
        ["--data-root", args.data_root] if args.data_root else [])
    runs = run_sides(os.path.abspath(__file__), child, args.rounds, sides)
    print(f"\nthe main job: LeNet-5 on MNIST, {args.epochs} epochs of minidl's recipe"
          + (f", the first {args.subset} training images" if args.subset else "")
          + f"; each side in {args.rounds} process(es) of its own, alternating, and the median of those\n")
    for side in sides:
        print(f"{side} processes: {runs[side][0]['header']}")

    def median(side, key):
        values = [run[key] for run in runs[side] if run[key] is not None]
        return statistics.median(values) if values else None

    print(f"\n{'side':8} {f'to {TARGET:.1%} s':>12} {'total s':>9} {'test acc':>9}")
    rows = {}
    for side in sides:
        rows[side] = {key: median(side, key) for key in ("to_target_s", "wall_s", "test_acc")}
        to_target = rows[side]["to_target_s"]
        print(f"{side:8} {f'{to_target:.1f}' if to_target else 'not reached':>12} {rows[side]['wall_s']:9.1f} "
              f"{rows[side]['test_acc']:9.4f}")
    if "torch" in rows:
        ratio = rows["minidl"]["wall_s"] / rows["torch"]["wall_s"]
        print(f"\nminidl / torch total time: {ratio:.2f} (below 1: minidl is faster)")
    write_json(args.json, {"epochs": args.epochs, "subset": args.subset, "rounds": args.rounds, "rows": rows,
                           "runs": runs})


if __name__ == "__main__":
    sys.exit(run_script(__file__, main))

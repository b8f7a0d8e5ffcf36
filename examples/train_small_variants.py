"""Train the small 32x32 variant of each CNN family for one epoch and report its test accuracy.

    python examples/train_small_variants.py [--dataset mnist] [--epochs 1] [--subset N] [--models ...]

Each run is an ordinary `minidl train` run (metrics, checkpoints and curves land in --out/<model>),
so any of them can be resumed or evaluated later. On a 2-core CPU expect a few minutes per model.
"""
import argparse
import json
import os
import time

import minidl as mdl
from minidl import cli

SMALL_VARIANTS = ["lenet5", "alexnet_small", "vgg_small", "googlenet_small", "resnet_small"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dataset", default="mnist", help="mnist or fashion-mnist")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--subset", type=int, default=None, help="train on the first N images only")
    p.add_argument("--models", nargs="+", default=SMALL_VARIANTS)
    p.add_argument("--out", default="runs/small-variants")
    args = p.parse_args(argv)
    mdl.configure_process()  # this script trains: its threads sleep between kernels (minidl.threads)

    results = []
    for name in args.models:
        out = os.path.join(args.out, name)
        started = time.perf_counter()
        argv = ["train", name, "--dataset", args.dataset, "--epochs", str(args.epochs), "--lr", "2e-3",
                "--out", out, "--quiet"] + (["--subset", str(args.subset)] if args.subset else [])
        if cli.main(argv) != 0:
            raise SystemExit(f"training {name} failed")
        with open(os.path.join(out, "metrics.jsonl")) as f:
            last = [json.loads(line) for line in f][-1]
        results.append((name, last, time.perf_counter() - started))

    print(f"\n{args.dataset}, {args.epochs} epoch(s), Adam lr 2e-3, batch 64:\n")
    print(f"{'model':18} {'train loss':>10} {'test acc':>9} {'img/s':>7} {'minutes':>8}")
    for name, last, seconds in results:
        print(f"{name:18} {last['train_loss']:10.4f} {last['test_acc']:9.4f} {last['images_per_s']:7.0f} "
              f"{seconds / 60:8.1f}")


if __name__ == "__main__":
    main()

"""benchmarks/bench_main_job.py, small: both sides train on the same batches and report per epoch,
and the time to the target accuracy is counted up to the first epoch that reaches it."""
import argparse
import os
import sys

import pytest

from minidl import training
from test_cli import TinyDigits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks"))
import bench_main_job  # noqa: E402


def test_time_to_target_counts_training_up_to_the_first_epoch_there():
    epochs = [{"time_s": 2.0, "test_acc": 0.98}, {"time_s": 3.0, "test_acc": 0.991}, {"time_s": 4.0, "test_acc": 0.995}]
    assert bench_main_job.time_to_target(epochs) == 5.0
    assert bench_main_job.time_to_target(epochs[:1]) is None


def test_both_sides_run_the_recipe_on_the_same_data(monkeypatch):
    torch = pytest.importorskip("torch")
    monkeypatch.setitem(training.DATASETS, "mnist", (TinyDigits, (0.1,), (0.3,)))
    args = argparse.Namespace(epochs=2, subset=None, data_root=None)
    _, ours = bench_main_job.run_minidl(args)
    _, theirs = bench_main_job.run_torch(torch, args)
    assert len(ours) == len(theirs) == 2
    for side in (ours, theirs):
        assert side[-1]["test_acc"] > 0.3  # ten classes: both learn, chance is 0.1
        assert all(row["time_s"] > 0 for row in side)

"""The programs that tests/test_distributed.py starts under ``mpiexec`` (and alone, to compare).

    python tests/mpi_jobs.py api OUT                 minidl.distributed's calls; each rank writes OUT/rank-R.json
    python tests/mpi_jobs.py train [--fault F] ARGS  `minidl train ARGS` on a generated MNIST-shaped set

``--fault raise:E:S`` makes rank 1 raise at epoch E, step S; ``kill:E:S`` makes it kill itself
with SIGKILL there.
"""
import json
import os
import signal
import sys

import numpy as np

import minidl as mdl
from minidl import cli, distributed, training
from minidl.data import ArrayDataset


class Bars(ArrayDataset):
    """MNIST-shaped (1x28x28 uint8) images where class k is a bright bar at row 2k plus noise: enough
    examples for a few hundred steps, learnable in as many."""

    classes = [str(i) for i in range(10)]

    def __init__(self, root=None, train=True, download=True, transform=None):
        rng = np.random.default_rng(0 if train else 1)
        n = int(os.environ.get("BARS_TRAIN", "6400")) if train else 640
        y = rng.integers(0, 10, n)
        x = rng.integers(0, 80, (n, 1, 28, 28)).astype(np.uint8)
        for i, k in enumerate(y):
            x[i, 0, 2 * k + 4: 2 * k + 6, 4:24] = 200
        super().__init__(x, y, transform)


def train(argv):
    fault = None
    if argv[:1] == ["--fault"]:
        kind, epoch, step = argv[1].split(":")
        fault, argv = (kind, int(epoch), int(step)), argv[2:]
    training.DATASETS["mnist"] = (Bars, (0.1,), (0.3,))
    if fault is not None:
        one_step = training.Trainer._parallel_step

        def faulty_step(self, x, y, stop):
            if distributed.rank() == 1 and (self.epoch + 1, self.step) == fault[1:]:
                if fault[0] == "kill":
                    os.kill(os.getpid(), signal.SIGKILL)
                raise RuntimeError(f"an injected fault at epoch {fault[1]}, step {fault[2]}")
            return one_step(self, x, y, stop)

        training.Trainer._parallel_step = faulty_step
    return cli.main(["train", *argv])


def api(out):
    """Each call of minidl.distributed on small models whose gradients differ by rank, with the
    results that the test compares to the arithmetic done by hand."""
    distributed.init()
    r, world = distributed.rank(), distributed.world_size()
    results = {"rank": r, "world": world}

    mdl.manual_seed(100 + r)  # different weights on every rank
    model = mdl.nn.Sequential(mdl.nn.Linear(3, 4), mdl.nn.BatchNorm1d(4), mdl.nn.Linear(4, 2))
    model[1].running_mean.data[...] = r + 1.0
    distributed.broadcast_parameters(model)
    results["weights"] = {k: v.data.tolist() for k, v in model.state_dict().items()}

    # Gradients set by hand: rank r's are (r + 1) times a fixed pattern, in float32 and float64,
    # one of them None on rank 0 only and one None everywhere; tiny buckets, so there are several.
    mixed = mdl.nn.Module()
    mixed.a = mdl.nn.Parameter(np.zeros((2, 3), np.float32))
    mixed.b = mdl.nn.Parameter(np.zeros(5, np.float64))
    mixed.c = mdl.nn.Parameter(np.zeros(4, np.float32))
    mixed.unused = mdl.nn.Parameter(np.zeros(2, np.float32))
    for name in ("a", "b", "c"):
        p = getattr(mixed, name)
        p.grad = mdl.Tensor((np.arange(p.data.size).reshape(p.shape) + 1).astype(p.dtype) * (r + 1))
    if r == 0:
        mixed.c.grad = None
    distributed.all_reduce_gradients(mixed, bucket_bytes=16)
    results["averaged"] = {n: None if getattr(mixed, n).grad is None else getattr(mixed, n).grad.data.tolist()
                           for n in ("a", "b", "c", "unused")}
    results["dtypes"] = [str(mixed.a.grad.dtype), str(mixed.b.grad.dtype)]
    for name in ("a", "b", "c"):
        p = getattr(mixed, name)
        p.grad = mdl.Tensor((np.arange(p.data.size).reshape(p.shape) + 1).astype(p.dtype) * (r + 1))
    distributed.all_reduce_gradients(mixed, weight=r * 3)  # rank 0 weighs nothing
    results["weighted"] = mixed.a.grad.data.tolist()

    def error_of(call):
        try:
            call()
        except distributed.DistributedError as e:
            return str(e)
        return None

    results["check_same"] = error_of(lambda: distributed.check_same("job", {"batch": 32 if r else 64, "model": "x"}))
    other = mdl.nn.Linear(3, 4 + r)  # another shape on every rank
    results["broadcast_mismatch"] = error_of(lambda: distributed.broadcast_parameters(other))
    other.weight.grad = mdl.Tensor(np.ones(other.weight.shape, np.float32))
    results["reduce_mismatch"] = error_of(lambda: distributed.all_reduce_gradients(other))
    results["gathered"] = distributed.all_gather_json({"rank": r, "text": "é" * r})
    from minidl.data import DataLoader, TensorDataset
    from minidl.training import Trainer

    data = TensorDataset(np.zeros((8, 3), np.float32), np.zeros(8, np.int64))
    try:
        Trainer(model, mdl.optim.SGD(model.parameters(), lr=0.1), DataLoader(data, 4))
    except ValueError as e:
        results["trainer_without_sampler"] = str(e)

    try:
        import cupy  # tests/fake_cupy in CI: the host-memory path for GPU arrays
    except ImportError:
        results["gpu"] = None
    else:
        gpu = mdl.nn.Linear(2, 2).to("cuda")
        gpu.weight.grad = mdl.Tensor(cupy.full((2, 2), float(r + 1), np.float32))
        gpu.bias.grad = mdl.Tensor(cupy.full(2, float(r + 1), np.float32))
        distributed.all_reduce_gradients(gpu)
        results["gpu"] = {"transport": distributed.gradient_transport("cuda"), "on_gpu": type(gpu.weight.grad.data).__module__,
                          "weight": cupy.asnumpy(gpu.weight.grad.data).tolist()}
    with open(os.path.join(out, f"rank-{r}.json"), "w") as f:
        json.dump(results, f)
    return 0


if __name__ == "__main__":
    job, rest = sys.argv[1], sys.argv[2:]
    sys.exit(api(*rest) if job == "api" else train(rest))

"""Data parallelism on MPI: each process (rank) trains a replica of the model on its share of
every batch, and the ranks average their gradients before each optimizer step.

    import minidl.distributed as dist

    dist.init()                                    # MPI through mpi4py (the ``mpi`` extra)
    dist.broadcast_parameters(model)               # every replica starts from rank 0's weights
    sampler = dist.DistributedSampler(train_set, seed=0)
    loader = DataLoader(train_set, batch_size=32, sampler=sampler)   # 32 per rank
    for x, y in loader:
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        loss.backward()
        dist.all_reduce_gradients(model, weight=len(y))   # the whole batch's mean gradient
        opt.step()

Run it with ``mpiexec -n N python train.py``; ``mpiexec -n N minidl train ...`` does all of this
for the models of ``minidl_models``. Why averaging gives the big batch's gradient, and what is and
is not bit-identical to one process, ``docs/learn/data-parallel.md`` explains.

mpi4py is imported by `init`, never before: importing this module changes nothing. Before `init`
the process is a world of one (`rank` 0 of `world_size` 1), so the same script runs without
``mpiexec``. Gradients on a GPU (CuPy arrays) are reduced on the GPUs through NCCL
(``cupy.cuda.nccl``) when CuPy has it, otherwise through host memory; `gradient_transport` says
which.
"""
import json
import os
import sys
import time

import numpy as np

from minidl import backend
from minidl._checks import check_bool, is_int, is_real, require

# The environment variables by which MPI launchers tell a process how many processes they started:
# MPICH's and Intel MPI's Hydra and Slurm's PMI (PMI_SIZE), Open MPI, MVAPICH.
LAUNCHER_SIZE_VARIABLES = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")

# ... and how many of them on this machine: MPICH's Hydra, Open MPI.
LAUNCHER_LOCAL_SIZE_VARIABLES = ("MPI_LOCALNRANKS", "OMPI_COMM_WORLD_LOCAL_SIZE")

# Gradients are reduced in buckets of about this many bytes: one Allreduce per bucket rather than
# per parameter, since each call costs a latency (tens of microseconds between processes on one
# machine, more between hosts) whatever its size. PyTorch's DDP uses the same 25 MiB.
BUCKET_BYTES = 25 * 2 ** 20

# Seconds between a rank's last words and its abort: MPICH's mpiexec dropped them about one time in
# five when the abort came at once.
ABORT_DELAY = 0.5

_MPI = None  # the mpi4py.MPI module, once init() ran
_comm = None  # COMM_WORLD
_local = None  # the ranks on this machine (COMM_TYPE_SHARED)
_nccl = None  # a cupy.cuda.nccl communicator, made on the first reduction of GPU gradients


class DistributedError(RuntimeError):
    """The ranks disagree (another model, batch size or setting on one of them), or a collective
    call cannot be made; the message names the ranks and what differs."""


def launched_world_size():
    """How many processes an MPI launcher (``mpiexec``, ``srun``) started this one among, read from
    its environment without importing MPI; 1 when none did."""
    return _launcher_count(LAUNCHER_SIZE_VARIABLES)


def launched_local_size():
    """How many of them run on this machine (1 when no launcher says)."""
    return _launcher_count(LAUNCHER_LOCAL_SIZE_VARIABLES)


def _launcher_count(names):
    for name in names:
        value = os.environ.get(name, "")
        if value.isdigit() and int(value) >= 1:
            return int(value)
    return 1


def _mpi_hint():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.exists(os.path.join(root, "setup.py")):
        return f'`pip install -e "{root}[mpi]"` (mpi4py and MPICH, from this source checkout)'
    return '`pip install "minidl[mpi]"` (mpi4py and MPICH)'


def is_available():
    """Whether mpi4py can be imported (found, not imported: that would start MPI)."""
    import importlib.util

    return importlib.util.find_spec("mpi4py") is not None


def init():
    """Join the MPI job this process was started in (``mpiexec -n N ...``), through mpi4py. Calling
    it again does nothing. A process started without a launcher is a world of one."""
    global _MPI, _comm, _local
    if _comm is not None:
        return
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise ImportError(f"minidl.distributed needs mpi4py, which is not installed ({e}); install the mpi "
                          f"extra: {_mpi_hint()}") from None
    _MPI, _comm = MPI, MPI.COMM_WORLD
    _local = _comm.Split_type(MPI.COMM_TYPE_SHARED, key=_comm.Get_rank())


def is_initialized():
    return _comm is not None


def rank():
    """This process's number among `world_size` (0 before `init`)."""
    return _comm.Get_rank() if _comm is not None else 0


def world_size():
    """How many processes train together (1 before `init`)."""
    return _comm.Get_size() if _comm is not None else 1


def local_rank():
    """This process's number among the ranks on its machine: the GPU it takes, ``cuda:local_rank()``."""
    return _local.Get_rank() if _local is not None else 0


def local_world_size():
    """How many ranks run on this machine: they share its cores."""
    return _local.Get_size() if _local is not None else 1


def barrier():
    """Wait until every rank gets here."""
    if _comm is not None:
        _comm.Barrier()


def abort(message, code=1):
    """Print ``rank R: message`` to stderr and end every rank of the job now. A rank that ends on
    its own while the others wait in a collective call leaves them waiting for ever; MPI's abort
    is the one way to stop them. Without MPI, only this process exits."""
    print(f"rank {rank()} of {world_size()}: {message}", file=sys.stderr, flush=True)
    if _comm is not None and world_size() > 1:
        time.sleep(ABORT_DELAY)  # the launcher forwards the message before it ends the job, not after
        _comm.Abort(code)
    sys.exit(code)


_OPS = {"sum": "SUM", "max": "MAX", "min": "MIN"}


def all_reduce(array, op="sum"):
    """Combine a NumPy ``array`` over the ranks, in place (``op``: 'sum', 'max' or 'min'), and
    return it: for small values such as the loss and counts of a step."""
    require(op in _OPS, "all_reduce", "op", op, "'sum', 'max' or 'min'")
    require(isinstance(array, np.ndarray) and array.flags.c_contiguous, "all_reduce", "array", type(array),
            "a C-contiguous NumPy array")
    if _comm is not None and world_size() > 1:
        _comm.Allreduce(_MPI.IN_PLACE, array, op=getattr(_MPI, _OPS[op]))
    return array


def all_gather_json(value):
    """Every rank's ``value`` (JSON-able), in rank order. Sent as JSON text, so no rank ever
    unpickles what another sent."""
    data = np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)
    if _comm is None or world_size() == 1:
        return [json.loads(data.tobytes())]
    sizes = np.zeros(world_size(), np.int64)
    _comm.Allgather(np.array([data.size], np.int64), sizes)
    out = np.empty(int(sizes.sum()), np.uint8)
    _comm.Allgatherv(data, (out, sizes))
    ends = np.cumsum(sizes)
    return [json.loads(out[end - size:end].tobytes()) for size, end in zip(sizes, ends)]


def check_same(where, values):
    """Raise DistributedError unless every rank passes equal ``values`` (a dict of JSON-able
    settings: the model, the batch size, ...); the message names the first setting that differs,
    in the order of ``values``, and each rank's value. Every rank must call it."""
    require(isinstance(values, dict), where, "values", type(values), "a dict of settings")
    everyone = all_gather_json(values)
    for name in list(values) + sorted(set().union(*everyone) - set(values)):
        seen = [v.get(name) for v in everyone]
        if any(s != seen[0] for s in seen):
            shown = ", ".join(f"rank {r}: {s!r:.100}" for r, s in enumerate(seen))
            raise DistributedError(f"{where}: the ranks must agree on {name}, but they differ ({shown}); start "
                                   f"every rank with the same command and settings")


def _layout(model, what):
    return [[name, list(t.shape), str(t.dtype)] for name, t in what(model)]


def _named_state(model):
    return list(model.named_parameters()) + list(model.named_buffers())


def _check_model(where, model):
    from minidl.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"{where}: model must be a minidl.nn.Module; got {type(model).__name__}")


def broadcast_parameters(model, root=0):
    """Give every rank ``root``'s parameters and buffers (batch norm's running statistics), as
    PyTorch's DDP does when it wraps a model, so that the replicas start equal. The ranks must
    hold the same architecture: one whose parameters differ in name, shape or dtype on some rank
    raises DistributedError naming it."""
    _check_model("broadcast_parameters", model)
    require(is_int(root) and 0 <= root < world_size(), "broadcast_parameters", "root", root,
            f"a rank from 0 to {world_size() - 1}")
    if _comm is None or world_size() == 1:
        return
    check_same("broadcast_parameters", {"the model's parameters and buffers (name, shape, dtype)":
                                        _layout(model, _named_state)})
    for _, t in _named_state(model):
        buffer = np.ascontiguousarray(backend.as_numpy(t.data))
        _comm.Bcast(buffer, root=root)
        if rank() != root:
            t.data[...] = backend.get_array_module(t.data).asarray(buffer)


def gradient_transport(device="cpu"):
    """How `all_reduce_gradients` moves gradients that live on ``device``: 'MPI' for host
    arrays; for GPU arrays 'NCCL' where CuPy has it, else 'MPI through host memory'."""
    if not str(device).startswith("cuda"):
        return "MPI"
    return "NCCL" if _nccl_module() is not None else "MPI through host memory"


def _nccl_module():
    """CuPy's NCCL binding, or None where CuPy was built without NCCL (``cupy.cuda.nccl_enabled``)."""
    try:
        import cupy.cuda
    except ImportError:
        return None
    if not getattr(cupy.cuda, "nccl_enabled", False):
        return None
    from cupy.cuda import nccl

    return nccl


NCCL_UNIQUE_ID_BYTES = 128  # ncclUniqueId's size in nccl.h


def _nccl_communicator():
    """One NCCL communicator for the job, made from an id that rank 0 draws and MPI broadcasts."""
    global _nccl
    if _nccl is None:
        nccl = _nccl_module()
        uid = np.array(nccl.get_unique_id() if rank() == 0 else [0] * NCCL_UNIQUE_ID_BYTES, np.int8)
        _comm.Bcast(uid, root=0)
        _nccl = nccl.NcclCommunicator(world_size(), tuple(int(v) for v in uid), rank())
    return _nccl


def _trainable(model):
    return [(name, p) for name, p in model.named_parameters() if p.requires_grad]


def _fingerprint(layout):
    """20 bits of a hash of ``layout``: small enough that sums of their squares over 4096 ranks
    stay exact in float64."""
    import hashlib

    return int.from_bytes(hashlib.sha256(json.dumps(layout).encode()).digest()[:3], "little") >> 4


def all_reduce_gradients(model, weight=None, bucket_bytes=BUCKET_BYTES):
    """Replace each trainable parameter's gradient by its average over the ranks, in buckets of
    about ``bucket_bytes`` (one Allreduce per bucket).

    ``weight``: this rank's share, such as its number of examples; the result is then
    ``sum_r weight_r * grad_r / sum_r weight_r``, which is the whole batch's mean gradient when each
    rank's loss is the mean over its examples, even where the ranks hold different numbers of them
    (the last batch of an epoch). A rank whose share is 0 (no examples) contributes nothing; its
    gradients may be None. Without ``weight``, every rank counts the same.

    A gradient that is None on some ranks counts as zeros there; one that is None on every rank
    stays None (a parameter the loss does not use), so the optimizers skip it as they would in one
    process. Every rank must call this, at the same step."""
    where = "all_reduce_gradients"
    _check_model(where, model)
    require(weight is None or (is_real(weight) and np.isfinite(weight) and weight >= 0), where, "weight", weight,
            "a finite number >= 0, or None")
    require(is_int(bucket_bytes) and bucket_bytes >= 1, where, "bucket_bytes", bucket_bytes, "an int >= 1")
    if _comm is None or world_size() == 1:
        return
    params = _trainable(model)
    layout = [[name, list(p.shape), str(p.dtype)] for name, p in params]
    w = 1.0 if weight is None else float(weight)
    # One small reduction first, of the same four numbers on every rank: a fingerprint of the
    # gradients' layout and its square (their sums are R times this rank's on every rank only if
    # all fingerprints are equal), the total weight, and how many gradients are None. Ranks that
    # reduced different layouts would add unrelated numbers, or wait for ever.
    f = float(_fingerprint(layout))
    missing = [p.grad is None for _, p in params]
    head = all_reduce(np.array([f, f * f, w, sum(missing)]))
    if head[0] != world_size() * f or head[1] != world_size() * f * f:
        check_same(where, {"the model's trainable parameters (name, shape, dtype)": layout})
    total = head[2]
    if total == 0:
        raise DistributedError(f"{where}: every rank passed weight 0, so there is nothing to average")
    present = [True] * len(params)
    if head[3]:  # then which gradients exist on some rank
        present = all_reduce(np.array([not m for m in missing], np.float64)) > 0
    for bucket in _buckets([p for (_, p), used in zip(params, present) if used], bucket_bytes):
        _reduce_bucket(bucket, w, total)


def _buckets(params, bucket_bytes):
    """The parameters in groups of one dtype and one kind of array, each of about ``bucket_bytes``."""
    groups = {}
    for p in params:
        groups.setdefault((str(p.dtype), backend.is_cupy_array(p.data)), []).append(p)
    for members in groups.values():
        bucket, size = [], 0
        for p in members:
            bucket.append(p)
            size += p.data.nbytes
            if size >= bucket_bytes:
                yield bucket
                bucket, size = [], 0
        if bucket:
            yield bucket


def _reduce_bucket(bucket, w, total):
    from minidl.tensor import Tensor

    p0 = bucket[0]
    xp = backend.get_array_module(p0.data)
    flat = xp.concatenate([(xp.zeros(p.data.size, p.dtype) if p.grad is None else p.grad.data.reshape(-1))
                           for p in bucket])
    if w != 1.0:
        flat *= flat.dtype.type(w)
    if xp is np:
        _comm.Allreduce(_MPI.IN_PLACE, flat, op=_MPI.SUM)
    elif _nccl_module() is not None:
        _nccl_all_reduce(flat)
    else:
        host = backend.as_numpy(flat)
        _comm.Allreduce(_MPI.IN_PLACE, host, op=_MPI.SUM)
        flat = xp.asarray(host)
    flat /= flat.dtype.type(total)
    at = 0
    for p in bucket:
        p.grad = Tensor(flat[at:at + p.data.size].reshape(p.shape))
        at += p.data.size


def _nccl_all_reduce(flat):
    nccl = _nccl_module()
    kinds = {"float16": nccl.NCCL_FLOAT16, "float32": nccl.NCCL_FLOAT32, "float64": nccl.NCCL_FLOAT64}
    if str(flat.dtype) not in kinds:
        raise DistributedError(f"all_reduce_gradients: NCCL reduces float16, float32 and float64 gradients; "
                               f"got {flat.dtype}")
    cupy = backend.cupy()
    stream = cupy.cuda.get_current_stream()
    _nccl_communicator().allReduce(flat.data.ptr, flat.data.ptr, flat.size, kinds[str(flat.dtype)], nccl.NCCL_SUM,
                                   stream.ptr)
    stream.synchronize()


class DistributedSampler:
    """Which examples of ``dataset`` this rank takes, for a `minidl.data.DataLoader`, as PyTorch's
    ``DistributedSampler``: every rank sees a disjoint share each epoch, reshuffled each epoch
    from ``seed`` (the order of a ``DataLoader(shuffle=True, seed=seed)``; ``shuffle=False``: the
    dataset's order).

    With ``DataLoader(dataset, batch_size=b, sampler=...)`` on R ranks, step k's batches together
    are batch k of a one-process ``DataLoader(dataset, batch_size=R*b, shuffle=True, seed=seed)``,
    rank r taking its items r, r + R, r + 2R, ... (the same split as PyTorch's when R divides the
    batch). Every rank has the same number of batches; where the last one has fewer than R items,
    some ranks get an empty batch (``all_reduce_gradients(model, weight=len(y))`` with ``weight``
    0 lets them take part in the step). The random augmentation of an item is the one it gets in
    that one-process loader (each rank prepares the whole batch's images, then keeps its own), so
    training on R ranks learns what one process would. ``drop_last`` is the loader's."""

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0):
        where = "DistributedSampler"
        from minidl.data import datasets

        datasets._check_dataset(where, "dataset", dataset)
        world = world_size() if num_replicas is None else num_replicas
        require(is_int(world) and world >= 1, where, "num_replicas", num_replicas, "an int >= 1")
        me = (_comm.Get_rank() if _comm is not None else 0) if rank is None else rank
        require(is_int(me) and 0 <= me < world, where, "rank", rank, f"an int from 0 to {world - 1}")
        check_bool(where, "shuffle", shuffle)
        require(is_int(seed) and 0 <= seed < 2 ** 63, where, "seed", seed, "an int in [0, 2**63)")
        self.dataset, self.num_replicas, self.rank = dataset, int(world), int(me)
        self.shuffle, self.seed, self.epoch = bool(shuffle), int(seed), 0

    def set_epoch(self, epoch):
        """PyTorch's way to reshuffle: a minidl DataLoader passes each epoch's number itself."""
        from minidl._checks import check_int

        self.epoch = check_int("DistributedSampler.set_epoch", "epoch", epoch, 0)

    def order(self, epoch):
        """The whole epoch's order, the same on every rank."""
        n = len(self.dataset)
        return np.random.default_rng([self.seed, epoch]).permutation(n) if self.shuffle else np.arange(n)

    def share(self, indices):
        """This rank's items of one batch's ``indices``."""
        return indices[self.rank::self.num_replicas]

    def __len__(self):
        """How many examples this rank sees in an epoch of batches that R divides."""
        return len(range(self.rank, len(self.dataset), self.num_replicas))

    def __iter__(self):
        return iter(self.share(self.order(self.epoch)).tolist())

    def __repr__(self):
        return (f"DistributedSampler(rank {self.rank} of {self.num_replicas}, shuffle={self.shuffle}, "
                f"seed={self.seed})")

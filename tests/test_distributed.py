"""minidl.distributed: the sampler and the calls in one process, then real MPI jobs of two ranks
(``mpiexec -n 2``, from the ``mpi`` extra) running tests/mpi_jobs.py: the collective calls, training
that equals one process, resuming on another number of ranks, and the faults."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import minidl as mdl
from minidl import distributed, threads
from minidl.data import DataLoader, TensorDataset, datasets, transforms as T
from minidl.distributed import DistributedSampler

ROOT = Path(__file__).resolve().parent.parent
JOBS = str(ROOT / "tests" / "mpi_jobs.py")


# --- one process --------------------------------------------------------------------------------
def test_a_process_without_a_launcher_is_a_world_of_one():
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.all_gather_json({"a": 1}) == [{"a": 1}]
    distributed.check_same("here", {"anything": 1})
    model = mdl.nn.Linear(2, 2)
    model.weight.grad = mdl.Tensor(np.ones((2, 2), np.float32))
    distributed.all_reduce_gradients(model, weight=3)  # nothing to average with
    assert np.array_equal(model.weight.grad.data, np.ones((2, 2)))
    assert distributed.gradient_transport("cpu") == "MPI"


def test_the_launchers_environment_says_how_many_processes(monkeypatch):
    for name in distributed.LAUNCHER_SIZE_VARIABLES + distributed.LAUNCHER_LOCAL_SIZE_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert (distributed.launched_world_size(), distributed.launched_local_size()) == (1, 1)
    monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "8")
    monkeypatch.setenv("MPI_LOCALNRANKS", "4")
    assert (distributed.launched_world_size(), distributed.launched_local_size()) == (8, 4)


def test_ranks_on_one_machine_share_its_cores(monkeypatch):
    """Every rank starting a thread per core in OpenBLAS and Numba made two ranks on 2 cores 13x
    slower; configure_process gives each its share, and says the process must start again when
    NumPy had loaded OpenBLAS before."""
    # A copy of the environment: what configure_process writes must not reach the later tests
    # (Numba rereads NUMBA_NUM_THREADS), and monkeypatch.delenv of an absent name undoes nothing.
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    monkeypatch.setattr(os, "environ", {**environment, "MPI_LOCALNRANKS": "2"})
    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    assert threads.configure_process() is True  # NumPy is loaded in this process
    assert (os.environ["OMP_NUM_THREADS"], os.environ["NUMBA_NUM_THREADS"]) == ("4", "4")
    assert threads.configure_process() is False  # the environment says now: nothing changes
    os.environ["OMP_NUM_THREADS"] = "3"
    assert threads.configure_process() is False and os.environ["OMP_NUM_THREADS"] == "3"


def test_a_ranks_own_signal_after_the_agreed_one_is_not_a_second_signal():
    """The ranks agree on the signal another rank got; this rank's own, arriving later, must not
    count as the second signal that stops at once without a checkpoint."""
    from minidl.training import Interrupted, _agree, _StopRequests

    stop = _StopRequests()
    assert _agree(stop, np.array([1.0, 0.0])) == signal.SIGINT and stop.signum == signal.SIGINT
    stop._handle(signal.SIGINT, None)  # this rank's own Ctrl-C, a moment later: the first it got
    with pytest.raises(Interrupted):
        stop._handle(signal.SIGINT, None)  # a second one: stop at once
    assert _agree(_StopRequests(), np.array([0.0, 0.0])) is None


def test_init_without_mpi4py_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(ImportError, match=r"needs mpi4py.*\[mpi\]"):
        distributed.init()


def augmented(n=23):
    x = np.random.default_rng(0).integers(0, 255, (n, 1, 8, 8)).astype(np.uint8)
    return datasets.ArrayDataset(x, np.arange(n), T.Compose([T.RandomShift(2), T.RandomHorizontalFlip(), T.ToFloat()]))


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("make", [augmented, lambda: TensorDataset(np.arange(23.0))], ids=["augmented", "plain"])
def test_the_ranks_batches_together_are_one_processs_batch(world, make):
    """Step k's shares on R ranks hold batch k of one process's loader with R times the batch,
    item for item, random augmentation included; disjoint, covering the epoch, every rank with the
    same number of steps (the last batch of 23 % 12 = 11 leaves one rank of 3 with fewer)."""
    dataset = make()
    one = DataLoader(dataset, 4 * world, shuffle=True, seed=7)
    ranks = [DataLoader(dataset, 4, sampler=DistributedSampler(dataset, world, r, seed=7)) for r in range(world)]
    assert {len(loader) for loader in ranks} == {len(one)}
    for epoch in (0, 1):
        for k, whole in enumerate(one.batches(epoch)):
            shares = [list(loader.batches(epoch))[k] for loader in ranks]
            for field, expected in enumerate(whole):
                got = np.empty_like(expected.numpy())
                for r, share in enumerate(shares):
                    got[r::world] = share[field].numpy()
                assert np.array_equal(got, expected.numpy()), (epoch, k, field)
    seen = np.concatenate([np.concatenate([b[-1].numpy() for b in loader.batches(0)]) for loader in ranks])
    assert sorted(seen.tolist()) == sorted(np.asarray(dataset.get_batch(np.arange(23), np.random.default_rng())[-1]).tolist())


class Items:
    """A dataset of items alone (no get_batch): the loader stacks them."""

    def __len__(self):
        return 9

    def __getitem__(self, i):
        return np.full(2, i, np.float32), i


@pytest.mark.parametrize("dataset", [TensorDataset(np.arange(18, dtype=np.float32).reshape(9, 2), np.arange(9)), Items()],
                         ids=["batches", "items"])
def test_a_rank_can_get_an_empty_share_of_the_last_batch(dataset):
    """9 examples in batches of 2 x 4 ranks: the last batch is one example, and three ranks get
    none, with the fields' shapes and dtypes all the same."""
    last = [list(DataLoader(dataset, 2, sampler=DistributedSampler(dataset, 4, r, shuffle=False)))[-1]
            for r in range(4)]
    assert [len(b[0]) for b in last] == [1, 0, 0, 0]
    assert all(b[0].shape[1:] == (2,) and b[0].dtype == np.float32 and b[1].dtype == np.int64 for b in last[1:])


def test_the_sampler_iterates_like_pytorchs():
    dataset = TensorDataset(np.arange(10.0))
    sampler = DistributedSampler(dataset, num_replicas=2, rank=1, seed=3)
    order = np.random.default_rng([3, 0]).permutation(10)
    assert list(sampler) == order[1::2].tolist() and len(sampler) == 5
    sampler.set_epoch(1)
    assert list(sampler) == np.random.default_rng([3, 1]).permutation(10)[1::2].tolist()


def test_sampler_and_loader_misuse_is_refused():
    dataset, other = TensorDataset(np.arange(10.0)), TensorDataset(np.arange(10.0))
    with pytest.raises(ValueError, match=r"DistributedSampler: rank must be an int from 0 to 1; got 2"):
        DistributedSampler(dataset, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match=r"num_replicas must be an int >= 1"):
        DistributedSampler(dataset, num_replicas=0, rank=0)
    sampler = DistributedSampler(dataset, 2, 0)
    with pytest.raises(ValueError, match=r"shuffle=True with a sampler"):
        DataLoader(dataset, 2, shuffle=True, sampler=sampler)
    with pytest.raises(ValueError, match=r"the sampler was made for another dataset"):
        DataLoader(other, 2, sampler=sampler)
    with pytest.raises(ValueError, match=r"sampler must be a minidl.distributed.DistributedSampler"):
        DataLoader(dataset, 2, sampler=[1, 2])
    with pytest.raises(ValueError, match=r"batch_size=6 x 2 ranks > the dataset's 10 examples"):
        DataLoader(dataset, 6, drop_last=True, sampler=sampler)
    with pytest.raises(ValueError, match=r"weight must be a finite number >= 0"):
        distributed.all_reduce_gradients(mdl.nn.Linear(1, 1), weight=-1)
    with pytest.raises(TypeError, match=r"model must be a minidl.nn.Module"):
        distributed.broadcast_parameters([1])


# --- MPI jobs -----------------------------------------------------------------------------------
def _mpiexec():
    pytest.importorskip("mpi4py")
    found = shutil.which("mpiexec") or shutil.which("mpiexec", path=os.path.dirname(sys.executable))
    if found is None:
        pytest.fail("mpi4py is installed but mpiexec is not on PATH (the mpich package provides it)")
    return found


def run(ranks, *args, timeout=120, env=None, mpmd=None):
    """``mpiexec -n ranks python tests/mpi_jobs.py ARGS`` (``ranks`` 0: the job alone, no MPI; ``mpmd``:
    a list of argument lists, one rank each); the completed process and its seconds."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})}
    if mpmd:
        command = [_mpiexec()]
        for i, a in enumerate(mpmd):
            command += ([":"] if i else []) + ["-n", "1", sys.executable, JOBS, *a]
    elif ranks:
        command = [_mpiexec(), "-n", str(ranks), sys.executable, JOBS, *args]
    else:
        command = [sys.executable, JOBS, *args]
    started = time.perf_counter()
    job = start(command, environment)
    try:
        out, err = job.communicate(timeout=timeout)
    finally:
        stop(job)
    return subprocess.CompletedProcess(command, job.returncode, out, err), time.perf_counter() - started


def start(command, environment):
    """``command`` in a process group of its own, so that `stop` can end every rank it started."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment,
                            cwd=ROOT, start_new_session=True)


def readline(job, timeout=60):
    """The job's next line of output, failing instead of waiting for ever."""
    import selectors

    with selectors.DefaultSelector() as waiting:
        waiting.register(job.stdout, selectors.EVENT_READ)
        if not waiting.select(timeout):
            pytest.fail(f"no output from the job in {timeout} s")
    return job.stdout.readline()


def stop(job):
    """End whatever is left of ``job``: ranks that hang in a collective call spin on the cores."""
    try:
        os.killpg(job.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    job.wait()


def test_collective_calls_on_two_ranks(tmp_path):
    done, _ = run(2, "api", str(tmp_path), env={"PYTHONPATH": f"{ROOT / 'tests' / 'fake_cupy'}:{ROOT}"})
    assert done.returncode == 0, done.stderr
    results = [json.loads((tmp_path / f"rank-{r}.json").read_text()) for r in (0, 1)]
    assert results[0]["weights"] == results[1]["weights"]  # rank 0's, running statistics included
    assert results[1]["weights"]["1.running_mean"] == [1.0] * 4
    pattern = {"a": np.arange(1, 7.0).reshape(2, 3), "b": np.arange(1, 6.0)}
    for res in results:
        # rank r's gradient is (r + 1) x pattern: the average is 1.5 x; where rank 0 had None, half of rank 1's
        for name, expected in pattern.items():
            assert np.array_equal(res["averaged"][name], 1.5 * expected), name
        assert np.array_equal(res["averaged"]["c"], np.arange(1, 5.0)) and res["averaged"]["unused"] is None
        assert res["dtypes"] == ["float32", "float64"]
        assert np.array_equal(res["weighted"], 2 * pattern["a"])  # weights 0 and 3: rank 1's alone
        assert res["check_same"] == ("job: the ranks must agree on batch, but they differ (rank 0: 64, rank 1: 32); "
                                     "start every rank with the same command and settings")
        assert "[4, 3]" in res["broadcast_mismatch"] and "[5, 3]" in res["broadcast_mismatch"]
        assert res["reduce_mismatch"].startswith("all_reduce_gradients: the ranks must agree on the model's trainable")
        assert res["gathered"] == [{"rank": 0, "text": ""}, {"rank": 1, "text": "é"}]
        assert res["trainer_without_sampler"].startswith("Trainer: a data-parallel run of 2 ranks needs a train_loader "
                                                         "with a minidl.distributed.DistributedSampler of 2 replicas")
        assert res["gpu"] == {"transport": "MPI through host memory", "on_gpu": "cupy", "weight": [[1.5, 1.5]] * 2}


def test_the_minidl_command_gives_each_rank_its_share_of_the_cores(tmp_path):
    """Under mpiexec without OMP_NUM_THREADS, `minidl` sets it and starts itself again (OpenBLAS
    read its thread count when NumPy loaded), and the new process still belongs to the job."""
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS")}
    minidl = shutil.which("minidl") or shutil.which("minidl", path=os.path.dirname(sys.executable))
    code = ("import os, sys, minidl.threads as t\n"
            "if t.configure_process(): os.execv(sys.executable, sys.orig_argv)\n"  # as minidl.cli.run does
            "import minidl.distributed as d; d.init()\n"
            f"open(os.path.join({str(tmp_path)!r}, f'rank-{{d.rank()}}'), 'w').write("
            "f\"{d.world_size()} {os.environ['OMP_NUM_THREADS']} {os.environ['NUMBA_NUM_THREADS']}\")")
    share = str(max(1, os.cpu_count() // 2))
    for command in ([sys.executable, "-c", code], [minidl, "summary", "lenet5"]):
        job = start([_mpiexec(), "-n", "2", *command], {**environment, "PYTHONPATH": str(ROOT)})
        try:
            out, err = job.communicate(timeout=60)
        finally:
            stop(job)
        assert job.returncode == 0, err
        if command[0] == minidl:
            assert "Trainable params" in out, out  # from both (mpiexec's exit status), their lines interleaved
        else:
            assert [(tmp_path / f"rank-{r}").read_text() for r in (0, 1)] == [f"2 {share} {share}"] * 2


def weights(path):
    return {k: v.data for k, v in mdl.load(path)["model"].items()}


def max_relative_difference(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    return max(float(np.abs(wa[k] - wb[k]).max() / np.abs(wb[k]).max()) for k in wa)


TRAIN = ("lenet5", "--batch-size", "64", "--epochs", "3", "--quiet")  # 6400 images: 100 steps an epoch, shifted at random


@pytest.fixture(scope="module")
def two_rank_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("dp") / "two"
    done, seconds = run(2, "train", *TRAIN, "--out", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    return out, done, seconds


def test_two_ranks_learn_what_one_process_learns(tmp_path, two_rank_run):
    """300 steps of LeNet-5 with random shifts: the same examples, shifts and global batch on two
    ranks as in one process, so the weights differ only by the order of float32 additions."""
    two, done, _ = two_rank_run
    one_done, _ = run(0, "train", *TRAIN, "--out", str(tmp_path / "one"))
    assert one_done.returncode == 0, one_done.stderr
    difference = max_relative_difference(two / "model.npz", tmp_path / "one" / "model.npz")
    print(f"max relative difference of the weights after 300 steps, 2 ranks vs 1 process: {difference:.2e}")
    assert 0 < difference < 1e-4
    rows = [[json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
            for d in (two, tmp_path / "one")]
    for a, b in zip(*rows):  # a rounding difference may move an image across a decision boundary, rarely
        assert abs(a["train_acc"] - b["train_acc"]) <= 2 / 6400 and abs(a["test_acc"] - b["test_acc"]) <= 2 / 640
        assert abs(a["train_loss"] - b["train_loss"]) < 1e-5 * b["train_loss"]
    assert rows[0][-1]["test_acc"] > 0.9
    # Rank 0 alone speaks: one first line naming the ranks, one line per epoch.
    assert re.search(r"on 2 MPI ranks \(pids \d+, \d+\), 32 images each per batch, gradients averaged through MPI",
                     done.stdout)
    assert len(re.findall(r"^epoch +\d", done.stdout, re.M)) == 3 and done.stdout.count("done in") == 1


def test_a_two_rank_run_resumes_on_one_process_and_back(tmp_path, two_rank_run):
    two, _, _ = two_rank_run
    resumed = tmp_path / "resumed"
    shutil.copytree(two, resumed)
    for name in ("model.npz", "checkpoints/epoch-002.npz", "checkpoints/epoch-003.npz"):
        (resumed / name).unlink()
    done, _ = run(0, "train", "lenet5", "--resume", str(resumed / "checkpoints" / "epoch-001.npz"), "--epochs", "2",
                  "--quiet")
    assert done.returncode == 0, done.stderr
    done, _ = run(2, "train", "lenet5", "--resume", str(resumed / "checkpoints" / "epoch-002.npz"), "--epochs", "3",
                  "--quiet")
    assert done.returncode == 0, done.stderr
    assert max_relative_difference(resumed / "model.npz", two / "model.npz") < 1e-4


def test_ctrl_c_stops_every_rank_at_one_step_and_the_checkpoint_resumes_exactly(tmp_path, two_rank_run):
    """mpiexec passes Ctrl-C to each rank, each at its own moment; they agree on the step to stop
    after, rank 0 saves it, and one process resumes from it to the uninterrupted run's weights."""
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    job = start([_mpiexec(), "-n", "2", sys.executable, JOBS, "train", *TRAIN, "--out", str(tmp_path / "run")],
                environment)
    try:
        assert "on 2 MPI ranks" in readline(job)
        assert readline(job).startswith("epoch   1")
        job.send_signal(signal.SIGINT)  # in epoch 2 of 3
        out, err = job.communicate(timeout=60)
    finally:
        stop(job)
    assert job.returncode == 128 + signal.SIGINT, err
    assert err.count("stopping after this step") == 1
    saved = re.search(r"^SIGINT: saved (\S+)$", err, re.M)[1]  # epoch 1's end, or a step of epoch 2
    assert re.fullmatch(r"epoch-001|interrupted-epoch-002-step-\d+", Path(saved).stem), saved
    done, _ = run(0, "train", "lenet5", "--resume", saved, "--quiet")
    assert done.returncode == 0, done.stderr
    assert max_relative_difference(tmp_path / "run" / "model.npz", two_rank_run[0] / "model.npz") < 1e-4


def test_a_rank_that_raises_ends_the_job_naming_it(tmp_path):
    done, seconds = run(2, "train", "--fault", "raise:2:5", *TRAIN, "--out", str(tmp_path / "run"), timeout=60)
    assert done.returncode != 0 and seconds < 30
    assert "rank 1 of 2: minidl train: Traceback" in done.stderr
    assert "RuntimeError: an injected fault at epoch 2, step 5" in done.stderr
    assert_checkpoint_intact(tmp_path / "run")


def test_a_rank_that_is_killed_ends_the_job_and_mpiexec_names_its_pid(tmp_path):
    done, seconds = run(2, "train", "--fault", "kill:2:5", *TRAIN, "--out", str(tmp_path / "run"), timeout=60)
    assert done.returncode != 0 and seconds < 30
    pids = re.search(r"on 2 MPI ranks \(pids (\d+), (\d+)\)", done.stdout).groups()
    assert re.search(rf"PID {pids[1]} RUNNING AT .*\n.*EXIT CODE: 9", done.stdout + done.stderr)
    assert_checkpoint_intact(tmp_path / "run")


def assert_checkpoint_intact(run_dir):
    """Epoch 1's checkpoint, the last one written before the fault, loads and resumes."""
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["epoch-001.npz"]
    assert mdl.load(run_dir / "checkpoints" / "epoch-001.npz")["epoch"] == 1


@pytest.mark.parametrize("first, second, expected", [
    (["lenet5"], ["lenet5", "--batch-size", "32"], "the ranks must agree on the config's batch_size, but they differ "
                                                   "(rank 0: 64, rank 1: 32)"),
    (["lenet5"], ["vgg_small"], "the ranks must agree on the config's model, but they differ (rank 0: 'lenet5', "
                                "rank 1: 'vgg_small')"),
])
def test_ranks_started_with_different_settings_are_stopped_at_once(tmp_path, first, second, expected):
    common = ["--quiet", "--epochs", "1", "--out", str(tmp_path / "run")]
    done, seconds = run(0, mpmd=[["train", *first, *common], ["train", *second, *common]], timeout=60)
    assert done.returncode != 0 and seconds < 30
    assert re.search(r"rank \d of 2: minidl train: error: CommandRun: " + re.escape(expected), done.stderr), done.stderr

"""Training in several Python threads at once gives each thread exactly its single-threaded result.

Grad mode is per thread (one thread's ``no_grad()``, or the optimizer's and ``backward``'s own
switches, leave every other thread's graphs alone), each thread has its own convolution
workspace, and the Numba kernels take turns where Numba's threading layer cannot be entered
twice. The models here use every compiled kernel family (im2col/col2im, max and average
pooling, LRN, batch norm)."""
import os
import subprocess
import sys
import threading

import numpy as np
import pytest

import minidl as mdl

STEPS, BATCH = 6, 8


def build(seed):
    mdl.manual_seed(seed)
    nn = mdl.nn
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(), nn.LocalResponseNorm(3),
                         nn.MaxPool2d(2), nn.Conv2d(6, 8, 3), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(),
                         nn.Linear(8 * 3 * 3, 10))


def batches(seed):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal((BATCH, 1, 16, 16)).astype(np.float32), rng.integers(0, 10, BATCH))
            for _ in range(STEPS)]


def train(model, data, barrier=None):
    """The weights after STEPS steps of Adam, with an evaluation under no_grad after each step."""
    opt = mdl.optim.Adam(model.parameters(), lr=1e-2)
    for x, y in data:
        if barrier is not None:
            barrier.wait()  # every thread steps at the same time, to make their calls overlap
        model.train()
        loss = mdl.nn.functional.cross_entropy(model(mdl.Tensor(x)), y)
        assert loss.requires_grad, "the step built no graph"
        opt.zero_grad()
        loss.backward()
        opt.step()
        model.eval()
        with mdl.no_grad():
            model(mdl.Tensor(x))
    return {k: v.data.copy() for k, v in model.state_dict().items()}


def in_threads(jobs):
    """Run each (model, data) in its own thread, all at once; the results in order, and any
    exception a thread raised."""
    results, errors = [None] * len(jobs), []
    barrier = threading.Barrier(len(jobs))

    def work(i):
        try:
            results[i] = train(*jobs[i], barrier)
        except BaseException as e:  # noqa: B036 - reported to the main thread below
            barrier.abort()
            errors.append(e)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def assert_same(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@pytest.mark.usefixtures("kernel_set")
@pytest.mark.parametrize("n_threads", [2, 4])
def test_threads_training_at_once_give_the_single_threaded_weights(n_threads):
    alone = [train(build(i), batches(i)) for i in range(n_threads)]
    together = in_threads([(build(i), batches(i)) for i in range(n_threads)])
    for a, t in zip(alone, together):
        assert_same(a, t)


def test_grad_mode_switching_in_one_thread_never_reaches_another():
    # One thread flips grad mode as fast as it can while another trains: every step of the
    # trainer must build its graph and get every gradient.
    stop = threading.Event()

    def flip():
        while not stop.is_set():
            with mdl.no_grad():
                mdl.set_grad_enabled(False)
            mdl.set_grad_enabled(True)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        model = build(0)
        for _ in range(30):
            x = mdl.Tensor(np.ones((2, 1, 16, 16), np.float32))
            loss = model(x).sum()
            assert loss.requires_grad
            model.zero_grad()
            loss.backward()
            assert all(p.grad is not None for p in model.parameters())
    finally:
        stop.set()
        flipper.join()


def test_threads_at_once_on_numbas_workqueue_layer():
    # Numba's fallback threading layer aborts the process when two threads enter it together;
    # minidl's kernels take turns there, so the results are still the single-threaded ones.
    pytest.importorskip("numba")
    code = f"""if True:
        import sys
        sys.path.insert(0, {os.path.dirname(__file__)!r})
        import numba, minidl as mdl
        import test_threads as t
        mdl.config.kernels = "numba"
        alone = [t.train(t.build(i), t.batches(i)) for i in range(3)]
        together = t.in_threads([(t.build(i), t.batches(i)) for i in range(3)])
        for a, b in zip(alone, together):
            t.assert_same(a, b)
        print(numba.threading_layer())
    """
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "workqueue"

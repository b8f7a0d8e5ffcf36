"""The layers together: a small convnet learns a synthetic task, and its state round-trips exactly."""
import numpy as np

import minidl as mdl
import minidl.nn as nn
import minidl.nn.functional as F


def quadrant_data(n, seed):
    """8x8 images of noise with one bright 3x3 blob; the label is the quadrant the blob is in."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 0.6, (n, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 4, n)
    for i, q in enumerate(y):
        top, left = (q // 2) * 4 + rng.integers(0, 2), (q % 2) * 4 + rng.integers(0, 2)
        x[i, 0, top:top + 3, left:left + 3] += 1.0
    return mdl.tensor(x), mdl.tensor(y)


def small_convnet():
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2),
        nn.Flatten(), nn.Dropout(0.1), nn.Linear(32, 4),
    )


def test_small_convnet_learns_and_round_trips(tmp_path):
    mdl.manual_seed(0)
    model = small_convnet()
    opt = mdl.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x, y = quadrant_data(256, seed=1)
    first = None
    for step in range(60):
        batch = slice((step % 4) * 64, (step % 4 + 1) * 64)
        loss = F.cross_entropy(model(x[batch]), y[batch])
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    chance = np.log(4)
    assert abs(first - chance) < 0.5
    model.eval()
    x_test, y_test = quadrant_data(200, seed=2)
    with mdl.no_grad():
        test_loss = F.cross_entropy(model(x_test), y_test).item()
        accuracy = (model(x_test).argmax(axis=1).data == y_test.data).mean()
    assert test_loss < 0.25 * chance, f"test loss {test_loss:.3f} did not fall well below chance {chance:.3f}"
    assert accuracy > 0.9

    path = tmp_path / "ckpt.npz"
    mdl.save({"model": model.state_dict(), "optimizer": opt.state_dict()}, path)
    restored = small_convnet()
    opt2 = mdl.optim.SGD(restored.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    state = mdl.load(path)
    restored.load_state_dict(state["model"])
    opt2.load_state_dict(state["optimizer"])
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert a.dtype == b.dtype and np.array_equal(a.data, b.data), name
    restored.eval()
    with mdl.no_grad():
        np.testing.assert_array_equal(restored(x_test).data, model(x_test).data)

    # one more identical step on both: the optimizer state came back exactly too
    model.train(), restored.train()
    for m, o in ((model, opt), (restored, opt2)):
        mdl.manual_seed(5)
        loss = F.cross_entropy(m(x[:64]), y[:64])
        o.zero_grad()
        loss.backward()
        o.step()
    for (name, a), (_, b) in zip(model.state_dict().items(), restored.state_dict().items()):
        assert np.array_equal(a.data, b.data), name

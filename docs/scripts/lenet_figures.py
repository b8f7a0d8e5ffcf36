"""Draw the LeNet-5 pictures of docs/tutorials/train-lenet5.md from a trained run.

    minidl train lenet5 --dataset mnist --out /tmp/lenet_run      # once, about 3 minutes
    python docs/scripts/lenet_figures.py /tmp/lenet_run [--data-root DIR] [--digit 0]

reads the run directory that ``minidl train`` wrote (``metrics.jsonl`` and ``model.npz``) and
MNIST's test set (from ``--data-root``, else ``$MINIDL_DATA`` or the cache, as ``minidl train``
finds it), and writes into ``docs/images/``:

- ``lenet5-curves.png``: loss and accuracy per epoch, on the training set (the running mean
  over the epoch, with augmentation and in training mode) and on the test set (after the epoch);
- ``lenet5-conv1-filters.png``: the 6 learned 5x5 filters of the first convolution (C1);
- ``lenet5-feature-maps.png``: one test digit as the network sees it (padded to 32x32 and
  normalised), its 6 C1 feature maps and its 16 C3 feature maps, each after the tanh;
- ``lenet5-graph.dot``: the computational graph of the network and its loss on that digit,
  drawn by `minidl.utils.plot_graph` (parameters named by their ``state_dict`` keys);
- ``lenet5-graph.svg``: the same, rendered by Graphviz's ``dot`` when it is installed
  (``apt install graphviz``); without it the script says so and skips only this file.

Everything is computed from the files of the run and the test image, so the same run gives the same
pictures on every rerun (the PNGs carry no version string or date; the SVG carries Graphviz's
version). The committed pictures come from the run that the README's command makes (seed 0, 9
epochs, test accuracy 0.9920). Needs matplotlib (``pip install -e ".[plot]"``). Rerun it after
retraining, and commit the pictures with the script.
"""
import argparse
import json
import os
import shutil

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import minidl as mdl  # noqa: E402
from minidl.nn import functional as F  # noqa: E402
from minidl.utils import plot_graph  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(os.path.dirname(HERE), "images")
PNG = {"Software": None}  # no version string in the file: the bytes depend on the drawing only


def load_run(run_dir):
    """(history rows, config, model with the final weights, in eval mode)."""
    from minidl_models import get_model

    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        history = [json.loads(line) for line in f if line.strip()]
    state = mdl.load(os.path.join(run_dir, "model.npz"))
    config = state["config"]
    if config["model"] != "lenet5":
        raise SystemExit(f"lenet_figures: {run_dir} holds a {config['model']} run, not lenet5")
    model = get_model(config["model"], **config["model_kwargs"])
    model.load_state_dict(state["model"])
    model.eval()
    return history, config, model


def test_digit(config, data_root, index):
    """Test image ``index`` prepared exactly as in training (padded, normalised), and its label."""
    from minidl.training import load_datasets

    _, test = load_datasets(config["dataset"], data_root or config.get("data_root"), image_size=(32, 32))
    x, y = test.get_batch(np.asarray([index]))
    return x, y


def draw_curves(history, path):
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.8))
    left.plot(epochs, [r["train_loss"] for r in history], "o-", label="train")
    left.plot(epochs, [r["test_loss"] for r in history], "s-", label="test")
    left.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss", yscale="log")
    right.plot(epochs, [100 * r["train_acc"] for r in history], "o-", label="train")
    right.plot(epochs, [100 * r["test_acc"] for r in history], "s-", label="test")
    right.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    # the learning-rate drops of StepLR, where the curves bend
    drops = [r["epoch"] + 0.5 for r, nxt in zip(history, history[1:]) if nxt["lr"] < r["lr"]]
    for ax in (left, right):
        for e in drops:
            ax.axvline(e, color="grey", linestyle=":", linewidth=1)
        ax.set_xticks(epochs)
        ax.grid(alpha=0.3)
        ax.legend()
    last = history[-1]
    right.annotate(f"test {100 * last['test_acc']:.2f}%", (epochs[-1], 100 * last["test_acc"]),
                   textcoords="offset points", xytext=(-70, -25), fontsize=9,
                   arrowprops={"arrowstyle": "->", "color": "grey"})
    fig.suptitle("LeNet-5 on MNIST (dotted: learning rate x0.3)", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG)
    plt.close(fig)


def _show(ax, image, vmin, vmax, title=None):
    ax.imshow(image, cmap="gray", vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)


def draw_filters(model, path):
    w = model.features[0].weight.numpy()[:, 0]  # (6, 5, 5)
    m = float(np.abs(w).max())
    fig, axes = plt.subplots(1, 6, figsize=(9, 1.9))
    for k, ax in enumerate(axes):
        _show(ax, w[k], -m, m, f"filter {k}")
    fig.suptitle(f"C1: the 6 learned 5x5 filters (grey = 0, white = +{m:.2f}, black = -{m:.2f})", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata=PNG)
    plt.close(fig)


def draw_feature_maps(model, x, label, path):
    f = model.features
    with mdl.no_grad():
        c1 = f[1](f[0](mdl.tensor(x)))      # tanh(conv1): (1, 6, 28, 28)
        c3 = f[4](f[3](f[2](c1)))           # tanh(conv2) of the pooled maps: (1, 16, 10, 10)
        predicted = int(model(mdl.tensor(x)).numpy().argmax())
    c1, c3 = c1.numpy()[0], c3.numpy()[0]
    fig = plt.figure(figsize=(9.5, 3.9))
    # column 0: the input (all rows); column 1: a gap; row 0: the 6 C1 maps; rows 1-2: the 16 C3 maps
    grid = fig.add_gridspec(3, 10, width_ratios=[2.6, 0.75] + [1] * 8, hspace=0.35, wspace=0.1,
                            left=0.02, right=0.98, top=0.86, bottom=0.03)
    _show(fig.add_subplot(grid[:, 0]), x[0, 0], None, None, f"input 32x32\nlabel {label}, predicted {predicted}")
    for k in range(6):
        ax = fig.add_subplot(grid[0, 2 + k])
        _show(ax, c1[k], -1, 1, str(k))
        if k == 0:
            ax.set_ylabel("C1\n28x28", rotation=0, ha="right", va="center", fontsize=9)
    for k in range(16):
        ax = fig.add_subplot(grid[1 + k // 8, 2 + k % 8])
        _show(ax, c3[k], -1, 1, str(k))
        if k == 0:
            ax.set_ylabel("C3\n10x10", rotation=0, ha="right", va="center", fontsize=9)
    fig.suptitle("feature maps after tanh (black = -1, white = +1)", fontsize=10)
    fig.savefig(path, dpi=100, metadata=PNG)
    plt.close(fig)


def draw_graph(model, x, y, dot_path, svg_path):
    logits = model(mdl.tensor(x))
    loss = F.cross_entropy(logits, mdl.tensor(y))
    title = "LeNet-5 and its loss on one image: the graph that loss.backward() walks"
    plot_graph(loss, dot_path, params=model, title=title)
    if shutil.which("dot") is None:
        print(f"Graphviz's dot is not installed (apt install graphviz): {os.path.relpath(svg_path)} not drawn")
        return False
    plot_graph(loss, svg_path, params=model, title=title)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run_dir", help="a directory written by `minidl train lenet5 --dataset mnist --out DIR`")
    p.add_argument("--data-root", default=None, help="folder with the MNIST files (default: as minidl train)")
    p.add_argument("--digit", type=int, default=0, help="index of the test image to show (default 0)")
    p.add_argument("--out", default=IMAGES, help="where to write the pictures (default docs/images)")
    args = p.parse_args(argv)

    history, config, model = load_run(args.run_dir)
    x, y = test_digit(config, args.data_root, args.digit)
    os.makedirs(args.out, exist_ok=True)
    out = {name: os.path.join(args.out, name) for name in (
        "lenet5-curves.png", "lenet5-conv1-filters.png", "lenet5-feature-maps.png", "lenet5-graph.dot",
        "lenet5-graph.svg")}
    draw_curves(history, out["lenet5-curves.png"])
    draw_filters(model, out["lenet5-conv1-filters.png"])
    draw_feature_maps(model, x, int(y[0]), out["lenet5-feature-maps.png"])
    svg = draw_graph(model, x, y, out["lenet5-graph.dot"], out["lenet5-graph.svg"])
    for name, path in out.items():
        if name != "lenet5-graph.svg" or svg:
            print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()

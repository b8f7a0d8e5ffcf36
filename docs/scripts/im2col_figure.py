"""Draw the im2col pictures of docs/learn/convolution.md.

    python docs/scripts/im2col_figure.py

writes, in a few seconds and identically on every run,

- ``docs/images/im2col.png``: a 1-channel 4x4 image, its four 3x3 windows (stride 1,
  no padding) and the column matrix ``im2col(x)[0]`` of shape (C*kh*kw, OH*OW) = (9, 4),
  rows in the order (c, i, j) and columns in the order (oh, ow);
- ``docs/images/col2im-counts.png``: ``col2im(im2col(ones))`` for 3x3 windows with
  stride 1 and padding 1 on a 4x4 image: how many windows read each pixel, which is
  why col2im is im2col's adjoint and not its inverse.

The numbers in the pictures are computed by minidl's own ``minidl.kernels.im2col`` and
``col2im`` (the NumPy reference), so the pictures show what the code does. Needs
matplotlib (``pip install -e ".[plot]"``). Rerun it after changing either kernel or this
script, and commit the images with the script.
"""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.patches import Rectangle  # noqa: E402

import minidl as mdl  # noqa: E402
from minidl import kernels  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
IMAGES = os.path.join(os.path.dirname(HERE), "images")

H = W = 4
K = 3
# One colour per window, i.e. per output position (oh, ow) = (0, 0), (0, 1), (1, 0), (1, 1).
COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"]
PNG = {"Software": None}  # no version string in the file: the bytes depend on the drawing only


def _grid(ax, rows, cols):
    """Cell borders of a rows x cols table drawn in data coordinates (cell (r, c) at x=c, y=r)."""
    for r in range(rows + 1):
        ax.plot([-0.5, cols - 0.5], [r - 0.5, r - 0.5], color="0.6", lw=0.8)
    for c in range(cols + 1):
        ax.plot([c - 0.5, c - 0.5], [-0.5, rows - 0.5], color="0.6", lw=0.8)
    ax.set_xlim(-0.6, cols - 0.4)
    ax.set_ylim(rows - 0.4, -0.6)  # row 0 at the top
    ax.set_aspect("equal")
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)


def draw_im2col(path):
    x = np.arange(1.0, H * W + 1).reshape(1, 1, H, W)
    with mdl.using_config("kernels", "numpy"):
        col = kernels.im2col(x, (K, K), (1, 1), (0, 0), (1, 1))[0]  # (9, 4)
    oh = ow = kernels.conv_output_size(H, K, 1, 0)

    fig, (ax_img, ax_col) = plt.subplots(1, 2, figsize=(9.0, 4.6), gridspec_kw={"width_ratios": [1, 1.05]})

    # The image, its pixel values, and the four windows, each outline inset a little
    # differently so that overlapping outlines stay visible.
    _grid(ax_img, H, W)
    for r in range(H):
        for c in range(W):
            ax_img.text(c, r, f"{x[0, 0, r, c]:g}", ha="center", va="center", fontsize=12)
    for k in range(oh * ow):
        p, q = divmod(k, ow)
        inset = 0.06 + 0.05 * k
        ax_img.add_patch(Rectangle((q - 0.5 + inset, p - 0.5 + inset), K - 2 * inset, K - 2 * inset,
                                   fill=False, ec=COLOURS[k], lw=2.2))
    ax_img.set_xticks(range(W))
    ax_img.set_yticks(range(H))
    ax_img.set_xlabel("w")
    ax_img.set_ylabel("h")
    ax_img.set_title("x: N=1, C=1, 4x4\n3x3 windows, stride 1, no padding", fontsize=11)

    # The columns: column (oh, ow) is the window at that output position, read row by row.
    rows, cols = col.shape
    _grid(ax_col, rows, cols)
    for k in range(cols):
        ax_col.add_patch(Rectangle((k - 0.5, -0.5), 1, rows, color=COLOURS[k], alpha=0.15, lw=0))
        for r in range(rows):
            ax_col.text(k, r, f"{col[r, k]:g}", ha="center", va="center", fontsize=11)
    ax_col.set_xticks(range(cols))
    ax_col.set_xticklabels([f"({k // ow},{k % ow})" for k in range(cols)], fontsize=9)
    for k, label in enumerate(ax_col.get_xticklabels()):
        label.set_color(COLOURS[k])
    ax_col.xaxis.set_ticks_position("top")
    ax_col.xaxis.set_label_position("top")
    ax_col.set_xlabel("column (oh, ow) = oh*OW + ow")
    ax_col.set_yticks(range(rows))
    ax_col.set_yticklabels([f"(0,{r // K},{r % K})" for r in range(rows)], fontsize=9)
    ax_col.set_ylabel("row (c, i, j) = (c*kh + i)*kw + j")
    ax_col.set_title("im2col(x)[0]: (C*kh*kw, OH*OW) = (9, 4)", fontsize=11, y=-0.1)

    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=PNG)
    plt.close(fig)


def draw_counts(path):
    ones = np.ones((1, 1, H, W))
    settings = ((K, K), (1, 1), (1, 1), (1, 1))  # kernel, stride, padding, dilation
    with mdl.using_config("kernels", "numpy"):
        counts = kernels.col2im(kernels.im2col(ones, *settings), ones.shape, *settings)[0, 0]

    fig, ax = plt.subplots(figsize=(3.6, 3.6))
    ax.imshow(counts, cmap="Blues", vmin=0, vmax=12)
    _grid(ax, H, W)
    for r in range(H):
        for c in range(W):
            ax.text(c, r, f"{counts[r, c]:g}", ha="center", va="center", fontsize=13)
    ax.set_xticks(range(W))
    ax.set_yticks(range(H))
    ax.set_title("col2im(im2col(ones))\n3x3 windows, stride 1, padding 1", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=110, metadata=PNG)
    plt.close(fig)


def main():
    os.makedirs(IMAGES, exist_ok=True)
    for name, draw in (("im2col.png", draw_im2col), ("col2im-counts.png", draw_counts)):
        path = os.path.join(IMAGES, name)
        draw(path)
        print(f"wrote {os.path.relpath(path)}")


if __name__ == "__main__":
    main()

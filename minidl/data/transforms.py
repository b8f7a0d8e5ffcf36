"""Batch-wise transforms for image arrays of shape (..., C, H, W).

Each works on one image (C, H, W) or a whole batch (N, C, H, W) alike, so a
DataLoader transforms a batch in one vectorised step. Random transforms
(``random = True``) take a generator as a second argument; the DataLoader
seeds it from (seed, epoch, batch number), so augmented batches are as
repeatable as the data order, across a resume too.
"""
import numpy as np


def apply(transform, x, rng=None):
    """``transform(x)``, handing ``rng`` to transforms that draw random numbers."""
    return transform(x, rng) if getattr(transform, "random", False) else transform(x)


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)
        self.random = any(getattr(t, "random", False) for t in self.transforms)

    def __call__(self, x, rng=None):
        for t in self.transforms:
            x = apply(t, x, rng)
        return x

    def __repr__(self):
        return f"Compose({self.transforms})"


class ToFloat:
    """uint8 pixels in [0, 255] -> float32 in [0, 1]."""

    def __call__(self, x):
        return x.astype(np.float32) * np.float32(1 / 255)

    def __repr__(self):
        return "ToFloat()"


class Normalize:
    """(x - mean) / std per channel; mean and std are numbers or one per channel."""

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, np.float32).reshape(-1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(-1, 1, 1)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive; got {std}")

    def __call__(self, x):
        if self.mean.shape[0] not in (1, x.shape[-3]):
            raise ValueError(f"Normalize: {self.mean.shape[0]} channel means for images with "
                             f"{x.shape[-3]} channels")
        return (x - self.mean) / self.std

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class Pad:
    """Zero-pad the last two axes by ``padding`` pixels on every side (28x28 -> 32x32 for LeNet-5)."""

    def __init__(self, padding):
        if padding < 0:
            raise ValueError(f"Pad: padding must be >= 0; got {padding}")
        self.padding = int(padding)

    def __call__(self, x):
        p = self.padding
        return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])

    def __repr__(self):
        return f"Pad({self.padding})"


class Resize:
    """Scale the last two axes to ``size`` (h, w) by nearest neighbour: output pixel (i, j) takes
    input pixel (floor(i * H / h), floor(j * W / w)). Enough to feed 28x28 digits to a network
    built for 224x224 images; it invents no detail."""

    def __init__(self, size):
        self.size = (size, size) if isinstance(size, int) else tuple(size)
        if len(self.size) != 2 or min(self.size) < 1:
            raise ValueError(f"Resize: size must be a positive int or (h, w); got {size}")

    def __call__(self, x):
        (h, w), (H, W) = self.size, x.shape[-2:]
        rows = np.arange(h) * H // h
        cols = np.arange(w) * W // w
        return x[..., rows[:, None], cols[None, :]]

    def __repr__(self):
        return f"Resize({self.size})"


class RandomShift:
    """Move each image by a random whole number of pixels, up to ``max_shift`` in each
    direction, filling the uncovered border with ``fill`` (apply it to uint8 images,
    where 0 is MNIST's background). A cheap augmentation for digits: a shifted digit is
    still the same digit."""

    random = True

    def __init__(self, max_shift, fill=0):
        if max_shift < 0:
            raise ValueError(f"RandomShift: max_shift must be >= 0; got {max_shift}")
        self.max_shift, self.fill = int(max_shift), fill

    def __call__(self, x, rng):
        if rng is None:
            raise ValueError("RandomShift needs a random generator; the DataLoader passes one")
        s = self.max_shift
        batch = x if x.ndim == 4 else x[None]
        n, _, h, w = batch.shape
        padded = np.pad(batch, [(0, 0), (0, 0), (s, s), (s, s)], constant_values=self.fill)
        # A random h x w crop of the padded image is the image moved by (s - top, s - left).
        top, left = rng.integers(0, 2 * s + 1, n), rng.integers(0, 2 * s + 1, n)
        rows = (top[:, None] + np.arange(h))[:, None, :, None]
        cols = (left[:, None] + np.arange(w))[:, None, None, :]
        out = padded[np.arange(n)[:, None, None, None], np.arange(batch.shape[1])[None, :, None, None], rows, cols]
        return out if x.ndim == 4 else out[0]

    def __repr__(self):
        return f"RandomShift({self.max_shift})"

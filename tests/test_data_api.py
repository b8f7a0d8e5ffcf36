"""Dataset, TensorDataset, Subset, ConcatDataset and random_split, the DataLoader over each of them;
the transforms ToTensor, RandomCrop and RandomHorizontalFlip; and the transforms' specs. Checked
against PyTorch where it has the same thing, and against definitions computed another way."""
import json
import math
import warnings

import numpy as np
import pytest

import minidl as mdl
from minidl.data import (ArrayDataset, ConcatDataset, DataLoader, Dataset, Subset, TensorDataset, random_split,
                         transforms as T)


class Counting(ArrayDataset):
    """An ArrayDataset that counts the calls of get_batch and __getitem__."""

    def __init__(self, n=12, transform=None):
        rng = np.random.default_rng(0)
        super().__init__(rng.integers(0, 256, (n, 1, 6, 6), dtype=np.uint8), np.arange(n), transform)
        self.batch_calls, self.item_calls = 0, 0

    def get_batch(self, indices, rng=None):
        self.batch_calls += 1
        return super().get_batch(indices, rng)

    def __getitem__(self, i):
        self.item_calls += 1
        return super().__getitem__(i)


class Triples(Dataset):
    """A plain map-style dataset, PyTorch's way: items of three fields, no get_batch."""

    def __init__(self, n=7):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        if not 0 <= i < self.n:
            raise IndexError(i)
        return np.full((2,), i, np.float32), i, mdl.tensor(np.array([i, -i]))


def fields_of(loader):
    """The batches of one epoch, each as a tuple of arrays."""
    return [tuple(t.numpy() for t in batch) for batch in loader]


# --- Dataset -------------------------------------------------------------------------------

def test_dataset_is_the_base_and_adds_to_a_concat_dataset():
    assert isinstance(Counting(), Dataset) and isinstance(TensorDataset(np.zeros(2)), Dataset)
    with pytest.raises(NotImplementedError, match=r"Dataset: subclasses of Dataset must define __getitem__"):
        Dataset()[0]
    both = Triples(3) + Triples(4)
    assert isinstance(both, ConcatDataset) and len(both) == 7 and both[5][1] == 2


# --- TensorDataset --------------------------------------------------------------------------

def test_tensor_dataset_items_are_the_rows(torch):
    x, y = np.arange(12.0).reshape(6, 2), np.arange(6)
    ds = TensorDataset(mdl.tensor(x, requires_grad=True), y)
    ref = torch.utils.data.TensorDataset(torch.from_numpy(x), torch.from_numpy(y))
    assert len(ds) == len(ref) == 6
    for i in (0, 3, -1):
        (a, b), (ra, rb) = ds[i], ref[i]
        assert isinstance(a, mdl.Tensor) and not a.requires_grad and isinstance(b, np.generic)
        np.testing.assert_array_equal(a.numpy(), ra.numpy())
        assert b == rb.item()
    xb, yb = ds.get_batch([4, 0, -1])
    np.testing.assert_array_equal(xb, x[[4, 0, 5]])
    np.testing.assert_array_equal(yb, y[[4, 0, 5]])
    assert ds.tensors[1] is y


@pytest.mark.parametrize("make, error, pattern", [
    (lambda: TensorDataset(), ValueError, r"TensorDataset: needs at least one tensor; got none"),
    (lambda: TensorDataset(np.zeros(3), [1, 2, 3]), TypeError,
     r"TensorDataset: tensors must be minidl Tensors or arrays; got a list at position 1"),
    (lambda: TensorDataset(np.zeros(3), np.float32(1)), TypeError, r"got a float32 at position 1"),
    (lambda: TensorDataset(np.zeros(())), ValueError, r"TensorDataset: tensor 0 has shape \(\); each needs a first"),
    (lambda: TensorDataset(np.zeros((10, 3)), np.zeros(10), mdl.tensor(np.zeros((9, 2)))), ValueError,
     r"TensorDataset: the tensors must have the same first dimension \(one row per example\); tensor 0 has 10 rows "
     r"but tensor 2 has 9 \(shapes \(10, 3\), \(10,\), \(9, 2\)\)"),
])
def test_tensor_dataset_refuses_what_is_not_rows_of_tensors(make, error, pattern):
    with pytest.raises(error, match=pattern):
        make()


def test_tensor_dataset_index_errors():
    ds = TensorDataset(np.zeros(4))
    with pytest.raises(IndexError, match=r"TensorDataset: index 4 is out of range for 4 examples"):
        ds[4]
    with pytest.raises(TypeError, match=r"TensorDataset: index must be an int; got slice"):
        ds[1:3]
    with pytest.raises(IndexError, match=r"TensorDataset.get_batch: index -5 is out of range for 4 examples"):
        ds.get_batch([0, -5])


@pytest.mark.parametrize("arity", [1, 2, 3])
def test_dataloader_yields_one_tensor_per_tensor_of_the_dataset(torch, arity):
    rng = np.random.default_rng(0)
    arrays = [rng.normal(size=(10, 3)), rng.integers(0, 5, 10), rng.normal(size=(10, 2, 2)).astype(np.float32)]
    ds = TensorDataset(*arrays[:arity])
    batches = fields_of(DataLoader(ds, batch_size=4))
    ref = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*map(torch.from_numpy, arrays[:arity])), 4)
    assert len(batches) == 3
    for ours, theirs in zip(batches, ref):
        assert len(ours) == len(theirs) == arity
        for a, b in zip(ours, theirs):
            assert a.dtype == b.numpy().dtype
            np.testing.assert_array_equal(a, b.numpy())
    shuffled = DataLoader(ds, batch_size=4, shuffle=True, seed=5)
    order = shuffled.order(0)
    np.testing.assert_array_equal(np.concatenate([b[0] for b in fields_of(shuffled)]), arrays[0][order])


# --- Subset ---------------------------------------------------------------------------------

def test_subset_maps_its_indices_and_loads_through_get_batch():
    ds = Counting(12)
    sub = Subset(ds, [5, 0, -1, 5])
    assert len(sub) == 4 and sub.indices.dtype == np.int64 and sub[2][1] == 11 and sub[-1][1] == 5
    with pytest.raises(ValueError, match="read-only"):
        sub.indices[0] = 3  # changed under a running loader, the subset would change
    ds.item_calls = ds.batch_calls = 0
    xb, yb = next(iter(DataLoader(sub, batch_size=4)))
    np.testing.assert_array_equal(yb.numpy(), [5, 0, 11, 5])
    np.testing.assert_array_equal(xb.numpy(), ds.data[[5, 0, 11, 5]])
    assert ds.item_calls == 0 and ds.batch_calls == 1  # one vectorised call, no item by item
    sub.indices = range(3)
    assert sub.indices.tolist() == [0, 1, 2] and not sub.indices.flags.writeable


def test_subset_keeps_the_augmentation_and_its_seeding():
    ds = Counting(40, transform=T.Compose([T.RandomShift(1), T.ToFloat()]))
    sub = Subset(ds, np.arange(0, 40, 2))
    loader = DataLoader(sub, batch_size=6, shuffle=True, seed=3)
    for b, (xb, yb) in enumerate(loader):
        rows = sub.indices[loader.order(0)[b * 6:(b + 1) * 6]]
        x, y = ds.get_batch(rows, rng=np.random.default_rng([3, 0, b]))
        np.testing.assert_array_equal(xb.numpy(), x)
        np.testing.assert_array_equal(yb.numpy(), y)


def test_subset_of_a_dataset_without_get_batch_stacks_its_items():
    x, y, z = Subset(Triples(7), [6, 2]).get_batch([1, 0])
    np.testing.assert_array_equal(x, [[2, 2], [6, 6]])
    np.testing.assert_array_equal(y, [2, 6])
    np.testing.assert_array_equal(z, [[2, -2], [6, -6]])


@pytest.mark.parametrize("dataset, indices, error, pattern", [
    (Counting(5), [0, 5], IndexError, r"Subset: index 5 is out of range for 5 examples"),
    (Counting(5), [0.0, 1.0], TypeError, r"Subset: indices must be ints; got \[0\.0, 1\.0\] \(float64\)"),
    (Counting(5), [[0, 1]], ValueError, r"Subset: indices must be 1-D; got shape \(1, 2\)"),
    (3, [0], TypeError, r"Subset: dataset must have __len__ and __getitem__ \(or get_batch\); got a int"),
])
def test_subset_checks_its_arguments(dataset, indices, error, pattern):
    with pytest.raises(error, match=pattern):
        Subset(dataset, indices)


def test_subset_index_errors():
    sub = Subset(Counting(5), [1, 2])
    with pytest.raises(IndexError, match=r"Subset: index 2 is out of range for 2 examples"):
        sub[2]
    with pytest.raises(IndexError, match=r"Subset.get_batch: index 3 is out of range for 2 examples"):
        sub.get_batch([3])


# --- random_split ----------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 7, 10, 11, 100, 1001])
@pytest.mark.parametrize("lengths", [[0.5, 0.5], [0.8, 0.2], [0.3, 0.3, 0.4], [1 / 3] * 3, [0.1] * 10,
                                     [0.7, 0.2, 0.1], [1.0], [0.05, 0.95], [0.25, 0.25, 0.25, 0.25]])
def test_random_split_fraction_lengths_are_pytorchs(torch, n, lengths):
    with warnings.catch_warnings(record=True) as ours_warned:
        warnings.simplefilter("always")
        ours = [len(s) for s in random_split(range(n), lengths, generator=0)]
    with warnings.catch_warnings(record=True) as theirs_warned:
        warnings.simplefilter("always")
        generator = torch.Generator().manual_seed(0)  # not torch's global one
        theirs = [len(s) for s in torch.utils.data.random_split(range(n), lengths, generator)]
    assert ours == theirs
    assert len(ours_warned) == len(theirs_warned) == ours.count(0)


def test_random_split_is_a_random_partition():
    ds = TensorDataset(np.arange(50))
    parts = random_split(ds, [20, 0, 30], generator=1)
    assert [len(p) for p in parts] == [20, 0, 30]
    joined = np.concatenate([p.indices for p in parts])
    assert sorted(joined) == list(range(50)) and not np.array_equal(joined, np.arange(50))
    np.testing.assert_array_equal(joined, np.random.default_rng(1).permutation(50))
    np.testing.assert_array_equal(parts[0].get_batch(range(20))[0], joined[:20])
    again = random_split(ds, [20, 0, 30], generator=np.random.default_rng(1))
    assert all(np.array_equal(p.indices, q.indices) for p, q in zip(parts, again))
    assert not np.array_equal(random_split(ds, [20, 30], generator=2)[0].indices, parts[0].indices)


def test_random_split_draws_from_minidls_generator_by_default():
    ds = TensorDataset(np.arange(30))
    mdl.manual_seed(4)
    a = random_split(ds, [0.5, 0.5])[0].indices
    b = random_split(ds, [0.5, 0.5])[0].indices
    mdl.manual_seed(4)
    np.testing.assert_array_equal(random_split(ds, [0.5, 0.5])[0].indices, a)
    assert not np.array_equal(a, b)


def test_random_split_takes_fractions_whose_sum_rounds_just_above_one(torch):
    lengths = [0.46, 0.1, 0.023, 0.307, 0.11]
    assert sum(lengths) > 1 and math.isclose(sum(lengths), 1)
    assert [len(s) for s in random_split(range(1000), lengths, generator=0)] == [460, 100, 23, 307, 110]
    with pytest.raises(ValueError, match="Sum of input lengths"):  # where PyTorch refuses them
        torch.utils.data.random_split(range(1000), lengths, torch.Generator().manual_seed(0))


def test_random_split_warns_of_an_empty_subset():
    with pytest.warns(UserWarning, match=r"random_split: subset 1 is empty \(a fraction 0\.01 of 10 examples\)"):
        assert [len(s) for s in random_split(range(10), [0.99, 0.01], generator=0)] == [10, 0]


@pytest.mark.parametrize("lengths, generator, pattern", [
    ([3, 4], None, r"random_split: lengths must sum to len\(dataset\) = 10, or be fractions summing to 1; got "
                   r"\[3, 4\], which sum to 7"),
    ([12, -2], None, r"lengths must be ints >= 0 \(the sizes\) or fractions summing to 1; got -2 at position 1"),
    ([5.0, 5.0], None, r"lengths must be ints >= 0 .*; got 5\.0 at position 0, and the lengths sum to 10\.0"),
    ([0.5, 0.4], None, r"got 0\.5 at position 0, and the lengths sum to 0\.9"),
    ([1.5, -0.5], None, r"random_split: lengths sum to 1, so they are fractions, each in \[0, 1\]; got 1\.5 at "
                        r"position 0"),
    (10, None, r"random_split: lengths must be a list of ints \(the sizes\) or of fractions summing to 1; got 10"),
    ([True, 9], None, r"lengths must be a list of ints .*; got \[True, 9\]"),
    (["5", "5"], None, r"lengths must be a list of ints .*; got \['5', '5'\]"),
    ([5, 5], -1, r"random_split: generator must be an int seed >= 0, a np.random.Generator or None; got -1"),
    ([5, 5], 1.5, r"generator must be an int seed >= 0, a np.random.Generator or None; got 1\.5"),
    ([5, 5], np.random.RandomState(0), r"generator must be .*; got RandomState"),
])
def test_random_split_refuses_bad_lengths_and_generators(lengths, generator, pattern):
    with pytest.raises(ValueError, match=pattern):
        random_split(TensorDataset(np.zeros(10)), lengths, generator)


def test_random_split_refuses_what_is_not_a_dataset():
    with pytest.raises(TypeError, match=r"random_split: dataset must have __len__ and __getitem__ \(or get_batch\); "
                                        r"got a generator"):
        random_split((i for i in range(4)), [2, 2])


# --- ConcatDataset ---------------------------------------------------------------------------

def test_concat_dataset_is_pytorchs(torch):
    parts = [np.arange(3), np.arange(10, 15), np.arange(20, 22)]
    ours = ConcatDataset([TensorDataset(p) for p in parts])
    theirs = torch.utils.data.ConcatDataset([torch.utils.data.TensorDataset(torch.from_numpy(p)) for p in parts])
    assert ours.cumulative_sizes == theirs.cumulative_sizes == [3, 8, 10] and len(ours) == len(theirs)
    for i in range(-10, 10):
        assert ours[i][0] == theirs[i][0].item()
    with pytest.raises(IndexError, match=r"ConcatDataset: index 10 is out of range for 10 examples"):
        ours[10]
    with pytest.raises(IndexError, match=r"ConcatDataset: index -11 is out of range for 10 examples"):
        ours[-11]


def test_concat_dataset_get_batch_keeps_the_order_across_datasets():
    a, b = Counting(5), Triples(4)
    two = TensorDataset(np.arange(4, dtype=np.float32).repeat(2).reshape(4, 2), np.arange(4) * 10)
    ds = ConcatDataset([TensorDataset(np.zeros((3, 2), np.uint8), np.arange(3)), two])
    x, y = ds.get_batch([4, 0, 6, -1, 1])
    assert x.dtype == np.float32  # uint8 and float32 rows together
    np.testing.assert_array_equal(y, [10, 0, 30, 30, 1])
    np.testing.assert_array_equal(x[:, 0], [1, 0, 3, 3, 0])
    assert [t.shape for t in ds.get_batch([])] == [(0, 2), (0,)]
    xs = ConcatDataset([a, a]).get_batch([7, 1])  # one dataset's rows only: its own batch, as is
    np.testing.assert_array_equal(xs[1], [2, 1])
    triples = ConcatDataset([b, b]).get_batch([5, 0])  # datasets without get_batch: item by item
    np.testing.assert_array_equal(triples[1], [1, 0])


def test_concat_dataset_errors():
    with pytest.raises(ValueError, match=r"ConcatDataset: datasets must not be empty"):
        ConcatDataset([])
    with pytest.raises(ValueError, match=r"ConcatDataset: datasets must be a list of datasets; got "
                                         r"TensorDataset\(3 rows of \(\)\)"):
        ConcatDataset(TensorDataset(np.zeros(3)))  # iterable item by item, but one dataset
    with pytest.raises(TypeError, match=r"ConcatDataset: datasets\[1\] must have __len__ and __getitem__ "
                                        r"\(or get_batch\); got a int"):
        ConcatDataset([TensorDataset(np.zeros(3)), 4])
    mixed = ConcatDataset([TensorDataset(np.zeros(2), np.zeros(2)), TensorDataset(np.zeros(2))])
    with pytest.raises(ValueError, match=r"ConcatDataset.get_batch: datasets\[1\] gives 1 fields but datasets\[0\] "
                                         r"gives 2"):
        mixed.get_batch([0, 3])
    shapes = ConcatDataset([TensorDataset(np.zeros((2, 3))), TensorDataset(np.zeros((2, 4)))])
    with pytest.raises(ValueError, match=r"ConcatDataset.get_batch: field 0 of datasets\[1\] has shape \(4,\) per "
                                         r"example but that of datasets\[0\] has \(3,\)"):
        shapes.get_batch([0, 3])


# --- DataLoader over datasets of any arity -----------------------------------------------------

def test_dataloader_over_items_of_three_fields():
    batches = fields_of(DataLoader(Triples(7), batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 3]
    x, y, z = batches[2]
    np.testing.assert_array_equal(x, [[6, 6]])
    np.testing.assert_array_equal(y, [6])
    np.testing.assert_array_equal(z, [[6, -6]])
    assert x.dtype == np.float32 and y.dtype == np.int64


def test_dataloader_over_a_concat_dataset_of_image_datasets_is_seeded():
    ds = Counting(20, T.Compose([T.RandomCrop(6, padding=1), T.ToFloat()])) + Counting(10, T.ToFloat())
    a = fields_of(DataLoader(ds, 8, shuffle=True, seed=1))
    b = fields_of(DataLoader(ds, 8, shuffle=True, seed=1))
    assert len(a) == 4 and all(np.array_equal(p, q) for s, t in zip(a, b) for p, q in zip(s, t))
    assert a[0][0].shape == (8, 1, 6, 6) and sorted(np.concatenate([y for _, y in a])) == sorted(
        list(range(20)) + list(range(10)))
    c = fields_of(DataLoader(ds, 8, shuffle=True, seed=2))
    assert not np.array_equal(a[0][1], c[0][1])


class Items(Dataset):
    def __init__(self, make, n=4):
        self.make, self.n = make, n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return self.make(i)


class Batches(Dataset):
    def __len__(self):
        return 4

    def get_batch(self, indices, rng=None):
        return np.zeros(len(indices))


@pytest.mark.parametrize("dataset, pattern", [
    (Items(lambda i: (np.zeros(2),) * (2 if i < 1 else 3)),
     r"DataLoader: dataset\[1\] has 3 fields but dataset\[0\] has 2; every item must have the same fields"),
    (Items(lambda i: ()), r"DataLoader: dataset\[0\] must be an \(image, label\) pair; got \(\)\. Items are tuples"),
    (Items(lambda i: (0, 1, np.zeros(i + 1))), r"DataLoader: field 2 of batch 0 must have one shape; "
                                               r"got \[\(1,\), \(2,\)\]"),
    (Items(lambda i: (np.zeros(2), np.zeros(i + 1))), r"DataLoader: the labels of batch 0 must have one shape"),
    (Batches(), r"DataLoader: Batches.get_batch must return a tuple of arrays, one per field; got array"),
])
def test_dataloader_checks_the_fields(dataset, pattern):
    with pytest.raises(ValueError, match=pattern):
        next(iter(DataLoader(dataset, 2)))


# --- ToTensor ----------------------------------------------------------------------------------

def test_to_tensor_is_torchvisions_for_channels_last_images(torch):
    rng = np.random.default_rng(0)
    for shape in [(5, 7, 3), (5, 7, 1), (5, 7, 4), (4, 5, 7, 3)]:
        x = rng.integers(0, 256, shape, dtype=np.uint8)
        y = T.ToTensor()(x)
        # torchvision: torch.from_numpy(pic.transpose((2, 0, 1))).contiguous().to(float32).div(255)
        ref = torch.from_numpy(np.moveaxis(x, -1, -3).copy()).to(torch.float32).div(255).numpy()
        assert y.dtype == np.float32 and y.flags.c_contiguous
        np.testing.assert_array_equal(y, ref)
    gray = rng.integers(0, 256, (5, 7), dtype=np.uint8)
    np.testing.assert_array_equal(T.ToTensor()(gray), gray[None] / np.float32(255))
    assert T.ToTensor()(np.array([[0, 255]], np.uint8)).tolist() == [[[0.0, 1.0]]]


def test_to_tensor_keeps_channel_first_images_and_floats():
    rng = np.random.default_rng(1)
    chw = rng.integers(0, 256, (8, 3, 32, 32), dtype=np.uint8)
    np.testing.assert_array_equal(T.ToTensor()(chw), chw.astype(np.float32) / 255)
    np.testing.assert_allclose(T.ToTensor()(chw), T.ToFloat()(chw), rtol=1e-7, atol=0)  # ToFloat's last bit
    hwc = rng.random((6, 5, 3))
    out = T.ToTensor()(hwc)
    assert out.dtype == np.float64 and out.shape == (3, 6, 5)
    np.testing.assert_array_equal(out, hwc.transpose(2, 0, 1))  # floats are not scaled
    mnist = ArrayDataset(rng.integers(0, 256, (10, 1, 28, 28), dtype=np.uint8), np.arange(10),
                         T.Compose([T.ToTensor(), T.Normalize((0.1307,), (0.3081,))]))
    assert next(iter(DataLoader(mnist, 4)))[0].shape == (4, 1, 28, 28)


@pytest.mark.parametrize("x, pattern", [
    (np.zeros((4, 4, 4), np.int16), r"ToTensor: expected uint8 pixels \(scaled to \[0, 1\]\) or floating-point "
                                    r"values \(kept as they are\); got int16 input"),
    (np.zeros((4, 4, 4), bool), r"got bool input"),
    (np.zeros(4, np.uint8), r"ToTensor: expected an image \(H, W\), \(H, W, C\) or \(C, H, W\), or a batch "
                            r"\(N, H, W, C\) or \(N, C, H, W\); got shape \(4,\)"),
    (np.zeros((64, 28, 28), np.uint8), r"ToTensor: cannot tell the channels of shape \(64, 28, 28\): expected 1, 3 "
                                       r"or 4 channels"),
    (np.zeros((2, 5, 6, 7), np.uint8), r"cannot tell the channels of shape \(2, 5, 6, 7\)"),
])
def test_to_tensor_refuses_what_it_cannot_read(x, pattern):
    with pytest.raises(ValueError, match=pattern):
        T.ToTensor()(x)


# --- RandomCrop ---------------------------------------------------------------------------------

def torch_pad(torch, x, left, top, right, bottom, mode, fill=0):
    """torchvision's padding of a uint8 or float batch, through torch: the definition, computed another way."""
    if mode == "symmetric":  # torch.nn.functional.pad has no symmetric mode; NumPy's is torchvision's
        return np.pad(x, [(0, 0), (0, 0), (top, bottom), (left, right)], mode="symmetric")
    t = torch.from_numpy(x.astype(np.float64))
    kw = {"value": fill} if mode == "constant" else {}
    mode = {"edge": "replicate"}.get(mode, mode)
    return torch.nn.functional.pad(t, (left, right, top, bottom), mode=mode, **kw).numpy().astype(x.dtype)


def crop_positions(out, padded):
    """For each output image, every (top, left) at which it is a crop of its padded image."""
    h, w = out.shape[-2:]
    windows = np.lib.stride_tricks.sliding_window_view(padded, (h, w), axis=(2, 3))
    same = (windows == out[:, :, None, None]).all(axis=(1, 4, 5))
    return [list(zip(*np.nonzero(s))) for s in same]


@pytest.mark.parametrize("kwargs, shape, pads, crop", [
    ({"size": 6, "padding": 2}, (500, 2, 6, 6), (2, 2, 2, 2), (6, 6)),
    ({"size": (5, 4), "padding": (1, 2), "padding_mode": "reflect"}, (500, 3, 6, 6), (1, 2, 1, 2), (5, 4)),
    ({"size": [4], "padding": [3, 0, 1, 2], "padding_mode": "edge"}, (500, 1, 5, 4), (3, 0, 1, 2), (4, 4)),
    ({"size": 7, "padding": 1, "padding_mode": "symmetric"}, (500, 2, 6, 7), (1, 1, 1, 1), (7, 7)),
    ({"size": 5, "fill": 9}, (500, 1, 7, 9), (0, 0, 0, 0), (5, 5)),
])
def test_random_crop_gives_crops_of_the_padded_images(torch, kwargs, shape, pads, crop):
    # padding is (left, top, right, bottom), torchvision's order
    x = np.random.default_rng(2).integers(0, 256, shape, dtype=np.uint8)
    out = T.RandomCrop(**kwargs)(x, np.random.default_rng(3))
    h, w = crop
    assert out.shape == shape[:2] + crop and out.dtype == np.uint8
    padded = torch_pad(torch, x, *pads, kwargs.get("padding_mode", "constant"), kwargs.get("fill", 0))
    positions = crop_positions(out, padded)
    assert all(positions)  # each output is a crop of its own padded image
    seen = {p for ps in positions for p in ps}
    assert seen == {(t, s) for t in range(padded.shape[2] - h + 1) for s in range(padded.shape[3] - w + 1)}


def test_random_crop_places_are_uniform_and_per_image():
    n, pad = 5000, 2
    x = np.arange(n * 64, dtype=np.float32).reshape(n, 1, 8, 8) + 1  # every pixel distinct, none 0
    out = T.RandomCrop(8, padding=pad)(x, np.random.default_rng(0))
    # the place of an image's own first pixel in its crop gives the crop's (top, left)
    first = x[:, 0, 0, 0][:, None, None]
    found = out[:, 0] == first
    top = np.where(found.any(axis=(1, 2)), pad - np.argmax(found.any(axis=2), axis=1), -1)
    left = np.where(found.any(axis=(1, 2)), pad - np.argmax(found.any(axis=1), axis=1), -1)
    known = top >= 0  # crops that include the first pixel: top and left <= pad
    counts = np.bincount(top[known] * 5 + left[known], minlength=25).reshape(5, 5)[:pad + 1, :pad + 1]
    expected = n / 25
    assert (np.abs(counts - expected) < 5 * np.sqrt(expected)).all(), counts


@pytest.mark.parametrize("mode", ["constant", "reflect"])
def test_random_crop_pad_if_needed_pads_by_the_shortfall_as_torchvision(torch, mode):
    x = np.random.default_rng(4).integers(0, 256, (60, 1, 5, 7), dtype=np.uint8)
    out = T.RandomCrop((9, 8), padding=1, pad_if_needed=True, padding_mode=mode, fill=3)(x, np.random.default_rng(5))
    assert out.shape == (60, 1, 9, 8)
    # torchvision: pad by padding, then the width by 8 - 9 < 0 (nothing), then the height by 9 - 7 = 2 each side
    once = torch_pad(torch, x, 1, 1, 1, 1, mode, 3)
    twice = torch_pad(torch, once, 0, 2, 0, 2, mode, 3)
    assert twice.shape[-2:] == (11, 9) and all(crop_positions(out, twice))


def test_random_crop_per_channel_fill_and_one_image():
    x = np.zeros((3, 2, 2), np.uint8)
    crop = T.RandomCrop(6, padding=2, fill=(10, 20, 30))
    out = crop(x, np.random.default_rng(0))
    assert out.shape == (3, 6, 6)
    np.testing.assert_array_equal(out[:, 0, 0], [10, 20, 30])
    with pytest.raises(ValueError, match=r"RandomCrop: 3 fill values for images with 1 channels; give one, or one "
                                         r"per channel"):
        crop(np.zeros((1, 2, 2), np.uint8), np.random.default_rng(0))


@pytest.mark.parametrize("make, pattern", [
    (lambda: T.RandomCrop(0), r"RandomCrop: size must be >= 1; got 0"),
    (lambda: T.RandomCrop((2, 2, 2)), r"RandomCrop: size must be an int or a pair of ints \(h, w\); got \(2, 2, 2\)"),
    (lambda: T.RandomCrop(2, padding=-1), r"RandomCrop: padding must be None, an int >= 0, or 1, 2 or 4 of them "
                                          r"\(left and right, top and bottom; or left, top, right, bottom\); got -1"),
    (lambda: T.RandomCrop(2, padding=(1, 2, 3)), r"padding must be None, .*; got \(1, 2, 3\)"),
    (lambda: T.RandomCrop(2, padding=1.5), r"padding must be None, .*; got 1\.5"),
    (lambda: T.RandomCrop(2, pad_if_needed=1), r"RandomCrop: pad_if_needed must be True or False; got 1"),
    (lambda: T.RandomCrop(2, fill="white"), r"RandomCrop: fill must be a number or one per channel; got 'white'"),
    (lambda: T.RandomCrop(2, fill=()), r"RandomCrop: fill must be a number or one per channel; got \(\)"),
    (lambda: T.RandomCrop(2, padding_mode="wrap"), r"RandomCrop: padding_mode must be one of 'constant', 'edge', "
                                                   r"'reflect', 'symmetric'; got 'wrap'"),
    (lambda: T.RandomHorizontalFlip(1.5), r"RandomHorizontalFlip: p must be a probability in \[0, 1\]; got 1\.5"),
    (lambda: T.RandomHorizontalFlip("0.5"), r"RandomHorizontalFlip: p must be a probability in \[0, 1\]; got '0.5'"),
])
def test_random_transforms_check_their_settings(make, pattern):
    with pytest.raises(ValueError, match=pattern):
        make()


def test_random_transforms_check_their_input():
    u8, rng = np.zeros((2, 1, 4, 4), np.uint8), np.random.default_rng(0)
    with pytest.raises(ValueError, match=r"RandomCrop: the crop size \(5, 4\) is larger than the images' \(4, 4\) "
                                         r"after padding; pad them more"):
        T.RandomCrop((5, 4))(u8, rng)
    with pytest.raises(ValueError, match=r"RandomCrop: fill=300 does not fit the images' uint8"):
        T.RandomCrop(4, padding=1, fill=300)(u8, rng)
    with pytest.raises(ValueError, match=r"RandomCrop: fill=\(1\.5,\) does not fit the images' uint8"):
        T.RandomCrop(4, padding=1, fill=(1.5,))(u8, rng)
    for t in (T.RandomCrop(2), T.RandomHorizontalFlip()):
        name = type(t).__name__
        with pytest.raises(ValueError, match=rf"{name} needs a random generator \(np.random.Generator\); got None"):
            t(u8, None)
        with pytest.raises(ValueError, match=rf"{name}: expected an image \(C, H, W\) or a batch \(N, C, H, W\); "
                                             r"got shape \(4, 4\)"):
            t(u8[0, 0], rng)


# --- RandomHorizontalFlip --------------------------------------------------------------------------

def test_random_horizontal_flip_mirrors_each_image_with_probability_p():
    x = np.random.default_rng(0).integers(0, 256, (4000, 2, 3, 5), dtype=np.uint8)
    out = T.RandomHorizontalFlip()(x, np.random.default_rng(1))
    flipped = (out == x[..., ::-1]).all(axis=(1, 2, 3))
    kept = (out == x).all(axis=(1, 2, 3))
    assert (flipped ^ kept).all() and out.dtype == np.uint8  # each image whole, one way or the other
    assert abs(flipped.mean() - 0.5) < 5 * np.sqrt(0.25 / 4000)
    p = T.RandomHorizontalFlip(0.2)(x, np.random.default_rng(2))
    assert abs((p == x[..., ::-1]).all(axis=(1, 2, 3)).mean() - 0.2) < 5 * np.sqrt(0.16 / 4000)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(0)(x, np.random.default_rng(3)), x)
    np.testing.assert_array_equal(T.RandomHorizontalFlip(1)(x[0], np.random.default_rng(3)), x[0, ..., ::-1])


# --- specs ---------------------------------------------------------------------------------------------

SPECCED = [
    T.ToFloat(), T.ToTensor(), T.Normalize(0.5, 0.25), T.Normalize((0.4914, 0.4822, 0.4465), (0.247, 0.2435, 0.2616)),
    T.Pad(2), T.Resize((4, 6)), T.Resize(3),
    T.Compose([T.Pad(1), T.Compose([T.ToFloat(), T.Normalize([0.1307], [0.3081])]), T.Resize(5)]),
]


@pytest.mark.parametrize("transform", SPECCED, ids=repr)
def test_spec_round_trips_through_json(transform):
    spec = transform.spec()
    again = T.from_spec(json.loads(json.dumps(spec)))
    assert type(again) is type(transform) and again.spec() == spec and repr(again) == repr(transform)
    x = np.random.default_rng(0).integers(0, 256, (2, 3, 5, 5), dtype=np.uint8)
    if isinstance(transform, T.Normalize):
        x = T.ToFloat()(x)
    np.testing.assert_array_equal(again(x), transform(x))


def test_specs_are_plain_and_short():
    assert T.Compose([T.Pad(2), T.ToFloat(), T.Normalize((0.1307,), (0.3081,)), T.Resize((3, 4))]).spec() == {
        "name": "Compose", "transforms": [
            {"name": "Pad", "padding": 2}, {"name": "ToFloat"},
            {"name": "Normalize", "mean": [0.1307], "std": [0.3081]}, {"name": "Resize", "size": [3, 4]}]}


@pytest.mark.parametrize("spec, pattern", [
    ("Pad", r"from_spec: spec must be a dict with a \"name\", as a transform's spec\(\) returns; got 'Pad'"),
    ({"padding": 2}, r"from_spec: spec must be a dict with a \"name\""),
    ({"name": "RandomCrop", "size": 3}, r"from_spec: unknown transform 'RandomCrop'; expected one of Compose, ToFloat, "
                                        r"ToTensor, Normalize, Pad, Resize \(random transforms have no spec\)"),
    ({"name": "Pad"}, r"from_spec: Pad takes 'padding'; got no 'padding'"),
    ({"name": "Normalize", "mean": 0.5}, r"from_spec: Normalize takes 'mean', 'std'; got no 'std'"),
    ({"name": "ToFloat", "scale": 255}, r"from_spec: ToFloat takes no arguments; got unexpected 'scale'"),
    ({"name": "Pad", "padding": 2.0}, r"from_spec: Pad: padding must be an int >= 0; got 2\.0"),
    ({"name": "Normalize", "mean": [0.5], "std": [0]}, r"from_spec: Normalize: std must be positive; got \[0\]"),
    ({"name": "Compose", "transforms": {"name": "Pad"}}, r"from_spec: Compose: transforms must be a list of "
                                                         r"transform specs; got \{'name': 'Pad'\}"),
    ({"name": "Compose", "transforms": [{"name": "ToFloat"}, {"name": "Resize", "size": [0, 2]}]},
     r"from_spec: transforms\[1\]: Resize: size must be >= 1; got \[0, 2\]"),
])
def test_from_spec_refuses_bad_specs(spec, pattern):
    with pytest.raises(ValueError, match=pattern):
        T.from_spec(spec)


def test_random_transforms_have_no_spec():
    for t in (T.RandomCrop(3), T.RandomHorizontalFlip(), T.RandomShift(2)):
        with pytest.raises(ValueError, match=rf"{type(t).__name__} is random, for training only, and has no spec"):
            t.spec()
    with pytest.raises(ValueError, match=r"Compose.spec: transforms\[1\]: RandomHorizontalFlip is random"):
        T.Compose([T.ToFloat(), T.RandomHorizontalFlip()]).spec()
    with pytest.raises(ValueError, match=r"Compose.spec: transforms\[0\] = <function .* has no spec\(\); only the "
                                         r"deterministic transforms of minidl.data.transforms can be recorded"):
        T.Compose([lambda x: x]).spec()

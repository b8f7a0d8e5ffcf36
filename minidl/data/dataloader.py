"""DataLoader: batches of a dataset, in a repeatable order."""
import numpy as np

from minidl import random
from minidl._checks import check_bool, check_int, fail, is_int, require
from minidl.data import datasets
from minidl.tensor import Tensor


class DataLoader:
    """Iterate over ``dataset`` in batches: tuples of Tensors, one per field of the dataset's items
    (``(images, labels)`` for the image datasets, one per tensor for a ``TensorDataset``).

    A dataset with ``get_batch(indices, rng=None)`` (every dataset in minidl.data) gives each batch
    in one call; any other needs ``__getitem__``, whose items (tuples of arrays or numbers, one per
    field) are stacked field by field.

    Shuffling is deterministic: epoch ``e``'s order is a permutation drawn
    from a generator seeded with ``(seed, e)``, so it depends only on the seed
    and the epoch number -- a resumed run sees exactly the order an
    uninterrupted one would. Random transforms of a dataset with
    ``get_batch`` (augmentation) draw from a generator seeded with
    ``(seed, epoch, batch number)``, so they repeat the same way. Without ``seed``, one is drawn from the
    framework's generator (so ``mdl.manual_seed`` fixes it). The epoch
    advances by one each time iteration starts; ``set_epoch`` sets it.

    A loader that would give no batches (an empty dataset, or ``drop_last``
    with fewer examples than ``batch_size``) is refused.

    ``sampler``: a `minidl.distributed.DistributedSampler`, for data-parallel training. Each rank's
    loader then gives its share of each batch of ``batch_size`` x the number of ranks, in the
    sampler's order (so ``shuffle`` is the sampler's, and ``seed``, for the augmentation, defaults to
    the sampler's seed, the same on every rank); every rank has the same ``len(loader)``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None, sampler=None):
        where = "DataLoader"
        datasets._check_dataset(where, "dataset", dataset)
        self.batch_size = check_int(where, "batch_size", batch_size, 1)
        check_bool(where, "shuffle", shuffle)
        check_bool(where, "drop_last", drop_last)
        require(seed is None or (is_int(seed) and seed >= 0), where, "seed", seed, "an int >= 0 or None")
        if sampler is not None:
            if not all(hasattr(sampler, a) for a in ("order", "share", "num_replicas", "dataset")):
                fail(where, "sampler", sampler, "a minidl.distributed.DistributedSampler, or None")
            if shuffle:
                raise ValueError(f"{where}: shuffle=True with a sampler; the sampler orders the examples "
                                 f"(DistributedSampler(..., shuffle=True))")
            if sampler.dataset is not dataset:
                raise ValueError(f"{where}: the sampler was made for another dataset; pass the loader's own")
        # An epoch without a batch would train on nothing and report an average over nothing.
        n = len(dataset)
        if n == 0:
            raise ValueError(f"{where}: the dataset is empty (len 0); there is nothing to batch")
        self.sampler = sampler
        self._replicas = 1 if sampler is None else sampler.num_replicas
        if drop_last and n < self.batch_size * self._replicas:
            raise ValueError(f"{where}: drop_last=True with batch_size={self.batch_size}"
                             + (f" x {self._replicas} ranks" if sampler is not None else "")
                             + f" > the dataset's {n} examples gives no batches")
        self.dataset, self.shuffle, self.drop_last = dataset, bool(shuffle), bool(drop_last)
        if seed is None:
            seed = sampler.seed if sampler is not None else int(random.rng().integers(2 ** 63))
        self.seed = int(seed)
        # With a sampler and a random augmentation, each rank prepares the whole batch and keeps its
        # share: the only way its items get the draws they get in one process's loader.
        self._whole_batches = sampler is not None and sampler.num_replicas > 1 and _draws_random(dataset)
        self.epoch = 0

    def __len__(self):
        n, whole = len(self.dataset), self.batch_size * self._replicas
        return n // whole if self.drop_last else -(-n // whole)

    def set_epoch(self, epoch):
        self.epoch = check_int("DataLoader.set_epoch", "epoch", epoch, 0)

    def order(self, epoch):
        """The index order of ``epoch``."""
        epoch = check_int("DataLoader.order", "epoch", epoch, 0)
        if self.sampler is not None:
            return self.sampler.order(epoch)
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def batches(self, epoch, start=0):
        """The batches of ``epoch`` from batch number ``start`` on (to resume mid-epoch). The arguments
        are checked here, at the call, rather than at the first batch."""
        epoch = check_int("DataLoader.batches", "epoch", epoch, 0)
        if not (is_int(start) and 0 <= start <= len(self)):
            fail("DataLoader.batches", "start", start, f"an int from 0 to len(loader) = {len(self)}")
        return self._batches(epoch, int(start))

    def _batches(self, epoch, start):
        order, whole = self.order(epoch), self.batch_size * self._replicas
        for b in range(start, len(self)):
            yield self._batch(order[b * whole:(b + 1) * whole], epoch, b)

    def _batch(self, indices, epoch, b):
        rng = np.random.default_rng([self.seed, epoch, b])
        share = indices if self.sampler is None else self.sampler.share(indices)
        # An empty share also comes from the whole batch: the fields' shapes and dtypes are its.
        whole = self.sampler is not None and (self._whole_batches or len(share) == 0)
        fields = datasets._get_batch("DataLoader", self.dataset, indices if whole else share, rng, f"batch {b}")
        if whole:
            fields = tuple(self.sampler.share(f) for f in fields)
        return tuple(Tensor(f) for f in fields)


def _draws_random(dataset):
    """Whether ``dataset`` (or a dataset it is made of: a Subset's, a ConcatDataset's) has a random
    transform (``transform.random``). A dataset whose own ``get_batch`` draws from ``rng`` is not
    seen here: under a sampler its ranks would draw for their shares alike."""
    if getattr(getattr(dataset, "transform", None), "random", False):
        return True
    inner = [getattr(dataset, "dataset", None)] + list(getattr(dataset, "datasets", None) or [])
    return any(d is not None and _draws_random(d) for d in inner)

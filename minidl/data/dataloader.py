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
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None):
        where = "DataLoader"
        datasets._check_dataset(where, "dataset", dataset)
        self.batch_size = check_int(where, "batch_size", batch_size, 1)
        check_bool(where, "shuffle", shuffle)
        check_bool(where, "drop_last", drop_last)
        require(seed is None or (is_int(seed) and seed >= 0), where, "seed", seed, "an int >= 0 or None")
        # An epoch without a batch would train on nothing and report an average over nothing.
        n = len(dataset)
        if n == 0:
            raise ValueError(f"{where}: the dataset is empty (len 0); there is nothing to batch")
        if drop_last and n < self.batch_size:
            raise ValueError(f"{where}: drop_last=True with batch_size={self.batch_size} > the dataset's {n} "
                             f"examples gives no batches")
        self.dataset, self.shuffle, self.drop_last = dataset, bool(shuffle), bool(drop_last)
        self.seed = int(random.rng().integers(2 ** 63)) if seed is None else int(seed)
        self.epoch = 0

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = check_int("DataLoader.set_epoch", "epoch", epoch, 0)

    def order(self, epoch):
        """The index order of ``epoch``."""
        epoch = check_int("DataLoader.order", "epoch", epoch, 0)
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
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)

    def _batch(self, indices, epoch, b):
        rng = np.random.default_rng([self.seed, epoch, b])
        return tuple(Tensor(f) for f in datasets._get_batch("DataLoader", self.dataset, indices, rng, f"batch {b}"))

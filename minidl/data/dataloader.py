"""DataLoader: batches of a dataset, in a repeatable order."""
import numpy as np

from minidl import random
from minidl.tensor import Tensor


class DataLoader:
    """Iterate over ``dataset`` in batches of ``(images, labels)`` Tensors.

    Shuffling is deterministic: epoch ``e``'s order is a permutation drawn
    from a generator seeded with ``(seed, e)``, so it depends only on the seed
    and the epoch number -- a resumed run sees exactly the order an
    uninterrupted one would. Random transforms of a dataset with
    ``get_batch`` (augmentation) draw from a generator seeded with
    ``(seed, epoch, batch number)``, so they repeat the same way. Without ``seed``, one is drawn from the
    framework's generator (so ``mdl.manual_seed`` fixes it). The epoch
    advances by one each time iteration starts; ``set_epoch`` sets it.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None):
        if batch_size < 1:
            raise ValueError(f"DataLoader: batch_size must be >= 1; got {batch_size}")
        self.dataset, self.batch_size, self.shuffle, self.drop_last = dataset, int(batch_size), shuffle, drop_last
        self.seed = int(random.rng().integers(2 ** 63)) if seed is None else int(seed)
        self.epoch = 0

    def __len__(self):
        n = len(self.dataset)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def set_epoch(self, epoch):
        self.epoch = int(epoch)

    def order(self, epoch):
        """The index order of ``epoch``."""
        n = len(self.dataset)
        if not self.shuffle:
            return np.arange(n)
        return np.random.default_rng([self.seed, epoch]).permutation(n)

    def __iter__(self):
        epoch = self.epoch
        self.epoch += 1
        return self.batches(epoch)

    def batches(self, epoch, start=0):
        """The batches of ``epoch`` from batch number ``start`` on (to resume mid-epoch)."""
        order = self.order(epoch)
        for b in range(start, len(self)):
            yield self._batch(order[b * self.batch_size:(b + 1) * self.batch_size], epoch, b)

    def _batch(self, indices, epoch, b):
        if hasattr(self.dataset, "get_batch"):
            x, y = self.dataset.get_batch(indices, rng=np.random.default_rng([self.seed, epoch, b]))
        else:
            items = [self.dataset[int(i)] for i in indices]
            x = np.stack([np.asarray(item[0]) for item in items])
            y = np.asarray([item[1] for item in items])
        return Tensor(x), Tensor(y)

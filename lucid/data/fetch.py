"""Loading one batch: the unit of work of the DataLoader and its workers."""
from __future__ import annotations

from lucid.data.bad_images import SkipLog
from lucid.data.collate import BatchBuilder
from lucid.data.seeding import sample_generator


def get_sample(dataset, index: int, rng, out=None):
    """``dataset.get(index, rng, out)`` for lucid datasets, ``dataset[index]`` otherwise."""
    get = getattr(dataset, "get", None)
    if get is None:
        return dataset[index]
    return get(index, rng, out)


def fetch_batch(dataset, indices, seed: int, epoch: int, collate_fn=None, buffer=None):
    """The batch of dataset ``indices``. Sample ``i`` draws its augmentation from the
    generator of (seed, epoch, i), so the result does not depend on who computes it.

    Without ``collate_fn`` the images are written into one preallocated array (in
    ``buffer`` when it is large enough) and the result is a tuple of arrays; with it,
    the samples are passed to ``collate_fn``. Returns (batch, whether the images are in
    ``buffer``).
    """
    if collate_fn is not None:
        return collate_fn([get_sample(dataset, i, sample_generator(seed, epoch, i)) for i in indices]), False
    builder = BatchBuilder(len(indices), buffer)
    for k, i in enumerate(indices):
        builder.add(k, get_sample(dataset, i, sample_generator(seed, epoch, i), builder.slot(k)), i)
    return builder.finish(), builder.in_buffer


def fetch_held(dataset, indices, seed: int, epoch: int, collate_fn=None, buffer=None):
    """``fetch_batch`` in a worker: (batch, in_buffer, skip records). The records of the
    images the dataset skipped are held back, to be counted (``merge``) when the batch is
    delivered, and dropped with it otherwise."""
    log = getattr(dataset, "skip_log", None)
    if not isinstance(log, SkipLog):
        return (*fetch_batch(dataset, indices, seed, epoch, collate_fn, buffer), [])
    with log.held() as records:
        batch, in_buffer = fetch_batch(dataset, indices, seed, epoch, collate_fn, buffer)
    return batch, in_buffer, records

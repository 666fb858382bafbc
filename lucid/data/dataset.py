"""Dataset protocol and ArrayDataset.

A dataset has ``len()`` and ``get(index, rng=None, out=None)``: ``rng`` is the
sample's generator (derived from seed, epoch and index by the DataLoader) and ``out``
an HWC slot of the batch being built that an array-producing transform may write
into. ``dataset[index]`` is ``get(index)`` with the generator of (seed 0, epoch 0).
Subclasses that only define ``__getitem__`` (PyTorch style) work too.
"""
from __future__ import annotations

import numpy as np

from lucid.data.seeding import sample_generator
from lucid.data.transforms.base import apply_transform


class Dataset:
    """Base class: override ``__len__`` and ``__getitem__`` (or ``get``)."""

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def __getitem__(self, index: int):
        if type(self).get is Dataset.get:
            raise NotImplementedError(f"{type(self).__name__} must define __getitem__ or get")
        return self.get(index, sample_generator(0, 0, _check_index(index, len(self))))

    def get(self, index: int, rng=None, out=None):
        """The sample at ``index``; the base version ignores ``rng``/``out``."""
        return self[index]


def _check_index(index, n: int) -> int:
    i = int(index)
    if i < 0:
        i += n
    if not 0 <= i < n:
        raise IndexError(f"index {index} is out of range for a dataset of {n} samples")
    return i


class ArrayDataset(Dataset):
    """Samples ``(arrays[0][i], arrays[1][i], ...)`` of equally long arrays (PyTorch's
    TensorDataset). ``transform`` is applied to the first field (for Pillow transforms
    on uint8 HWC images start with ToPILImage), ``target_transform`` to the second.

    Images meant for the default collate are HWC (N, H, W, C) arrays.
    """

    def __init__(self, *arrays, transform=None, target_transform=None):
        if not arrays:
            raise ValueError("ArrayDataset: give at least one array")
        arrays = tuple(a.numpy() if hasattr(a, "numpy") and not isinstance(a, np.ndarray) else np.asarray(a) for a in arrays)
        lengths = {len(a) for a in arrays}
        if len(lengths) != 1:
            raise ValueError(f"ArrayDataset: arrays have different lengths {[len(a) for a in arrays]}")
        self.arrays = arrays
        self.transform = transform
        self.target_transform = target_transform

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, index: int):
        i = _check_index(index, len(self))
        return self.get(i, sample_generator(0, 0, i))

    def get(self, index: int, rng=None, out=None):
        fields = [a[index] for a in self.arrays]
        if self.transform is not None:
            fields[0] = apply_transform(self.transform, fields[0], rng, out)
        if self.target_transform is not None and len(fields) > 1:
            fields[1] = apply_transform(self.target_transform, fields[1], rng)
        return tuple(fields) if len(fields) > 1 else fields[0]

"""Batch assembly: images written in place into one preallocated array.

The first field of a sample (the image) goes into an (N, *shape) array allocated
when the batch's first sample arrives; the samples after it are decoded straight
into their slot (the ``out=`` of the transforms), so nothing is stacked or pickled
per sample. The remaining fields (labels) are gathered and converted at the end.
The DataLoader then wraps the arrays as lucid Tensors: per-sample HWC images become
an (N, C, H, W) Tensor whose memory is channels-last (NHWC).
"""
from __future__ import annotations

import numbers

import numpy as np
from PIL import Image

from lucid.tensor import Tensor


def as_array(x):
    """A NumPy array for an image-like field (ndarray, Pillow image, lucid Tensor), or
    None for anything else. 3-D Tensors are (C, H, W) views and come back as HWC."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(x, Tensor):
        data = np.asarray(x.numpy())
        return data.transpose(1, 2, 0) if data.ndim == 3 else data
    if isinstance(x, Image.Image):
        a = np.asarray(x)
        return a[:, :, None] if a.ndim == 2 else a
    return None


def _written(x, slot) -> bool:
    if slot is None:
        return False
    data = x.data if isinstance(x, Tensor) else x
    return isinstance(data, np.ndarray) and (data is slot or data.base is slot)


def _gather(values: list):
    """Labels and other per-sample fields -> one array (ints int64, floats float32)."""
    first = values[0]
    if isinstance(first, (bool, np.bool_)):
        return np.asarray(values, dtype=bool)
    if isinstance(first, numbers.Integral):
        return np.asarray(values, dtype=np.int64)
    if isinstance(first, numbers.Real):
        return np.asarray(values, dtype=np.float32)
    arrays = [as_array(v) for v in values]
    if all(a is not None for a in arrays):
        return np.stack(arrays)
    return list(values)


class BatchBuilder:
    """Collects the samples of one batch of ``size`` into preallocated storage.

    Args:
        size: number of samples.
        buffer: optional writable buffer (shared memory) for the image array; used
            when the batch fits in it.
    """

    def __init__(self, size: int, buffer=None):
        self.size = size
        self.buffer = buffer
        self.images: np.ndarray | None = None
        self.in_buffer = False
        self._first_is_array = True
        self._tuple = True
        self._fields: list[list] = []

    def slot(self, k: int):
        """Where sample ``k``'s image may be written (None before the first sample)."""
        return self.images[k] if self.images is not None else None

    def _allocate(self, x: np.ndarray) -> None:
        shape = (self.size, *x.shape)
        nbytes = int(np.prod(shape)) * x.dtype.itemsize
        if self.buffer is not None and nbytes <= len(self.buffer):
            self.images = np.ndarray(shape, x.dtype, buffer=self.buffer)
            self.in_buffer = True
        else:
            self.images = np.empty(shape, x.dtype)

    def add(self, k: int, sample, index: int = -1) -> None:
        """Add sample ``k`` (dataset index ``index``, for error messages)."""
        if k == 0:
            self._tuple = isinstance(sample, tuple)
        fields = sample if self._tuple else (sample,)
        if k == 0:
            self._fields = [[] for _ in fields]
            a = as_array(fields[0])
            self._first_is_array = a is not None
            if a is not None:
                self._allocate(a)
        if len(fields) != len(self._fields):
            raise ValueError(f"DataLoader: sample {index} has {len(fields)} fields, the batch's first {len(self._fields)}")
        for j, v in enumerate(fields):
            if j == 0 and self._first_is_array:
                self._put(k, v, index)
            else:
                self._fields[j].append(v)

    def _put(self, k: int, x, index: int) -> None:
        slot = self.images[k]
        if _written(x, slot):
            return
        a = as_array(x)
        if a is None or a.shape != slot.shape:
            got = None if a is None else a.shape
            raise ValueError(
                f"DataLoader: sample {index} has image shape {got}, the batch's first sample {slot.shape}; "
                "crop/resize to a common size or pass a collate_fn"
            )
        slot[...] = a

    def finish(self):
        """The batch: a tuple (images, field 1, ...) of arrays, or the image array alone."""
        out = [self.images if j == 0 and self._first_is_array else _gather(f) for j, f in enumerate(self._fields)]
        return tuple(out) if self._tuple else out[0]


def default_collate(samples: list):
    """Samples -> a batch of lucid Tensors (images (N, C, H, W) channels-last, labels int64)."""
    builder = BatchBuilder(len(samples))
    for k, s in enumerate(samples):
        builder.add(k, s, k)
    return to_tensors(builder.finish())


def to_tensors(batch):
    """Arrays of a collated batch -> lucid Tensors; 4-D image arrays (N, H, W, C) become
    the NCHW view of their NHWC memory."""
    if isinstance(batch, tuple):
        return tuple(to_tensors(b) for b in batch)
    if isinstance(batch, np.ndarray):
        data = batch.transpose(0, 3, 1, 2) if batch.ndim == 4 else batch
        return Tensor._wrap(data, "cpu")
    return batch

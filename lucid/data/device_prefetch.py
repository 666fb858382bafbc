"""Batches copied to the GPU ahead of use: pinned host memory, a side stream, double buffering.

``DevicePrefetcher(batches, device)`` iterates like ``batches`` (tuples of host Tensors
or arrays, as the DataLoader yields), with every field already on ``device``. On a GPU,
while the caller runs step t on the current stream, batch t+1 is copied host->device
on a side stream: the loader's batch is written into one of two pinned (page-locked)
host buffers, and the side stream copies it asynchronously (a copy from pageable memory
would make the host wait). The current stream waits on an event for the copy before
the batch is handed out, so the host never waits for the GPU. An image batch whose
memory is channels-last (NHWC under an NCHW shape, as the DataLoader yields) arrives in
the same layout, the one lucid's first convolution reads without a transpose.

Device memory is allocated on the current stream and the side stream waits for that
point before writing, so a block the memory pool hands out again is never written
while earlier kernels may still read it. A pinned buffer is refilled only after its
previous copy finished (an event query; it waits only if the copy is still running).
On the CPU it yields the batches unchanged, without reading ahead.
"""
from __future__ import annotations

from typing import Any, Iterator

import numpy as np

from lucid import _backend
from lucid.data.normalize_batch import coefficients, normalize_batch
from lucid.ops.layout import from_nhwc, is_channels_last
from lucid.tensor import Tensor

SLOTS = 2  # pinned buffers: one being copied from while the next batch is written


class _PinnedSlot:
    """Reusable page-locked host memory and the event of the copy last issued from it."""

    def __init__(self):
        self.memory = None
        self.nbytes = 0
        self.copied = None

    def arrays(self, like: list[np.ndarray], cp) -> list[np.ndarray]:
        """Pinned arrays shaped and typed like ``like``, packed in one buffer (grown when needed)."""
        sizes = [-(-a.nbytes // 256) * 256 for a in like]  # 256-byte aligned fields
        if sum(sizes) > self.nbytes:
            self.nbytes = sum(sizes)
            self.memory = cp.cuda.alloc_pinned_memory(self.nbytes)
        out, offset = [], 0
        for a, size in zip(like, sizes):
            flat = np.frombuffer(self.memory, np.uint8, a.nbytes, offset)
            out.append(flat.view(a.dtype).reshape(a.shape))
            offset += size
        return out

    def wait_free(self) -> None:
        """Block only if the last copy from this buffer is still running."""
        if self.copied is not None and not self.copied.done:
            self.copied.synchronize()


def _host_layout(a: np.ndarray) -> tuple[np.ndarray, bool]:
    """(C-contiguous host array to copy, whether it is the NHWC memory of an NCHW array)."""
    if is_channels_last(a):
        return a.transpose(0, 2, 3, 1), True  # a view: the loader's memory order
    return np.ascontiguousarray(a), False


class DevicePrefetcher:
    """Iterate ``batches`` with every field on ``device``, the next batch copied during this step.

    Args:
        batches: an iterator of tuples (or lists) of Tensors / NumPy arrays on the host;
            other fields (ints, strings) pass through.
        device: "cpu" (no read-ahead, batches unchanged) or "gpu:N".
        normalize: optional (mean, std): the first field is a uint8 image batch (a pipeline
            ending in ``ToArray(np.uint8)``, presets with ``normalize=False``), copied to
            the device as bytes and normalised there (``normalize_batch``), as timm's
            prefetcher does: a quarter of the host copy and the upload of float32 images.
    """

    def __init__(self, batches: Iterator, device: str, normalize: tuple | None = None):
        self.batches = iter(batches)
        self.device = _backend.parse_device(device)
        if normalize is not None:
            coefficients(*normalize)  # a bad mean/std fails here, not at the first batch
        self.normalize = normalize
        self._next: Any = None
        if self.device != "cpu":
            self._cp = cp = _backend.cupy_module()
            with _backend.on_device(self.device):
                self._stream = cp.cuda.Stream(non_blocking=True)
            self._slots = [_PinnedSlot() for _ in range(SLOTS)]
            self._turn = 0
            self._issue()

    def __iter__(self) -> "DevicePrefetcher":
        return self

    def __next__(self):
        if self.device == "cpu":
            return self._normalized(next(self.batches))
        if self._next is None:
            raise StopIteration
        fields, ready = self._next
        cp = self._cp
        with _backend.on_device(self.device):
            cp.cuda.get_current_stream().wait_event(ready)
            fields = self._normalized(fields)  # on the current stream, after the copy
        self._issue()
        return fields

    def _normalized(self, batch):
        """``batch`` with its first field (uint8 images) normalised, when asked for."""
        if self.normalize is None:
            return batch
        if not isinstance(batch, (tuple, list)):
            return normalize_batch(batch, *self.normalize)
        return type(batch)([normalize_batch(batch[0], *self.normalize), *batch[1:]])

    def _issue(self) -> None:
        """Start copying the loader's next batch (None when there is none)."""
        try:
            batch = next(self.batches)
        except StopIteration:
            self._next = None
            return
        with _backend.on_device(self.device):
            self._next = self._copy(batch)

    def _copy(self, batch) -> tuple:
        """(device batch, event recorded on the side stream after its copies)."""
        cp = self._cp
        single = not isinstance(batch, (tuple, list))
        fields = [batch] if single else list(batch)
        host_idx = [i for i, f in enumerate(fields) if isinstance(f, (Tensor, np.ndarray))]
        hosts, nhwc = [], []
        for i in host_idx:
            f = fields[i]
            data = f.data if isinstance(f, Tensor) else f
            if not isinstance(data, np.ndarray):
                raise TypeError(f"DevicePrefetcher: batch field {i} is already on {_backend.device_of(data)}, not the host")
            a, cl = _host_layout(data)
            hosts.append(a)
            nhwc.append(cl)
        slot = self._slots[self._turn]
        self._turn = (self._turn + 1) % SLOTS
        slot.wait_free()
        pinned = slot.arrays(hosts, cp)
        for dst, src in zip(pinned, hosts):
            np.copyto(dst, src)
        devs = [cp.empty(a.shape, a.dtype) for a in hosts]  # on the current stream's memory
        allocated = cp.cuda.get_current_stream().record()
        self._stream.wait_event(allocated)
        for dst, src in zip(devs, pinned):
            dst.set(src, stream=self._stream)
        slot.copied = self._stream.record()
        for i, d, cl in zip(host_idx, devs, nhwc):
            d = from_nhwc(d) if cl else d
            fields[i] = Tensor._wrap(d, self.device) if isinstance(fields[i], Tensor) else d
        return (fields[0] if single else type(batch)(fields)), slot.copied

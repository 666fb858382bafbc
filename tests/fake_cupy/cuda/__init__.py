"""``cupy.cuda``: devices (thread-local current one), streams, events, pinned host memory."""
from __future__ import annotations

import ctypes

import numpy as np

from fake_cupy import _core
from fake_cupy._core import MemoryPointer
from fake_cupy.cuda import nccl, runtime


class Device:
    """A GPU; ``with Device(i):`` makes it current for this thread."""

    def __init__(self, device=None):
        self.id = _core.current_device() if device is None else int(device)
        self._prev: list[int] = []

    def use(self) -> None:
        runtime._check_id(self.id)
        _core.set_current_device(self.id)

    def __enter__(self):
        runtime._check_id(self.id)
        self._prev.append(_core.current_device())
        _core.set_current_device(self.id)
        return self

    def __exit__(self, *exc):
        _core.set_current_device(self._prev.pop())

    def synchronize(self) -> None:
        _core.sync()

    @property
    def compute_capability(self) -> str:
        return "80"

    def __eq__(self, other):
        return isinstance(other, Device) and other.id == self.id

    def __hash__(self):
        return hash(self.id)

    def __repr__(self):
        return f"<CUDA Device {self.id}>"


class Event:
    def __init__(self, block=False, disable_timing=False, interprocess=False):
        self.done = True

    def record(self, stream=None) -> None:
        self.done = True

    def synchronize(self) -> None:
        _core.sync()


_streams: dict = {}
_next_ptr = [1]


class Stream:
    """Work in the fake runs at once; a stream only orders it and counts syncs."""

    def __init__(self, null=False, non_blocking=False, ptds=False, priority=None):
        self.ptr = 0 if null else _next_ptr[0]
        _next_ptr[0] += 0 if null else 1
        self._prev: list = []

    done = property(lambda self: True)

    def __enter__(self):
        self._prev.append(get_current_stream())
        _streams[_core.current_device()] = self
        return self

    def __exit__(self, *exc):
        _streams[_core.current_device()] = self._prev.pop()

    def use(self):
        _streams[_core.current_device()] = self
        return self

    def synchronize(self) -> None:
        _core.sync()

    def record(self, event=None) -> Event:
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event) -> None:
        pass


Stream.null = Stream(null=True)


def get_current_stream(device_id=-1):
    return _streams.get(_core.current_device() if device_id == -1 else device_id, Stream.null)


_pinned: list = []


def alloc_pinned_memory(size: int):
    """Page-locked host memory (plain memory remembered as pinned) with the buffer protocol and ``ptr``."""
    size = int(size)

    class PinnedMemoryPointer(ctypes.c_uint8 * size):
        pass

    mem = PinnedMemoryPointer()
    mem.ptr = ctypes.addressof(mem)
    mem.size = size
    _pinned.append((mem.ptr, size))
    return mem


def _is_pinned(a: np.ndarray) -> bool:
    p = a.__array_interface__["data"][0]
    return any(start <= p < start + n for start, n in _pinned)


def get_device_id() -> int:
    return _core.current_device()

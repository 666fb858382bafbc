"""Switch lucid onto the fake CuPy device (``tests/fake_cupy``) and read its counters."""
from __future__ import annotations

import contextlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import fake_cupy
from fake_cupy import _core

from lucid import _backend
from lucid.ops import device_asserts

STATS = _core.STATS


def install(process_wide: bool = False):
    """Make lucid's "gpu" devices the fake ones; returns the previous module.

    ``process_wide`` also makes ``import cupy`` / ``from cupy.cuda import nccl`` find the
    fake (MPI test scripts; the pytest process keeps the real wheel for the API check).
    """
    if process_wide:
        sys.modules.update({"cupy": fake_cupy, "cupy.cuda": fake_cupy.cuda, "cupy.cuda.nccl": fake_cupy.cuda.nccl,
                            "cupy.random": fake_cupy.random})
    return _backend.use_cupy(fake_cupy)


@contextlib.contextmanager
def installed(devices: int = 2):
    """The fake device in use (``devices`` GPUs, 0 = none) for the duration of the block."""
    prev_count = _core.DEVICE_COUNT[0]
    _core.DEVICE_COUNT[0] = devices
    prev = install()
    _core.set_current_device(0)
    try:
        yield fake_cupy
    finally:
        try:  # GPU checks still pending are read while their device exists
            device_asserts.raise_pending()
        finally:
            _backend.use_cupy(prev)
        _core.DEVICE_COUNT[0] = prev_count

"""``cupy.fuse``, honestly: the function runs on NumPy values, counted as one launch."""
from __future__ import annotations

import functools

import numpy as np

from fake_cupy._core import STATS, check_devices, ndarray, unwrap, wrap


def fuse(*args, **kwargs):
    """Decorator: calls the Python function on NumPy values; one kernel per call."""

    def deco(fn):
        @functools.wraps(fn)
        def run(*a):
            devices: set = set()
            vals = [unwrap(x, devices) for x in a]
            check_devices(devices)
            before = STATS.kernels
            res = fn(*[wrap(v) if isinstance(v, np.ndarray) else v for v in vals])
            STATS.kernels = before + 1
            return res if isinstance(res, ndarray) else wrap(res)

        return run

    if len(args) == 1 and callable(args[0]) and not kwargs:
        return deco(args[0])
    return deco

"""Deferred checks of values that live on a GPU (CUDA's device-side asserts, with lucid's messages).

Checking a device value on the spot (``if int(xp.count_nonzero(bad)): raise``) makes the
host wait for the GPU: once per cross-entropy call, i.e. once per training step. An op
on a GPU instead records the count of offending elements with its message, makes its
result NaN where the input is bad (so a training step that uses it is skipped as
non-finite and never applied), and returns at once. The pending checks are read in
one transfer per device when the user reads a tensor (``Tensor.item()``, ``numpy()``,
``tolist()``), when the Trainer logs or skips a step, and at the latest every
``LIMIT`` checks; a failed one raises its message then. On the CPU ops check at once.
"""
from __future__ import annotations

import threading

from lucid import _backend

LIMIT = 64  # pending checks kept before they are read (one transfer)

_local = threading.local()


def _pending() -> list:
    if not hasattr(_local, "checks"):
        _local.checks = []
    return _local.checks


def defer(count, error: type[Exception], message: str) -> None:
    """Raise ``error(message)`` later, when the 0-d device integer ``count`` turns out non-zero."""
    checks = _pending()
    checks.append((count, error, message))
    if len(checks) >= LIMIT:
        raise_pending()


def pending() -> int:
    """How many checks wait to be read (0: reading a tensor costs no extra transfer)."""
    return len(_pending())


def raise_pending() -> None:
    """Read every pending check (one device->host transfer per device); raise the first that failed."""
    checks = _pending()
    if not checks:
        return
    _local.checks = []
    by_device: dict[str, list] = {}
    for check in checks:
        by_device.setdefault(_backend.device_of(check[0]), []).append(check)
    for device, group in by_device.items():
        with _backend.on_device(device):
            xp = _backend.get_array_module(device)
            counts = _backend.asnumpy(xp.stack([c for c, _, _ in group]))
        for n, (_, error, message) in zip(counts, group):
            if n:
                raise error(message)

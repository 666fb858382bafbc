"""``run.amp``: the autocast region and GradScaler of a run (lucid.amp).

"fp16" runs the forward pass and the loss under ``autocast`` in float16 with dynamic
loss scaling; "bf16" needs an array library with a bfloat16 dtype (NumPy and CuPy have
none: an error naming the value says so); "none" gives a no-op region and a disabled
scaler, so the Trainer's loop is the same in every case.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Callable

import numpy as np

from lucid.amp import GradScaler, autocast, low_precision_dtype


def build_amp(amp: str, device: str) -> tuple[Callable[[], AbstractContextManager], GradScaler]:
    """(a factory of the forward's autocast region, the GradScaler) for ``run.amp`` on ``device``."""
    if amp == "none":
        return nullcontext, GradScaler(enabled=False)
    device_type = "cpu" if device == "cpu" else "gpu"
    try:
        dtype = low_precision_dtype(amp, device_type)
    except TypeError as exc:
        raise ValueError(f"run.amp = {amp!r}: {exc}") from None
    # bfloat16 has float32's range: no loss scaling needed (as in PyTorch)
    return (lambda: autocast(device_type, dtype)), GradScaler(enabled=dtype == np.float16)

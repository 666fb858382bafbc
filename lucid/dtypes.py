"""Data types: NumPy dtypes under PyTorch's names (lucid.float32, ...)."""
from __future__ import annotations

from typing import Any

import numpy as np

float16 = half = np.dtype("float16")
float32 = float = np.dtype("float32")
float64 = double = np.dtype("float64")
int8 = np.dtype("int8")
uint8 = np.dtype("uint8")
int32 = np.dtype("int32")
int64 = long = np.dtype("int64")
bool_ = np.dtype("bool")

FLOAT_DTYPES = (float16, float32, float64)
DEFAULT_FLOAT = float32


def resolve_dtype(dtype: Any) -> np.dtype | None:
    """Turn a dtype spec (np.dtype, type, "float32") into a NumPy dtype; None stays None."""
    if dtype is None:
        return None
    try:
        return np.dtype(dtype)
    except TypeError as exc:
        raise TypeError(f"unknown dtype {dtype!r}; use e.g. lucid.float32, 'float64', 'int64'") from exc


def is_floating(dtype: np.dtype) -> bool:
    return np.issubdtype(dtype, np.floating)

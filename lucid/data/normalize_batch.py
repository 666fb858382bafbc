"""Normalising a whole batch of uint8 images at once: where ``ToArray(dtype=np.uint8)`` left off.

A pipeline that ends in ``ToArray(np.uint8)`` (presets with ``normalize=False``) yields
uint8 batches: a quarter of the bytes to write per sample, to copy into pinned memory and
to send to a GPU. ``normalize_batch`` then does Normalize's ``(x / 255 - mean) / std`` on
the batch, on whichever device holds it, with the same float32 coefficients and operations
as the fused per-sample pass, so the result is bit for bit what ``normalize=True`` gives.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lucid import _backend
from lucid.data.transforms.array import Normalize
from lucid.ops.blocked import map_row_blocks
from lucid.tensor import Tensor


def coefficients(mean: Sequence[float], std: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 (scale, bias) of ``x * scale + bias`` for uint8 ``x``: Normalize's
    own affine map with 1/255 folded into the scale, as the fused ToArray + Normalize pass
    computes them (``ArrayStage._coefficients``)."""
    norm = Normalize(mean, std)  # checks the lengths and std > 0
    scale, bias = norm.affine(len(norm.mean), None)
    return ((1.0 / 255.0) * scale).astype(np.float32), bias.astype(np.float32)


def normalize_batch(images, mean: Sequence[float], std: Sequence[float]):
    """float32 ``(images / 255 - mean) / std`` of a uint8 batch, per channel (the last axis of
    the memory: (N, H, W, C) arrays, or the (N, C, H, W) Tensors of NHWC memory the DataLoader
    yields). NumPy or CuPy arrays and lucid Tensors; the result is of the same kind, on the
    same device and in the same memory layout."""
    tensor = isinstance(images, Tensor)
    data = images.data if tensor else images
    if data.dtype != np.uint8:
        raise TypeError(f"normalize_batch: expected uint8 images, got {data.dtype}")
    hwc = data.transpose(0, 2, 3, 1) if tensor and data.ndim == 4 else data  # NHWC memory of an NCHW Tensor
    scale, bias = coefficients(mean, std)
    if hwc.shape[-1] != scale.size:
        raise ValueError(f"normalize_batch: {scale.size} mean/std values for images of {hwc.shape[-1]} channel(s)")
    xp = _backend.get_array_module(hwc)
    if xp is np:
        out = _normalize_rows(hwc, scale, bias)
    else:  # one elementwise pass each on the device
        out = hwc * xp.asarray(scale)
        out += xp.asarray(bias)
    if not tensor:
        return out
    return Tensor._wrap(out.transpose(0, 3, 1, 2) if data.ndim == 4 else out, images.device)


def _normalize_rows(hwc: np.ndarray, scale: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """The NumPy pass in cache-sized blocks of rows on lucid's threads: over a whole batch at
    once (19 MB for 32 images at 224) each of the two passes would go out to memory."""
    src = np.ascontiguousarray(hwc)
    out = np.empty(src.shape, np.float32)
    width = src.shape[-2] * src.shape[-1] if src.ndim >= 2 else src.shape[-1]
    rows_in, rows_out = src.reshape(-1, width), out.reshape(-1, width)
    scale_row, bias_row = np.tile(scale, width // scale.size), np.tile(bias, width // bias.size)

    def block(a: int, b: int) -> None:
        np.multiply(rows_in[a:b], scale_row, out=rows_out[a:b])  # uint8 * float32: the cast inside the pass
        rows_out[a:b] += bias_row

    map_row_blocks(block, rows_in.shape[0], width * 4)
    return out

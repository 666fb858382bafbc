"""RandomErasing on float HWC arrays, after normalisation (torchvision's semantics).

With probability ``p`` a rectangle of area fraction ``scale`` and aspect ratio
(height / width) ``ratio``, log-uniform, is drawn with up to 10 tries as in
torchvision.transforms.RandomErasing (``h = round(sqrt(area * ratio))``,
``w = round(sqrt(area / ratio))``, accepted when ``h < H`` and ``w < W``, otherwise
the image is left as it is) and filled with ``value``: a number, one number per channel,
or "random" for independent standard-normal values per pixel and channel (the
normalised image's scale, torchvision's ``value="random"``).

``apply_`` erases in place: after ToArray/Normalize, Compose calls it on the sample's
slot of the batch, so the sample is still written only once.
"""
from __future__ import annotations

import math

import numpy as np

from lucid.data.seeding import fallback_generator
from lucid.data.transforms.base import Transform
from lucid.tensor import Tensor


def _range(value, name: str) -> tuple[float, float]:
    lo, hi = (float(v) for v in value)
    if not 0 <= lo <= hi:
        raise ValueError(f"RandomErasing: {name} must be (low, high) with 0 <= low <= high, got {value}")
    return lo, hi


class RandomErasing(Transform):
    """Erase a random rectangle of a float HWC array.

    Args:
        p: probability of erasing.
        scale: range of the erased area as a fraction of the image's (within [0, 1]).
        ratio: range of the rectangle's aspect ratio (height / width).
        value: the fill: a number, a list with one number per channel, or "random".
        inplace: modify the given array (otherwise a copy is erased).
    """

    def __init__(self, p: float = 0.5, scale=(0.02, 0.33), ratio=(0.3, 3.3), value=0.0, inplace: bool = False):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"RandomErasing: p must be in [0, 1], got {p}")
        self.p = float(p)
        self.scale = _range(scale, "scale")
        if self.scale[1] > 1.0:
            raise ValueError(f"RandomErasing: scale must lie within [0, 1], got {scale}")
        self.ratio = _range(ratio, "ratio")
        if self.ratio[0] <= 0:
            raise ValueError(f"RandomErasing: ratio must be > 0, got {ratio}")
        if isinstance(value, str):
            if value != "random":
                raise ValueError(f"RandomErasing: value must be a number, a list of numbers or 'random', got {value!r}")
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            value = float(value)
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, (int, float)) for v in value):
            value = tuple(float(v) for v in value)
        else:
            raise ValueError(f"RandomErasing: value must be a number, a list of numbers or 'random', got {value!r}")
        self.value = value
        self.inplace = bool(inplace)

    def get_params(self, height: int, width: int, channels: int, rng) -> tuple[int, int, int, int, np.ndarray | None]:
        """(top, left, h, w, fill) of the rectangle, fill broadcastable to (h, w, C); or
        h = w = 0 when no try fits."""
        area = height * width
        log_ratio = (math.log(self.ratio[0]), math.log(self.ratio[1]))
        for _ in range(10):
            erase_area = area * rng.uniform(self.scale[0], self.scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            h = int(round(math.sqrt(erase_area * aspect)))
            w = int(round(math.sqrt(erase_area / aspect)))
            if not (h < height and w < width):
                continue
            if self.value == "random":
                fill = rng.standard_normal((h, w, channels))
            else:
                fill = np.asarray(self.value if isinstance(self.value, tuple) else (self.value,))
                if fill.size not in (1, channels):
                    raise ValueError(f"RandomErasing: value has {fill.size} numbers but the image has {channels} channel(s)")
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w, fill
        return 0, 0, 0, 0, None

    def apply_(self, arr, rng):
        """Erase in place and return ``arr``: a float HWC array, or the (C, H, W) Tensor
        ToTensor makes (erased through its HWC memory)."""
        if isinstance(arr, Tensor):
            self.apply_(arr.data.transpose(1, 2, 0), rng)
            return arr
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"RandomErasing: expected a float HWC array (after ToArray), got {arr.dtype} {arr.shape}")
        if rng.random() < self.p:
            top, left, h, w, fill = self.get_params(*arr.shape, rng)
            if h:
                arr[top : top + h, left : left + w, :] = fill
        return arr

    def __call__(self, arr, rng=None):
        if isinstance(arr, Tensor):
            arr = arr if self.inplace else Tensor._wrap(arr.data.transpose(1, 2, 0).copy().transpose(2, 0, 1), arr.device)
            return self.apply_(arr, rng if rng is not None else fallback_generator())
        arr = np.asarray(arr)
        return self.apply_(arr if self.inplace else arr.copy(), rng if rng is not None else fallback_generator())

"""RandAugment and TrivialAugmentWide on Pillow images (torchvision's op sets, ranges, signs).

Each op has a table of ``num_magnitude_bins`` magnitudes (float32, as torchvision's
tables) and a flag for whether it is signed: a signed op negates its magnitude with
probability 1/2. Every draw comes from the sample's generator, so the result is a function of (seed, epoch,
index) like the other augmentations. The ops themselves are in augment_ops.py.
"""
from __future__ import annotations

import numpy as np

from lucid.data.image import materialize
from lucid.data.seeding import fallback_generator
from lucid.data.transforms.augment_ops import apply_op, fill_color, resample_filter
from lucid.data.transforms.base import Transform


def linspace32(start: float, end: float, steps: int) -> np.ndarray:
    """``steps`` evenly spaced values from ``start`` to ``end``, rounded to float32 (the dtype
    of torchvision's tables; torch.linspace's own float32 arithmetic may differ by one ulp)."""
    return np.linspace(start, end, steps).astype(np.float32)


def _posterize_bits(num_bins: int, spread: int) -> np.ndarray:
    """``8 - round(arange(bins) / ((bins - 1) / spread))``: 8 bits down to ``8 - spread``."""
    ratio = np.arange(num_bins, dtype=np.float32) / np.float32((num_bins - 1) / spread)
    return 8 - np.round(ratio).astype(np.int64)


def rand_augment_space(num_bins: int, height: int, width: int) -> dict[str, tuple[np.ndarray | None, bool]]:
    """RandAugment's ops: name -> (magnitudes by bin or None, signed)."""
    return {
        "Identity": (None, False),
        "ShearX": (linspace32(0.0, 0.3, num_bins), True),
        "ShearY": (linspace32(0.0, 0.3, num_bins), True),
        "TranslateX": (linspace32(0.0, 150.0 / 331.0 * width, num_bins), True),
        "TranslateY": (linspace32(0.0, 150.0 / 331.0 * height, num_bins), True),
        "Rotate": (linspace32(0.0, 30.0, num_bins), True),
        "Brightness": (linspace32(0.0, 0.9, num_bins), True),
        "Color": (linspace32(0.0, 0.9, num_bins), True),
        "Contrast": (linspace32(0.0, 0.9, num_bins), True),
        "Sharpness": (linspace32(0.0, 0.9, num_bins), True),
        "Posterize": (_posterize_bits(num_bins, 4), False),
        "Solarize": (linspace32(255.0, 0.0, num_bins), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }


def trivial_augment_space(num_bins: int) -> dict[str, tuple[np.ndarray | None, bool]]:
    """TrivialAugmentWide's ops ("wide" ranges): name -> (magnitudes by bin or None, signed)."""
    return {
        "Identity": (None, False),
        "ShearX": (linspace32(0.0, 0.99, num_bins), True),
        "ShearY": (linspace32(0.0, 0.99, num_bins), True),
        "TranslateX": (linspace32(0.0, 32.0, num_bins), True),
        "TranslateY": (linspace32(0.0, 32.0, num_bins), True),
        "Rotate": (linspace32(0.0, 135.0, num_bins), True),
        "Brightness": (linspace32(0.0, 0.99, num_bins), True),
        "Color": (linspace32(0.0, 0.99, num_bins), True),
        "Contrast": (linspace32(0.0, 0.99, num_bins), True),
        "Sharpness": (linspace32(0.0, 0.99, num_bins), True),
        "Posterize": (_posterize_bits(num_bins, 6), False),
        "Solarize": (linspace32(255.0, 0.0, num_bins), False),
        "AutoContrast": (None, False),
        "Equalize": (None, False),
    }


def _signed(magnitude: float, signed: bool, rng) -> float:
    return -magnitude if signed and rng.integers(2) else magnitude


class _PolicyTransform(Transform):
    """Shared argument checks and the sample's image handling."""

    def __init__(self, num_magnitude_bins: int, interpolation: str, fill):
        if num_magnitude_bins < 2:
            raise ValueError(f"{type(self).__name__}: num_magnitude_bins must be >= 2, got {num_magnitude_bins}")
        self.num_magnitude_bins = int(num_magnitude_bins)
        resample_filter(interpolation, type(self).__name__)
        self.interpolation = interpolation
        self.fill = fill

    def _image(self, img):
        img = materialize(img)
        fill_color(self.fill, img)  # a fill that does not fit the image's bands fails here, by name
        return img


class RandAugment(_PolicyTransform):
    """``num_ops`` ops drawn uniformly (with repetition) from RandAugment's 14, each at
    bin ``magnitude`` of ``num_magnitude_bins`` (torchvision.transforms.RandAugment).

    Args:
        num_ops: ops applied in sequence.
        magnitude: the magnitude bin, ``0 <= magnitude < num_magnitude_bins``.
        num_magnitude_bins: bins of each op's magnitude range.
        interpolation: "nearest" (default), "bilinear" or "bicubic" for the geometric ops.
        fill: value of pixels the geometric ops uncover (None: 0; a number or one per band).
    """

    def __init__(self, num_ops: int = 2, magnitude: int = 9, num_magnitude_bins: int = 31,
                 interpolation: str = "nearest", fill=None):
        super().__init__(num_magnitude_bins, interpolation, fill)
        if num_ops < 0:
            raise ValueError(f"RandAugment: num_ops must be >= 0, got {num_ops}")
        if not 0 <= magnitude < num_magnitude_bins:
            raise ValueError(f"RandAugment: magnitude must be in [0, {num_magnitude_bins - 1}], got {magnitude}")
        self.num_ops = int(num_ops)
        self.magnitude = int(magnitude)

    def __call__(self, img, rng=None):
        rng = rng if rng is not None else fallback_generator()
        img = self._image(img)
        space = rand_augment_space(self.num_magnitude_bins, img.size[1], img.size[0])
        names = list(space)
        for _ in range(self.num_ops):
            name = names[int(rng.integers(len(names)))]
            magnitudes, signed = space[name]
            magnitude = float(magnitudes[self.magnitude]) if magnitudes is not None else 0.0
            img = apply_op(img, name, _signed(magnitude, signed, rng), self.interpolation, self.fill)
        return img


class TrivialAugmentWide(_PolicyTransform):
    """One op drawn uniformly from TrivialAugmentWide's 14 at a uniformly drawn magnitude
    bin (torchvision.transforms.TrivialAugmentWide).

    Args:
        num_magnitude_bins: bins of each op's magnitude range.
        interpolation: "nearest" (default), "bilinear" or "bicubic" for the geometric ops.
        fill: value of pixels the geometric ops uncover (None: 0; a number or one per band).
    """

    def __init__(self, num_magnitude_bins: int = 31, interpolation: str = "nearest", fill=None):
        super().__init__(num_magnitude_bins, interpolation, fill)

    def __call__(self, img, rng=None):
        rng = rng if rng is not None else fallback_generator()
        img = self._image(img)
        space = trivial_augment_space(self.num_magnitude_bins)
        names = list(space)
        name = names[int(rng.integers(len(names)))]
        magnitudes, signed = space[name]
        magnitude = float(magnitudes[int(rng.integers(len(magnitudes)))]) if magnitudes is not None else 0.0
        return apply_op(img, name, _signed(magnitude, signed, rng), self.interpolation, self.fill)

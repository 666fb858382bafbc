"""Colour transforms on Pillow images: Grayscale and ColorJitter."""
from __future__ import annotations

from PIL import ImageEnhance

from lucid.data.image import PendingImage, materialize, to_mode
from lucid.data.seeding import fallback_generator
from lucid.data.transforms.base import Transform


class Grayscale(Transform):
    """Convert to grey: ``num_output_channels=1`` keeps one channel (mode "L"), 3
    repeats it (mode "RGB"). Its ``input_mode`` is "L", so ImageFolder decodes the file
    straight to grey when this transform comes before any colour transform."""

    input_mode = "L"
    accepts_pending = True  # a one-channel result can still be decoded later, in draft mode

    def __init__(self, num_output_channels: int = 1):
        if num_output_channels not in (1, 3):
            raise ValueError(f"Grayscale: num_output_channels must be 1 or 3, got {num_output_channels}")
        self.num_output_channels = num_output_channels

    def __call__(self, img, rng=None):
        if isinstance(img, PendingImage) and self.num_output_channels == 1:
            img.mode = "L"  # decode straight to grey when the pixels are needed
            return img
        img = to_mode(materialize(img), "L")
        return img if self.num_output_channels == 1 else img.convert("RGB")


def _factor_range(value, name: str) -> tuple[float, float]:
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"ColorJitter: {name} must be >= 0, got {value}")
        return max(0.0, 1.0 - value), 1.0 + value
    lo, hi = value
    if not 0 <= lo <= hi:
        raise ValueError(f"ColorJitter: {name} range must satisfy 0 <= low <= high, got {value}")
    return float(lo), float(hi)


class ColorJitter(Transform):
    """Random brightness, contrast and saturation, applied in a random order.

    Args:
        brightness, contrast, saturation: ``v`` draws a factor from
            ``[max(0, 1 - v), 1 + v]``; a pair gives the range itself; 0 disables.
    """

    def __init__(self, brightness=0.0, contrast=0.0, saturation=0.0):
        self.brightness = _factor_range(brightness, "brightness")
        self.contrast = _factor_range(contrast, "contrast")
        self.saturation = _factor_range(saturation, "saturation")

    @property
    def input_mode(self) -> str | None:
        """Saturation works on colour: decode in RGB when it is on."""
        return "RGB" if self.saturation != (1.0, 1.0) else None

    def __call__(self, img, rng=None):
        rng = rng if rng is not None else fallback_generator()
        img = materialize(img)
        enhancers = (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color)
        ranges = (self.brightness, self.contrast, self.saturation)
        factors = [rng.uniform(lo, hi) for lo, hi in ranges]  # always three draws
        for k in rng.permutation(3):
            if ranges[k] != (1.0, 1.0):
                img = enhancers[k](img).enhance(factors[k])
        return img

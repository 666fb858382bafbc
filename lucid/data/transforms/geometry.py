"""Geometric transforms, planned before decoding and fused into one crop+resize.

Each geometric transform maps a ``Geometry`` (which region of the source image ends
up at which output size, and whether it is mirrored) to a new one without touching
pixels. A run of them is executed once: decode (in JPEG draft mode when the region
is downscaled by >= 2, and only down to the region's last row when the JPEG is
sequential), one ``Image.resize(box=...)`` (or a plain crop), one flip.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image

from lucid.data.image import PendingImage
from lucid.data.seeding import fallback_generator
from lucid.data.transforms.base import Transform

_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
    "lanczos": Image.Resampling.LANCZOS,
}
INTERPOLATIONS = (*_FILTERS, "area")
# how far (in input pixels, times the downscale factor) each Pillow filter reads past a region
_SUPPORT = {
    Image.Resampling.NEAREST: 0.5,
    Image.Resampling.BOX: 0.5,
    Image.Resampling.BILINEAR: 1.0,
    Image.Resampling.HAMMING: 1.0,
    Image.Resampling.BICUBIC: 2.0,
    Image.Resampling.LANCZOS: 3.0,
}
_EPS = 1e-6


def check_interpolation(name: str) -> str:
    if name not in INTERPOLATIONS:
        raise ValueError(f"unknown interpolation {name!r}; choose one of {', '.join(INTERPOLATIONS)}")
    return name


def resolve_filter(name: str, box_size, out_size) -> int:
    """Pillow filter for ``name``; "area" is the box (area-average) filter when both
    axes shrink or keep their size and bilinear when one is enlarged."""
    if name == "area":
        shrinks = box_size[0] >= out_size[0] - _EPS and box_size[1] >= out_size[1] - _EPS
        return _FILTERS["box" if shrinks else "bilinear"]
    return _FILTERS[name]


def _pair(size, what: str) -> tuple[int, int]:
    """(height, width) from an int or a pair, as torchvision's size arguments."""
    if isinstance(size, int):
        size = (size, size)
    if len(size) != 2 or min(size) <= 0:
        raise ValueError(f"{what}: size must be a positive int or (height, width), got {size!r}")
    return int(size[0]), int(size[1])


@dataclass(frozen=True)
class Geometry:
    """Region ``box`` = (x0, y0, x1, y1) of the source (in source pixels) shown at output
    ``size`` = (width, height), mirrored left-right when ``flip``."""

    box: tuple
    size: tuple
    flip: bool = False
    interpolation: str = "bilinear"

    @classmethod
    def identity(cls, size) -> "Geometry":
        w, h = size
        return cls((0.0, 0.0, float(w), float(h)), (int(w), int(h)))

    def crop(self, left: float, top: float, width: int, height: int) -> "Geometry":
        """Crop in the coordinates of the current output (as seen, after any flip)."""
        w, h = self.size
        if self.flip:
            left = w - left - width
        x0, y0, x1, y1 = self.box
        sx, sy = (x1 - x0) / w, (y1 - y0) / h
        box = (x0 + left * sx, y0 + top * sy, x0 + (left + width) * sx, y0 + (top + height) * sy)
        return Geometry(box, (int(width), int(height)), self.flip, self.interpolation)

    # plain constructor calls: dataclasses.replace costs several times more per sample
    def resize(self, width: int, height: int, interpolation: str) -> "Geometry":
        return Geometry(self.box, (int(width), int(height)), self.flip, interpolation)

    def mirrored(self) -> "Geometry":
        return Geometry(self.box, self.size, not self.flip, self.interpolation)

    def _source_box(self, factor: float) -> tuple:
        """The region in an image decoded at ``1/factor`` of the source's size, and
        its rounding when it is a plain crop (integral, output size unchanged) else None."""
        box = tuple(v / factor for v in self.box)
        rounded = tuple(round(v) for v in box)
        integral = all(abs(v - r) < 1e-4 for v, r in zip(box, rounded))
        plain = integral and (rounded[2] - rounded[0], rounded[3] - rounded[1]) == self.size
        return box, rounded if plain else None

    def rows_needed(self, factor: float, height: int) -> int:
        """How many top rows of the image (decoded at ``1/factor``, ``height`` rows)
        ``apply`` reads: the region's bottom plus the resampling filter's reach."""
        box, crop = self._source_box(factor)
        if crop is not None:
            bottom = crop[3]
        else:
            scale = max((box[3] - box[1]) / self.size[1], 1.0)
            support = _SUPPORT[resolve_filter(self.interpolation, (box[2] - box[0], box[3] - box[1]), self.size)]
            bottom = math.ceil(box[3] + support * scale) + 1
        return max(1, min(height, bottom))

    def apply(self, img: Image.Image, factor: float = 1.0) -> Image.Image:
        """Execute on ``img``, decoded at ``1/factor`` of the source's size."""
        box, crop = self._source_box(factor)
        out_w, out_h = self.size
        W, H = img.size
        if crop is not None:
            out = img if crop == (0, 0, W, H) else img.crop(crop)  # crop fills outside with 0
        else:
            bw, bh = box[2] - box[0], box[3] - box[1]
            resample = resolve_filter(self.interpolation, (bw, bh), (out_w, out_h))
            if box[0] > -_EPS and box[1] > -_EPS and box[2] < W + _EPS and box[3] < H + _EPS:
                inside = (max(box[0], 0.0), max(box[1], 0.0), min(box[2], W), min(box[3], H))
                out = img.resize((out_w, out_h), resample, box=inside)
            else:  # region reaches outside the image: zero padding, then resample
                hull = (math.floor(box[0]), math.floor(box[1]), math.ceil(box[2]), math.ceil(box[3]))
                rel = (box[0] - hull[0], box[1] - hull[1], box[2] - hull[0], box[3] - hull[1])
                out = img.crop(hull).resize((out_w, out_h), resample, box=rel)
        return out.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if self.flip else out


class GeometricTransform(Transform):
    """A transform that maps a Geometry to a new one (``plan``); calling it alone runs
    a one-transform GeometryStage."""

    accepts_pending = True

    def plan(self, geom: Geometry, rng) -> Geometry:  # pragma: no cover - interface
        raise NotImplementedError

    def __call__(self, img, rng=None):
        return GeometryStage([self])(img, rng if rng is not None else fallback_generator())


class GeometryStage(Transform):
    """Consecutive geometric transforms executed as one decode + crop/resize + flip."""

    accepts_pending = True

    def __init__(self, transforms: list):
        self.transforms = transforms

    def __call__(self, img, rng):
        geom = Geometry.identity(img.size)
        for t in self.transforms:
            geom = t.plan(geom, rng)
        factor = 1.0
        if isinstance(img, PendingImage):
            img, factor = img.load(geom.box, geom.size, geom.rows_needed)
        return geom.apply(img, factor)


class RandomResizedCrop(GeometricTransform):
    """Crop a random region (area fraction in ``scale``, aspect ratio in ``ratio``, log-
    uniform) and resize it to ``size``; torchvision's algorithm and fallback.

    Args:
        size: output (height, width), or an int for a square.
        scale: range of the crop's area as a fraction of the image's.
        ratio: range of the crop's width/height.
        interpolation: "bilinear" (default), "area", "bicubic", "nearest", "box", ...
    """

    def __init__(self, size, scale=(0.08, 1.0), ratio=(3 / 4, 4 / 3), interpolation: str = "bilinear"):
        self.size = _pair(size, "RandomResizedCrop")
        if not 0 < scale[0] <= scale[1] or not 0 < ratio[0] <= ratio[1]:
            raise ValueError(f"RandomResizedCrop: need 0 < scale[0] <= scale[1] and 0 < ratio[0] <= ratio[1], got {scale}, {ratio}")
        self.scale = tuple(scale)
        self.ratio = tuple(ratio)
        self.interpolation = check_interpolation(interpolation)

    @staticmethod
    def get_params(width: int, height: int, scale, ratio, rng) -> tuple[int, int, int, int]:
        """(left, top, crop_width, crop_height) for an image of the given size."""
        area = width * height
        log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
        for _ in range(10):
            target_area = area * rng.uniform(scale[0], scale[1])
            aspect = math.exp(rng.uniform(log_ratio[0], log_ratio[1]))
            w = int(round(math.sqrt(target_area * aspect)))
            h = int(round(math.sqrt(target_area / aspect)))
            if 0 < w <= width and 0 < h <= height:
                top = int(rng.integers(0, height - h + 1))
                left = int(rng.integers(0, width - w + 1))
                return left, top, w, h
        in_ratio = width / height  # fallback: the central crop with the closest ratio
        if in_ratio < ratio[0]:
            w, h = width, int(round(width / ratio[0]))
        elif in_ratio > ratio[1]:
            w, h = int(round(height * ratio[1])), height
        else:
            w, h = width, height
        return (width - w) // 2, (height - h) // 2, w, h

    def plan(self, geom: Geometry, rng) -> Geometry:
        left, top, w, h = self.get_params(geom.size[0], geom.size[1], self.scale, self.ratio, rng)
        return geom.crop(left, top, w, h).resize(self.size[1], self.size[0], self.interpolation)


class Resize(GeometricTransform):
    """Resize to ``size``: an int matches the shorter side (aspect kept, the longer side
    truncated as torchvision does), a pair is (height, width)."""

    def __init__(self, size, interpolation: str = "bilinear"):
        if isinstance(size, int):
            if size <= 0:
                raise ValueError(f"Resize: size must be positive, got {size}")
            self.size = size
        else:
            self.size = _pair(size, "Resize")
        self.interpolation = check_interpolation(interpolation)

    def output_size(self, width: int, height: int) -> tuple[int, int]:
        if not isinstance(self.size, int):
            return self.size[1], self.size[0]
        if width <= height:
            return self.size, int(self.size * height / width)
        return int(self.size * width / height), self.size

    def plan(self, geom: Geometry, rng) -> Geometry:
        return geom.resize(*self.output_size(*geom.size), self.interpolation)


class CenterCrop(GeometricTransform):
    """Crop the centre ``size`` (zero padding where the image is smaller)."""

    def __init__(self, size):
        self.size = _pair(size, "CenterCrop")

    def plan(self, geom: Geometry, rng) -> Geometry:
        w, h = geom.size
        ch, cw = self.size
        return geom.crop(int(round((w - cw) / 2.0)), int(round((h - ch) / 2.0)), cw, ch)


class RandomCrop(GeometricTransform):
    """Crop a random ``size`` window after zero-padding each border by ``padding``."""

    def __init__(self, size, padding: int = 0):
        self.size = _pair(size, "RandomCrop")
        if padding < 0:
            raise ValueError(f"RandomCrop: padding must be >= 0, got {padding}")
        self.padding = int(padding)

    def plan(self, geom: Geometry, rng) -> Geometry:
        w, h = geom.size
        ch, cw = self.size
        p = self.padding
        if cw > w + 2 * p or ch > h + 2 * p:
            raise ValueError(f"RandomCrop: crop {ch}x{cw} is larger than the padded image {h + 2 * p}x{w + 2 * p}")
        top = int(rng.integers(0, h + 2 * p - ch + 1)) - p
        left = int(rng.integers(0, w + 2 * p - cw + 1)) - p
        return geom.crop(left, top, cw, ch)


class RandomHorizontalFlip(GeometricTransform):
    """Mirror left-right with probability ``p`` (one draw per sample, always made)."""

    def __init__(self, p: float = 0.5):
        self.p = float(p)

    def plan(self, geom: Geometry, rng) -> Geometry:
        return geom.mirrored() if rng.random() < self.p else geom

"""The image operations of RandAugment / TrivialAugmentWide on Pillow images.

``apply_op(img, name, magnitude, interpolation, fill)`` is torchvision's ``_apply_op``
for Pillow input, op for op: shears about the top-left corner with the shear angle
``atan(magnitude)``, translations by ``int(magnitude)`` pixels, rotations about the
image centre by ``magnitude`` degrees (all without expanding the canvas, uncovered
pixels set to ``fill``), colour enhancements by the factor ``1 + magnitude``,
posterize to ``int(magnitude)`` bits, solarize above the threshold ``magnitude``,
autocontrast, equalize, invert and identity.
"""
from __future__ import annotations

import math
from typing import Callable

from PIL import Image, ImageEnhance, ImageOps

_RESAMPLE = {"nearest": Image.Resampling.NEAREST, "bilinear": Image.Resampling.BILINEAR,
             "bicubic": Image.Resampling.BICUBIC}


def resample_filter(interpolation: str, what: str) -> int:
    if interpolation not in _RESAMPLE:
        raise ValueError(f"{what}: interpolation must be one of {', '.join(_RESAMPLE)}, got {interpolation!r}")
    return _RESAMPLE[interpolation]


def fill_color(fill, img: Image.Image):
    """Pillow's ``fillcolor`` for ``img`` from None (black), a number or one value per band."""
    bands = len(img.getbands())
    fill = 0 if fill is None else fill
    if isinstance(fill, (int, float)):
        fill = [fill] * bands
    fill = list(fill)
    if len(fill) == 1:
        fill = fill * bands
    if len(fill) != bands:
        raise ValueError(f"fill has {len(fill)} values but the image has {bands} bands ({img.mode})")
    values = tuple(int(v) for v in fill) if img.mode != "F" else tuple(float(v) for v in fill)
    return values[0] if bands == 1 else values


def inverse_affine_matrix(center, angle: float, translate, shear) -> list[float]:
    """Pillow's output->input affine coefficients of ``T * C * R(angle) * Sh(shear) * C^-1``
    (unit scale): torchvision's ``_get_inverse_affine_matrix``."""
    rot, sx, sy = math.radians(angle), math.radians(shear[0]), math.radians(shear[1])
    cx, cy = center
    tx, ty = translate
    a = math.cos(rot - sy) / math.cos(sy)
    b = -math.cos(rot - sy) * math.tan(sx) / math.cos(sy) - math.sin(rot)
    c = math.sin(rot - sy) / math.cos(sy)
    d = -math.sin(rot - sy) * math.tan(sx) / math.cos(sy) + math.cos(rot)
    m = [d, -b, 0.0, -c, a, 0.0]
    m[2] += m[0] * (-cx - tx) + m[1] * (-cy - ty) + cx
    m[5] += m[3] * (-cx - tx) + m[4] * (-cy - ty) + cy
    return m


def _affine(img: Image.Image, resample: int, fill, center=None, translate=(0, 0), shear=(0.0, 0.0)) -> Image.Image:
    w, h = img.size
    center = (w * 0.5, h * 0.5) if center is None else center
    matrix = inverse_affine_matrix(center, 0.0, translate, shear)
    return img.transform(img.size, Image.Transform.AFFINE, matrix, resample, fillcolor=fill_color(fill, img))


def _shear_x(img, m, resample, fill):
    return _affine(img, resample, fill, center=(0, 0), shear=(math.degrees(math.atan(m)), 0.0))


def _shear_y(img, m, resample, fill):
    return _affine(img, resample, fill, center=(0, 0), shear=(0.0, math.degrees(math.atan(m))))


def _translate_x(img, m, resample, fill):
    return _affine(img, resample, fill, translate=(int(m), 0))


def _translate_y(img, m, resample, fill):
    return _affine(img, resample, fill, translate=(0, int(m)))


def _rotate(img, m, resample, fill):
    return img.rotate(m, resample, expand=False, fillcolor=fill_color(fill, img))


def _enhance(enhancer) -> Callable:
    return lambda img, m, resample, fill: enhancer(img).enhance(1.0 + m)


def _posterize(img, m, resample, fill):
    bits = int(m)
    if not 0 <= bits <= 8:
        raise ValueError(f"Posterize: bits must be in [0, 8], got {bits}")
    return ImageOps.posterize(img, bits)


OPS: dict[str, Callable] = {
    "Identity": lambda img, m, resample, fill: img,
    "ShearX": _shear_x,
    "ShearY": _shear_y,
    "TranslateX": _translate_x,
    "TranslateY": _translate_y,
    "Rotate": _rotate,
    "Brightness": _enhance(ImageEnhance.Brightness),
    "Color": _enhance(ImageEnhance.Color),
    "Contrast": _enhance(ImageEnhance.Contrast),
    "Sharpness": _enhance(ImageEnhance.Sharpness),
    "Posterize": _posterize,
    "Solarize": lambda img, m, resample, fill: ImageOps.solarize(img, m),
    "AutoContrast": lambda img, m, resample, fill: ImageOps.autocontrast(img),
    "Equalize": lambda img, m, resample, fill: ImageOps.equalize(img),
    "Invert": lambda img, m, resample, fill: ImageOps.invert(img),
}


def apply_op(img: Image.Image, name: str, magnitude: float, interpolation: str = "nearest", fill=None) -> Image.Image:
    """Apply the op ``name`` (a key of ``OPS``) with ``magnitude`` (already signed)."""
    if name not in OPS:
        raise ValueError(f"unknown augmentation op {name!r}; valid: {', '.join(OPS)}")
    return OPS[name](img, float(magnitude), resample_filter(interpolation, name), fill)

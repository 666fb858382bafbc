"""Fake ImageFolder trees of natural-looking images, for tests and benchmarks.

Flat colours compress and decode unrealistically fast; these images have smooth
gradients, shapes with soft edges and sensor-like noise, so JPEG files come out at
sizes and decode costs close to photographs of the same resolution.
"""
from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

#: (mode, format, extension) cycled through by make_fake_image_folder
DEFAULT_KINDS = (
    ("RGB", "JPEG", ".jpg"),
    ("L", "PNG", ".png"),
    ("RGBA", "PNG", ".png"),
    ("P", "PNG", ".png"),
    ("CMYK", "JPEG", ".jpeg"),
    ("LA", "PNG", ".png"),
    ("I;16", "PNG", ".png"),
    ("RGB", "PNG", ".PNG"),
)
DEFAULT_SIZES = ((64, 48), (40, 72), (97, 61), (128, 128))


def natural_image(width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """An RGB image with gradients, soft shapes and noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.empty((height, width, 3), np.float32)
    for c in range(3):
        fx, fy, phase = rng.uniform(-1, 1, 3)
        base[..., c] = 128 + 60 * np.sin(fx * x / (0.1 * width + 1) + phase) + 50 * np.cos(fy * y / (0.12 * height + 1) + 2 * phase)
    img = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, y0 = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(width // 20 + 1, width // 3 + 2)), int(rng.integers(height // 20 + 1, height // 3 + 2))
        fill = tuple(int(v) for v in rng.integers(0, 256, 3))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)([x0, y0, x0 + w, y0 + h], fill=fill)
    img = img.filter(ImageFilter.GaussianBlur(1.5))
    noisy = np.asarray(img).astype(np.int16) + rng.normal(0, 8, (height, width, 3)).astype(np.int16)
    return Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8))


def convert_kind(img: Image.Image, mode: str) -> Image.Image:
    """``img`` (RGB) in ``mode``; I;16 spreads the grey values over 16 bits."""
    if mode == "I;16":
        grey = np.asarray(img.convert("L")).astype(np.uint16) * 257
        return Image.fromarray(grey)
    if mode == "P":
        return img.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    if mode in ("RGBA", "LA"):
        base = img.convert(mode[:-1])
        alpha = Image.linear_gradient("L").resize(img.size)
        base.putalpha(alpha)
        return base
    return img.convert(mode)


def make_fake_image_folder(
    root,
    num_classes: int = 3,
    per_class: int = 4,
    sizes=DEFAULT_SIZES,
    kinds=DEFAULT_KINDS,
    quality: int = 90,
    seed: int = 0,
) -> str:
    """Write ``root/class_<k>/img_<i>.<ext>``: ``per_class`` images in each of
    ``num_classes`` folders, cycling through ``sizes`` (width, height) and ``kinds``
    (mode, Pillow format, extension). Returns ``root``."""
    root = os.fspath(root)
    rng = np.random.default_rng(seed)
    n = 0
    for k in range(num_classes):
        folder = os.path.join(root, f"class_{k}")
        os.makedirs(folder, exist_ok=True)
        for i in range(per_class):
            w, h = sizes[n % len(sizes)]
            mode, fmt, ext = kinds[n % len(kinds)]
            img = convert_kind(natural_image(w, h, rng), mode)
            options = {"quality": quality} if fmt == "JPEG" else {}
            img.save(os.path.join(folder, f"img_{i:04d}{ext}"), fmt, **options)
            n += 1
    return root

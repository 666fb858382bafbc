"""Ready-made transform pipelines: ImageNet training/evaluation and small-image ones.

Every preset ends in a fused ToArray + Normalize, so the loader writes normalised
float32 HWC samples straight into the batch. ``channels=1`` decodes to grey (one
channel); ``channels=3`` from a grey dataset repeats the grey channel.
"""
from __future__ import annotations

from typing import Callable

from lucid.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Grayscale,
    Lighting,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToArray,
)
from lucid.data.transforms.autoaugment import RandAugment, TrivialAugmentWide
from lucid.data.transforms.erasing import RandomErasing
from lucid.registry import Registry

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGENET_GRAY_MEAN = (0.449,)  # the grey value of the ImageNet mean/std, for channels=1
IMAGENET_GRAY_STD = (0.226,)
FASHION_MNIST_MEAN = (0.2860,)
FASHION_MNIST_STD = (0.3530,)

# Presets by name, for configs (``data.train_preset`` + ``data.train_preset_args``): a
# preset is a function of the image ``size`` and ``channels`` (given by the run) and its
# own keyword arguments. Add one with ``@register_preset("name")``.
PRESETS = Registry("transform preset", supplied=("size", "channels"))


def register_preset(name: str, function: Callable | None = None):
    """Register a transform preset under ``name``; a decorator without ``function``."""
    return PRESETS.register(name, function)


def _stats(channels: int, mean, std) -> tuple[tuple, tuple]:
    if channels not in (1, 3):
        raise ValueError(f"presets: channels must be 1 or 3, got {channels}")
    if mean is None:
        mean = IMAGENET_MEAN if channels == 3 else IMAGENET_GRAY_MEAN
    if std is None:
        std = IMAGENET_STD if channels == 3 else IMAGENET_GRAY_STD
    if len(mean) != channels or len(std) != channels:
        raise ValueError(f"presets: channels={channels} needs {channels} mean/std values, got {mean}, {std}")
    return tuple(mean), tuple(std)


def _small_stats(channels: int, mean, std) -> tuple[tuple, tuple]:
    mean = FASHION_MNIST_MEAN * channels if mean is None else mean
    std = FASHION_MNIST_STD * channels if std is None else std
    return _stats(channels, mean, std)


def _head(channels: int) -> list:
    """Grayscale(1) first: the file is decoded straight to one grey channel."""
    return [Grayscale(1)] if channels == 1 else []


def _tail(channels: int, grey_source: bool) -> list:
    """For a grey dataset read as 3 channels: repeat the channel last, so the
    geometric steps still work on one channel."""
    return [Grayscale(3)] if channels == 3 and grey_source else []


AUTO_AUGMENTS = ("", "randaugment", "trivialaugmentwide")


def _auto_augment(name: str, num_ops: int, magnitude: int, bins: int) -> list:
    """The policy step named by a preset's ``auto_augment`` ("" = none)."""
    if name not in AUTO_AUGMENTS:
        raise ValueError(f"auto_augment must be one of {', '.join(map(repr, AUTO_AUGMENTS))}, got {name!r}")
    if name == "randaugment":
        return [RandAugment(num_ops, magnitude, bins)]
    return [TrivialAugmentWide(bins)] if name == "trivialaugmentwide" else []


def _finish(steps: list, normalize: bool) -> Compose:
    """The preset's Compose; with ``normalize=False`` ending in ToArray(uint8) instead of
    ToArray + Normalize (``Compose.defer_normalize``): bytes, normalised per batch later."""
    t = Compose(steps)
    if normalize:
        return t
    try:
        return t.defer_normalize()[0]
    except ValueError:
        raise ValueError("normalize=False keeps uint8 bytes: lighting and random_erasing need the float pipeline") from None


def _erasing(p: float, scale, ratio, value) -> list:
    """RandomErasing after Normalize when ``p`` > 0 (value None: 0)."""
    return [RandomErasing(p, scale, ratio, 0.0 if value is None else value)] if p else []


@register_preset("imagenet_train")
def imagenet_train(
    size: int = 224,
    scale=(0.08, 1.0),
    ratio=(3 / 4, 4 / 3),
    interpolation: str = "area",
    flip: float = 0.5,
    color_jitter: float = 0.0,
    lighting: float = 0.0,
    channels: int = 3,
    mean=None,
    std=None,
    auto_augment: str = "",
    ra_num_ops: int = 2,
    ra_magnitude: int = 9,
    magnitude_bins: int = 31,
    random_erasing: float = 0.0,
    erasing_scale=(0.02, 0.33),
    erasing_ratio=(0.3, 3.3),
    erasing_value=None,
    normalize: bool = True,
) -> Compose:
    """RandomResizedCrop(size) + horizontal flip (+ optional RandAugment or
    TrivialAugmentWide, ColorJitter and PCA Lighting) + Normalize with the ImageNet
    mean/std (+ optional RandomErasing).

    ``interpolation="area"`` resamples downscaled crops with the area-average (box)
    filter and enlarged ones bilinearly; it costs about a third less than "bilinear".
    ``auto_augment``: "randaugment" (``ra_num_ops`` ops at bin ``ra_magnitude`` of
    ``magnitude_bins``) or "trivialaugmentwide". ``random_erasing``: its probability;
    ``erasing_value`` a number, one per channel or "random" (default 0). ``normalize=False``:
    uint8 samples, normalised per batch later (see ``_finish``).
    """
    mean, std = _stats(channels, mean, std)
    steps = _head(channels) + [
        RandomResizedCrop(size, scale=scale, ratio=ratio, interpolation=interpolation),
        RandomHorizontalFlip(flip),
    ]
    steps += _auto_augment(auto_augment, ra_num_ops, ra_magnitude, magnitude_bins)
    if color_jitter:
        steps.append(ColorJitter(color_jitter, color_jitter, color_jitter))
    steps.append(ToArray())
    if lighting:
        steps.append(Lighting(lighting))
    steps.append(Normalize(mean, std))
    return _finish(steps + _erasing(random_erasing, erasing_scale, erasing_ratio, erasing_value), normalize)


@register_preset("imagenet_eval")
def imagenet_eval(
    size: int = 224, resize: int = 256, interpolation: str = "bilinear", channels: int = 3, mean=None, std=None,
    normalize: bool = True,
) -> Compose:
    """Resize the shorter side to ``resize``, take the centre ``size`` crop, Normalize
    (the two geometric steps run as one resample of just the cropped region);
    ``normalize=False``: uint8 samples, normalised per batch later."""
    mean, std = _stats(channels, mean, std)
    steps = _head(channels) + [Resize(resize, interpolation), CenterCrop(size), ToArray(), Normalize(mean, std)]
    return _finish(steps, normalize)


@register_preset("small_train")
def small_train(
    size: int,
    padding: int = 0,
    flip: float = 0.5,
    channels: int = 1,
    mean=None,
    std=None,
    resize: int | None = None,
    auto_augment: str = "",
    ra_num_ops: int = 2,
    ra_magnitude: int = 9,
    magnitude_bins: int = 31,
    random_erasing: float = 0.0,
    erasing_scale=(0.02, 0.33),
    erasing_ratio=(0.3, 3.3),
    erasing_value=None,
) -> Compose:
    """Small grey images (Fashion-MNIST): optional Resize, RandomCrop(size, padding)
    with zero padding, horizontal flip, optional RandAugment / TrivialAugmentWide,
    Normalize (Fashion-MNIST statistics by default), optional RandomErasing (the
    arguments as in ``imagenet_train``). ``channels=3`` repeats the grey channel."""
    mean, std = _small_stats(channels, mean, std)
    steps = _head(channels) + ([Resize(resize)] if resize else [])
    steps += [RandomCrop(size, padding), RandomHorizontalFlip(flip)] + _tail(channels, True)
    steps += _auto_augment(auto_augment, ra_num_ops, ra_magnitude, magnitude_bins)
    steps += [ToArray(), Normalize(mean, std)]
    return Compose(steps + _erasing(random_erasing, erasing_scale, erasing_ratio, erasing_value))


@register_preset("small_eval")
def small_eval(
    size: int, channels: int = 1, mean=None, std=None, resize: int | None = None
) -> Compose:
    """Small grey images: optional Resize, CenterCrop(size), Normalize."""
    mean, std = _small_stats(channels, mean, std)
    steps = _head(channels) + ([Resize(resize)] if resize else []) + [CenterCrop(size)]
    return Compose(steps + _tail(channels, True) + [ToArray(), Normalize(mean, std)])


def preset(name: str, **kwargs) -> Compose:
    """A preset by name (for configs): ``preset("imagenet_train", size=160)``."""
    return PRESETS.build(name, **kwargs)

"""Pillow-based transforms with per-sample generators (see base.py for the protocol)."""
from lucid.data.transforms.array import (
    IMAGENET_EIGVAL,
    IMAGENET_EIGVEC,
    AffineTransform,
    Lighting,
    Normalize,
    ToArray,
    ToPILImage,
    ToTensor,
)
from lucid.data.transforms.autoaugment import RandAugment, TrivialAugmentWide
from lucid.data.transforms.base import Transform
from lucid.data.transforms.color import ColorJitter, Grayscale
from lucid.data.transforms.compose import Compose
from lucid.data.transforms.erasing import RandomErasing
from lucid.data.transforms.geometry import (
    INTERPOLATIONS,
    CenterCrop,
    GeometricTransform,
    Geometry,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
)

__all__ = [
    "IMAGENET_EIGVAL", "IMAGENET_EIGVEC", "INTERPOLATIONS", "AffineTransform", "CenterCrop",
    "ColorJitter", "Compose", "GeometricTransform", "Geometry", "Grayscale", "Lighting",
    "Normalize", "RandAugment", "RandomCrop", "RandomErasing", "RandomHorizontalFlip", "RandomResizedCrop",
    "Resize", "ToArray", "ToPILImage", "ToTensor", "Transform", "TrivialAugmentWide",
]

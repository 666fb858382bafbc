"""Transform protocol and Compose.

A transform is called as ``t(img, rng=None)``: ``img`` is a Pillow image (or an
array for array transforms) and ``rng`` the sample's ``numpy.random.Generator``
(see lucid.data.seeding). Every random choice is drawn from ``rng``; without one
a transform uses lucid's global CPU generator.

Compose groups its transforms into stages so that one sample costs one decode, one
resample and one float pass: consecutive geometric transforms become one crop+resize
planned before decoding (so JPEG draft mode can apply), and ToArray followed by
per-channel affine transforms (Normalize, Lighting) becomes one fused pass that can
write straight into a slot of a preallocated batch (``out=``).
"""
from __future__ import annotations

from typing import Sequence

from lucid.data.image import PendingImage
from lucid.data.seeding import fallback_generator


class Transform:
    """Base class. Subclasses implement ``__call__(img, rng=None)``.

    Attributes:
        input_mode: the Pillow mode this transform wants its input decoded in
            ("RGB", "L"), or None when any mode works.
        accepts_pending: True when ``__call__`` can take a not yet decoded
            PendingImage (geometric transforms plan before decoding).
    """

    input_mode: str | None = None
    accepts_pending: bool = False

    def __call__(self, img, rng=None):  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({args})"


def _flatten(transforms) -> list:
    flat = []
    for t in transforms:
        flat.extend(_flatten(t.transforms) if isinstance(t, Compose) else [t])
    return flat


class Compose(Transform):
    """Apply ``transforms`` in order, fused into stages (see the module docstring).

    Args:
        transforms: transforms (Compose instances are flattened).

    Calling ``compose(img, rng=None, out=None)``: ``img`` may be a Pillow image, a
    PendingImage or an array; ``out`` (an HWC array) receives the result when the
    last stage produces an array.
    """

    accepts_pending = True

    def __init__(self, transforms: Sequence):
        from lucid.data.transforms.array import ArrayStage, ToArray, AffineTransform  # noqa: PLC0415
        from lucid.data.transforms.geometry import GeometricTransform, GeometryStage  # noqa: PLC0415

        self.transforms = _flatten(transforms)
        stages: list = []
        for t in self.transforms:
            last = stages[-1] if stages else None
            if isinstance(t, GeometricTransform):
                if isinstance(last, GeometryStage):
                    last.transforms.append(t)
                else:
                    stages.append(GeometryStage([t]))
            elif isinstance(t, ToArray):
                stages.append(ArrayStage(t))
            elif isinstance(t, AffineTransform) and isinstance(last, ArrayStage):
                last.affines.append(t)
            else:
                stages.append(t)
        self._stages = stages
        modes = [t.input_mode for t in self.transforms if getattr(t, "input_mode", None)]
        self.input_mode = modes[0] if modes else None

    @property
    def writes_out(self) -> bool:
        return bool(self._stages) and getattr(self._stages[-1], "writes_out", False)

    def __call__(self, img, rng=None, out=None):
        rng = rng if rng is not None else fallback_generator()
        last = len(self._stages) - 1
        for k, stage in enumerate(self._stages):
            if isinstance(img, PendingImage) and not getattr(stage, "accepts_pending", False):
                img = img.decode()
            if k == last and out is not None and getattr(stage, "writes_out", False):
                img = stage(img, rng, out=out)
            else:
                img = call_transform(stage, img, rng)
        return img.decode() if isinstance(img, PendingImage) else img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"


def apply_transform(transform, img, rng, out=None):
    """Call ``transform`` the way a dataset does: decoded input unless it accepts a
    PendingImage, ``out`` passed only when it can write into it."""
    if isinstance(img, PendingImage) and not getattr(transform, "accepts_pending", False):
        img = img.decode()
    if transform is None:
        return img
    if out is not None and getattr(transform, "writes_out", False):
        return transform(img, rng, out=out)
    return call_transform(transform, img, rng)


def call_transform(transform, img, rng):
    """lucid transforms get the sample's generator; any other callable (a plain
    PyTorch-style ``f(img)``) is called with the image only."""
    if isinstance(transform, Transform):
        return transform(img, rng)
    return transform(img)

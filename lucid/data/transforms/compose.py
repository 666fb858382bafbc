"""Compose: a pipeline of transforms, fused into stages.

Compose groups its transforms into stages so that one sample costs one decode, one
resample and one float pass: consecutive geometric transforms become one crop+resize
planned before decoding (so JPEG draft mode can apply), and ToArray followed by
per-channel affine transforms (Normalize, Lighting) becomes one fused pass that can
write straight into a slot of a preallocated batch (``out=``). Transforms with an
``apply_(array, rng)`` method (RandomErasing) that follow it modify that slot in place.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from lucid.data.image import PendingImage
from lucid.data.seeding import fallback_generator
from lucid.data.transforms.array import AffineTransform, ArrayStage, Normalize, ToArray
from lucid.data.transforms.base import Transform, call_transform
from lucid.data.transforms.geometry import GeometricTransform, GeometryStage


def _flatten(transforms) -> list:
    flat = []
    for t in transforms:
        flat.extend(_flatten(t.transforms) if isinstance(t, Compose) else [t])
    return flat


def _out_stage(stages: list) -> int | None:
    """Index of the stage that can write into ``out``: the last one, or the last that
    writes out followed only by in-place array transforms (``apply_``)."""
    k = len(stages) - 1
    while k >= 0 and hasattr(stages[k], "apply_"):
        k -= 1
    return k if k >= 0 and getattr(stages[k], "writes_out", False) else None


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
                if last.to_array.dtype == np.uint8:
                    raise ValueError(f"Compose: {type(t).__name__} after ToArray(dtype=uint8), which keeps bytes; "
                                     "normalise the batch instead (normalize_batch, DevicePrefetcher(normalize=...))")
                last.affines.append(t)
            else:
                stages.append(t)
        self._stages = stages
        self._out_stage = _out_stage(stages)
        modes = [t.input_mode for t in self.transforms if getattr(t, "input_mode", None)]
        self.input_mode = modes[0] if modes else None

    @property
    def writes_out(self) -> bool:
        return self._out_stage is not None

    @property
    def yields_uint8(self) -> bool:
        """Whether the pipeline ends in ToArray(np.uint8): bytes that still need normalising."""
        last = self._stages[-1] if self._stages else None
        return isinstance(last, ArrayStage) and last.to_array.dtype == np.uint8

    def defer_normalize(self) -> tuple["Compose", tuple[tuple, tuple]]:
        """(this pipeline ending in ToArray(np.uint8) instead of ToArray + Normalize, Normalize's
        (mean, std)): the same samples as bytes, to be normalised per batch (normalize_batch,
        DevicePrefetcher(normalize=...)). A ValueError when the pipeline does not end in a float
        ToArray + one Normalize (a Lighting or RandomErasing needs the floats per sample)."""
        last = self._stages[-1] if self._stages else None
        if not (isinstance(last, ArrayStage) and len(last.affines) == 1 and isinstance(last.affines[0], Normalize)
                and type(last.to_array) is ToArray):  # (a uint8 ToArray has no affines: Compose refuses them)
            raise ValueError("this pipeline does not end in ToArray() + Normalize (with nothing after them), "
                             "so its normalisation cannot move to the batch")
        norm = last.affines[0]
        return Compose(self.transforms[:-2] + [ToArray(np.uint8)]), (norm.mean, norm.std)

    def __call__(self, img, rng=None, out=None):
        rng = rng if rng is not None else fallback_generator()
        for k, stage in enumerate(self._stages):
            if isinstance(img, PendingImage) and not getattr(stage, "accepts_pending", False):
                img = img.decode()
            if k == self._out_stage and out is not None:
                img = stage(img, rng, out=out)
            elif self._out_stage is not None and k > self._out_stage:
                img = stage.apply_(img, rng)  # the array the out-stage made: modified in place
            else:
                img = call_transform(stage, img, rng)
        return img.decode() if isinstance(img, PendingImage) else img

    def __repr__(self) -> str:
        inner = "".join(f"\n    {t!r}," for t in self.transforms)
        return f"Compose([{inner}\n])"

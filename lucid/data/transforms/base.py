"""Transform protocol and how a dataset calls a transform.

A transform is called as ``t(img, rng=None)``: ``img`` is a Pillow image (or an
array for array transforms) and ``rng`` the sample's ``numpy.random.Generator``
(see lucid.data.seeding). Every random choice is drawn from ``rng``; without one
a transform uses lucid's global CPU generator. Compose lives in compose.py.
"""
from __future__ import annotations

from lucid.data.image import PendingImage


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

"""Array transforms: ToArray/ToTensor, Normalize, Lighting, ToPILImage.

Arrays are HWC (height, width, channels) float32: the memory order of lucid's
channels-last activations, so a batch of them is an (N, H, W, C) block whose NCHW
view ``batch.transpose(0, 3, 1, 2)`` is what the model receives.

Normalize and Lighting are per-channel affine maps ``x * scale + bias``. After a
ToArray they fuse with it: the uint8 image is converted, scaled and shifted in one
pass, written straight into ``out`` (a slot of the preallocated batch) when given.
"""
from __future__ import annotations

import numpy as np
from PIL import Image

from lucid.data.image import materialize
from lucid.data.seeding import fallback_generator
from lucid.data.transforms.base import Transform

#: AlexNet's PCA of ImageNet RGB pixels (values in [0, 1]), used by Lighting
IMAGENET_EIGVAL = (0.2175, 0.0188, 0.0045)
IMAGENET_EIGVEC = (
    (-0.5675, 0.7192, 0.4009),
    (-0.5808, -0.0045, -0.8140),
    (-0.5836, -0.6948, 0.4203),
)


_BYTE_MODES = {"L": 1, "RGB": 3, "RGBA": 4}  # Pillow modes whose bytes are uint8 HWC


def _as_hwc(img) -> np.ndarray:
    img = materialize(img)
    if isinstance(img, Image.Image) and img.mode in _BYTE_MODES:  # skips np.asarray's interface probing
        w, h = img.size
        return np.frombuffer(img.tobytes(), np.uint8).reshape(h, w, _BYTE_MODES[img.mode])
    a = np.asarray(img)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise ValueError(f"ToArray: expected an image or an HW/HWC array, got shape {a.shape}")
    return a


class AffineTransform(Transform):
    """A per-channel map ``x * scale + bias`` on float HWC arrays. ``random`` says
    whether ``affine`` draws from the generator (if not, fused passes cache it)."""

    random = True

    def affine(self, channels: int, rng) -> tuple[np.ndarray, np.ndarray]:  # pragma: no cover
        raise NotImplementedError

    def __call__(self, arr, rng=None):
        arr = np.asarray(arr)
        if arr.ndim != 3 or not np.issubdtype(arr.dtype, np.floating):
            raise ValueError(f"{type(self).__name__}: expected a float HWC array, got {arr.dtype} {arr.shape}")
        scale, bias = self.affine(arr.shape[2], rng if rng is not None else fallback_generator())
        return arr * scale.astype(arr.dtype) + bias.astype(arr.dtype)


class Normalize(AffineTransform):
    """``(x - mean) / std`` per channel."""

    random = False

    def __init__(self, mean, std):
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or min(self.std) <= 0:
            raise ValueError(f"Normalize: mean {self.mean} and std {self.std} need the same length and std > 0")

    def affine(self, channels, rng):
        if channels != len(self.mean):
            raise ValueError(f"Normalize: mean/std have {len(self.mean)} values but the image has {channels} channel(s)")
        std = np.asarray(self.std)
        return 1.0 / std, -np.asarray(self.mean) / std


class Lighting(AffineTransform):
    """AlexNet-style PCA colour noise: adds ``eigvec @ (alpha * eigval)`` with
    ``alpha ~ N(0, alphastd^2)`` per sample to the RGB values (in [0, 1] units, so
    place it after ToArray and before Normalize)."""

    def __init__(self, alphastd: float = 0.1, eigval=IMAGENET_EIGVAL, eigvec=IMAGENET_EIGVEC):
        self.alphastd = float(alphastd)
        self.eigval = np.asarray(eigval, dtype=np.float64)
        self.eigvec = np.asarray(eigvec, dtype=np.float64)

    def affine(self, channels, rng):
        if channels != 3:
            raise ValueError(f"Lighting: needs 3 (RGB) channels, the image has {channels}")
        alpha = rng.normal(0.0, self.alphastd, 3) if self.alphastd > 0 else np.zeros(3)
        return np.ones(3), self.eigvec @ (alpha * self.eigval)


class ToArray(Transform):
    """Pillow image (or uint8 array) -> float HWC array; uint8 values are divided by
    255. Single-channel images give (H, W, 1).

    ``dtype=np.uint8`` keeps the bytes (0..255) for normalisation after the batch is
    assembled, e.g. on the GPU (``DevicePrefetcher(normalize=...)``, ``normalize_batch``):
    a quarter of the bytes to write, copy and upload. No affine transform may follow it.
    """

    writes_out = True

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype != np.uint8 and not np.issubdtype(self.dtype, np.floating):
            raise ValueError(f"ToArray: dtype must be a float type or uint8, got {self.dtype}")

    def wrap(self, arr: np.ndarray):
        return arr

    def __call__(self, img, rng=None, out=None):
        return ArrayStage(self)(img, rng, out=out)


class ToTensor(ToArray):
    """Like ToArray, but returns a lucid Tensor of shape (C, H, W) whose memory is the
    HWC array (channels-last), as lucid's kernels want it."""

    def wrap(self, arr: np.ndarray):
        from lucid.tensor import Tensor

        return Tensor._wrap(arr.transpose(2, 0, 1), "cpu")


class ToPILImage(Transform):
    """uint8 HW/HWC array -> Pillow image (L, RGB or RGBA by channel count)."""

    def __call__(self, arr, rng=None):
        if isinstance(arr, Image.Image):
            return arr
        a = np.asarray(arr)
        if a.dtype != np.uint8:
            raise TypeError(f"ToPILImage: expected a uint8 array, got {a.dtype}")
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        return Image.fromarray(a)


class ArrayStage(Transform):
    """ToArray plus the affine transforms after it, as one pass into ``out``."""

    writes_out = True

    def __init__(self, to_array: ToArray):
        self.to_array = to_array
        self.affines: list = []
        self._rows: dict = {}  # (width, channels, input dtype) -> tiled scale/bias rows, when not random

    def _coefficients(self, c: int, uint8: bool, rng):
        scale = np.full(c, 1.0 / 255.0 if uint8 else 1.0)
        bias = np.zeros(c)
        for t in self.affines:
            s, b = t.affine(c, rng if rng is not None else fallback_generator())
            scale, bias = scale * s, bias * s + b
        return scale, bias

    def _tiled(self, w: int, c: int, uint8: bool, rng):
        """Scale and bias repeated along a row of ``w`` pixels (cached when fixed)."""
        key = (w, c, uint8)
        if key in self._rows:
            return self._rows[key]
        dtype = self.to_array.dtype
        scale, bias = self._coefficients(c, uint8, rng)
        rows = np.tile(scale.astype(dtype), w), np.tile(bias.astype(dtype), w), bool(np.any(bias))
        if not any(getattr(t, "random", True) for t in self.affines):
            self._rows[key] = rows
        return rows

    def __call__(self, img, rng, out=None):
        a = _as_hwc(img)
        h, w, c = a.shape
        dtype = self.to_array.dtype
        if out is None:
            out = np.empty((h, w, c), dtype)
        elif out.shape != (h, w, c) or out.dtype != dtype:
            raise ValueError(f"ToArray: sample is {dtype} {(h, w, c)} but its batch slot is {out.dtype} {out.shape}")
        if dtype == np.uint8:  # bytes kept (Compose allows no affine after them): normalised per batch later
            if a.dtype != np.uint8:
                raise ValueError(f"ToArray(dtype=uint8): the image is {a.dtype}, not 8-bit")
            np.copyto(out, a)
            return self.to_array.wrap(out)
        scale, bias, shift = self._tiled(w, c, a.dtype == np.uint8, rng)
        target = out if out.flags.c_contiguous else np.empty((h, w, c), dtype)
        rows = target.reshape(h, w * c)
        np.copyto(rows, a.reshape(h, w * c), casting="unsafe")  # uint8 -> float, then in place
        rows *= scale
        if shift:
            rows += bias
        if target is not out:
            out[...] = target
        return self.to_array.wrap(out)

"""Opening and decoding image files: mode conversion, JPEG draft and top-rows decoding.

``PendingImage`` is an opened but not yet decoded file. Geometric transforms look at
its header size first, decide which source region they need and at what output size,
and then decode: a JPEG whose region will be downscaled by 2, 4 or 8 is decoded at
that reduced scale by libjpeg (Pillow's draft mode), the largest decode saving there is.
With the ``turbo`` decoder (simplejpeg, lucid.data.jpeg_turbo) a YCbCr or grey JPEG is
decoded whole through TurboJPEG, faster than Pillow's decoder and to the same pixels;
with Pillow's, a sequential JPEG is decoded only down to the last row the region needs
(lucid.data.jpeg_rows).
"""
from __future__ import annotations

import io

import numpy as np
from PIL import Image

from lucid.data import jpeg_turbo
from lucid.data.jpeg_rows import decode_top_rows

#: file extensions ImageFolder picks up (case-insensitive)
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


class ImageLoadError(OSError):
    """A file that cannot be read or decoded as an image; the message names the file."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"cannot load image {path!r}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        return (ImageLoadError, (self.path, self.reason))


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def to_mode(img: Image.Image, mode: str) -> Image.Image:
    """Convert any Pillow mode to ``mode`` ("RGB" or "L").

    16-bit and 32-bit grey images are scaled to 8 bits (Pillow's own conversion
    clips them at 255); alpha is dropped; palette images go through their palette.
    """
    if img.mode == mode:
        return img
    if img.mode.startswith("I;16") or img.mode in ("I", "F"):
        a = np.asarray(img)
        if img.mode == "F":
            a8 = np.clip(a, 0, 255).astype(np.uint8)
        else:  # 16-bit range (I;16 always; I images come from 16-bit PNG/TIFF files)
            a8 = (np.clip(a.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
        img = Image.fromarray(a8, mode="L")
        return img if mode == "L" else img.convert(mode)
    if img.mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")  # Pillow asks for this step for transparent palettes
    if img.mode in ("La", "RGBa"):
        img = img.convert(img.mode.upper())
    return img.convert(mode)


def draft_factor(box_size: tuple[float, float], out_size: tuple[int, int]) -> int:
    """The largest JPEG scale reduction (8, 4, 2 or 1) after which the region of
    ``box_size`` source pixels still has at least ``out_size`` pixels."""
    bw, bh = box_size
    ow, oh = out_size
    for k in (8, 4, 2):
        if bw / k >= ow and bh / k >= oh:
            return k
    return 1


class PendingImage:
    """An image file opened lazily: header known, pixels not decoded yet.

    Args:
        img: the lazily opened Pillow image (``Image.open``), or None with ``jpeg``.
        mode: the mode the pipeline wants ("RGB" or "L").
        path: the file, for error messages.
        jpeg: the file's bytes, to be decoded by TurboJPEG (lucid.data.jpeg_turbo), and
            ``size`` its header's (width, height); Pillow opens the bytes only if
            TurboJPEG fails. ``fast``: TurboJPEG's fast IDCT and upsampling.
    """

    def __init__(
        self, img: Image.Image | None, mode: str, path: str = "<image>", jpeg: bytes | None = None, size=None, fast: bool = False
    ):
        self._img = img
        self.mode = mode
        self.path = path
        self._data = jpeg
        self.turbo = jpeg is not None  # decode with TurboJPEG (until it fails)
        self._size = size
        self.fast = fast

    @property
    def img(self) -> Image.Image:
        """The Pillow image (opened from the bytes on first use on the TurboJPEG path)."""
        if self._img is None:
            self._img = _pillow_open(io.BytesIO(self._data), self.path)
        return self._img

    @property
    def size(self) -> tuple[int, int]:
        return self._size if self._img is None else self._img.size

    def _turbo(self, box, out_size) -> tuple[Image.Image, float] | None:
        factor = draft_factor((box[2] - box[0], box[3] - box[1]), out_size) if box is not None else 1
        img = jpeg_turbo.decode(self._data, self._size, self.mode, factor, self.fast)
        if img is None:  # let Pillow decode it, and accept or report the file as it does
            self.turbo = False
            return None
        return img, float(factor)

    def load(self, box=None, out_size=None, rows=None) -> tuple[Image.Image, float]:
        """Decode (in draft mode when ``box`` is downscaled to ``out_size`` by >= 2) and
        convert to the wanted mode. Returns the image and the reduction factor it was
        decoded at: source coordinates divided by it are coordinates in the image.

        ``rows(factor, height)``, when given, says how many top rows of the image
        decoded at ``factor`` the caller will read; a sequential JPEG is then decoded
        only down to there (the rows below stay black)."""
        if self.turbo:
            done = self._turbo(box, out_size)
            if done is not None:
                return done
        img = self.img
        factor = 1
        try:
            if box is not None and img.format == "JPEG":
                factor = draft_factor((box[2] - box[0], box[3] - box[1]), out_size)
                if factor > 1:
                    w, h = img.size
                    done = img.draft("L" if self.mode == "L" else None, (w // factor, h // factor))
                    factor = round(w / done[1][2]) if done else 1  # draft may decline (None)
            if factor == 1 and self.mode == "L" and img.format == "JPEG":
                img.draft("L", None)  # libjpeg converts to grey while decoding
            if rows is None or img.format != "JPEG" or not decode_top_rows(img, rows(factor, img.size[1])):
                img.load()
            img = to_mode(img, self.mode)
        except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as exc:
            raise ImageLoadError(self.path, _describe(exc)) from exc
        return img, float(factor)

    def decode(self) -> Image.Image:
        """The whole image, decoded at full size in the wanted mode."""
        return self.load()[0]


def _pillow_open(file, path: str) -> Image.Image:
    try:
        return Image.open(file)
    except (OSError, SyntaxError, EOFError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageLoadError(path, _describe(exc)) from exc


def _read(file, path: str) -> bytes:
    try:
        if hasattr(file, "read"):
            return file.read()
        with open(file, "rb") as f:
            return f.read()
    except OSError as exc:
        raise ImageLoadError(path, _describe(exc)) from exc


def open_image(file, mode: str = "RGB", path: str | None = None, decoder: str = "auto") -> PendingImage:
    """Open ``file`` (a path or a binary file object) lazily: only the header is parsed.
    Errors are ImageLoadError naming ``path``. ``decoder``: "pillow", "turbo" (TurboJPEG
    through simplejpeg for YCbCr and grey JPEGs, Pillow for other files), "turbo_fast"
    (its fast IDCT and upsampling: other pixels) or "auto" (turbo when simplejpeg is
    installed). With Pillow and a file object the caller keeps
    it open until the image is decoded (and closes it); turbo reads the whole file."""
    path = path if path is not None else str(file)
    if jpeg_turbo.uses_turbo(jpeg_turbo.check_decoder(decoder)):
        data = _read(file, path)
        size = jpeg_turbo.header(data)
        if size is not None:
            return PendingImage(None, mode, path, jpeg=data, size=size, fast=decoder == "turbo_fast")
        file = io.BytesIO(data)
    return PendingImage(_pillow_open(file, path), mode, path)


def materialize(img, mode: str | None = None) -> Image.Image:
    """A decoded Pillow image from a PendingImage (or the image itself)."""
    if isinstance(img, PendingImage):
        return img.decode()
    if mode is not None and isinstance(img, Image.Image):
        return to_mode(img, mode)
    return img

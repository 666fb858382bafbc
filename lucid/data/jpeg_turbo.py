"""Decoding JPEGs through libjpeg-turbo's TurboJPEG API (the optional ``simplejpeg`` wheel).

Pillow and simplejpeg both decode with libjpeg-turbo and the same settings (accurate
integer IDCT, smooth chroma upsampling, 1/2, 1/4 and 1/8 DCT scaling for draft mode), so
their pixels are the same; Pillow's decoder, which hands rows over one at a time, takes
about a third longer for a whole image. simplejpeg writes RGBX pixels, which is how
Pillow stores an "RGB" image (4 bytes a pixel), so the decoded buffer becomes a Pillow
image without a copy (``Image.core.map_buffer``, what ``Image.frombuffer`` does for
RGBX) and the resize that follows runs on exactly the pixels a Pillow decode gives.

``turbo_fast`` asks TurboJPEG for its fast integer IDCT and plain chroma replication
instead of smooth upsampling: a decode ~20% cheaper whose pixels differ from the accurate
ones by about 1.3 levels (of 255) on average after a training crop's resize; opt-in.

Only the whole image can be decoded this way (Pillow's path stops at the last row a crop
needs). Anything simplejpeg cannot do or reports as an error returns None, and the
caller decodes with Pillow, which then accepts or reports the file as it always did: a
bad file is bad with or without simplejpeg.
"""
from __future__ import annotations

from PIL import Image

try:
    import simplejpeg
except ImportError:  # optional: pip install 'lucid-resnet[jpeg]'
    simplejpeg = None

#: the decoders a dataset may ask for
DECODERS = ("auto", "pillow", "turbo", "turbo_fast")
_TURBO = ("turbo", "turbo_fast")
_COLORSPACE = {"RGB": ("RGBX", 4), "L": ("GRAY", 1)}
_SOI = b"\xff\xd8\xff"
# JPEG colour spaces whose conversion to RGB / grey is the same in both decoders (Pillow
# converts CMYK and YCCK files itself, after decoding)
_SAME_CONVERSION = ("YCbCr", "Gray")


def available() -> bool:
    """Whether simplejpeg is installed."""
    return simplejpeg is not None


def check_decoder(name: str) -> str:
    """``name`` if it is a known decoder that can run here; a clear error otherwise."""
    if name not in DECODERS:
        raise ValueError(f"unknown JPEG decoder {name!r}; choose one of {', '.join(DECODERS)}")
    if name in _TURBO and not available():
        raise ImportError(f"JPEG decoder {name!r} needs the simplejpeg package: pip install 'lucid-resnet[jpeg]'")
    return name


def uses_turbo(decoder: str) -> bool:
    """Whether a dataset asking for ``decoder`` decodes JPEGs with simplejpeg."""
    return decoder in _TURBO or (decoder == "auto" and available())


def header(data: bytes) -> tuple[int, int] | None:
    """(width, height) of the JPEG in ``data``, or None when it is not a YCbCr or grey JPEG
    whose header simplejpeg reads (or it is one Pillow would flag as a decompression bomb)."""
    if simplejpeg is None or not data.startswith(_SOI):
        return None
    try:
        height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    except ValueError:
        return None
    if colorspace not in _SAME_CONVERSION:
        return None
    limit = Image.MAX_IMAGE_PIXELS
    if limit is not None and width * height > limit:
        return None  # Pillow warns or raises for these: leave them to it
    return width, height


def decode(data: bytes, size: tuple[int, int], mode: str, factor: int = 1, fast: bool = False) -> Image.Image | None:
    """The JPEG in ``data`` (``size`` from ``header``) decoded in ``mode`` ("RGB" or "L")
    at ``1/factor`` of its size (``factor`` 1, 2, 4 or 8, as Pillow's draft mode), or None
    when simplejpeg cannot. ``fast``: the fast IDCT and chroma upsampling (other pixels)."""
    if simplejpeg is None or mode not in _COLORSPACE:
        return None
    colorspace, channels = _COLORSPACE[mode]
    w, h = size
    try:  # the smallest DCT scaling whose result is at least the size Pillow's draft gives
        a = simplejpeg.decode_jpeg(
            data, colorspace, fastdct=fast, fastupsample=fast, min_width=-(-w // factor), min_height=-(-h // factor), min_factor=factor
        )
    except ValueError:  # corrupt, truncated, or a colour space TurboJPEG does not convert
        return None
    h, w = a.shape[:2]
    try:  # Image.frombuffer's own call, with the "RGB" mode it does not list (its memory is RGBX)
        return Image.Image()._new(Image.core.map_buffer(a, (w, h), "raw", 0, (mode, w * channels, 1)))
    except (ValueError, TypeError):  # a Pillow that does not map it: the tests say so
        return None

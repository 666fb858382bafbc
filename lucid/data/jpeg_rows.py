"""Decoding only the top rows of a sequential JPEG.

libjpeg decodes a sequential (non-progressive) JPEG with a single scan top to bottom,
so the first ``rows`` rows of a full decode do not depend on the data below them. A
crop that ends above the image's bottom edge needs only the file's data up to its
last row; decoding can stop there (RandomResizedCrop on 500x375 photos needs ~87% of
the rows on average, and the decode time is proportional to the rows).

Pillow has no public API for this: ``decode_top_rows`` drives Pillow's JPEG decoder as
``ImageFile.load`` does, with the tile cut to ``rows``. It checks each assumption it
makes (one "jpeg" tile covering the image, a Huffman-coded sequential file whose first
scan holds every component, a header inside the first block read) and otherwise
returns False with the image still loadable the ordinary way. Rows below ``rows``
are left black, and the file's data after them is never read: a file truncated or
corrupt below the last needed row loads without an error.
"""
from __future__ import annotations

from PIL import Image, ImageFile

_SEQUENTIAL_SOF = (0xC0, 0xC1)  # baseline and extended sequential, Huffman-coded
_OTHER_SOF = (0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC8, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)
_STANDALONE = (0x01, 0xD0, 0xD1, 0xD2, 0xD3, 0xD4, 0xD5, 0xD6, 0xD7)  # markers without a length


def header_end(data: bytes) -> int | None:
    """Offset just past the first SOS segment of ``data`` when it is the header of a
    sequential Huffman-coded JPEG whose first scan holds every component (so it is
    the only scan); None otherwise (progressive, lossless, arithmetic-coded, several
    scans, or a header longer than ``data``)."""
    if not data.startswith(b"\xff\xd8"):
        return None
    pos, components = 2, None
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _STANDALONE:
            pos += 2
            continue
        end = pos + 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if marker in _SEQUENTIAL_SOF:
            if pos + 10 > len(data):
                return None
            components = data[pos + 9]
        elif marker in _OTHER_SOF or marker in (0xD8, 0xD9):
            return None
        elif marker == 0xDA:  # start of scan: its component count follows the length
            if components is None or end > len(data) or data[pos + 4] != components:
                return None
            return end
        pos = end
    return None


def decode_top_rows(img: Image.Image, rows: int) -> bool:
    """Decode the first ``rows`` rows of the lazily opened JPEG ``img`` (after any
    ``draft``), bit-identical to the same rows of a full decode. Returns False, having
    decoded nothing usable, when the file or this Pillow does not allow it or an error
    occurs; ``img.load()`` then decodes (or reports) the whole image as usual."""
    tile = getattr(img, "tile", None)
    width, height = img.size
    if not 0 < rows < height or not tile or len(tile) != 1 or ImageFile.LOAD_TRUNCATED_IMAGES:
        return False
    name, extents, offset, args = tile[0]
    if name != "jpeg" or tuple(extents) != (0, 0, width, height) or getattr(img, "fp", None) is None:
        return False
    block = getattr(img, "decodermaxblock", 65536)
    img.fp.seek(offset)
    data = img.fp.read(block)
    end = header_end(data)
    if end is None:
        return False
    img.load_prepare()
    decoder = Image._getdecoder(img.mode, name, args, img.decoderconfig)
    try:
        decoder.setimage(img.im, (0, 0, width, rows))
        consumed, _ = decoder.decode(data[:end])  # header only: any libjpeg error now is the file's
        if consumed < 0:
            return False
        data = data[consumed:]
        while True:
            consumed, _ = decoder.decode(data)
            if consumed < 0:  # done: libjpeg's "too little data" error on finishing early
                break
            data = data[consumed:]
            more = img.fp.read(block)
            if not more:  # the file ends above the last needed row
                return False
            data += more
    finally:
        decoder.cleanup()
    _close_after_load(img)
    return True


def _close_after_load(img: Image.Image) -> None:
    """What ``ImageFile.load`` does once the pixels are in: no tiles left to decode, and
    a file that Pillow opened itself is closed."""
    img.tile = []
    if getattr(img, "_exclusive_fp", False) and getattr(img, "_close_exclusive_fp_after_loading", True):
        img.fp.close()
    img.fp = None

"""Top-rows JPEG decoding (the Pillow decoder's path): bit-identical to a full decode, used
where it applies, and falling back to Pillow's own load everywhere else."""
import io

import numpy as np
import pytest
from PIL import Image

from lucid.data import image as image_module
from lucid.data import imagenet_eval, imagenet_train, natural_image, sample_generator
from lucid.data.image import ImageLoadError, open_image
from lucid.data.jpeg_rows import decode_top_rows, header_end
from lucid.data.presets import small_train
from lucid.data.transforms import CenterCrop, Compose, RandomHorizontalFlip, RandomResizedCrop, Resize, ToArray


def jpeg(width, height, mode="RGB", seed=0, **options) -> bytes:
    img = natural_image(width, height, np.random.default_rng(seed))
    buf = io.BytesIO()
    img.convert(mode).save(buf, "JPEG", quality=90, **options)
    return buf.getvalue()


def full_decode(data: bytes, draft=None) -> np.ndarray:
    img = Image.open(io.BytesIO(data))
    if draft:
        img.draft(*draft)
    return np.asarray(img)


@pytest.mark.parametrize(
    "size, mode, options, draft",
    [
        ((500, 375), "RGB", {}, None),  # 4:2:0
        ((333, 257), "RGB", {"subsampling": 0}, None),  # 4:4:4, sizes not multiples of 8
        ((97, 61), "RGB", {"subsampling": 1, "optimize": True}, None),  # 4:2:2, optimised Huffman tables
        ((301, 203), "RGB", {"restart_marker_rows": 1}, None),
        ((211, 150), "L", {}, None),
        ((150, 110), "CMYK", {}, None),  # Adobe CMYK, four components
        ((500, 375), "RGB", {}, ("RGB", (250, 188))),  # draft: 1/2 scale
        ((640, 480), "RGB", {}, ("L", (160, 120))),  # draft: grey at 1/4 scale
        ((403, 299), "L", {}, ("L", (100, 75))),
    ],
)
def test_top_rows_are_bit_identical_to_a_full_decode(size, mode, options, draft):
    data = jpeg(*size, mode=mode, **options)
    full = full_decode(data, draft)
    height = full.shape[0]
    for rows in sorted({1, 7, 8, 9, 15, 16, 17, 33, height // 2, height - 1}):
        img = Image.open(io.BytesIO(data))
        if draft:
            img.draft(*draft)
        assert decode_top_rows(img, rows), rows  # this Pillow supports it
        a = np.asarray(img)
        assert a.shape == full.shape
        np.testing.assert_array_equal(a[:rows], full[:rows], err_msg=f"rows={rows}")
        assert not a[rows:].any()  # never decoded


def test_header_end_accepts_sequential_single_scan_files_only():
    data = jpeg(64, 48)
    end = header_end(data)
    sos = data.rfind(b"\xff\xda", 0, end)
    assert end == sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")  # just past the SOS segment
    assert header_end(jpeg(64, 48, progressive=True)) is None
    assert header_end(data[: end - 1]) is None  # header cut short
    assert header_end(b"\x89PNG\r\n\x1a\n" + data) is None
    big_icc = jpeg(64, 48, icc_profile=bytes(70000))  # a header longer than the first read block
    assert header_end(big_icc) is not None and header_end(big_icc[:65536]) is None


@pytest.mark.parametrize("options", [{"progressive": True}, {"icc_profile": bytes(70000)}])
def test_other_jpegs_fall_back_to_a_full_load(options):
    data = jpeg(120, 90, **options)
    img = Image.open(io.BytesIO(data))
    assert not decode_top_rows(img, 40)
    np.testing.assert_array_equal(np.asarray(img), full_decode(data))  # still loads normally


def _spy(monkeypatch):
    used = []

    def spy(img, rows):
        done = decode_top_rows(img, rows)
        used.append((rows, img.size[1], done))
        return done

    monkeypatch.setattr(image_module, "decode_top_rows", spy)
    return used


PIPELINES = [
    imagenet_train(64),
    imagenet_train(64, interpolation="bilinear"),
    Compose([RandomResizedCrop(48, interpolation="bicubic"), RandomHorizontalFlip(), ToArray()]),
    Compose([RandomResizedCrop(48, interpolation="lanczos"), ToArray()]),
    Compose([RandomResizedCrop(48, interpolation="nearest"), ToArray()]),
    Compose([RandomResizedCrop(40, scale=(0.01, 0.05)), ToArray()]),  # small crops: enlarged
    imagenet_eval(96, resize=110),  # draft at 1/2, centre crop
    imagenet_train(64, channels=1),
    small_train(64, padding=8, channels=1, resize=80),  # zero padding around the region
    Compose([Resize((37, 53)), CenterCrop(30), ToArray()]),
]


FILES = [jpeg(240, 180, seed=1), jpeg(180, 240, seed=2, subsampling=0), jpeg(250, 170, mode="L", seed=3)]


def _compare_with_full_decoding(t, monkeypatch) -> list:
    used = _spy(monkeypatch)
    mode = t.input_mode or "RGB"

    def run():
        return [t(open_image(io.BytesIO(d), mode, decoder="pillow"), sample_generator(0, 1, i)) for i, d in enumerate(FILES * 6)]

    fast = run()
    monkeypatch.setattr(image_module, "decode_top_rows", lambda img, rows: False)
    slow = run()
    for i, (a, b) in enumerate(zip(fast, slow)):
        np.testing.assert_array_equal(a, b, err_msg=f"sample {i}")
    assert any(done and rows < height for rows, height, done in used)  # the fast path ran
    return used


@pytest.mark.parametrize("k", range(len(PIPELINES)))
def test_pipelines_give_the_same_samples_as_with_full_decoding(k, monkeypatch):
    _compare_with_full_decoding(PIPELINES[k], monkeypatch)


def test_draft_decoding_stops_at_the_needed_row_too(monkeypatch):
    used = _compare_with_full_decoding(imagenet_eval(64, resize=80), monkeypatch)  # half-scale drafts
    assert any(done and height in (85, 90, 120) for rows, height, done in used)


def test_a_file_truncated_below_the_needed_rows_loads_above_it_raises():
    data = jpeg(200, 160, seed=6)
    cut = data[: len(data) * 6 // 10]
    box, size = (10, 5, 110, 45), (90, 36)  # no draft; the region lies in the top third
    good, _ = open_image(io.BytesIO(data), decoder="pillow").load(box, size)
    part, _ = open_image(io.BytesIO(cut), decoder="pillow").load(box, size, rows=lambda factor, height: 50)
    np.testing.assert_array_equal(np.asarray(part)[:50], np.asarray(good)[:50])
    with pytest.raises(ImageLoadError, match="mem.jpg.*truncated"):
        open_image(io.BytesIO(cut), path="mem.jpg", decoder="pillow").load(box, size, rows=lambda factor, height: 150)
    with pytest.raises(ImageLoadError, match="truncated"):
        open_image(io.BytesIO(cut), decoder="pillow").load()


def test_a_header_libjpeg_rejects_is_still_reported():
    data = bytearray(jpeg(64, 48))
    dht = data.index(b"\xff\xc4")
    data[dht + 5 : dht + 21] = bytes([255] * 16)  # code-length counts that no Huffman table can have
    img = open_image(io.BytesIO(bytes(data)), path="bad.jpg", decoder="pillow")
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        img.load((0, 0, 64, 10), (32, 5), rows=lambda factor, height: 12)

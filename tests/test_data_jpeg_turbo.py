"""The TurboJPEG decoder (simplejpeg): the same pixels as Pillow's decoder for every JPEG it
takes, in RGB and grey, at full and draft scales, through whole pipelines; every other file
goes to Pillow, and bad files are accepted or reported exactly as Pillow's path does."""
import io
import warnings

import numpy as np
import pytest
from PIL import Image

from lucid.data import ImageFolder, imagenet_eval, imagenet_train, jpeg_turbo, natural_image, sample_generator
from lucid.data.bad_images import BadImageWarning
from lucid.data.collate import BatchBuilder
from lucid.data.image import ImageLoadError, PendingImage, open_image
from lucid.data.presets import small_train
from lucid.data.transforms import CenterCrop, Compose, RandomHorizontalFlip, RandomResizedCrop, Resize, ToArray

pytest.importorskip("simplejpeg")


def jpeg(width, height, mode="RGB", seed=0, **options) -> bytes:
    buf = io.BytesIO()
    natural_image(width, height, np.random.default_rng(seed)).convert(mode).save(buf, "JPEG", quality=90, **options)
    return buf.getvalue()


def png(width, height, seed=0) -> bytes:
    buf = io.BytesIO()
    natural_image(width, height, np.random.default_rng(seed)).save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def turbo_calls(monkeypatch):
    """Records whether each TurboJPEG decode succeeded (None: it handed over to Pillow)."""
    calls = []
    real = jpeg_turbo.decode

    def spy(*args):
        img = real(*args)
        calls.append(img is not None)
        return img

    monkeypatch.setattr(jpeg_turbo, "decode", spy)
    return calls


FILES = {
    "420": jpeg(500, 375),
    "444 odd size": jpeg(333, 257, subsampling=0, seed=1),
    "422 optimised": jpeg(97, 61, subsampling=1, optimize=True, seed=2),
    "restart markers": jpeg(301, 203, restart_marker_rows=1, seed=3),
    "progressive": jpeg(240, 180, progressive=True, seed=4),
    "grey": jpeg(211, 150, mode="L", seed=5),
}


@pytest.mark.parametrize("name", list(FILES))
@pytest.mark.parametrize("mode", ["RGB", "L"])
@pytest.mark.parametrize("factor", [1, 2, 4, 8])
def test_decode_is_pillows_decode(name, mode, factor, turbo_calls):
    data = FILES[name]
    ref = Image.open(io.BytesIO(data))
    w, h = ref.size
    if factor > 1 or mode == "L":
        ref.draft(mode, (w // factor, h // factor) if factor > 1 else None)
    ref = ref.convert(mode)
    pending = open_image(io.BytesIO(data), mode, decoder="turbo")
    assert pending.turbo and pending.size == (w, h)  # Pillow never opened it
    box = (0, 0, w, h) if factor > 1 else None
    img, got_factor = pending.load(box, (w // factor, h // factor))
    assert turbo_calls == [True] and got_factor == factor
    assert img.mode == mode and img.size == ref.size
    np.testing.assert_array_equal(np.asarray(img), np.asarray(ref))


PIPELINES = [
    imagenet_train(64),
    imagenet_train(64, interpolation="bilinear"),
    Compose([RandomResizedCrop(48, interpolation="bicubic"), RandomHorizontalFlip(), ToArray()]),
    Compose([RandomResizedCrop(40, scale=(0.01, 0.05)), ToArray()]),  # small crops: enlarged
    imagenet_eval(96, resize=110),  # draft at 1/2, centre crop
    imagenet_eval(64, resize=80, channels=1),  # grey at 1/2 or 1/4
    imagenet_train(64, channels=1),
    small_train(64, padding=8, channels=1, resize=80),  # zero padding around the region
    Compose([Resize((37, 53)), CenterCrop(30), ToArray()]),
]


@pytest.mark.parametrize("k", range(len(PIPELINES)))
def test_pipelines_give_the_samples_of_pillows_decoder(k, turbo_calls):
    t = PIPELINES[k]
    files = [FILES["420"], FILES["444 odd size"], FILES["grey"], FILES["progressive"]] * 3
    out = [t(open_image(io.BytesIO(d), t.input_mode or "RGB", decoder="turbo"), sample_generator(0, 1, i)) for i, d in enumerate(files)]
    assert turbo_calls and all(turbo_calls)
    ref = [t(open_image(io.BytesIO(d), t.input_mode or "RGB", decoder="pillow"), sample_generator(0, 1, i)) for i, d in enumerate(files)]
    assert len(turbo_calls) == len(files)  # the Pillow runs never reached TurboJPEG
    for i, (a, b) in enumerate(zip(out, ref)):
        np.testing.assert_array_equal(a, b, err_msg=f"sample {i}")


def test_a_batch_slot_receives_the_same_sample():
    t = imagenet_train(32)
    builder = BatchBuilder(2)
    for k, decoder in enumerate(("turbo", "pillow")):
        builder.add(k, t(open_image(io.BytesIO(FILES["420"]), decoder=decoder), sample_generator(5, 0, 3), out=builder.slot(k)))
    images = builder.finish()
    np.testing.assert_array_equal(images[0], images[1])


@pytest.mark.parametrize("data", [jpeg(150, 110, mode="CMYK"), png(64, 48)], ids=["cmyk jpeg", "png"])
def test_other_files_go_to_pillow(data, turbo_calls):
    pending = open_image(io.BytesIO(data), decoder="turbo")
    assert not pending.turbo
    ref = Image.open(io.BytesIO(data)).convert("RGB")
    np.testing.assert_array_equal(np.asarray(pending.decode()), np.asarray(ref))
    assert turbo_calls == []


def test_a_truncated_file_is_accepted_or_reported_as_pillows_path_does(turbo_calls):
    data = jpeg(200, 160, seed=6)
    cut = data[: len(data) * 6 // 10]
    box, size = (10, 5, 110, 45), (90, 36)  # the region lies in the top third
    good, _ = open_image(io.BytesIO(data), decoder="turbo").load(box, size)
    part, _ = open_image(io.BytesIO(cut), decoder="turbo").load(box, size, rows=lambda factor, height: 50)
    assert turbo_calls == [True, False]  # TurboJPEG refused the cut file; Pillow decoded its top rows
    np.testing.assert_array_equal(np.asarray(part)[:50], np.asarray(good)[:50])
    with pytest.raises(ImageLoadError, match="mem.jpg.*truncated"):
        open_image(io.BytesIO(cut), path="mem.jpg", decoder="turbo").load(box, size, rows=lambda factor, height: 150)
    with pytest.raises(ImageLoadError, match="mem.jpg.*truncated"):
        open_image(io.BytesIO(cut), path="mem.jpg", decoder="turbo").decode()


def test_corrupt_empty_and_non_image_files_are_reported(turbo_calls):
    data = bytearray(jpeg(64, 48))
    dht = data.index(b"\xff\xc4")
    data[dht + 5 : dht + 21] = bytes([255] * 16)  # code-length counts that no Huffman table can have
    with pytest.raises(ImageLoadError, match="bad.jpg"):
        open_image(io.BytesIO(bytes(data)), path="bad.jpg", decoder="turbo").load((0, 0, 64, 10), (32, 5))
    for junk in (b"", b"this is a text file, not an image\n", b"\xff\xd8\xff\xe0 only a start"):
        with pytest.raises(ImageLoadError, match="junk.jpg"):
            open_image(io.BytesIO(junk), path="junk.jpg", decoder="turbo").decode()
    with pytest.raises(ImageLoadError, match="missing.jpg"):
        open_image("/nonexistent/missing.jpg", decoder="turbo")


def test_decompression_bombs_are_left_to_pillow(monkeypatch):
    data = jpeg(120, 90)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 120 * 90 // 4)  # Pillow raises beyond twice this
    assert jpeg_turbo.header(data) is None
    with pytest.raises(ImageLoadError, match="big.jpg.*DecompressionBomb"):
        open_image(io.BytesIO(data), path="big.jpg", decoder="turbo")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 120 * 90 - 1)  # Pillow warns
    with pytest.warns(Image.DecompressionBombWarning):
        pending = open_image(io.BytesIO(data), decoder="turbo")
    assert not pending.turbo


def test_decoder_names_are_checked(monkeypatch, tmp_path):
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "a.jpg").write_bytes(FILES["420"])
    with pytest.raises(ValueError, match="unknown JPEG decoder 'libjpeg'.*auto, pillow, turbo"):
        ImageFolder(tmp_path, decoder="libjpeg")
    monkeypatch.setattr(jpeg_turbo, "simplejpeg", None)
    with pytest.raises(ImportError, match="'turbo' needs the simplejpeg package"):
        ImageFolder(tmp_path, decoder="turbo")
    assert not jpeg_turbo.uses_turbo("auto")  # auto falls back to Pillow without simplejpeg
    assert not open_image(io.BytesIO(FILES["420"])).turbo


def test_image_folder_skips_bad_files_the_same_with_both_decoders(tmp_path):
    data = jpeg(120, 90, seed=7)
    for c in ("a", "b"):
        (tmp_path / c).mkdir()
        (tmp_path / c / "good.jpg").write_bytes(data)
    (tmp_path / "a" / "truncated.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "a" / "empty.jpg").write_bytes(b"")
    (tmp_path / "b" / "notes.jpg").write_text("not an image\n")
    results = {}
    for decoder in ("turbo", "pillow"):
        ds = ImageFolder(tmp_path, transform=imagenet_eval(64, resize=72), on_error="skip", decoder=decoder)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BadImageWarning)
            samples = [ds.get(i, sample_generator(0, 0, i)) for i in range(len(ds))]
        results[decoder] = (samples, ds.skipped, sorted(ds.skip_log.files))
    (turbo, turbo_skipped, turbo_files), (pillow, pillow_skipped, pillow_files) = results["turbo"], results["pillow"]
    # sorted: a/empty a/good a/truncated b/good b/notes; notes -> empty -> good makes 4 replacements
    assert turbo_skipped == pillow_skipped == 4 and turbo_files == pillow_files and len(turbo_files) == 3
    for (a, la), (b, lb) in zip(turbo, pillow):
        assert la == lb
        np.testing.assert_array_equal(a, b)


def test_pending_image_opens_pillow_only_when_asked():
    pending = open_image(io.BytesIO(FILES["420"]), decoder="turbo")
    assert isinstance(pending, PendingImage) and pending._img is None
    assert pending.img.size == pending.size == (500, 375) and pending.img.format == "JPEG"


def test_grey_decoding_is_libjpegs_grey_at_every_scale():
    """Both decoders give libjpeg's grey (the Y channel) for a colour JPEG, also when the
    region is not downscaled (Pillow's path used to decode RGB and convert there)."""
    data = FILES["420"]
    ref = Image.open(io.BytesIO(data))
    ref.draft("L", None)
    for decoder in ("turbo", "pillow"):
        img, factor = open_image(io.BytesIO(data), "L", decoder=decoder).load((10, 20, 300, 200), (250, 150))
        assert factor == 1 and img.mode == "L"
        np.testing.assert_array_equal(np.asarray(img), np.asarray(ref))


PHOTOS = [jpeg(500, 375, seed=s) for s in range(10, 16)] + [jpeg(375, 500, seed=16, subsampling=0)]


@pytest.mark.parametrize("mode, factor, exact", [("RGB", 1, False), ("RGB", 2, False), ("L", 1, False), ("L", 4, True)])
def test_turbo_fast_decodes_within_two_levels_on_average(mode, factor, exact, turbo_calls):
    """The fast IDCT (full scale only) and chroma replication (subsampled colour files) move
    pixels by under 2 levels on average; a scaled grey decode uses neither: exact."""
    for data in PHOTOS:
        w, h = Image.open(io.BytesIO(data)).size
        box, out = ((0, 0, w, h), (w // factor, h // factor)) if factor > 1 else (None, None)
        accurate, _ = open_image(io.BytesIO(data), mode, decoder="turbo").load(box, out)
        fast, got = open_image(io.BytesIO(data), mode, decoder="turbo_fast").load(box, out)
        a, b = np.asarray(accurate, np.float64), np.asarray(fast, np.float64)
        assert got == factor and a.shape == b.shape
        if exact:
            np.testing.assert_array_equal(a, b)
        assert np.abs(a - b).mean() < 2.0  # 8-bit levels
        assert factor > 1 or np.abs(a - b).mean() > 0  # the fast IDCT ran
    assert all(turbo_calls)


def test_turbo_fast_training_samples_stay_close(turbo_calls):
    t = imagenet_train(224)
    std = np.asarray(t._stages[-1].affines[0].std, np.float32)  # back to [0, 1] units
    diffs = []
    for i, data in enumerate(PHOTOS * 3):
        a = t(open_image(io.BytesIO(data), decoder="turbo"), sample_generator(0, 0, i))
        b = t(open_image(io.BytesIO(data), decoder="turbo_fast"), sample_generator(0, 0, i))
        diffs.append(np.abs(a - b) * std)
    assert all(turbo_calls) and len(turbo_calls) == 2 * len(PHOTOS) * 3
    assert 0 < np.mean(diffs) < 2 / 255
    assert max(np.percentile(d, 99) for d in diffs) < 12 / 255  # no sample far off


def test_turbo_fast_reports_bad_files_as_the_others_do():
    data = jpeg(200, 160, seed=6)
    with pytest.raises(ImageLoadError, match="mem.jpg.*truncated"):
        open_image(io.BytesIO(data[: len(data) // 2]), path="mem.jpg", decoder="turbo_fast").decode()


def test_folder_source_passes_the_decoder(tmp_path):
    from lucid.train.config import DataConfig
    from lucid.train.data_sources import folder

    for c in ("a", "b"):
        (tmp_path / "train" / c).mkdir(parents=True)
        (tmp_path / "train" / c / "x.jpg").write_bytes(FILES["420"])
    cfg = DataConfig(root=str(tmp_path))
    assert folder(cfg, "train", 2, 0, None).decoder == "auto"
    assert folder(cfg, "train", 2, 0, None, decoder="turbo_fast").decoder == "turbo_fast"
    with pytest.raises(ValueError, match="unknown JPEG decoder 'fast'"):
        folder(cfg, "train", 2, 0, None, decoder="fast")

"""Transforms: shapes and dtypes, RandomResizedCrop bounds, draft decoding, fusion, seeding."""
import io

import numpy as np
import pytest
from PIL import Image

import lucid
from lucid.data import imagenet_eval, imagenet_train, natural_image, sample_generator
from lucid.data.image import PendingImage, open_image
from lucid.data.presets import small_eval, small_train
from lucid.data.transforms import (
    CenterCrop,
    ColorJitter,
    Compose,
    Grayscale,
    Lighting,
    Normalize,
    RandomCrop,
    RandomHorizontalFlip,
    RandomResizedCrop,
    Resize,
    ToArray,
    ToTensor,
)


def jpeg(width, height, seed=0, quality=90) -> bytes:
    buf = io.BytesIO()
    natural_image(width, height, np.random.default_rng(seed)).save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def pending(data: bytes, mode="RGB") -> PendingImage:
    return open_image(io.BytesIO(data), mode, "mem.jpg")


@pytest.fixture(scope="module")
def photo():
    return Image.open(io.BytesIO(jpeg(120, 90))).convert("RGB")


def test_presets_give_hwc_float32_of_the_requested_size(photo):
    x = imagenet_train(32)(photo, sample_generator(0, 0, 0))
    assert x.shape == (32, 32, 3) and x.dtype == np.float32
    y = imagenet_eval(24, resize=28)(photo, sample_generator(0, 0, 0))
    assert y.shape == (24, 24, 3) and y.dtype == np.float32
    g = imagenet_train(16, channels=1)(photo, sample_generator(0, 0, 0))
    assert g.shape == (16, 16, 1)
    grey = photo.convert("L")
    assert small_train(20, padding=2)(grey, sample_generator(0, 0, 0)).shape == (20, 20, 1)
    three = small_eval(20, channels=3)(grey, sample_generator(0, 0, 0))
    assert three.shape == (20, 20, 3) and np.array_equal(three[..., 0], three[..., 2])


def test_to_tensor_is_chw_over_channels_last_memory(photo):
    t = ToTensor()(photo)
    assert isinstance(t, lucid.Tensor) and t.shape == (3, 90, 120) and t.dtype == np.float32
    assert t.data.transpose(1, 2, 0).flags.c_contiguous
    np.testing.assert_allclose(t.numpy(), np.asarray(photo).transpose(2, 0, 1) / np.float32(255), rtol=1e-6)


def test_to_array_and_normalize_fused_equals_separate(photo):
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)
    fused = Compose([ToArray(), Normalize(mean, std)])(photo)
    separate = Normalize(mean, std)(ToArray()(photo))
    np.testing.assert_allclose(fused, separate, rtol=1e-6, atol=1e-6)
    out = np.empty((90, 120, 3), np.float32)
    assert Compose([ToArray(), Normalize(mean, std)])(photo, out=out) is out
    np.testing.assert_array_equal(out, fused)
    with pytest.raises(ValueError, match="3 values but the image has 1"):
        Compose([ToArray(), Normalize(mean, std)])(photo.convert("L"))


def test_random_resized_crop_respects_scale_and_ratio():
    rng = np.random.default_rng(0)
    width, height = 500, 375
    for _ in range(2000):
        left, top, w, h = RandomResizedCrop.get_params(width, height, (0.08, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= left and left + w <= width and 0 <= top and top + h <= height
        # bounds hold up to the rounding of w and h to whole pixels
        assert 0.08 * (1 - 1 / w - 1 / h) <= w * h / (width * height) <= 1.0
        assert 3 / 4 * (1 - 1 / h) <= w / h <= 4 / 3 * (1 + 1 / h)
    # narrow scale range: every crop's area is within it
    areas = [np.prod(RandomResizedCrop.get_params(400, 400, (0.25, 0.3), (1, 1), rng)[2:]) / 160000 for _ in range(200)]
    assert 0.245 <= min(areas) and max(areas) <= 0.305
    # impossible ratio: torchvision's fallback, the central crop clamped to the ratio range
    assert RandomResizedCrop.get_params(1000, 10, (0.9, 1.0), (3 / 4, 4 / 3), rng) == (493, 0, 13, 10)


def test_random_resized_crop_output_and_flip_plan(photo):
    t = Compose([RandomResizedCrop((20, 30)), RandomHorizontalFlip(1.0)])
    out = t(photo, sample_generator(1, 2, 3))
    assert out.size == (30, 20) and out.mode == "RGB"
    plain = RandomResizedCrop((20, 30))(photo, sample_generator(1, 2, 3))
    np.testing.assert_array_equal(np.asarray(out), np.asarray(plain)[:, ::-1])


def test_same_seed_same_output_and_keys_matter(photo):
    t = imagenet_train(32, color_jitter=0.4, lighting=0.1)
    a = t(photo, sample_generator(7, 1, 5))
    np.testing.assert_array_equal(a, t(photo, sample_generator(7, 1, 5)))
    assert not np.array_equal(a, t(photo, sample_generator(7, 1, 6)))
    assert not np.array_equal(a, t(photo, sample_generator(7, 2, 5)))
    lucid.manual_seed(3)
    b = t(photo)  # no generator: lucid's global one
    lucid.manual_seed(3)
    np.testing.assert_array_equal(b, t(photo))


def test_draft_decoding_is_used_and_close_to_full_decode():
    data = jpeg(1600, 1200, seed=4)
    t = Compose([Resize(300), CenterCrop(256)])
    img, factor = pending(data).load((0, 0, 1600, 1200), (400, 300))
    assert factor == 4 and img.size == (400, 300)
    drafted = np.asarray(t(pending(data)), dtype=np.float32)
    full = np.asarray(t(Image.open(io.BytesIO(data)).convert("RGB")), dtype=np.float32)
    assert drafted.shape == full.shape == (256, 256, 3)
    assert np.abs(drafted - full).mean() < 2.0  # 8-bit levels
    # no draft when the region is not downscaled by 2: the result is the full decode's
    small = Compose([Resize(700)])
    np.testing.assert_array_equal(np.asarray(small(pending(data))), np.asarray(small(Image.open(io.BytesIO(data)))))


def test_draft_to_grey_for_single_channel_pipelines(monkeypatch):
    data = jpeg(400, 300, seed=5)
    t = Compose([Grayscale(1), Resize(50), ToArray()])
    factors = []
    real_load = PendingImage.load

    def spy(self, *args):
        result = real_load(self, *args)
        factors.append(result[1])
        return result

    monkeypatch.setattr(PendingImage, "load", spy)
    x = t(pending(data))
    assert factors and factors[0] == 4  # Grayscale(1) first still lets the crop plan decode in draft mode
    ref = t(Image.open(io.BytesIO(data)))
    assert x.shape == ref.shape == (50, 66, 1)
    assert np.abs(x - ref).mean() < 2 / 255


def test_fused_resize_and_center_crop_equals_two_steps(photo):
    fused = Compose([Resize(64), CenterCrop(48)])(photo)
    resized = Resize(64)(photo)
    two_steps = CenterCrop(48)(resized)
    assert fused.size == two_steps.size == (48, 48)
    diff = np.abs(np.asarray(fused, np.int16) - np.asarray(two_steps, np.int16))
    assert diff.max() <= 1


def test_center_crop_and_random_crop_pad_with_zeros(photo):
    big = CenterCrop((100, 130))(photo)
    a = np.asarray(big)
    assert big.size == (130, 100) and a[:5].max() == 0 and a[:, :5].max() == 0
    np.testing.assert_array_equal(a[5:95, 5:125], np.asarray(photo))
    rng = np.random.default_rng(0)
    crops = [np.asarray(RandomCrop((90, 120), padding=4)(photo, rng)) for _ in range(20)]
    assert all(c.shape == (90, 120, 3) for c in crops)
    assert any(c[0].max() == 0 or c[:, 0].max() == 0 or c[-1].max() == 0 or c[:, -1].max() == 0 for c in crops)
    with pytest.raises(ValueError, match="larger than the padded image"):
        RandomCrop(200)(photo)


def test_color_transforms(photo):
    assert Grayscale(1)(photo).mode == "L"
    g3 = np.asarray(Grayscale(3)(photo))
    assert g3.shape == (90, 120, 3) and np.array_equal(g3[..., 0], g3[..., 1])
    np.testing.assert_array_equal(np.asarray(ColorJitter()(photo, np.random.default_rng(0))), np.asarray(photo))
    jittered = np.asarray(ColorJitter(0.5, 0.5, 0.5)(photo, np.random.default_rng(0)))
    assert jittered.shape == (90, 120, 3) and not np.array_equal(jittered, np.asarray(photo))
    x = ToArray()(photo)
    lit = Lighting(0.1)(x, np.random.default_rng(1))
    shift = (lit - x).reshape(-1, 3)
    np.testing.assert_allclose(shift, np.broadcast_to(shift[0], shift.shape), atol=1e-6)  # one RGB offset
    assert np.abs(shift[0]).max() > 0


def test_plain_callables_and_compose_input_mode(photo):
    t = Compose([lambda img: img.rotate(180), ToArray()])
    np.testing.assert_allclose(t(photo), np.asarray(photo)[::-1, ::-1] / np.float32(255), rtol=1e-6)
    # the first transform that cares decides the decode mode
    assert Compose([RandomResizedCrop(8), Grayscale(1), ToArray()]).input_mode == "L"
    assert Compose([ColorJitter(0.1, 0.1, 0.1), Grayscale(1)]).input_mode == "RGB"  # saturation needs colour
    assert Compose([ColorJitter(0.1), Grayscale(1)]).input_mode == "L"

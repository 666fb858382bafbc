"""RandAugment / TrivialAugmentWide: every op against an expectation computed here in
NumPy, torchvision's magnitude tables and signs, the policies' draws, determinism per
(seed, epoch, index), and the presets that carry them."""
import numpy as np
import pytest
from PIL import Image

from lucid.data import preset, sample_generator
from lucid.data.transforms import RandAugment, TrivialAugmentWide
from lucid.data.transforms.augment_ops import OPS, apply_op
from lucid.data.transforms.autoaugment import rand_augment_space, trivial_augment_space

RNG = np.random.default_rng(0)
RGB = RNG.integers(0, 256, (8, 8, 3), dtype=np.uint8)
GREY = RNG.integers(0, 256, (6, 10), dtype=np.uint8)


def run(arr, name, magnitude, **kw):
    return np.asarray(apply_op(Image.fromarray(arr), name, magnitude, **kw)).astype(np.int64)


def test_invert_posterize_solarize_identity():
    np.testing.assert_array_equal(run(RGB, "Invert", 0), 255 - RGB.astype(np.int64))
    for bits in (1, 4, 7):
        np.testing.assert_array_equal(run(RGB, "Posterize", bits), RGB.astype(np.int64) & (0xFF << (8 - bits)) & 0xFF)
    np.testing.assert_array_equal(run(GREY, "Posterize", 8), GREY)
    for threshold in (0.0, 100.5, 178.5, 255.0):
        expected = np.where(GREY >= threshold, 255 - GREY.astype(np.int64), GREY)
        np.testing.assert_array_equal(run(GREY, "Solarize", threshold), expected)
    np.testing.assert_array_equal(run(RGB, "Identity", 0.7), RGB)
    with pytest.raises(ValueError, match="bits must be in"):
        run(RGB, "Posterize", 9)
    with pytest.raises(ValueError, match="unknown augmentation op 'Blur'"):
        run(RGB, "Blur", 1)


def test_rotate_90_moves_pixels_exactly():
    np.testing.assert_array_equal(run(RGB, "Rotate", 90.0), np.rot90(RGB, 1))  # counter-clockwise
    np.testing.assert_array_equal(run(RGB, "Rotate", -90.0), np.rot90(RGB, -1))
    np.testing.assert_array_equal(run(RGB, "Rotate", 180.0), RGB[::-1, ::-1])


@pytest.mark.parametrize("m", [3, -2, 3.9])
def test_translate_moves_by_int_magnitude_and_fills(m):
    s = int(m)  # torchvision truncates the magnitude
    out = run(GREY, "TranslateX", m)
    expected = np.zeros_like(GREY, dtype=np.int64)
    if s >= 0:
        expected[:, s:] = GREY[:, : GREY.shape[1] - s]
    else:
        expected[:, :s] = GREY[:, -s:]
    np.testing.assert_array_equal(out, expected)
    down = run(RGB, "TranslateY", m, fill=[1, 2, 3])
    expected = np.empty_like(RGB, dtype=np.int64)
    expected[...] = [1, 2, 3]
    if s >= 0:
        expected[s:] = RGB[: 8 - s]
    else:
        expected[:s] = RGB[-s:]
    np.testing.assert_array_equal(down, expected)


def test_shear_about_the_top_left_corner():
    # output pixel (x, y) samples the input at the nearest pixel to (x + 0.5 + m (y + 0.5), y + 0.5):
    # for m = 0.3, row y reads from x + shift[y] (centres never land near a pixel border)
    shift = [0, 0, 1, 1, 1, 2, 2, 2]
    out = run(RGB, "ShearX", 0.3)
    for y, s in enumerate(shift):
        np.testing.assert_array_equal(out[y, : 8 - s], RGB[y, s:])
        assert (out[y, 8 - s :] == 0).all()
    out = run(RGB, "ShearY", 0.3)
    for x, s in enumerate(shift):
        np.testing.assert_array_equal(out[: 8 - s, x], RGB[s:, x])
        assert (out[8 - s :, x] == 0).all()


def test_colour_ops_blend_with_their_degenerate_image():
    x = RGB.astype(np.float64)
    np.testing.assert_allclose(run(RGB, "Brightness", 0.5), np.clip(x * 1.5, 0, 255), atol=1)
    np.testing.assert_allclose(run(RGB, "Brightness", -0.7), x * 0.3, atol=1)
    luma = x @ np.array([0.299, 0.587, 0.114])
    grey = np.floor(luma + 0.5)[..., None]
    np.testing.assert_allclose(run(RGB, "Color", -1.0), np.repeat(grey, 3, axis=2), atol=1)
    np.testing.assert_allclose(run(RGB, "Color", -0.4), np.clip(grey + 0.6 * (x - grey), 0, 255), atol=1)
    mean = np.floor(grey.mean() + 0.5)
    np.testing.assert_allclose(run(RGB, "Contrast", -0.6), np.clip(mean + 0.4 * (x - mean), 0, 255), atol=1)
    # Sharpness blends with the 3x3 smoothing [[1,1,1],[1,5,1],[1,1,1]] / 13; the border is kept
    k = np.ones((3, 3)) / 13
    k[1, 1] = 5 / 13
    smooth = np.floor(sum(k[i, j] * x[i : i + 6, j : j + 6] for i in range(3) for j in range(3)) + 0.5)  # a uint8 image
    out = run(RGB, "Sharpness", 0.8)
    np.testing.assert_allclose(out[1:-1, 1:-1], np.clip(smooth + 1.8 * (x[1:-1, 1:-1] - smooth), 0, 255), atol=1)
    np.testing.assert_array_equal(out[0], RGB[0])


def test_autocontrast_and_equalize():
    x = np.array([[50, 60], [70, 150]], np.uint8).repeat(3, 0).repeat(3, 1)
    np.testing.assert_allclose(run(x, "AutoContrast", 0), (x - 50.0) * 255 / 100, atol=1)
    out = run(x, "Equalize", 0)
    # 4 levels of 9 pixels: Pillow's lut spreads the cumulative counts (step = (36 - 9) // 255 = 0 -> identity)
    np.testing.assert_array_equal(out, x)
    ramp = np.arange(256, dtype=np.uint8).reshape(16, 16)
    ramp = np.where(ramp < 128, ramp // 2, ramp).astype(np.uint8)  # values 0..63 doubled, 128..255 once
    h = np.bincount(ramp.ravel(), minlength=256)
    step = (h.sum() - h[np.nonzero(h)[0][-1]]) // 255
    lut = (step // 2 + np.concatenate([[0], np.cumsum(h)[:-1]])) // step
    np.testing.assert_array_equal(run(ramp, "Equalize", 0), np.minimum(lut, 255)[ramp])


def test_magnitude_tables_are_torchvisions():
    ra = rand_augment_space(31, 224, 300)
    assert list(ra) == ["Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
                        "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize"]
    at9 = {name: float(m[9]) for name, (m, _) in ra.items() if m is not None}
    expected = {"ShearX": 0.09, "ShearY": 0.09, "TranslateX": 150 / 331 * 300 * 0.3, "TranslateY": 150 / 331 * 224 * 0.3,
                "Rotate": 9.0, "Brightness": 0.27, "Color": 0.27, "Contrast": 0.27, "Sharpness": 0.27,
                "Posterize": 7, "Solarize": 178.5}
    assert at9 == pytest.approx(expected, rel=1e-6)
    signed = {name for name, (_, s) in ra.items() if s}
    assert signed == {"ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color", "Contrast", "Sharpness"}
    ta = trivial_augment_space(31)
    assert list(ta) == list(ra) and {n for n, (_, s) in ta.items() if s} == signed
    assert [float(ta[n][0][-1]) for n in ("ShearX", "TranslateX", "Rotate", "Brightness", "Solarize")] == pytest.approx(
        [0.99, 32.0, 135.0, 0.99, 0.0])
    assert list(ta["Posterize"][0]) == [8] * 3 + [7] * 5 + [6] * 5 + [5] * 5 + [4] * 5 + [3] * 5 + [2] * 3
    assert list(ra["Posterize"][0][[0, 4, 12, 30]]) == [8, 7, 6, 4]
    assert set(OPS) == set(ra) | {"Invert"}


def replay_rand_augment(img, rng, num_ops, magnitude):
    """What RandAugment must do with these draws, from the published algorithm."""
    space = rand_augment_space(31, img.size[1], img.size[0])
    names = list(space)
    for _ in range(num_ops):
        name = names[int(rng.integers(14))]
        table, signed = space[name]
        m = float(table[magnitude]) if table is not None else 0.0
        if signed and rng.integers(2):
            m = -m
        img = apply_op(img, name, m)
    return np.asarray(img)


def test_policies_apply_the_drawn_ops_and_are_deterministic_per_sample():
    img = Image.fromarray(RNG.integers(0, 256, (20, 24, 3), dtype=np.uint8))
    ra = RandAugment(num_ops=2, magnitude=9)
    outs = []
    for index in range(12):
        got = np.asarray(ra(img, sample_generator(1, 2, index)))
        np.testing.assert_array_equal(got, replay_rand_augment(img, sample_generator(1, 2, index), 2, 9))
        np.testing.assert_array_equal(got, np.asarray(ra(img, sample_generator(1, 2, index))))
        outs.append(got)
    assert len({o.tobytes() for o in outs}) > 6  # different samples, different draws
    ta = TrivialAugmentWide()
    for index in range(12):
        rng = sample_generator(0, 1, index)
        got = np.asarray(ta(img, rng))
        replay = sample_generator(0, 1, index)
        names = list(trivial_augment_space(31))
        name = names[int(replay.integers(14))]
        table, signed = trivial_augment_space(31)[name]
        m = float(table[int(replay.integers(31))]) if table is not None else 0.0
        m = -m if signed and replay.integers(2) else m
        np.testing.assert_array_equal(got, np.asarray(apply_op(img, name, m)))
        assert rng.random() == replay.random()  # no draw more, no draw less
    assert np.array_equal(np.asarray(ta(img, sample_generator(0, 1, 3))), np.asarray(ta(img, sample_generator(0, 1, 3))))


def test_bad_policy_arguments():
    with pytest.raises(ValueError, match=r"magnitude must be in \[0, 30\], got 31"):
        RandAugment(magnitude=31)
    with pytest.raises(ValueError, match="interpolation"):
        TrivialAugmentWide(interpolation="cubic")
    with pytest.raises(ValueError, match="fill has 2 values but the image has 3 bands"):
        RandAugment(fill=[1, 2])(Image.fromarray(RGB), sample_generator(0, 0, 0))


@pytest.mark.parametrize("name, kind", [("randaugment", RandAugment), ("trivialaugmentwide", TrivialAugmentWide)])
def test_presets_take_the_policy_after_the_geometry(name, kind):
    for base, img in (("imagenet_train", Image.fromarray(RGB).resize((40, 30))), ("small_train", Image.fromarray(GREY))):
        t = preset(base, size=6, auto_augment=name)
        steps = [type(s).__name__ for s in t.transforms]
        assert steps.index(kind.__name__) == steps.index("RandomHorizontalFlip") + 1
        a, b = t(img, sample_generator(4, 0, 9)), t(img, sample_generator(4, 0, 9))
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="auto_augment must be one of"):
        preset("imagenet_train", size=8, auto_augment="augmix")

"""RandomErasing: torchvision's rectangle draws (area within ``scale``, aspect within
``ratio``), the fill values, probability, and its place after Normalize in the presets,
erasing the batch slot in place."""
import math

import numpy as np
import pytest
from PIL import Image

import lucid
from lucid.data import preset, sample_generator
from lucid.data.transforms import Compose, Normalize, RandomErasing, ToArray, ToTensor


def erased_box(before, after):
    """(rows, cols) of the changed rectangle."""
    changed = np.any(before != after, axis=2)
    rows, cols = np.nonzero(changed.any(1))[0], np.nonzero(changed.any(0))[0]
    return rows, cols


@pytest.mark.parametrize("scale, ratio", [((0.02, 0.33), (0.3, 3.3)), ((0.1, 0.12), (1.0, 1.0)), ((0.3, 0.5), (0.5, 2.0))])
def test_area_and_aspect_within_range(scale, ratio):
    h, w = 40, 50
    x = np.full((h, w, 3), 5.0, np.float32)
    t = RandomErasing(p=1.0, scale=scale, ratio=ratio, value=-1.0)
    for index in range(200):
        out = t(x, sample_generator(0, 0, index))
        rows, cols = erased_box(x, out)
        eh, ew = len(rows), len(cols)
        assert eh and ew and (out[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] == -1.0).all()
        assert (out == -1.0).sum() == eh * ew * 3  # one solid rectangle
        assert eh < h and ew < w
        # h = round(sqrt(A r)), w = round(sqrt(A / r)): within rounding of the drawn area and ratio
        lo_area, hi_area = scale[0] * h * w, scale[1] * h * w
        assert (math.sqrt(lo_area * ratio[0]) - 0.5) * (math.sqrt(lo_area / ratio[1]) - 0.5) <= eh * ew
        assert eh * ew <= (math.sqrt(hi_area * ratio[1]) + 0.5) * (math.sqrt(hi_area / ratio[0]) + 0.5)
        assert math.sqrt(lo_area * ratio[0]) - 0.5 <= eh <= math.sqrt(hi_area * ratio[1]) + 0.5
    np.testing.assert_array_equal(x, 5.0)  # not in place unless asked


def test_probability_values_and_determinism():
    x = np.zeros((30, 30, 2), np.float32)
    erased = [bool((RandomErasing(p=0.3, value=1.0)(x, sample_generator(1, 0, i)) != 0).any()) for i in range(400)]
    assert 0.22 < np.mean(erased) < 0.38
    assert not (RandomErasing(p=0.0, value=1.0)(x, sample_generator(1, 0, 0)) != 0).any()
    out = RandomErasing(p=1.0, value=[2.0, 3.0])(x, sample_generator(0, 0, 1))
    assert set(np.unique(out[..., 0])) == {0.0, 2.0} and set(np.unique(out[..., 1])) == {0.0, 3.0}
    rnd = RandomErasing(p=1.0, scale=(0.3, 0.33), value="random")
    a = rnd(x, sample_generator(0, 0, 2))
    np.testing.assert_array_equal(a, rnd(x, sample_generator(0, 0, 2)))
    vals = a[a != 0]
    assert vals.size > 400 and abs(vals.mean()) < 0.2 and 0.8 < vals.std() < 1.2  # standard normal per pixel
    assert not np.array_equal(a, rnd(x, sample_generator(0, 0, 3)))
    # no try fits (the area is the whole image): left as it is, as torchvision does
    np.testing.assert_array_equal(RandomErasing(p=1.0, scale=(1.0, 1.0), ratio=(1.0, 1.0), value=7.0)(x), x)


def test_bad_arguments():
    with pytest.raises(ValueError, match="p must be in"):
        RandomErasing(p=1.5)
    with pytest.raises(ValueError, match="scale must lie within"):
        RandomErasing(scale=(0.5, 1.5))
    with pytest.raises(ValueError, match="scale must be"):
        RandomErasing(scale=(0.5, 0.1))
    with pytest.raises(ValueError, match="'noise'"):
        RandomErasing(value="noise")
    with pytest.raises(ValueError, match="value has 2 numbers but the image has 3"):
        RandomErasing(p=1.0, value=[1, 2])(np.zeros((9, 9, 3), np.float32), sample_generator(0, 0, 0))
    with pytest.raises(ValueError, match="float HWC array"):
        RandomErasing()(np.zeros((9, 9, 3), np.uint8))


def test_after_normalize_it_erases_the_batch_slot_in_place():
    img = Image.fromarray(np.full((12, 12, 3), 200, np.uint8))
    t = Compose([ToArray(), Normalize((0.5, 0.5, 0.5), (0.25, 0.25, 0.25)), RandomErasing(p=1.0, value=0.0)])
    assert t.writes_out
    out = np.full((12, 12, 3), np.nan, np.float32)
    res = t(img, sample_generator(0, 0, 5), out=out)
    assert res is out
    level = (200 / 255 - 0.5) / 0.25
    values = np.unique(out)
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(level, rel=1e-5)  # 0 in normalised units
    np.testing.assert_array_equal(t(img, sample_generator(0, 0, 5)), out)
    tensor = Compose([ToTensor(), RandomErasing(p=1.0, value=-3.0)])(img, sample_generator(0, 0, 5))
    assert isinstance(tensor, lucid.Tensor) and tensor.shape == (3, 12, 12) and (tensor.numpy() == -3.0).any()


def test_presets_erase_after_normalize():
    img = Image.fromarray(np.full((20, 20, 3), 255, np.uint8))
    t = preset("imagenet_train", size=16, scale=(1.0, 1.0), ratio=(1.0, 1.0), flip=0.0, random_erasing=1.0)
    assert [type(s).__name__ for s in t.transforms][-2:] == ["Normalize", "RandomErasing"]
    out = t(img, sample_generator(0, 0, 0))
    assert (out == 0).any() and (out > 2).any()  # erased to 0 after normalisation; white elsewhere
    grey = preset("small_train", size=16, random_erasing=1.0, erasing_value="random")(img.convert("L"), sample_generator(0, 0, 0))
    assert grey.shape == (16, 16, 1)
    with pytest.raises(ValueError, match="value must be"):
        preset("small_train", size=16, random_erasing=0.5, erasing_value="noise")

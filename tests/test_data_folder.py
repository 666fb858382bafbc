"""ImageFolder: the fake tree with mixed modes, errors, the cached index, bad-image policies."""
import os
import shutil
import warnings

import numpy as np
import pytest
from PIL import Image

from lucid.data import ArrayDataset, BadImageWarning, ImageFolder, ImageLoadError, file_index, make_fake_image_folder
from lucid.data.transforms import Compose, Grayscale, Resize, ToArray


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = make_fake_image_folder(tmp_path_factory.mktemp("fake"), num_classes=3, per_class=8)
    os.makedirs(os.path.join(root, ".hidden"))
    Image.new("RGB", (8, 8)).save(os.path.join(root, ".hidden", "x.png"))
    with open(os.path.join(root, "class_1", "notes.txt"), "w") as f:
        f.write("not an image")
    return root


def test_fake_tree_has_every_mode_and_both_formats(tree):
    kinds = set()
    for cls in ["class_0", "class_1", "class_2"]:
        for name in os.listdir(os.path.join(tree, cls)):
            if name.endswith(".txt"):
                continue
            with Image.open(os.path.join(tree, cls, name)) as im:
                kinds.add((im.mode, im.format))
    assert {m for m, _ in kinds} >= {"L", "LA", "P", "RGB", "RGBA", "CMYK", "I;16"}
    assert {f for _, f in kinds} == {"JPEG", "PNG"}


def test_index_classes_and_samples(tree):
    ds = ImageFolder(tree)
    assert ds.classes == ["class_0", "class_1", "class_2"]
    assert ds.class_to_idx == {"class_0": 0, "class_1": 1, "class_2": 2}
    assert len(ds) == 24 and ds.targets == [0] * 8 + [1] * 8 + [2] * 8
    assert all(p.endswith((".jpg", ".jpeg", ".png", ".PNG")) for p, _ in ds.samples)
    assert ds.samples == sorted(ds.samples)


def test_every_mode_loads_as_rgb_or_grey(tree):
    rgb = ImageFolder(tree, transform=Compose([Resize((16, 16)), ToArray()]))
    grey = ImageFolder(tree, transform=Compose([Grayscale(1), Resize((16, 16)), ToArray()]))
    assert grey.mode == "L" and rgb.mode == "RGB"
    for i in range(len(rgb)):
        x, y = rgb[i]
        g, _ = grey[i]
        assert x.shape == (16, 16, 3) and g.shape == (16, 16, 1) and x.dtype == np.float32
        assert 0.05 < x.mean() < 0.95, rgb.samples[i][0]  # real content, not black or clipped white
    img, label = ImageFolder(tree)[0]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and label == 0


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    os.makedirs(tmp_path / "a")
    ramp = (np.arange(64 * 64, dtype=np.uint32).reshape(64, 64) * 16).astype(np.uint16)  # 0 .. 65520
    Image.fromarray(ramp).save(tmp_path / "a" / "ramp.png")
    img, _ = ImageFolder(tmp_path)[0]
    got = np.asarray(img)[..., 0].astype(int)
    np.testing.assert_array_equal(got, ramp >> 8)


def test_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolder(tmp_path / "missing")
    (tmp_path / "file").write_text("x")
    with pytest.raises(NotADirectoryError):
        ImageFolder(tmp_path / "file")
    os.makedirs(tmp_path / "root")
    with pytest.raises(FileNotFoundError, match="no class folders"):
        ImageFolder(tmp_path / "root")
    os.makedirs(tmp_path / "root" / "cats")
    (tmp_path / "root" / "cats" / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path / "root")
    os.makedirs(tmp_path / "root" / "dogs")
    Image.new("RGB", (4, 4)).save(tmp_path / "root" / "dogs" / "d.jpg")
    with pytest.raises(FileNotFoundError, match="without images.*cats"):
        ImageFolder(tmp_path / "root")
    ds = ImageFolder(tmp_path / "root", allow_empty=True)
    assert ds.classes == ["cats", "dogs"] and ds.targets == [1]
    with pytest.raises(ValueError, match="on_error"):
        ImageFolder(tmp_path / "root", allow_empty=True, on_error="ignore")


def test_index_is_built_once_and_refreshed_when_the_tree_changes(tmp_path, monkeypatch):
    root = make_fake_image_folder(tmp_path / "t", num_classes=2, per_class=2)
    scans = []
    real_scan = file_index._scan
    monkeypatch.setattr(file_index, "_scan", lambda *a: scans.append(1) or real_scan(*a))
    cache = tmp_path / "index.json"
    assert len(ImageFolder(root, index_cache=cache)) == 4 and len(scans) == 1
    assert len(ImageFolder(root, index_cache=cache)) == 4 and len(scans) == 1  # memory
    file_index._memory.clear()
    assert len(ImageFolder(root, index_cache=cache)) == 4 and len(scans) == 1  # cache file
    shutil.copy(os.path.join(root, "class_0", "img_0000.jpg"), os.path.join(root, "class_0", "img_0009.jpg"))
    os.utime(os.path.join(root, "class_0"), ns=(0, 1))  # a new mtime, even on coarse clocks
    assert len(ImageFolder(root, index_cache=cache)) == 5 and len(scans) == 2


@pytest.fixture
def broken(tmp_path):
    root = make_fake_image_folder(tmp_path / "b", num_classes=2, per_class=4, kinds=(("RGB", "JPEG", ".jpg"),))
    good = os.path.join(root, "class_0", "img_0001.jpg")
    with open(good, "rb") as f:
        data = f.read()
    with open(good, "wb") as f:
        f.write(data[: len(data) // 2])  # truncated JPEG
    with open(os.path.join(root, "class_1", "img_0002.jpg"), "wb") as f:
        f.write(b"this is not an image")
    return root


def test_bad_image_raise_names_the_file(broken):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]))
    with pytest.raises(ImageLoadError, match=r"class_0.img_0001\.jpg"):
        ds[1]
    with pytest.raises(ImageLoadError, match=r"class_1.img_0002\.jpg.*cannot identify"):
        ds[6]


def test_bad_image_skip_replaces_deterministically_counts_and_warns_once(broken):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]), on_error="skip")
    with pytest.warns(BadImageWarning) as record:
        first = [ds[i] for i in range(len(ds))]
    assert len(record) == 2 and {str(w.message).split("'")[1] for w in record} == {ds.samples[1][0], ds.samples[6][0]}
    assert ds.skipped == 2
    np.testing.assert_array_equal(first[1][0], first[2][0])  # replaced by the next sample
    assert first[1][1] == first[2][1] == 0 and first[6][1] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning for the same files
        again = [ds[i] for i in range(len(ds))]
    assert ds.skipped == 4 and all(np.array_equal(a[0], b[0]) for a, b in zip(first, again))


def test_array_dataset():
    images = np.arange(4 * 2 * 2 * 1, dtype=np.float32).reshape(4, 2, 2, 1)
    ds = ArrayDataset(images, np.array([3, 1, 2, 0]), transform=lambda x: x * 2)
    x, y = ds[-1]
    np.testing.assert_array_equal(x, images[3] * 2)
    assert y == 0 and len(ds) == 4
    with pytest.raises(ValueError, match="different lengths"):
        ArrayDataset(images, np.zeros(3))
    with pytest.raises(IndexError):
        ds[4]

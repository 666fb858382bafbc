"""launch.prepare_data fashion-mnist: IDX -> ImageFolder PNG tree, idempotent, verified."""
import gzip
import json
import os
import struct

import numpy as np
import pytest
from PIL import Image

from launch.prepare_data import main
from lucid.data import ImageFolder
from lucid.data.fashion_mnist import CLASSES, DEFAULT_SRC, FOLDERS, read_idx


def write_idx(path, array, compress):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    with open(path, "wb") as f:
        f.write(gzip.compress(data) if compress else data)


@pytest.fixture
def idx_src(tmp_path):
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    os.makedirs(src)
    splits = {}
    for prefix, n, compress in (("train", 30, True), ("t10k", 12, False)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = np.arange(n) % 10
        suffix = ".gz" if compress else ""
        write_idx(src / f"{prefix}-images-idx3-ubyte{suffix}", images, compress)
        write_idx(src / f"{prefix}-labels-idx1-ubyte{suffix}", labels, compress)
        splits["train" if prefix == "train" else "val"] = (images, labels)
    return src, splits


def test_idx_reader_checks_the_format(tmp_path):
    write_idx(tmp_path / "a", np.arange(6).reshape(2, 3), compress=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a"), np.arange(6).reshape(2, 3))
    (tmp_path / "b").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x05abc")
    with pytest.raises(ValueError, match="holds 3 bytes"):
        read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"PK\x03\x04")
    with pytest.raises(ValueError, match="magic"):
        read_idx(tmp_path / "c")


def test_prepare_writes_the_tree_with_real_class_names(tmp_path, idx_src, capsys):
    src, splits = idx_src
    out = tmp_path / "out"
    assert main(["fashion-mnist", "--out", str(out), "--src", str(src)]) == 0
    assert "train 30, val 12" in capsys.readouterr().out
    for split, (images, labels) in splits.items():
        ds = ImageFolder(out / split)
        assert ds.classes == sorted(FOLDERS) and len(ds) == len(labels)
        for k in (0, 7, len(labels) - 1):
            path = out / split / FOLDERS[labels[k]] / f"{k:05d}.png"
            np.testing.assert_array_equal(np.asarray(Image.open(path)), images[k])
    classes = json.loads((out / "classes.json").read_text())["classes"]
    assert [c["name"] for c in classes] == list(CLASSES)
    tshirt = classes[0]
    assert tshirt["folder"] == "T-shirt_top" and tshirt["image_folder_label"] == sorted(FOLDERS).index("T-shirt_top")
    assert (out / "train" / "Ankle boot").is_dir()


def test_prepare_is_idempotent_and_repairs(tmp_path, idx_src, capsys):
    src, _ = idx_src
    out = tmp_path / "out"
    args = ["fashion-mnist", "--out", str(out), "--src", str(src)]
    assert main(args) == 0
    some = out / "train" / "Trouser" / "00001.png"
    before = some.stat().st_mtime_ns
    capsys.readouterr()
    assert main(args) == 0
    assert "already" in capsys.readouterr().out and some.stat().st_mtime_ns == before
    os.remove(some)
    (out / "train" / "Trouser" / "99999.png").write_bytes(b"stray")
    assert main(args) == 0
    assert "wrote 1 of 30" in capsys.readouterr().out
    assert some.exists() and not (out / "train" / "Trouser" / "99999.png").exists()
    assert main(args + ["--limit", "10"]) == 0  # a smaller subset: the extra files go
    assert len(ImageFolder(out / "train", allow_empty=True)) == 10


def test_prepare_reports_missing_files(tmp_path, capsys):
    assert main(["fashion-mnist", "--out", str(tmp_path / "o"), "--src", str(tmp_path)]) == 1
    assert "train-images-idx3-ubyte" in capsys.readouterr().err


@pytest.mark.skipif(not os.path.isdir(DEFAULT_SRC), reason="Debian's dataset-fashion-mnist is not installed")
def test_prepare_debian_files_subset(tmp_path):
    assert main(["fashion-mnist", "--out", str(tmp_path), "--limit", "300"]) == 0
    train, val = ImageFolder(tmp_path / "train"), ImageFolder(tmp_path / "val")
    assert len(train) == 300 and len(val) == 300 and train.classes == sorted(FOLDERS)
    assert np.asarray(Image.open(train.samples[0][0])).shape == (28, 28)


@pytest.mark.slow
@pytest.mark.skipif(not os.path.isdir(DEFAULT_SRC), reason="Debian's dataset-fashion-mnist is not installed")
def test_prepare_debian_files_full(tmp_path):
    assert main(["fashion-mnist", "--out", str(tmp_path)]) == 0
    assert len(ImageFolder(tmp_path / "train")) == 60000 and len(ImageFolder(tmp_path / "val")) == 10000
    assert np.bincount(ImageFolder(tmp_path / "val").targets).tolist() == [1000] * 10

"""Fashion-MNIST: IDX files -> an ImageFolder tree of PNGs.

``prepare_fashion_mnist(out)`` writes ``out/train/<class>/<index>.png`` (60,000) and
``out/val/<class>/<index>.png`` (10,000) from the four IDX files (gzipped or raw).
Folder names are the real class names with the one character a folder name cannot
hold, "/", written as "_" ("T-shirt/top" -> "T-shirt_top"); ``out/classes.json``
keeps the real names, Fashion-MNIST's label numbers and ImageFolder's (sorted) ones.
Running it again checks the tree and only writes what is missing or wrong.
"""
from __future__ import annotations

import gzip
import json
import os
import re

import numpy as np
from PIL import Image

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def folder_name(name: str) -> str:
    """A class name as a folder name: "/" is not allowed in one and becomes "_"."""
    return name.replace("/", "_")


FOLDERS = tuple(folder_name(c) for c in CLASSES)
DEFAULT_SRC = "/usr/share/datasets/fashion-mnist"
#: split -> (images file, labels file, size of the official split)
SPLITS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "val": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}
_NAME = re.compile(r"^\d{5}\.png$")
_MARKER = ".complete.json"


def read_idx(path: str) -> np.ndarray:
    """An IDX file (gzipped or not) as a uint8 array of its declared shape."""
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[0] != 0 or data[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if data[2] != 0x08:
        raise ValueError(f"{path}: IDX element type 0x{data[2]:02x} is not unsigned byte (0x08)")
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    size = int(np.prod(dims))
    body = data[4 + 4 * ndim :]
    if len(body) != size:
        raise ValueError(f"{path}: header declares {dims} ({size} bytes) but holds {len(body)} bytes")
    return np.frombuffer(body, np.uint8).reshape(dims)


def find_idx(src: str, stem: str) -> str:
    """``src/stem`` or ``src/stem.gz``."""
    for name in (stem, stem + ".gz"):
        path = os.path.join(src, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(
        f"Fashion-MNIST: neither {stem} nor {stem}.gz in {src!r} (install the Debian package "
        f"dataset-fashion-mnist, or pass --src with the four IDX files)"
    )


def load_split(src: str, split: str, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) uint8) of ``split`` ("train" or "val")."""
    img_stem, lbl_stem, _ = SPLITS[split]
    images, labels = read_idx(find_idx(src, img_stem)), read_idx(find_idx(src, lbl_stem))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise ValueError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    if labels.size and labels.max() >= len(CLASSES):
        raise ValueError(f"Fashion-MNIST {split}: label {labels.max()} is not a class (0..9)")
    if limit is not None:
        images, labels = images[:limit], labels[:limit]
    return images, labels


def _expected(labels: np.ndarray) -> dict[str, set]:
    names: dict[str, set] = {f: set() for f in FOLDERS}
    for i, label in enumerate(labels):
        names[FOLDERS[label]].add(f"{i:05d}.png")
    return names


def _marker(split_dir: str) -> dict | None:
    try:
        with open(os.path.join(split_dir, _MARKER)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def write_split(split_dir: str, images: np.ndarray, labels: np.ndarray) -> int:
    """Write the PNGs that are missing and remove stray ones; returns how many were written."""
    expected = _expected(labels)
    written = 0
    for folder, names in expected.items():
        path = os.path.join(split_dir, folder)
        os.makedirs(path, exist_ok=True)
        present = {n for n in os.listdir(path) if _NAME.match(n)}
        for stray in present - names:
            os.remove(os.path.join(path, stray))
        for name in sorted(names - present):
            i = int(name[:5])
            tmp = os.path.join(path, f".{name}.tmp")
            Image.fromarray(images[i], mode="L").save(tmp, "PNG")
            os.replace(tmp, os.path.join(path, name))  # never a half-written PNG under its name
            written += 1
    return written


def verify_split(split_dir: str, labels: np.ndarray) -> dict[str, int]:
    """Per-class file counts; raises when the tree does not hold exactly the expected files."""
    counts = {}
    for folder, names in _expected(labels).items():
        path = os.path.join(split_dir, folder)
        present = {n for n in os.listdir(path) if _NAME.match(n)} if os.path.isdir(path) else set()
        if present != names:
            raise RuntimeError(
                f"Fashion-MNIST: {path} holds {len(present)} images, expected {len(names)} "
                f"({len(names - present)} missing, {len(present - names)} unexpected)"
            )
        counts[folder] = len(present)
    return counts


def write_classes(out: str) -> None:
    sorted_folders = sorted(FOLDERS)
    entries = [
        {"name": name, "folder": folder, "fashion_mnist_label": i, "image_folder_label": sorted_folders.index(folder)}
        for i, (name, folder) in enumerate(zip(CLASSES, FOLDERS))
    ]
    with open(os.path.join(out, "classes.json"), "w") as f:
        json.dump({"dataset": "Fashion-MNIST", "classes": entries}, f, indent=1)


def prepare_fashion_mnist(out, src: str = DEFAULT_SRC, limit: int | None = None, log=print) -> dict:
    """Convert the IDX files in ``src`` into ``out/{train,val}/<class>/*.png``.

    Args:
        out: destination folder.
        src: folder with the four IDX files (``.gz`` or raw).
        limit: convert only the first ``limit`` images of each split (for quick checks).
        log: where progress lines go.

    Returns ``{split: {folder: count}}``. Idempotent: a split whose marker and files
    match is left untouched.
    """
    out = os.fspath(out)
    os.makedirs(out, exist_ok=True)
    summary = {}
    for split in SPLITS:
        images, labels = load_split(src, split, limit)
        split_dir = os.path.join(out, split)
        marker = {"count": int(len(labels)), "per_class": np.bincount(labels, minlength=len(CLASSES)).tolist()}
        if _marker(split_dir) == marker:
            try:
                summary[split] = verify_split(split_dir, labels)
                log(f"{split}: {len(labels)} images already in {split_dir}")
                continue
            except RuntimeError:
                pass  # the tree changed since: repair it below
        if os.path.exists(os.path.join(split_dir, _MARKER)):
            os.remove(os.path.join(split_dir, _MARKER))
        written = write_split(split_dir, images, labels)
        summary[split] = verify_split(split_dir, labels)
        with open(os.path.join(split_dir, _MARKER), "w") as f:
            json.dump(marker, f)
        log(f"{split}: wrote {written} of {len(labels)} images to {split_dir} ({len(CLASSES)} classes)")
    write_classes(out)
    return summary

"""ImageFolder: the ImageNet layout ``root/<class>/<image>``, with the bad-image policy."""
from __future__ import annotations

import os

from lucid.data.bad_images import ON_ERROR, SkipLog
from lucid.data.dataset import Dataset, _check_index
from lucid.data.file_index import build_index
from lucid.data.image import IMG_EXTENSIONS, ImageLoadError, open_image
from lucid.data.jpeg_turbo import check_decoder
from lucid.data.seeding import sample_generator
from lucid.data.transforms.base import apply_transform

MAX_REPLACEMENTS = 64  # consecutive unreadable files tried before giving up


class ImageFolder(Dataset):
    """Images in ``root/<class>/...``; labels are the indices of the sorted class names.

    Args:
        root: the dataset folder (one sub-folder per class; nested folders are walked).
        transform: applied to each image (with the sample's generator).
        target_transform: applied to each label.
        extensions: file endings that count as images (case-insensitive); other
            files are ignored.
        on_error: "raise" (an ImageLoadError naming the file) or "skip" (the sample
            is replaced by the next readable one, counted in ``skipped``, and each
            bad file warns once).
        allow_empty: accept class folders without images.
        index_cache: optional JSON file that keeps the file index between runs.
        decoder: how JPEGs are decoded: "auto" (TurboJPEG through simplejpeg when it is
            installed, else Pillow), "turbo" or "pillow", all with the same pixels; or
            "turbo_fast" (TurboJPEG's fast IDCT and upsampling: ~1 level off, cheaper).
    """

    def __init__(
        self,
        root,
        transform=None,
        target_transform=None,
        extensions=IMG_EXTENSIONS,
        on_error: str = "raise",
        allow_empty: bool = False,
        index_cache=None,
        decoder: str = "auto",
    ):
        root = os.fspath(root)
        if not os.path.exists(root):
            raise FileNotFoundError(f"ImageFolder: root {root!r} does not exist")
        if not os.path.isdir(root):
            raise NotADirectoryError(f"ImageFolder: root {root!r} is not a directory")
        if on_error not in ON_ERROR:
            raise ValueError(f"ImageFolder: on_error must be one of {ON_ERROR}, got {on_error!r}")
        self.root = root
        self.decoder = check_decoder(decoder)
        self.extensions = tuple(e.lower() for e in extensions)
        self.transform = transform
        self.target_transform = target_transform
        self.on_error = on_error
        self.skip_log = SkipLog()
        classes, files = build_index(root, self.extensions, os.fspath(index_cache) if index_cache else None)
        self._check_tree(classes, files, allow_empty)
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.samples = [(os.path.join(root, f), label) for label, names in enumerate(files) for f in names]
        self.targets = [label for _, label in self.samples]

    def _check_tree(self, classes, files, allow_empty: bool) -> None:
        exts = ", ".join(self.extensions)
        if not classes:
            raise FileNotFoundError(f"ImageFolder: no class folders in {self.root!r}; expected root/<class>/<image>")
        empty = [c for c, names in zip(classes, files) if not names]
        if len(empty) == len(classes):
            raise FileNotFoundError(f"ImageFolder: no images ({exts}) in any class folder of {self.root!r}")
        if empty and not allow_empty:
            raise FileNotFoundError(
                f"ImageFolder: class folder(s) without images ({exts}) in {self.root!r}: {', '.join(empty)} "
                "(pass allow_empty=True to keep them as classes with no samples)"
            )

    @property
    def mode(self) -> str:
        """The mode files are decoded in: the transform's ``input_mode`` (e.g. "L" when it
        starts with Grayscale), else "RGB"."""
        return getattr(self.transform, "input_mode", None) or "RGB"

    @property
    def imgs(self) -> list:
        return self.samples

    @property
    def skipped(self) -> int:
        """Number of samples replaced because their file could not be read."""
        return self.skip_log.count

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int):
        i = _check_index(index, len(self))
        return self.get(i, sample_generator(0, 0, i))

    def load(self, index: int, rng=None, out=None):
        """Decode and transform sample ``index`` (no bad-image policy)."""
        path, label = self.samples[index]
        try:
            f = open(path, "rb")
        except OSError as exc:
            raise ImageLoadError(path, f"{type(exc).__name__}: {exc}") from exc
        with f:
            img = open_image(f, self.mode, path, self.decoder)
            x = apply_transform(self.transform, img, rng, out)
        if self.target_transform is not None:
            label = apply_transform(self.target_transform, label, rng)
        return x, label

    def get(self, index: int, rng=None, out=None):
        """Sample ``index``; unreadable files follow ``on_error``. A skipped sample is
        replaced by the next index (cyclically) that loads, with the same generator."""
        n = len(self.samples)
        last = None
        for attempt in range(min(n, MAX_REPLACEMENTS)):
            j = (index + attempt) % n
            try:
                return self.load(j, rng, out)
            except ImageLoadError as exc:
                if self.on_error == "raise":
                    raise
                self.skip_log.record(exc.path, exc.reason)
                last = exc
        raise RuntimeError(
            f"ImageFolder: {min(n, MAX_REPLACEMENTS)} consecutive unreadable images from index {index} "
            f"in {self.root!r}; the dataset looks broken (last: {last})"
        )

    def __repr__(self) -> str:
        return f"ImageFolder(root={self.root!r}, samples={len(self)}, classes={len(self.classes)}, on_error={self.on_error!r})"

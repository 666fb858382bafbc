"""Evaluation over exactly the readable images of a dataset with the "skip" policy.

Training may replace an unreadable image by another sample (a batch keeps its size);
evaluation must not, or the metrics count a duplicate in place of the lost image.
``LeaveOutUnreadable`` keeps the slot of an unreadable image in its batch (filled with a
readable neighbour so batch shapes stay fixed) but labels it ``IGNORE_INDEX`` (-100,
PyTorch's default ``ignore_index``), which ``cross_entropy`` and ``ClassificationMeter``
leave out: the evaluation counts exactly the images that could be read.
"""
from __future__ import annotations

from lucid.data.bad_images import SkipLog
from lucid.data.dataset import Dataset, _check_index
from lucid.data.image import ImageLoadError
from lucid.data.seeding import sample_generator

IGNORE_INDEX = -100


class LeaveOutUnreadable(Dataset):
    """``dataset`` (with ``load(index, rng, out)`` and the skip policy, e.g. an ImageFolder)
    whose unreadable samples come back labelled ``IGNORE_INDEX``.

    ``skip_log`` records each image left out (and warns once per file).
    """

    def __init__(self, dataset):
        self.dataset = dataset
        self.skip_log = SkipLog(action="left out of the evaluation")

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int):
        i = _check_index(index, len(self))
        return self.get(i, sample_generator(0, 0, i))

    def get(self, index: int, rng=None, out=None):
        try:
            return self.dataset.load(index, rng, out)
        except ImageLoadError as exc:
            self.skip_log.record(exc.path, exc.reason)
        image, _ = self.dataset.get((index + 1) % len(self.dataset), rng, out)  # shape filler, not counted
        return image, IGNORE_INDEX

    def __repr__(self) -> str:
        return f"LeaveOutUnreadable({self.dataset!r})"

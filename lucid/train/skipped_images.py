"""Unreadable images a run skipped (``data.on_error = "skip"``): counted per epoch over all
ranks, listed with their reasons in ``<run_dir>/skipped-images.txt``.

A dataset with a bad-image policy keeps a ``skip_log`` (``lucid.data.bad_images``) of
every file it could not read; the count of an epoch is the number of distinct such files
any rank met in it (a training image is replaced by another sample, a validation image
is left out of the metrics).
"""
from __future__ import annotations

import os

from lucid.distributed import collectives

FILE = "skipped-images.txt"


class SkippedImages:
    """Per-split bookkeeping over the datasets' skip logs; ``collect`` is collective.

    Args:
        run_dir: where ``skipped-images.txt`` goes (rank 0 writes).
        main: whether this is rank 0.
        datasets: split name -> dataset (those without a ``skip_log`` count nothing).
    """

    def __init__(self, run_dir: str, main: bool, datasets: dict):
        self.path = os.path.join(run_dir, FILE)
        self.main = main
        self.logs = {split: getattr(ds, "skip_log", None) for split, ds in datasets.items()}
        self.marks = {split: 0 for split in datasets}
        self._listed_cache: dict[str, set] | None = None

    @property
    def listed(self) -> dict[str, set]:
        """Per split: the files in skipped-images.txt (also from earlier starts); read on first use,
        i.e. after the run directory was claimed."""
        if self._listed_cache is None:
            self._listed_cache = self._listed()
        return self._listed_cache

    def _listed(self) -> dict[str, set]:
        listed: dict[str, set] = {split: set() for split in self.logs}
        if os.path.exists(self.path):
            with open(self.path) as fh:
                for line in fh:
                    split, path = line.split("\t")[:2]
                    listed.setdefault(split, set()).add(path)
        return listed

    def begin(self, split: str) -> None:
        """From now on, count for ``split`` anew (call at the start of an epoch / evaluation)."""
        log = self.logs[split]
        self.marks[split] = len(log.paths) if log is not None else 0

    def collect(self, split: str) -> int:
        """Distinct unreadable files of ``split`` met by any rank since ``begin``; rank 0 lists new ones."""
        log = self.logs[split]
        if log is None:
            return 0
        mine = {p: log.files[p] for p in log.paths[self.marks[split]:]}
        everyone: dict[str, str] = {}
        for part in collectives.all_gather_object(mine):
            everyone.update(part)
        new = sorted(p for p in everyone if p not in self.listed[split])
        if new and self.main:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with open(self.path, "a") as fh:
                fh.writelines(f"{split}\t{p}\t{everyone[p]}\n" for p in new)
        self.listed[split].update(new)
        return len(everyone)

    def total(self, split: str) -> int:
        """Distinct files of ``split`` listed so far in this run (also by earlier starts)."""
        return len(self.listed.get(split, ()))

"""Bad-image bookkeeping for the ``on_error="skip"`` policy.

A dataset that skips unreadable files records each replacement here: it is counted,
and the first replacement of each file raises one warning. In worker processes the
log only collects; the DataLoader ships the records to the main process, whose log
counts and warns, so the totals and the warnings do not depend on the worker count.
"""
from __future__ import annotations

import threading
import warnings

ON_ERROR = ("raise", "skip")


class BadImageWarning(UserWarning):
    """An unreadable image was replaced by another sample."""


class SkipLog:
    """Files that were skipped (path -> reason) and the number of replacements."""

    def __init__(self, action: str = "a deterministic replacement is used"):
        self.action = action  # what happens to a skipped sample (in the warning)
        self.files: dict[str, str] = {}
        self.paths: list[str] = []  # every record, in order (per-epoch accounting)
        self.count = 0
        self.collect = False  # True in worker processes: keep records for the main process
        self._records: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def record(self, path: str, reason: str) -> None:
        with self._lock:
            self.count += 1
            self.paths.append(path)
            first = path not in self.files
            self.files[path] = reason
            if self.collect:
                self._records.append((path, reason))
        if first and not self.collect:
            warnings.warn(f"skipping unreadable image {path!r} ({reason}); {self.action}", BadImageWarning, stacklevel=3)

    def drain(self) -> list[tuple[str, str]]:
        """Records collected since the last drain (worker side)."""
        with self._lock:
            records, self._records = self._records, []
        return records

    def merge(self, records) -> None:
        """Count and warn for records shipped from a worker."""
        for path, reason in records:
            self.record(path, reason)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock = threading.Lock()

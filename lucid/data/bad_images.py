"""Bad-image bookkeeping for the ``on_error="skip"`` policy.

A dataset that skips unreadable files records each replacement here: it is counted,
and the first replacement of each file raises one warning. DataLoader workers (threads
and processes alike) compute a batch with its records held back (``held``) and the
main process counts them when it delivers the batch, so the totals and the warnings
depend neither on the worker count and mode nor on batches computed ahead and then
dropped (an iteration left early).
"""
from __future__ import annotations

import threading
import warnings
from contextlib import contextmanager

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
        self._lock = threading.Lock()
        self._thread = threading.local()  # .held: this thread's records kept back, or None

    def record(self, path: str, reason: str) -> None:
        held = getattr(self._thread, "held", None)
        if held is not None:
            held.append((path, reason))
            return
        with self._lock:
            self.count += 1
            self.paths.append(path)
            first = path not in self.files
            self.files[path] = reason
        if first:
            warnings.warn(f"skipping unreadable image {path!r} ({reason}); {self.action}", BadImageWarning, stacklevel=3)

    @contextmanager
    def held(self):
        """Within: this thread's records go to the yielded list instead of being counted (a
        worker computing a batch); ``merge`` them once the batch is delivered."""
        self._thread.held = records = []
        try:
            yield records
        finally:
            self._thread.held = None

    def merge(self, records) -> None:
        """Count and warn for held records (of a delivered batch)."""
        for path, reason in records:
            self.record(path, reason)

    def __getstate__(self):
        state = self.__dict__.copy()
        del state["_lock"], state["_thread"]
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._lock, self._thread = threading.Lock(), threading.local()

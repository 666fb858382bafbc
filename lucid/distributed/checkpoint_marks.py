"""Marks on checkpoints: named labels in a checkpoint's manifest that pruning respects.

``checkpoint.save(..., marks={"best": {"val_top1": 93.1}})`` writes the marks into the
manifest with the rest, atomically. Pruning keeps the newest ``keep_last`` checkpoints
and, for every mark name, the newest checkpoint carrying it: a mark is given only when
the value improves, so the newest "best" is the best one. ``newest_marked`` finds it
(``launch.export --best``).
"""
from __future__ import annotations

import json
import os

MANIFEST = "manifest.json"


def marks_of(path: str) -> dict:
    """The marks in the manifest of the checkpoint at ``path`` ({} when none or unreadable)."""
    try:
        with open(os.path.join(path, MANIFEST)) as fh:
            marks = json.load(fh).get("marks") or {}
    except (OSError, ValueError):
        return {}
    return marks if isinstance(marks, dict) else {}


def newest_marked(paths: list[str], mark: str) -> str | None:
    """The newest of ``paths`` (oldest first, as ``checkpoint.committed`` lists them) marked ``mark``."""
    for path in reversed(paths):
        if mark in marks_of(path):
            return path
    return None


def to_prune(paths: list[str], keep_last: int) -> list[str]:
    """Checkpoints (oldest first) beyond the newest ``keep_last`` that no mark keeps; 0 keeps all."""
    if not keep_last:
        return []
    kept = set(paths[-keep_last:])
    names = {mark for path in paths for mark in marks_of(path)}
    kept.update(newest_marked(paths, mark) for mark in names)
    return [p for p in paths if p not in kept]

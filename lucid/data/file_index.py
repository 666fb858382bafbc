"""The file index of an ImageFolder tree, built once and cached.

Scanning a tree of a million files takes seconds (minutes on network storage), so
the index is kept per (root, extensions) in memory and, when a cache file is
given, on disk as JSON. A cached index is reused only while the modification times
of the root and of every folder in it are unchanged (adding or removing a file
changes its folder's time).
"""
from __future__ import annotations

import json
import os
import threading

_memory: dict[tuple, tuple] = {}
_lock = threading.Lock()


def find_classes(root: str) -> list[str]:
    """Sorted names of the class folders of ``root`` (hidden folders are ignored)."""
    with os.scandir(root) as it:
        return sorted(e.name for e in it if e.is_dir(follow_symlinks=True) and not e.name.startswith("."))


def _scan(root: str, classes: list[str], extensions: tuple) -> tuple[list, dict]:
    """(files per class as paths relative to root, folder -> mtime_ns) in sorted order."""
    files: list[list[str]] = []
    mtimes = {".": os.stat(root).st_mtime_ns}
    for cls in classes:
        found = []
        for dirpath, dirnames, filenames in sorted(os.walk(os.path.join(root, cls), followlinks=True)):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel_dir = os.path.relpath(dirpath, root)
            mtimes[rel_dir] = os.stat(dirpath).st_mtime_ns
            found.extend(os.path.join(rel_dir, f) for f in sorted(filenames) if f.lower().endswith(extensions))
        files.append(found)
    return files, mtimes


def _fresh(root: str, mtimes: dict) -> bool:
    try:
        return all(os.stat(os.path.join(root, d)).st_mtime_ns == t for d, t in mtimes.items())
    except OSError:
        return False


def _read_cache(path: str, key: list):
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if data.get("key") == key else None


def _write_cache(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)  # atomic: concurrent ranks never read a half-written file


def build_index(root: str, extensions: tuple, cache_file: str | None = None) -> tuple[list[str], list[list[str]]]:
    """(classes, files per class relative to root) of the tree at ``root``."""
    root = os.path.abspath(root)
    key = [root, list(extensions)]
    with _lock:
        hit = _memory.get((root, tuple(extensions)))
    if hit is not None and _fresh(root, hit[2]):
        return hit[0], hit[1]
    data = _read_cache(cache_file, key) if cache_file else None
    if data is not None and _fresh(root, data["mtimes"]):
        classes, files, mtimes = data["classes"], data["files"], data["mtimes"]
    else:
        classes = find_classes(root)
        files, mtimes = _scan(root, classes, tuple(extensions))
        if cache_file:
            _write_cache(cache_file, {"key": key, "classes": classes, "files": files, "mtimes": mtimes})
    with _lock:
        _memory[(root, tuple(extensions))] = (classes, files, mtimes)
    return classes, files

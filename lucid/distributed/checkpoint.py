"""Sharded checkpoints: every rank writes a disjoint, byte-balanced share; rank 0 commits.

Layout of one checkpoint (``<dir>/step_00001200/``)::

    shard-00000-of-00002.safetensors   tensors of rank 0's share
    shard-00001-of-00002.safetensors   tensors of rank 1's share
    rank-00000.json, rank-00001.json   each rank's own state (RNG)
    state.json                         the non-tensor structure (step, epoch, scheduler,
                                       sampler cursor, config, optimizer groups, ...)
    manifest.json                      written LAST: format version, world size, tensor
                                       index (name -> file, dtype, shape), per-file size
                                       and sha256

A checkpoint is written into ``.tmp-step_XXXXXXXX-<id>/``, every file fsynced; rank 0
writes the manifest and renames the directory into place only after every rank has
reported success, so a checkpoint directory is either complete or absent. Loading
works at any world size: all ranks hold the full (replicated) training state, each
rank verifies the checksums of a share of the files, and each reads every tensor it
needs through memory-mapped safetensors.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import uuid
import warnings
from typing import Any

from lucid import serialization
from lucid.distributed import checkpoint_marks, collectives, comm
from lucid.distributed.group import ProcessGroup

FORMAT = "lucid-checkpoint"
VERSION = 1
MANIFEST = "manifest.json"
STATE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d{8,})$")
_OLD_DIR = re.compile(r"^\.old-step_(\d{8,})-[0-9a-f]+$")  # an older copy being replaced (see _commit)


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete, corrupted or does not fit the model."""


# -- naming and sharding -----------------------------------------------------------
def step_dir_name(step: int) -> str:
    return f"step_{step:08d}"


def shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.safetensors"


def _readable(where: str) -> str:
    """Encoder path "obj['model']['fc.weight']" -> "model/fc.weight" (tensor names in shards)."""
    parts = re.findall(r"\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|[^\]]*)\]", where)
    return "/".join(p[1:-1] if p[:1] in "'\"" else p for p in parts) or where


def assign_shards(sizes: dict[str, int], world: int) -> dict[str, int]:
    """Tensor name -> rank: largest first onto the least-loaded rank (same result on every rank)."""
    load = [0] * world
    owner = {}
    for name in sorted(sizes, key=lambda n: (-sizes[n], n)):
        r = min(range(world), key=lambda i: (load[i], i))
        owner[name] = r
        load[r] += sizes[name]
    return owner


def _sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _write_durable(path: str, data: bytes) -> dict:
    """Write ``data`` and fsync it; return its size and sha256 for the manifest."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- finding checkpoints -----------------------------------------------------------
def committed(directory: str) -> list[str]:
    """Committed checkpoints under ``directory`` (those with a manifest), oldest first.

    A step whose ``step_*`` directory is missing but whose ``.old-step_*`` copy exists (a
    process died between the two renames of a re-commit) is listed by that copy.
    """
    if not os.path.isdir(directory):
        return []
    found: dict[int, str] = {}
    names = os.listdir(directory)
    for pattern in (_OLD_DIR, _STEP_DIR):  # a step_* directory wins over an .old-* copy
        for name in names:
            m = pattern.match(name)
            if m and os.path.isfile(os.path.join(directory, name, MANIFEST)):
                found[int(m.group(1))] = os.path.join(directory, name)
    return [found[s] for s in sorted(found)]


def uncommitted(directory: str) -> list[str]:
    """``step_*`` directories without a manifest (not written by ``save``: never loadable)."""
    if not os.path.isdir(directory):
        return []
    return sorted(
        os.path.join(directory, n)
        for n in os.listdir(directory)
        if _STEP_DIR.match(n) and not os.path.isfile(os.path.join(directory, n, MANIFEST))
    )


# -- saving ------------------------------------------------------------------------
def save(
    directory: str,
    step: int,
    state: dict,
    rank_state: dict | None = None,
    keep_last: int = 0,
    group: ProcessGroup | None = None,
    marks: dict | None = None,
) -> str:
    """Write ``state`` (identical on every rank of ``group``, None: the world) as a sharded
    checkpoint; collective over the group, whose rank 0 commits.

    ``state`` is a nested dict of plain values and tensors (model and optimizer state
    dicts, scheduler, sampler cursor, ...); ``rank_state`` is this rank's own JSON-able
    data (RNG states). Returns the committed directory. Older checkpoints beyond
    ``keep_last`` (0 = keep all) are pruned after the commit, except the newest one of
    each mark (``marks``, e.g. ``{"best": {...}}``, go into the manifest; see checkpoint_marks).
    """
    rank, world = comm.rank(group), comm.world_size(group)
    final = os.path.join(directory, step_dir_name(step))
    tmp = None
    if rank == 0:
        os.makedirs(directory, exist_ok=True)
        _remove_stale_tmp(directory)
        tmp = os.path.join(directory, f".tmp-{step_dir_name(step)}-{uuid.uuid4().hex[:8]}")
        os.makedirs(tmp)
    tmp = collectives.broadcast_object(tmp, 0, group)

    enc = serialization._Encoder(name_of=_readable)
    structure = enc.encode(state, "obj")
    owner = assign_shards({n: a.nbytes for n, a in enc.arrays.items()}, world)
    report: dict[str, Any] = {"rank": rank, "files": {}, "error": None}
    try:
        report["files"].update(_write_share(tmp, rank, world, enc.arrays, owner, rank_state))
        if rank == 0:
            text = json.dumps({"structure": structure}, allow_nan=False).encode()
            report["files"][STATE] = _write_durable(os.path.join(tmp, STATE), text)
    except Exception as exc:  # reported to rank 0, which then does not commit
        report["error"] = f"{type(exc).__name__}: {exc}"
    reports = collectives.all_gather_object(report, group)
    failed = [r for r in reports if r["error"]]
    if failed:
        if rank == 0:
            shutil.rmtree(tmp, ignore_errors=True)
        details = "; ".join(f"rank {r['rank']}: {r['error']}" for r in failed)
        raise CheckpointError(f"checkpoint {final} was not written: {details}")
    error = None
    if rank == 0:
        try:
            _commit(tmp, final, step, world, enc.arrays, owner, reports, marks)
        except Exception as exc:  # e.g. ENOSPC writing the manifest: free the disk again
            shutil.rmtree(tmp, ignore_errors=True)
            error = f"{type(exc).__name__}: {exc}"
        if error is None:
            for old in checkpoint_marks.to_prune(committed(directory), keep_last):
                shutil.rmtree(old, ignore_errors=True)
    error = collectives.broadcast_object(error, 0, group)
    if error:
        raise CheckpointError(f"checkpoint {final} was not committed: {error}")
    return final


def _write_share(tmp: str, rank: int, world: int, arrays: dict, owner: dict, rank_state: dict | None) -> dict:
    """This rank's shard and rank-state file; returns their manifest entries."""
    import safetensors.numpy

    mine = {n: a for n, a in arrays.items() if owner[n] == rank}  # the encoder made them C-contiguous
    files = {}
    name = shard_name(rank, world)
    files[name] = _write_durable(os.path.join(tmp, name), safetensors.numpy.save(mine))
    rank_file = f"rank-{rank:05d}.json"
    text = json.dumps(rank_state or {}, allow_nan=False).encode()
    files[rank_file] = _write_durable(os.path.join(tmp, rank_file), text)
    return files


def _commit(tmp: str, final: str, step: int, world: int, arrays: dict, owner: dict, reports: list,
            marks: dict | None = None) -> None:
    """Rank 0: manifest last, then an atomic rename of the directory into place."""
    from lucid import __version__

    files = {}
    for r in reports:
        files.update(r["files"])
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "lucid_version": __version__,
        "step": step,
        "world_size": world,
        "tensors": {
            n: {"file": shard_name(owner[n], world), "dtype": str(a.dtype), "shape": list(a.shape)}
            for n, a in arrays.items()
        },
        "files": files,
    }
    if marks:
        manifest["marks"] = marks
    _write_durable(os.path.join(tmp, MANIFEST), json.dumps(manifest, indent=1).encode())
    _fsync_dir(tmp)
    parent = os.path.dirname(final) or "."
    old = None
    if os.path.exists(final):  # an older checkpoint of the same step: moved aside, deleted last
        old = os.path.join(parent, f".old-{os.path.basename(final)}-{uuid.uuid4().hex[:8]}")
        os.rename(final, old)
    os.rename(tmp, final)
    _fsync_dir(parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _remove_stale_tmp(directory: str) -> None:
    """Leftovers of writes that died before their commit (never loadable), and ``.old-*``
    copies whose step directory is back in place."""
    for name in os.listdir(directory):
        m = _OLD_DIR.match(name)
        if name.startswith(".tmp-step_") or (m and os.path.isdir(os.path.join(directory, step_dir_name(int(m.group(1)))))):
            shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


# -- loading -----------------------------------------------------------------------
def read_manifest(path: str) -> dict:
    file = os.path.join(path, MANIFEST)
    try:
        with open(file) as fh:
            manifest = json.load(fh)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a committed checkpoint (no {MANIFEST})") from None
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{file} is corrupted: {exc}") from None
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise CheckpointError(
            f"{file}: format {manifest.get('format')!r} version {manifest.get('version')!r}; "
            f"this lucid reads {FORMAT!r} version {VERSION}"
        )
    return manifest


def verify(path: str, manifest: dict, group: ProcessGroup | None = None) -> None:
    """Check sizes and checksums; each rank (of ``group``) checks a share of the files, all learn the result."""
    rank, world = comm.rank(group), comm.world_size(group)
    problems = []
    for i, (name, entry) in enumerate(sorted(manifest["files"].items())):
        if i % world != rank:
            continue
        file = os.path.join(path, name)
        if not os.path.isfile(file):
            problems.append(f"{file} is missing")
        elif os.path.getsize(file) != entry["size"]:
            problems.append(f"{file} has {os.path.getsize(file)} bytes, the manifest says {entry['size']} (truncated?)")
        elif _sha256(file) != entry["sha256"]:
            problems.append(f"{file} does not match its sha256 checksum (corrupted)")
    problems = [p for ps in collectives.all_gather_object(problems, group) for p in ps]
    if problems:
        raise CheckpointError("; ".join(problems))


def load(path: str, map_location: Any = None, group: ProcessGroup | None = None) -> tuple[dict, dict, dict]:
    """Read a checkpoint written at any world size; collective over ``group`` (None: the world).

    ``map_location`` places tensors as in ``lucid.load`` (e.g. "cpu", or the rank's GPU).
    Returns (state, this rank's rank_state or {} when the world size changed, manifest).
    """
    manifest = read_manifest(path)
    verify(path, manifest, group)
    import safetensors

    arrays = {}
    by_file: dict[str, list[str]] = {}
    for name, entry in manifest["tensors"].items():
        by_file.setdefault(entry["file"], []).append(name)
    for file, names in by_file.items():
        with safetensors.safe_open(os.path.join(path, file), framework="numpy") as fh:
            for name in names:
                arrays[name] = fh.get_tensor(name)
    with open(os.path.join(path, STATE)) as fh:
        structure = json.load(fh)["structure"]
    state = serialization._Decoder(arrays, serialization._device_map(map_location)).decode(structure)
    rank_state = {}
    rank_file = os.path.join(path, f"rank-{comm.rank(group):05d}.json")
    if manifest["world_size"] == comm.world_size(group) and os.path.isfile(rank_file):
        with open(rank_file) as fh:
            rank_state = json.load(fh)
    return state, rank_state, manifest


def load_newest(
    directory: str, map_location: Any = None, group: ProcessGroup | None = None
) -> tuple[str, tuple[dict, dict, dict]] | None:
    """The newest committed checkpoint under ``directory`` that verifies; collective over ``group``.

    A corrupted one is skipped with a warning naming the problem. Returns (path,
    load(path)), or None when the directory holds no checkpoint at all; raises a
    CheckpointError listing every checkpoint and why it failed when some exist but
    none is usable (a run must never restart from scratch over them).
    """
    problems = [f"{p}: not committed (no {MANIFEST})" for p in uncommitted(directory)]
    for path in reversed(committed(directory)):
        try:
            return path, load(path, map_location, group)
        except CheckpointError as exc:
            problems.append(f"{path}: {exc}")
            if comm.rank(group) == 0:
                warnings.warn(f"skipping checkpoint {path}: {exc}; trying the previous one", stacklevel=2)
    if problems:
        raise CheckpointError(f"no usable checkpoint under {directory}:\n  " + "\n  ".join(problems))
    return None


def load_path(
    path: str, map_location: Any = None, group: ProcessGroup | None = None
) -> tuple[str, tuple[dict, dict, dict]]:
    """A checkpoint directory, or the newest usable one of a directory of checkpoints
    (a run's ``checkpoints/``); collective over ``group``. Returns (the checkpoint's path, load(path))."""
    if os.path.isfile(os.path.join(path, MANIFEST)):
        return path, load(path, map_location, group)
    if not os.path.exists(path):
        raise CheckpointError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise CheckpointError(f"{path} is not a checkpoint directory")
    found = load_newest(path, map_location, group)
    if found is None:
        if _STEP_DIR.match(os.path.basename(os.path.normpath(path))):
            raise CheckpointError(f"{path} is not a committed checkpoint (no {MANIFEST})")
        raise CheckpointError(f"{path} is neither a checkpoint nor a directory of checkpoints")
    return found

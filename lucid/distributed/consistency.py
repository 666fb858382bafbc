"""Rank-consistency guards: the same run settings at start, the same replicas all along.

Data parallelism is only correct when every rank runs the same program on the same
weights. Neither MPI nor the gradient all-reduce notices when that stops being true:
ranks launched with different learning rates step apart silently; ranks with
different batch sizes or ``sync_bn`` issue mismatched collectives (a raw "message
truncated" error, or a hang). Two cheap checks make both loud:

- ``check_same_settings(settings)`` at start: one all-gather of a digest of the
  flattened settings; when digests differ, every rank raises the same
  ``SettingsMismatch`` naming each key and the values the ranks hold.
- ``ReplicaCheck(module, interval)``: every ``interval`` steps, one all-reduce (max)
  of an exact bitwise checksum per parameter and buffer; when any differs between
  ranks, every rank raises the same ``ReplicasDiverged`` naming the first one.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from lucid.distributed.collectives import all_gather_object, all_reduce
from lucid.distributed.group import ProcessGroup


class SettingsMismatch(ValueError):
    """Ranks were started with different settings."""


class ReplicasDiverged(RuntimeError):
    """The model replicas are no longer bitwise identical across ranks."""


def flatten(settings: dict, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 0.1}} -> {"optim.lr": 0.1}."""
    out: dict[str, Any] = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


def check_same_settings(settings: dict, group: ProcessGroup | None = None, what: str = "settings") -> None:
    """Raise the same SettingsMismatch on every rank unless all ranks hold equal ``settings``."""
    flat = flatten(settings)
    text = json.dumps(flat, sort_keys=True, default=repr)
    digests = all_gather_object(hashlib.sha256(text.encode()).hexdigest(), group)
    if len(set(digests)) == 1:
        return
    everyone = all_gather_object(flat, group)
    keys = sorted(set().union(*everyone))
    missing = object()
    lines = []
    for key in keys:
        values = [rank_flat.get(key, missing) for rank_flat in everyone]
        if any(v != values[0] or (v is missing) != (values[0] is missing) for v in values):
            shown = ", ".join(f"rank {r}: {'(absent)' if v is missing else repr(v)}" for r, v in enumerate(values))
            lines.append(f"  {key}: {shown}")
    raise SettingsMismatch(
        f"ranks were started with different {what}; every rank must run the same:\n" + "\n".join(lines)
    )


def checksum(arrays: list) -> np.ndarray:
    """One exact, order-independent uint64 per array: the wrapping sum of its bits as integers."""
    from lucid import _backend

    out = np.zeros(len(arrays), np.uint64)
    for i, a in enumerate(arrays):
        flat = a.reshape(-1)
        words = {1: np.uint8, 2: np.uint16, 4: np.uint32, 8: np.uint64}[flat.dtype.itemsize]
        with np.errstate(over="ignore"):
            out[i] = np.uint64(_backend.asnumpy(flat.view(words).sum(dtype=np.uint64)))
    return out


class ReplicaCheck:
    """Every ``interval`` steps, verify that ``module``'s parameters and buffers are identical on all ranks.

    Args:
        module: the model (the bare one or its DDP wrapper).
        interval: steps between checks; 0 turns the check off.
        group: the ranks holding replicas (None: the world).
    """

    def __init__(self, module, interval: int, group: ProcessGroup | None = None):
        if interval < 0:
            raise ValueError(f"replica check interval must be >= 0, got {interval}")
        self.module, self.interval, self.group = module, int(interval), group
        self.checks = 0

    def maybe_check(self, step: int) -> None:
        """Check when ``step`` is a multiple of the interval."""
        if self.interval and step % self.interval == 0:
            self.check(step)

    def check(self, step: int) -> None:
        """One all-reduce (max) of [checksums, ~checksums]: max == ~max(~c) = min exactly when all agree."""
        names = [n for n, _ in self.module.named_parameters()] + [n for n, _ in self.module.named_buffers()]
        arrays = [p.data for _, p in self.module.named_parameters()] + [b.data for _, b in self.module.named_buffers()]
        sums = checksum(arrays)
        both = np.concatenate([sums, ~sums]).view(np.int64) ^ np.int64(-(2**63))  # order-preserving as signed
        all_reduce(both, "max", group=self.group)
        both = (both ^ np.int64(-(2**63))).view(np.uint64)
        high, low = both[: len(sums)], ~both[len(sums) :]
        self.checks += 1
        differ = [names[i] for i in np.flatnonzero(high != low)]
        if differ:
            more = f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
            raise ReplicasDiverged(
                f"replica check at step {step}: {differ[0]!r}{more} is no longer identical on every rank; "
                "the model replicas have diverged (a rank stepped differently or its memory was changed)"
            )

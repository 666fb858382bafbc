"""The run directory ``<output_dir>/<name>``: one run per folder, and a record of each start.

A fresh start into a folder that already holds checkpoints would mix two runs (the new
run's ``keep_last`` pruning deletes the old run's checkpoints or replaces steps of the
same number, a later ``--resume auto`` loads whichever is newest, and ``metrics.jsonl``
interleaves both). ``claim`` refuses that and names the ways out; with ``overwrite`` it
moves the old run aside. Every start then writes the resolved ``config.toml``, appends
its command line to ``command.txt`` and a ``run_start`` record to ``metrics.jsonl``.

``metrics.jsonl`` is append-only: a resumed run logs again from its checkpoint's step.
``read_metrics`` gives the current history: a ``run_start`` with ``resume_step`` s drops
the earlier records of steps after s; one without (a fresh start) drops everything before.
"""
from __future__ import annotations

import json
import os
import shlex
import time

from lucid.distributed import checkpoint, collectives


class RunDirError(ValueError):
    """The run directory holds another run and neither resuming nor overwriting was asked."""


def checkpoints_in(ckpt_dir: str) -> list[str]:
    """Names of the checkpoint directories under ``ckpt_dir`` (committed or not)."""
    paths = checkpoint.committed(ckpt_dir) + checkpoint.uncommitted(ckpt_dir)
    return sorted(os.path.basename(p) for p in paths)


def claim(run_dir: str, ckpt_dir: str, fresh: bool, overwrite: bool, main: bool) -> str | None:
    """Make ``run_dir`` this run's; collective (rank 0 decides, every rank gets the answer).

    Returns where an overwritten old run was moved (None otherwise); raises RunDirError
    on every rank when a fresh run finds checkpoints and ``overwrite`` is off.
    """
    answer: tuple[str | None, str | None] = (None, None)
    if main:
        try:
            answer = (_claim(run_dir, ckpt_dir, fresh, overwrite), None)
        except (RunDirError, OSError) as exc:
            answer = (None, str(exc))
    moved, error = collectives.broadcast_object(answer, 0)
    if error is not None:
        raise RunDirError(error)
    return moved


def _claim(run_dir: str, ckpt_dir: str, fresh: bool, overwrite: bool) -> str | None:
    found = checkpoints_in(ckpt_dir)
    if not fresh or not found:
        return None
    if not overwrite:
        listed = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
        raise RunDirError(
            f"{run_dir} already holds a run (checkpoints {listed}). Continue it with --resume auto, "
            f"start a new run next to it with --set run.name=\"<another name>\", or replace it with "
            f"--overwrite (moves the old run to {run_dir}.old-<date-time>)"
        )
    moved = f"{os.path.normpath(run_dir)}.old-{time.strftime('%Y%m%d-%H%M%S')}"
    os.rename(run_dir, moved)
    os.makedirs(run_dir)
    return moved


def record_start(run_dir: str, config_toml: str, command: list[str] | None) -> None:
    """Rank 0: the resolved config (this start's) and one line of command history."""
    os.makedirs(run_dir, exist_ok=True)
    tmp = os.path.join(run_dir, ".config.toml.tmp")
    with open(tmp, "w") as fh:
        fh.write(config_toml)
    os.replace(tmp, os.path.join(run_dir, "config.toml"))
    if command:
        with open(os.path.join(run_dir, "command.txt"), "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')}  {shlex.join(command)}\n")


def read_metrics(path: str) -> list[dict]:
    """The records of ``metrics.jsonl`` that describe the run as it stands (see module docstring)."""
    records: list[dict] = []
    with open(path) as fh:
        for line in fh:
            r = json.loads(line)
            if r["kind"] == "run_start":
                s = r.get("resume_step")
                records = [] if s is None else [x for x in records if x.get("step", 0) <= s or "step" not in x]
            records.append(r)
    return records

"""What every test script shares: one JSON result per rank.

Written to ``$LUCID_TEST_RESULTS/rank<r>.json`` when set (the launcher's ranks share
one stdout, where long lines from different ranks can interleave), else printed as
a ``RESULT <json>`` line.
"""
from __future__ import annotations

import json
import os

import numpy as np


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def report(rank: int, **values) -> None:
    text = json.dumps({"rank": rank, **_plain(values)})
    folder = os.environ.get("LUCID_TEST_RESULTS")
    if folder:
        with open(os.path.join(folder, f"rank{rank}.json"), "w") as f:
            f.write(text)
    else:
        print("RESULT " + text, flush=True)

"""TensorBoard event files for a run (``[run] tensorboard = true``), written with tensorboardX.

Every metrics record that has a ``step`` becomes scalars: each numeric field except
step/epoch/time/count is logged as ``<kind>/<field>`` (``train/loss``, ``train/lr``,
``train/img_per_s``, ``train/grad_norm`` when the record has it, ``eval/top1``,
``eval/top5``, ...). New fields show up without changes here. tensorboardX is an
optional extra (``pip install -e '.[tensorboard]'``): it writes TensorBoard's event
format without TensorFlow or PyTorch.
"""
from __future__ import annotations

import importlib.util
import os
import time

_NOT_SCALARS = frozenset({"step", "epoch", "time", "count"})
INSTALL_HINT = "pip install tensorboardX (or: pip install -e '.[tensorboard]')"


def require_tensorboardx() -> None:
    """Raise ImportError naming the config key and the install command when tensorboardX is missing."""
    if importlib.util.find_spec("tensorboardX") is None:
        raise ImportError(f"run.tensorboard = true needs the tensorboardX package, which is not installed: {INSTALL_HINT}")


def scalars(kind: str, record: dict) -> dict[str, float]:
    """The TensorBoard tags and values of one metrics record ({} without a step)."""
    if not isinstance(record.get("step"), int):
        return {}
    return {f"{kind}/{k}": float(v) for k, v in record.items()
            if k not in _NOT_SCALARS and isinstance(v, (int, float)) and not isinstance(v, bool)}


class TensorBoardLog:
    """Writes the scalars of each record to an event file under ``log_dir``, on disk when ``write`` returns.

    It uses tensorboardX's synchronous ``EventsWriter`` rather than ``SummaryWriter``, whose
    queue and writer thread would lose the last records of a killed run.
    """

    def __init__(self, log_dir: str):
        require_tensorboardx()
        from tensorboardX.event_file_writer import EventsWriter  # imported here: optional extra

        os.makedirs(log_dir, exist_ok=True)
        self.log_dir = log_dir
        self.events = EventsWriter(os.path.join(log_dir, "events"))

    def write(self, kind: str, record: dict) -> None:
        from tensorboardX.proto.event_pb2 import Event
        from tensorboardX.summary import scalar

        values = scalars(kind, record)
        for tag, value in values.items():
            wall_time = record.get("time", time.time())
            self.events.write_event(Event(wall_time=wall_time, step=record["step"], summary=scalar(tag, value)))
        if values:
            self.events.flush()

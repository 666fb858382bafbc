"""Training curves from ``metrics.jsonl``: loss, learning rate and validation top-1 per run.

``load_run(run_dir)`` reads one run's records; ``plot_runs(runs, x="step")`` draws them
into a matplotlib Figure with three panels (train loss, lr, val top-1), one line per
run. ``x="epoch"`` puts records at ``step / steps_per_epoch``, the length of the run's
first finished epoch. matplotlib is an optional extra (``pip install -e '.[plot]'``);
the Figure is built without pyplot, so no global backend is touched.
"""
from __future__ import annotations

import importlib.util
import json
import os
from dataclasses import dataclass, field

PANELS = (("train", "loss", "train loss"), ("train", "lr", "learning rate"), ("eval", "top1", "val top-1 (%)"))
AXES = ("step", "epoch")


@dataclass
class RunCurves:
    """The records of one run, by kind (``train``, ``eval``, ...), in file order."""

    name: str
    path: str
    records: dict[str, list[dict]] = field(default_factory=dict)

    def steps_per_epoch(self) -> int:
        """Optimizer steps per epoch: the last train step of epoch 0, once a record of epoch 1 shows it ended."""
        train = self.records.get("train", [])
        if not any(r.get("epoch") == 1 for r in train):
            raise ValueError(f"{self.path}: --x epoch needs a run that finished its first epoch (use --x step)")
        return max(r["step"] for r in train if r.get("epoch") == 0)

    def series(self, kind: str, key: str, x: str) -> tuple[list[float], list[float]]:
        """(xs, ys) of ``key`` in the ``kind`` records that have it."""
        rows = [r for r in self.records.get(kind, []) if isinstance(r.get(key), (int, float))]
        scale = self.steps_per_epoch() if x == "epoch" else 1
        return [r["step"] / scale for r in rows], [float(r[key]) for r in rows]


def load_run(run_dir: str) -> RunCurves:
    """Read ``run_dir/metrics.jsonl``; ValueError when it is missing, unreadable or has no train records."""
    path = os.path.join(run_dir, "metrics.jsonl")
    if not os.path.isfile(path):
        what = "is not a directory" if not os.path.isdir(run_dir) else "has no metrics.jsonl"
        raise ValueError(f"{run_dir} {what}: give a run directory written by launch.train, e.g. runs/debug")
    run = RunCurves(os.path.basename(os.path.normpath(run_dir)), path)
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{lineno}: not a JSON record ({exc})") from None
            run.records.setdefault(record.get("kind", "?"), []).append(record)
    if not run.records.get("train"):
        raise ValueError(f"{path} has no train records: nothing to plot")
    return run


def require_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise ImportError("plotting needs matplotlib, which is not installed: pip install matplotlib "
                          "(or: pip install -e '.[plot]')")


def plot_runs(runs: list[RunCurves], x: str = "step", size: tuple[int, int] = (1500, 450), dpi: int = 100):
    """A matplotlib Figure of ``size`` pixels: one panel per entry of PANELS, one line per run."""
    if x not in AXES:
        raise ValueError(f"x must be one of {', '.join(AXES)}, got {x!r}")
    require_matplotlib()
    from matplotlib.figure import Figure  # imported here: optional extra

    fig = Figure(figsize=(size[0] / dpi, size[1] / dpi), dpi=dpi, layout="constrained")
    axes = fig.subplots(1, len(PANELS))
    for ax, (kind, key, title) in zip(axes, PANELS):
        for i, run in enumerate(runs):
            xs, ys = run.series(kind, key, x)
            ax.plot(xs, ys, marker="o" if kind == "eval" else None, markersize=4, color=f"C{i}", label=run.name)
        ax.set_title(title)
        ax.set_xlabel(x)
        ax.grid(alpha=0.3)
    axes[0].legend()
    return fig


def save_png(fig, path: str) -> None:
    """Write ``fig`` as PNG at its own size and dpi (no bbox cropping, so the size is exact)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig).print_png(path)

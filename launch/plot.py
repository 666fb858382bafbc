"""Plot training curves (train loss, lr, val top-1) of one or several runs into a PNG.

    python -m launch.plot runs/fashion_mnist_resnet -o curves.png
    python -m launch.plot runs/a runs/b --x epoch --size 1500x450 -o compare.png

Each RUN_DIR is a run directory of launch.train (``<output_dir>/<name>``, holding
metrics.jsonl). Needs matplotlib (``pip install -e '.[plot]'``).
"""
from __future__ import annotations

import argparse
import sys

from lucid.train.curves import AXES, load_run, plot_runs, save_png
from lucid.version import add_version


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--size must look like 1500x450 (pixels), got {text!r}") from None
    if w < 200 or h < 150:
        raise argparse.ArgumentTypeError(f"--size must be at least 200x150 pixels, got {text!r}")
    return w, h


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m launch.plot", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run directories holding metrics.jsonl")
    p.add_argument("-o", "--out", required=True, help="the PNG file to write")
    p.add_argument("--x", choices=AXES, default="step", help="horizontal axis (default: step)")
    p.add_argument("--size", type=_size, default=(1500, 450), help="width x height in pixels (default 1500x450)")
    add_version(p)
    args = p.parse_args(argv)
    try:
        runs = [load_run(d) for d in args.runs]
        fig = plot_runs(runs, x=args.x, size=args.size)
        save_png(fig, args.out)
    except (ValueError, ImportError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out} ({args.size[0]}x{args.size[1]}): " + ", ".join(r.name for r in runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())

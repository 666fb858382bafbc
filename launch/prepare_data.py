"""Prepare datasets as ImageFolder trees.

    python -m launch.prepare_data fashion-mnist --out DIR [--src DIR] [--limit N]

writes DIR/train/<class>/*.png (60,000) and DIR/val/<class>/*.png (10,000) from the
Fashion-MNIST IDX files (default source: the Debian package dataset-fashion-mnist,
/usr/share/datasets/fashion-mnist). Safe to run again: only what is missing is written.
"""
from __future__ import annotations

import argparse
import sys

from lucid.data.fashion_mnist import DEFAULT_SRC, prepare_fashion_mnist
from lucid.version import add_version


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m launch.prepare_data", description="Prepare datasets as ImageFolder trees.")
    add_version(parser)
    sub = parser.add_subparsers(dest="dataset", required=True)
    fm = sub.add_parser("fashion-mnist", help="Fashion-MNIST IDX files -> DIR/{train,val}/<class>/*.png")
    fm.add_argument("--out", required=True, help="destination folder")
    fm.add_argument("--src", default=DEFAULT_SRC, help=f"folder with the IDX files, .gz or raw (default {DEFAULT_SRC})")
    fm.add_argument("--limit", type=int, default=None, help="convert only the first N images of each split")
    args = parser.parse_args(argv)
    try:
        summary = prepare_fashion_mnist(args.out, args.src, args.limit)
    except (OSError, ValueError, RuntimeError) as exc:
        print(f"prepare_data: error: {exc}", file=sys.stderr)
        return 1
    total = {split: sum(c.values()) for split, c in summary.items()}
    print(f"Fashion-MNIST ready in {args.out}: " + ", ".join(f"{s} {n}" for s, n in total.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a model from a run config: one process, or N ranks under mpirun.

    python -m launch.train --config configs/debug.toml
    mpirun -n 2 python -m launch.train --config configs/fashion_mnist_resnet.toml
    python -m launch.train --config configs/imagenet_resnet50.toml --set data.root=/data/imagenet --resume auto
"""
from __future__ import annotations

import argparse
import sys

from lucid.train.config import ConfigError, load_config
from lucid.version import add_version


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m launch.train", description=__doc__.split("\n")[0])
    add_version(p)
    p.add_argument("--config", required=True, help="TOML run config (see configs/ and docs/training.md)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set optim.lr=0.05 (repeatable)")
    p.add_argument("--resume", metavar="auto|PATH", help="continue from the newest checkpoint of this run (auto) or from PATH")
    p.add_argument("--device", choices=("cpu", "gpu"), help="shortcut for --set run.device=...")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    overrides = list(args.overrides) + ([f"run.device={args.device!r}".replace("'", '"')] if args.device else [])
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(cfg.to_toml())
        return 0
    from lucid.train.trainer import Trainer  # noqa: PLC0415 - starts MPI

    Trainer(cfg, resume=args.resume).fit()
    return 0


if __name__ == "__main__":
    sys.exit(main())

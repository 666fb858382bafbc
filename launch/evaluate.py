"""Evaluate weights on the validation split of a run config (one process or N ranks).

    python -m launch.evaluate --config configs/fashion_mnist_resnet.toml --weights model.safetensors
    mpirun -n 2 python -m launch.evaluate --config ... --weights ...

Prints exact top-1 / top-5 accuracy and mean loss over the whole validation set.
"""
from __future__ import annotations

import argparse
import json
import sys

from lucid.version import add_version


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m launch.evaluate", description=__doc__.split("\n")[0])
    add_version(p)
    p.add_argument("--config", required=True, help="the TOML run config that describes model and data")
    p.add_argument("--weights", required=True, help="a .safetensors file written by launch.export")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", choices=("cpu", "gpu"))
    args = p.parse_args(argv)
    from lucid.train.config import ConfigError, load_config  # noqa: PLC0415

    overrides = list(args.overrides) + ([f'run.device="{args.device}"'] if args.device else [])
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    import safetensors.numpy  # noqa: PLC0415

    import lucid  # noqa: PLC0415
    from lucid.train.trainer import Trainer  # noqa: PLC0415

    try:
        weights = safetensors.numpy.load_file(args.weights)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read weights {args.weights}: {exc}", file=sys.stderr)
        return 2
    cfg.run.progress = False
    trainer = Trainer(cfg)
    try:
        trainer.model.load_state_dict({k: lucid.tensor(v) for k, v in weights.items()})
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"error: {args.weights} does not fit model {cfg.model.name!r}: {exc}", file=sys.stderr)
        return 2
    stats = trainer.evaluate()
    if trainer.main:
        print(json.dumps({"weights": args.weights, **stats}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

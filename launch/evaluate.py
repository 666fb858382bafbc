"""Evaluate weights on the validation split of a run config (one process or N ranks).

    python -m launch.evaluate --config configs/fashion_mnist_resnet.toml --weights model.safetensors
    mpirun -n 2 python -m launch.evaluate --config ... --weights ...

Prints exact top-1 / top-5 accuracy and mean loss over the whole validation set.
"""
from __future__ import annotations

import argparse
import json
import sys

import safetensors.numpy

import lucid
import lucid.distributed as dist
from lucid.train.config import ConfigError, load_config
from lucid.train.data_setup import batch_normalization, build_val_loader
from lucid.train.evaluation import evaluate_model
from lucid.train.model_setup import build_model
from lucid.version import add_version


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m launch.evaluate", description=__doc__.split("\n")[0])
    add_version(p)
    p.add_argument("--config", required=True, help="the TOML run config that describes model and data")
    p.add_argument("--weights", required=True, help="a .safetensors file written by launch.export")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--device", choices=("cpu", "gpu"))
    args = p.parse_args(argv)

    overrides = list(args.overrides) + ([f'run.device="{args.device}"'] if args.device else [])
    try:
        cfg = load_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        weights = safetensors.numpy.load_file(args.weights)
    except (OSError, ValueError) as exc:
        print(f"error: cannot read weights {args.weights}: {exc}", file=sys.stderr)
        return 2
    # Only what evaluation needs: the model (no SyncBatchNorm: eval mode uses the running
    # statistics) and this rank's share of the validation split.
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    device = dist.device() if cfg.run.device != "cpu" else "cpu"
    cfg.model.pretrained = ""  # the weights file is what gets evaluated
    model = build_model(cfg, device, world, sync_bn=False)
    try:
        model.load_state_dict({k: lucid.tensor(v) for k, v in weights.items()})
    except (KeyError, ValueError, RuntimeError) as exc:
        print(f"error: {args.weights} does not fit model {cfg.model.name!r}: {exc}", file=sys.stderr)
        return 2
    normalize = batch_normalization(cfg.data)
    loader = build_val_loader(cfg.data, cfg.model.num_classes, rank, world, cfg.run.seed, cfg.data.batch_size)
    stats = evaluate_model(model, loader, device, cfg.run.dtype, cfg.model.num_classes, normalize)
    if rank == 0:
        result = {"top1": stats["top1"], "top5": stats["topk"], "loss": stats["loss"], "count": stats["count"]}
        print(json.dumps({"weights": args.weights, **result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

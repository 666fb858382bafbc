"""Write a checkpoint's model weights as one consolidated safetensors file.

    python -m launch.export runs/debug/checkpoints/step_00000032 --out model.safetensors
    python -m launch.export runs/debug/checkpoints --out model.safetensors   # newest checkpoint
    python -m launch.export runs/debug/checkpoints --best --ema --out model.safetensors
    python -m launch.export runs/debug/checkpoints --format onnx --out model.onnx

The file holds the model's state_dict (parameters and buffers, lucid's key names) and,
in its metadata, the run config, so ``launch.evaluate`` and ``lucid.models`` can use it.
``--best`` picks the checkpoint marked best (``run.keep_best``) instead of the newest;
``--ema`` writes the moving average of the weights (``run.ema_decay``) instead of the
raw weights. ``--format onnx`` writes the model as ONNX instead (lucid.onnx.export,
dynamic batch axis).
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from lucid.version import add_version


def best_checkpoint(path: str) -> str:
    """The checkpoint marked best (``run.keep_best``) in the directory of checkpoints ``path``
    (the newest marked one, which is the best), or ``path`` itself when it is one so marked."""
    from lucid.distributed import checkpoint, checkpoint_marks

    if os.path.isfile(os.path.join(path, checkpoint.MANIFEST)):
        if "best" not in checkpoint_marks.marks_of(path):
            raise checkpoint.CheckpointError(f"--best: {path} is not marked best; give its directory of checkpoints")
        return path
    marked = checkpoint_marks.newest_marked(checkpoint.committed(path), "best")
    if marked is None:
        raise checkpoint.CheckpointError(f"--best: no checkpoint under {path} is marked best (train with run.keep_best = true)")
    return marked


def consolidate(path: str, best: bool = False, ema: bool = False) -> tuple[dict[str, np.ndarray], dict]:
    """(name -> array of the model's state_dict, run config) of the checkpoint at ``path`` (in a
    directory of them: the newest usable, or with ``best`` the one marked best); ``ema``: the
    EMA weights instead of the raw ones."""
    from lucid import _backend
    from lucid.distributed import checkpoint

    if best:
        path = best_checkpoint(path)
    path, (state, _, _) = checkpoint.load_path(path, map_location="cpu")
    if ema and "ema" not in state:
        raise checkpoint.CheckpointError(f"--ema: {path} holds no EMA weights (its run had run.ema_decay = 0)")
    source = state["ema"]["weights"] if ema else state["model"]
    weights = {k: _backend.asnumpy(v.data).copy(order="C") for k, v in source.items()}  # keeps 0-d arrays 0-d
    return weights, state["config"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m launch.export", description=__doc__.split("\n")[0])
    add_version(p)
    p.add_argument("checkpoint", help="a checkpoint directory (step_XXXXXXXX) or a directory of them")
    p.add_argument("--out", required=True, help="output .safetensors (or .onnx) file")
    p.add_argument("--format", choices=("safetensors", "onnx"), default="safetensors")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset version (--format onnx)")
    p.add_argument("--best", action="store_true", help="the checkpoint marked best (run.keep_best) instead of the newest")
    p.add_argument("--ema", action="store_true", help="the EMA weights (run.ema_decay) instead of the raw weights")
    args = p.parse_args(argv)
    import safetensors.numpy

    from lucid.distributed.checkpoint import CheckpointError

    try:
        weights, config = consolidate(args.checkpoint, best=args.best, ema=args.ema)
    except CheckpointError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "onnx":
        return _write_onnx(weights, config, args)
    tmp = args.out + ".tmp"
    safetensors.numpy.save_file(weights, tmp, metadata={"format": "lucid-weights", "config": json.dumps(config)})
    os.replace(tmp, args.out)
    n = sum(int(np.prod(a.shape)) for a in weights.values())
    print(f"wrote {args.out}: {len(weights)} tensors, {n:,} values ({config['model']['name']})")
    return 0


def _write_onnx(weights: dict, config: dict, args) -> int:
    from lucid.onnx import UnsupportedOperatorError
    from lucid.onnx.checkpoint import export_run_weights

    try:
        shape = export_run_weights(weights, config, args.out, args.opset)
    except ImportError as exc:
        print(f"error: --format onnx needs the onnx package (pip install 'lucid[onnx]'): {exc}", file=sys.stderr)
        return 2
    except (UnsupportedOperatorError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: ONNX opset {args.opset}, input (batch, {', '.join(map(str, shape[1:]))}) "
          f"({config['model']['name']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a model from a run config: one process, or N ranks under mpirun.

    python -m launch.train --config configs/debug.toml
    mpirun -n 2 python -m launch.train --config configs/fashion_mnist_resnet.toml
    python -m launch.train --config configs/imagenet_resnet50.toml --set data.root=/data/imagenet --resume auto

Exit codes: 0 done; 2 a usage error (config, run directory, no usable checkpoint, launcher
and MPI disagree): retrying will not help; 75 stopped by SIGTERM/SIGUSR1/SIGINT after
committing a checkpoint (resume with --resume auto); 128+N gave up after signal N without
a new checkpoint (second signal or grace period over); other values: a failure.
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
    p.add_argument("--overwrite", action="store_true",
                   help="start fresh although the run directory holds a run: the old run is moved to <run dir>.old-<date-time>")
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
    if args.overwrite and args.resume:
        print(f"error: --overwrite starts a fresh run and --resume {args.resume} continues one: choose one", file=sys.stderr)
        return 2
    from lucid.distributed.checkpoint import CheckpointError
    from lucid.distributed.launcher import LauncherMismatchError
    from lucid.train.preemption import EXIT_PREEMPTED, Preempted, StopSignals
    from lucid.train.run_dir import RunDirError
    from lucid.train.trainer import Trainer  # imported here: starts MPI

    try:
        with StopSignals(grace=cfg.run.preempt_grace_s) as stop:
            command = ["python", "-m", "launch.train", *(sys.argv[1:] if argv is None else argv)]
            Trainer(cfg, resume=args.resume, stop=stop, overwrite=args.overwrite, command=command).fit()
    except Preempted:
        return EXIT_PREEMPTED
    except (CheckpointError, LauncherMismatchError, RunDirError) as exc:  # the same on every rank: each exits 2
        from lucid.distributed import comm

        if not comm.is_initialized() or comm.rank() == 0:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

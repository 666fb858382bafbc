"""Time the default demo end to end and check its promise: >= 90% val top-1 within 10 minutes.

    python benchmarks/demo_accuracy.py --root data/fashion-mnist            # mpiexec -n 2, the default config
    python benchmarks/demo_accuracy.py --root /tmp/fmnist --np 1 --target-minutes 20

Runs ``mpiexec -n NP python -m launch.train --config CONFIG`` into a fresh output folder
(the run starts from scratch, never resumes), measures the wall time of the whole
command (MPI start-up, data set-up and evaluations included), then reads the run's
``metrics.jsonl``: top-1 after each evaluation, when the target was first reached, and
the final summary. Prints the figures and exits 1 when the run failed or missed either
target. Not part of the tests (it takes the whole 10 minutes).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

from lucid.distributed.launcher import find_mpiexec  # noqa: E402 - after the path set-up


def mpiexec() -> str:
    """The mpiexec next to this Python (the mpich wheel's in a venv), else the one on PATH."""
    exe = find_mpiexec()
    if exe is None:
        sys.exit("mpiexec not found: pip install mpich (or run inside the project's .venv)")
    return exe


def read_metrics(path: str) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", default="configs/fashion_mnist_resnet.toml")
    p.add_argument("--root", default="data/fashion-mnist", help="the prepared data folder (launch.prepare_data)")
    p.add_argument("--np", type=int, default=2, help="ranks")
    p.add_argument("--target-top1", type=float, default=90.0)
    p.add_argument("--target-minutes", type=float, default=10.0)
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra launch.train overrides (repeatable)")
    args = p.parse_args()
    if not os.path.isdir(args.root):
        sys.exit(f"data folder {args.root!r} does not exist: python -m launch.prepare_data fashion-mnist --out {args.root}")

    with tempfile.TemporaryDirectory(prefix="lucid-demo-") as out:
        cmd = [mpiexec(), "-n", str(args.np), sys.executable, "-m", "launch.train", "--config", args.config,
               "--set", f"data.root={json.dumps(args.root)}", "--set", f"run.output_dir={json.dumps(out)}",
               "--set", "run.progress=false"]
        for o in args.overrides:
            cmd += ["--set", o]
        print("running:", " ".join(cmd), flush=True)
        started, start = time.time(), time.perf_counter()
        rc = subprocess.call(cmd, cwd=ROOT)
        wall = time.perf_counter() - start
        runs = [os.path.join(out, d) for d in os.listdir(out)]
        metrics = read_metrics(os.path.join(runs[0], "metrics.jsonl")) if len(runs) == 1 else []

    evals = [m for m in metrics if m["kind"] == "eval"]
    summary = next((m for m in metrics if m["kind"] == "summary"), None)
    print(f"\n{args.config}, {args.np} ranks: exit code {rc}, wall {wall:.1f} s ({wall / 60:.2f} min)")
    for e in evals:
        print(f"  eval after epoch {e['epoch'] + 1}, step {e['step']}: top-1 {e['top1']:.2f}%  top-5 {e['top5']:.2f}%  "
              f"({e['time'] - started:.0f} s after the start)")
    reached = next((e for e in evals if e["top1"] >= args.target_top1), None)
    if summary is not None:
        print(f"  summary: {summary['steps']} steps in {summary['seconds']:.1f} s of training, {summary['img_per_s']:.1f} img/s")
    final = evals[-1]["top1"] if evals else float("nan")
    ok = rc == 0 and summary is not None and final >= args.target_top1 and wall <= args.target_minutes * 60
    print(f"target: >= {args.target_top1:.1f}% top-1 within {args.target_minutes:.1f} min -> "
          f"final top-1 {final:.2f}%, first reached at epoch {reached['epoch'] + 1 if reached else '-'}, "
          f"wall {wall / 60:.2f} min: {'MET' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

"""Images/s of full training steps (forward, cross-entropy, backward, SGD momentum), lucid vs PyTorch.

    PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/train_step.py --model resnet_50 --batch 16 --size 224
    ... --model resnet_18 --stem cifar --batch 64 --size 32      # CIFAR-style ResNet-18
    ... --inference                                               # eval mode, no grad, forward only
    ... --profile                                                 # + lucid's time per op kind
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/train_step.py ...

Each framework runs in its own worker process (this script re-invoked with
``--worker``), so the peak RSS of each (``ru_maxrss``) is its own. The driver steps
the workers in turn, one step each per repetition (lucid, torch, lucid, torch, ...):
load from other jobs on the machine hits both alike, and the medians and their
ratio come from the same run. The lucid worker builds the model (seeded) and writes
its weights and the batch to a temporary folder; the PyTorch worker builds the same
architecture from plain torch.nn (benchmarks/torch_reference.py) and loads them.
Both use ``--threads`` threads (BLAS / OpenMP / lucid's block pool) and float32;
PyTorch runs eager, in NCHW memory unless ``--channels-last-torch``.
PyTorch is compared when it imports (``--compare-torch`` insists, ``--no-torch`` skips).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
PHASES = ("forward", "backward", "optimizer")


# -- shared by both workers -------------------------------------------------------------
def rss_mb() -> float:
    """Current resident set size in MiB (Linux /proc)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def limit_threads(threads: int) -> None:
    """Pin this process to ``threads`` cores (lucid's block pool follows the affinity) and cap BLAS."""
    cpus = sorted(os.sched_getaffinity(0))
    if threads < len(cpus):
        os.sched_setaffinity(0, cpus[:threads])
    from threadpoolctl import threadpool_limits  # noqa: PLC0415

    threadpool_limits(threads)


def blas_kernels() -> str:
    """The BLAS / OpenMP libraries this process loaded, with OpenBLAS's kernel (threadpoolctl)."""
    from threadpoolctl import threadpool_info  # noqa: PLC0415

    parts = []
    for info in threadpool_info():
        arch = info.get("architecture") or ""
        parts.append(f"{info['internal_api']} {info.get('version') or ''} {arch} x{info['num_threads']}".replace("  ", " "))
    return "; ".join(parts)


def serve(step, describe: dict, profile_steps=None) -> None:
    """Worker loop: print ``describe``, then answer "step" / "profile N" / "quit" lines from the driver."""
    print(json.dumps({"ready": describe}), flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "step":
            print(json.dumps({"times": step()}), flush=True)
        elif cmd[0] == "profile":
            print(json.dumps({"profile": profile_steps(int(cmd[1]))}), flush=True)
        elif cmd[0] == "quit":
            print(json.dumps({"peak_rss_mb": peak_rss_mb()}), flush=True)
            return


def step_phases(model, x, y, opt, cross_entropy, no_grad, inference: bool) -> list:
    """The (name, fn) phases of one step, the same for both frameworks.

    Training: forward (incl. the loss), backward, optimizer (SGD step and zero_grad);
    inference: the model in eval mode under no_grad, forward only.
    """
    if inference:
        model.eval()

        def infer():
            with no_grad():
                model(x)

        return [("forward", infer)]
    state = {}

    def forward():
        state["loss"] = cross_entropy(model(x), y)

    def backward():
        state.pop("loss").backward()

    def optimize():
        opt.step()
        opt.zero_grad(set_to_none=True)

    return [("forward", forward), ("backward", backward), ("optimizer", optimize)]


def timed_phases(phases) -> dict:
    """Run (name, fn) pairs in order: wall seconds per name and in total, and the step's CPU seconds.

    CPU time (all threads of the process) hardly depends on other jobs' load, so it
    helps to read a noisy wall time; spin-waiting BLAS/OpenMP threads do count in it.
    """
    times = {}
    cpu = time.process_time()
    for name, fn in phases:
        start = time.perf_counter()
        fn()
        times[name] = time.perf_counter() - start
    times["step"] = sum(times.values())
    times["cpu"] = time.process_time() - cpu
    return times


# -- lucid worker -------------------------------------------------------------------------
def lucid_worker(args) -> None:
    limit_threads(args.threads)
    sys.path.insert(0, ROOT)
    import lucid  # noqa: PLC0415
    import lucid.nn.functional as F  # noqa: PLC0415
    from lucid.models import create_model  # noqa: PLC0415
    from lucid import _malloc  # noqa: PLC0415
    from lucid.models.pretrained import lucid_to_reference  # noqa: PLC0415

    _malloc.tune()  # as dist.init() does for launch.train (import lucid leaves malloc alone)
    base_rss = rss_mb()
    lucid.manual_seed(0)
    model = create_model(args.model, **model_overrides(args))
    rng = np.random.default_rng(0)
    x_np = rng.standard_normal((args.batch, 3, args.size, args.size), dtype=np.float32)
    y_np = rng.integers(0, model.config.num_classes, args.batch)
    # Written array by array (no second copy of the weights in this process's peak RSS).
    tensors = dict(model.named_parameters())
    tensors.update(model.named_buffers())
    np.savez(os.path.join(args.worker_dir, "weights.npz"), **{lucid_to_reference(k): t.data for k, t in tensors.items()})
    np.savez(os.path.join(args.worker_dir, "batch.npz"), x=x_np, y=y_np)
    arch = {}
    if args.want_torch:
        from reference_arch import reference_kwargs  # noqa: PLC0415 - benchmarks/ is on sys.path

        arch = reference_kwargs(model.config)
    x, y = lucid.tensor(x_np), lucid.tensor(y_np)
    opt = lucid.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    phases = step_phases(model, x, y, opt, F.cross_entropy, lucid.no_grad, args.inference)

    def step():
        return timed_phases(phases)

    def profile_steps(n: int) -> str:
        from lucid.autograd.profiler import profile  # noqa: PLC0415

        with profile() as prof:
            for _ in range(n):
                for name, fn in phases:
                    with prof.phase(name):
                        fn()
        return prof.table()

    serve(step, {"arch": arch, "blas": blas_kernels(), "base_rss_mb": base_rss, "setup_rss_mb": rss_mb(),
                 "params": sum(p.numel() for p in model.parameters())}, profile_steps)


def model_overrides(args) -> dict:
    overrides = {"num_classes": args.classes if args.classes else (10 if args.stem == "cifar" else 1000)}
    if args.stem is not None:
        overrides["stem_type"] = args.stem
    return overrides


# -- PyTorch worker -----------------------------------------------------------------------
def torch_worker(args) -> None:
    limit_threads(args.threads)
    import torch  # noqa: PLC0415
    import torch.nn.functional as TF  # noqa: PLC0415

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from torch_reference import RefNet  # noqa: PLC0415

    torch.set_num_threads(args.threads)
    base_rss = rss_mb()
    arch = json.loads(args.arch)
    model = RefNet(**arch)
    state_dict = model.state_dict()
    with np.load(os.path.join(args.worker_dir, "weights.npz")) as weights:
        for key in weights.files:  # one array at a time, copied into the model's own tensors
            state_dict[key].copy_(torch.from_numpy(weights[key]))
    with np.load(os.path.join(args.worker_dir, "batch.npz")) as batch:
        x, y = torch.from_numpy(batch["x"]), torch.from_numpy(batch["y"])
    if args.channels_last_torch:
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    phases = step_phases(model, x, y, opt, TF.cross_entropy, torch.no_grad, args.inference)

    def step():
        return timed_phases(phases)

    config = torch.__config__.show()
    blas = next((part.strip() for part in config.replace("\n", ",").split(",") if "BLAS_INFO" in part), "")
    serve(step, {"blas": f"{blas}, oneDNN {torch.backends.mkldnn.is_available()}; {blas_kernels()}",
                 "version": torch.__version__, "base_rss_mb": base_rss, "setup_rss_mb": rss_mb()})


# -- driver -------------------------------------------------------------------------------
class Worker:
    """A worker process of this script, driven line by line over its stdin/stdout."""

    def __init__(self, side: str, args, workdir: str, arch: dict | None = None):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--worker-dir", workdir] + forwarded(args)
        if arch is not None:
            cmd += ["--arch", json.dumps(arch)]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.info = self.ask(None)["ready"]

    def ask(self, command: str | None) -> dict:
        if command is not None:
            self.proc.stdin.write(command + "\n")
            self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"worker {self.proc.args[3]} exited with code {self.proc.wait()}")
        return json.loads(line)

    def quit(self) -> float:
        peak = self.ask("quit")["peak_rss_mb"]
        self.proc.wait()
        return peak


def forwarded(args) -> list[str]:
    out = ["--model", args.model, "--batch", str(args.batch), "--size", str(args.size),
           "--threads", str(args.threads), "--lr", str(args.lr), "--classes", str(args.classes)]
    if args.stem is not None:
        out += ["--stem", args.stem]
    out += ["--inference"] * args.inference + ["--channels-last-torch"] * args.channels_last_torch
    out += ["--want-torch"] * args.want_torch
    return out


def torch_wanted(args) -> bool:
    available = importlib.util.find_spec("torch") is not None
    if args.compare_torch and not available:
        raise SystemExit("--compare-torch: torch is not importable in this Python (try /opt/torchvenv/bin/python)")
    return available and not args.no_torch


def median_ms(samples: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in samples) * 1e3


def report(args, lucid_w, torch_w, times, peaks, loads) -> None:
    mode = "inference (eval, no grad)" if args.inference else "training step (fwd + cross-entropy + bwd + SGD momentum)"
    stem = f", stem {args.stem}" if args.stem else ""
    print(f"{args.model}{stem}, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, {mode}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}; "
          f"1-min load average {loads[0]:.2f} before, {loads[1]:.2f} after (this run's own threads add about {args.threads})")
    print(f"lucid BLAS: {lucid_w.info['blas']}")
    if torch_w is not None:
        layout = "channels_last" if args.channels_last_torch else "NCHW"
        print(f"torch {torch_w.info['version']} ({layout}) BLAS: {torch_w.info['blas']}")
    print(f"{args.steps} interleaved repetitions after {args.warmup} warm-up steps; medians")
    phases = [p for p in PHASES if p in times["lucid"][0]]
    header = f"{'':8s}{'img/s':>8s}{'step ms':>9s}" + "".join(f"{p[:9]:>10s}" for p in phases)
    print(header + f"{'CPU ms':>9s}{'peak RSS MiB':>14s}")
    for side in times:
        step = median_ms(times[side], "step")
        line = f"{side:8s}{args.batch / step * 1e3:8.2f}{step:9.1f}" + "".join(f"{median_ms(times[side], p):10.1f}" for p in phases)
        print(line + f"{median_ms(times[side], 'cpu'):9.0f}{peaks[side]:14.0f}")
    if torch_w is not None:
        ratios = [a["step"] / b["step"] for a, b in zip(times["lucid"], times["torch"])]
        print(f"ratio lucid/torch: time {median_ms(times['lucid'], 'step') / median_ms(times['torch'], 'step'):.2f}x "
              f"(per-repetition ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, "
              f"max {max(ratios):.2f}), peak RSS {peaks['lucid'] / peaks['torch']:.2f}x")


def wait_for_quiet(limit: float, patience_s: float = 600.0) -> None:
    """Sleep until the 1-minute load average drops below ``limit`` (at most ``patience_s``)."""
    deadline = time.monotonic() + patience_s
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(10)


def drive(args) -> None:
    args.want_torch = torch_wanted(args)
    if args.wait_load:
        wait_for_quiet(args.wait_load)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="lucid-train-step-") as workdir:
        lucid_w = Worker("lucid", args, workdir)
        torch_w = Worker("torch", args, workdir, lucid_w.info["arch"]) if args.want_torch else None
        workers = {"lucid": lucid_w, **({"torch": torch_w} if torch_w else {})}
        for _ in range(args.warmup):
            for w in workers.values():
                w.ask("step")
        times: dict = {side: [] for side in workers}
        for _ in range(args.steps):
            for side, w in workers.items():
                times[side].append(w.ask("step")["times"])
        profile = lucid_w.ask(f"profile {args.profile_steps}")["profile"] if args.profile else None
        peaks = {side: w.quit() for side, w in workers.items()}
    report(args, lucid_w, torch_w, times, peaks, (load_before, os.getloadavg()[0]))
    if profile:
        print("\nlucid " + profile)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet_50", help="a lucid.models name (resnet_*, resnext_*, wide_resnet_*, resnest_*)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224, help="image height and width")
    p.add_argument("--stem", choices=["cifar", "deep"], help="stem_type override (cifar: 3x3 stride 1, no max-pool)")
    p.add_argument("--classes", type=int, default=0, help="classifier outputs (default 1000, or 10 with --stem cifar)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--steps", type=int, default=10, help="timed repetitions per framework")
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--inference", action="store_true", help="eval mode, no grad: forward only")
    p.add_argument("--compare-torch", action="store_true", help="fail unless PyTorch can be compared")
    p.add_argument("--no-torch", action="store_true", help="time lucid only")
    p.add_argument("--channels-last-torch", action="store_true", help="PyTorch model and input in channels_last")
    p.add_argument("--profile", action="store_true", help="then profile lucid: time per op kind, fwd/bwd")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--wait-load", type=float, default=0.0,
                   help="first wait (up to 10 min) until the 1-minute load average is below this")
    p.add_argument("--worker", choices=["lucid", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--worker-dir", help=argparse.SUPPRESS)
    p.add_argument("--arch", help=argparse.SUPPRESS)
    p.add_argument("--want-torch", action="store_true", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.worker == "lucid":
        lucid_worker(args)
    elif args.worker == "torch":
        torch_worker(args)
    else:
        drive(args)


if __name__ == "__main__":
    main()

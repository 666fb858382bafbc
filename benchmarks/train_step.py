"""Images/s of full training steps (forward, cross-entropy, backward, SGD momentum), lucid vs PyTorch.

    PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/train_step.py --case resnet_50     # 224, batch 16
    ... --case resnet_18_cifar | resnext_50 | resnest_50 | wide_resnet_50 | resnet_50_inference
    ... --model resnet_18 --stem cifar --batch 64 --size 32                              # any model/shape
    ... --profile                                                 # + lucid's time per op kind
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE PYTHONPATH=. /opt/torchvenv/bin/python benchmarks/train_step.py ...

Each framework runs ALONE: a round starts one worker process per side (this script
re-invoked with ``--worker``: lucid, PyTorch NCHW, PyTorch channels_last), one after the
other, each timing ``--warmup`` + ``--steps`` steps and exiting before the next starts,
so no idle process of the other framework (spinning OpenMP / OpenBLAS threads) shares
the cores; the order rotates between ``--rounds`` rounds, every round is printed, and the
report gives the medians over rounds and lucid's ratio to PyTorch's FASTER layout of the
run (``--torch-layout`` picks one layout instead). Peak RSS (``ru_maxrss``) is each
process's own. The first lucid process builds the model (seeded) and writes its weights
and the batch to a temporary folder; the PyTorch workers build the same architecture
from plain torch.nn (benchmarks/torch_reference.py) and load them. All use ``--threads``
threads (BLAS / OpenMP / lucid's block pool) and float32; PyTorch runs eager.
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
    from threadpoolctl import threadpool_limits

    threadpool_limits(threads)


def blas_kernels() -> str:
    """The BLAS / OpenMP libraries this process loaded, with OpenBLAS's kernel (threadpoolctl)."""
    from threadpoolctl import threadpool_info

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
    import lucid
    import lucid.nn.functional as F
    from lucid import _malloc
    from lucid.models import create_model
    from lucid.models.pretrained import lucid_to_reference

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
    if not os.path.exists(os.path.join(args.worker_dir, "batch.npz")):  # the first lucid process of a run
        np.savez(os.path.join(args.worker_dir, "weights.npz"), **{lucid_to_reference(k): t.data for k, t in tensors.items()})
        np.savez(os.path.join(args.worker_dir, "batch.npz"), x=x_np, y=y_np)
    arch = {}
    if args.want_torch:
        from reference_arch import reference_kwargs

        arch = reference_kwargs(model.config)
    x, y = lucid.tensor(x_np), lucid.tensor(y_np)
    opt = lucid.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    phases = step_phases(model, x, y, opt, F.cross_entropy, lucid.no_grad, args.inference)

    def step():
        return timed_phases(phases)

    def profile_steps(n: int) -> str:
        from lucid.autograd.profiler import profile

        with profile() as prof:
            for _ in range(n):
                for name, fn in phases:
                    with prof.phase(name):
                        fn()
        return prof.table()

    from lucid.ops import conv_onednn, onednn

    norm = f"oneDNN {onednn.version()}" if onednn.enabled() else "NumPy"
    blas = f"{blas_kernels()}; convolutions: {conv_onednn.describe()}; batch norm: {norm}"
    serve(step, {"arch": arch, "blas": blas, "base_rss_mb": base_rss, "setup_rss_mb": rss_mb(),
                 "params": sum(p.numel() for p in model.parameters())}, profile_steps)


def model_overrides(args) -> dict:
    overrides = {"num_classes": args.classes if args.classes else (10 if args.stem == "cifar" else 1000)}
    if args.stem is not None:
        overrides["stem_type"] = args.stem
    return overrides


# -- PyTorch worker -----------------------------------------------------------------------
def torch_worker(args) -> None:
    limit_threads(args.threads)
    import torch
    import torch.nn.functional as TF

    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from torch_reference import RefNet

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
    if args.torch_layout == "channels_last":
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

    def __init__(self, side: str, args, workdir: str, arch: dict | None = None, layout: str = "nchw"):
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", side, "--worker-dir", workdir,
               "--torch-layout", layout] + forwarded(args)
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
    out += ["--inference"] * args.inference + ["--want-torch"] * args.want_torch
    return out


def torch_wanted(args) -> bool:
    available = importlib.util.find_spec("torch") is not None
    if args.compare_torch and not available:
        raise SystemExit("--compare-torch: torch is not importable in this Python (try /opt/torchvenv/bin/python)")
    return available and not args.no_torch


#: the sides a run times: (label, worker kind, torch layout)
SIDES = {"lucid": ("lucid", "nchw"), "torch NCHW": ("torch", "nchw"), "torch CL": ("torch", "channels_last")}


def sides_of(args) -> list[str]:
    if not args.want_torch:
        return ["lucid"]
    layouts = {"best": ["torch NCHW", "torch CL"], "nchw": ["torch NCHW"], "channels_last": ["torch CL"]}
    return ["lucid"] + layouts[args.torch_layout]


def run_alone(side: str, args, workdir: str, arch: dict | None) -> dict:
    """One worker process for ``side``, alone on the cores: warm-up, ``args.steps`` timed steps, quit.
    Returns its description, the steps' times and its peak RSS; the process has exited."""
    kind, layout = SIDES[side]
    w = Worker(kind, args, workdir, arch if kind == "torch" else None, layout)
    for _ in range(args.warmup):
        w.ask("step")
    times = [w.ask("step")["times"] for _ in range(args.steps)]
    profile = w.ask(f"profile {args.profile_steps}")["profile"] if kind == "lucid" and args.profile else None
    return {"info": w.info, "times": times, "peak": w.quit(), "profile": profile}


def median_ms(samples: list[dict], key: str) -> float:
    return statistics.median(s[key] for s in samples) * 1e3


def print_round(args, r: int, side: str, result: dict) -> None:
    step = median_ms(result["times"], "step")
    print(f"round {r + 1}/{args.rounds}  {side:11s} {args.batch / step * 1e3:7.2f} img/s  step {step:8.1f} ms  "
          f"CPU {median_ms(result['times'], 'cpu'):8.0f} ms  peak RSS {result['peak']:6.0f} MiB  "
          f"load {os.getloadavg()[0]:.2f}", flush=True)


def summary(args, results: dict) -> dict:
    """Per side: the median over rounds of each round's median step (and phases), the rounds' figures, peak RSS."""
    out = {}
    for side, rounds in results.items():
        keys = [k for k in ("step", *PHASES, "cpu") if k in rounds[0]["times"][0]]
        per_round = {k: [median_ms(r["times"], k) for r in rounds] for k in keys}
        out[side] = {"ms": {k: statistics.median(v) for k, v in per_round.items()}, "rounds": per_round["step"],
                     "peak": max(r["peak"] for r in rounds)}
    return out


def report(args, results: dict, loads) -> dict:
    """Print the medians per side and lucid's ratios to PyTorch's faster layout; returns the summary."""
    mode = "inference (eval, no grad)" if args.inference else "training step (fwd + cross-entropy + bwd + SGD momentum)"
    stem = f", stem {args.stem}" if args.stem else ""
    print(f"\n{args.model}{stem}, batch {args.batch}, {args.size}x{args.size}, {args.threads} threads, {mode}")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
          f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}; "
          f"1-min load average {loads[0]:.2f} before, {loads[1]:.2f} after (a run's own threads add about {args.threads})")
    for side, rounds in results.items():
        info = rounds[0]["info"]
        version = f" {info['version']}" if "version" in info else ""
        print(f"{side}{version} BLAS: {info['blas']}")
    print(f"{args.rounds} rounds, each framework alone in its own process per round (order rotating), "
          f"{args.warmup} warm-up + {args.steps} timed steps each; medians over rounds of each round's median step")
    s = summary(args, results)
    phases = [p for p in PHASES if p in s["lucid"]["ms"]]
    print(f"{'':12s}{'img/s':>8s}{'step ms':>9s}" + "".join(f"{p[:9]:>10s}" for p in phases)
          + f"{'CPU ms':>9s}{'peak RSS MiB':>14s}")
    for side, v in s.items():
        ms = v["ms"]
        print(f"{side:12s}{args.batch / ms['step'] * 1e3:8.2f}{ms['step']:9.1f}"
              + "".join(f"{ms[p]:10.1f}" for p in phases) + f"{ms['cpu']:9.0f}{v['peak']:14.0f}")
    torch_sides = [side for side in s if side != "lucid"]
    if torch_sides:
        best = min(torch_sides, key=lambda side: s[side]["ms"]["step"])
        ratios = [a / b for a, b in zip(s["lucid"]["rounds"], s[best]["rounds"])]
        print(f"PyTorch's faster layout here: {best}")
        print(f"ratio lucid / {best}: time {s['lucid']['ms']['step'] / s[best]['ms']['step']:.2f}x "
              f"(per-round ratios: min {min(ratios):.2f}, median {statistics.median(ratios):.2f}, max {max(ratios):.2f}), "
              f"peak RSS {s['lucid']['peak'] / s[best]['peak']:.2f}x")
        for other in torch_sides:
            if other != best:
                print(f"ratio lucid / {other}: time {s['lucid']['ms']['step'] / s[other]['ms']['step']:.2f}x, "
                      f"peak RSS {s['lucid']['peak'] / s[other]['peak']:.2f}x")
    return s


def wait_for_quiet(limit: float, patience_s: float = 600.0) -> None:
    """Sleep until the 1-minute load average drops below ``limit`` (at most ``patience_s``)."""
    deadline = time.monotonic() + patience_s
    while os.getloadavg()[0] >= limit and time.monotonic() < deadline:
        time.sleep(10)


def drive(args) -> None:
    """Rounds of one process per side, run one after the other (never two alive at once).

    A worker that waits idle next to a busy one is not free: OpenMP / OpenBLAS threads
    spin for a while after each parallel region, and the two processes' pools contend
    for the same cores. So each round starts each side's process on its own, times it
    and lets it exit before the next starts; the order rotates between rounds.
    """
    args.want_torch = torch_wanted(args)
    if args.wait_load:
        wait_for_quiet(args.wait_load)
    load_before = os.getloadavg()[0]
    sides = sides_of(args)
    results: dict = {side: [] for side in sides}
    profile = None
    with tempfile.TemporaryDirectory(prefix="lucid-train-step-") as workdir:
        arch = None
        for r in range(args.rounds):
            order = sides[r % len(sides):] + sides[:r % len(sides)]
            for side in order:  # round 0 starts with lucid, which writes the weights and batch
                result = run_alone(side, args, workdir, arch)
                if side == "lucid":
                    arch = result["info"]["arch"]
                    profile = profile or result["profile"]
                results[side].append(result)
                print_round(args, r, side, result)
    report(args, results, (load_before, os.getloadavg()[0]))
    if profile:
        print("\nlucid " + profile)


#: named benchmark cases: --case NAME sets model, batch, size, stem and mode
CASES = {
    "resnet_50": dict(model="resnet_50", batch=16, size=224),
    "resnet_18_cifar": dict(model="resnet_18", batch=64, size=32, stem="cifar"),
    "resnext_50": dict(model="resnext_50_32x4d", batch=8, size=224),
    "resnest_50": dict(model="resnest_50", batch=8, size=224),
    "wide_resnet_50": dict(model="wide_resnet_50", batch=8, size=224),
    "resnet_50_inference": dict(model="resnet_50", batch=16, size=224, inference=True),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="resnet_50", help="a lucid.models name (resnet_*, resnext_*, wide_resnet_*, resnest_*)")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--size", type=int, default=224, help="image height and width")
    p.add_argument("--stem", choices=["cifar", "deep"], help="stem_type override (cifar: 3x3 stride 1, no max-pool)")
    p.add_argument("--classes", type=int, default=0, help="classifier outputs (default 1000, or 10 with --stem cifar)")
    p.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)))
    p.add_argument("--case", choices=sorted(CASES), help="a named case: sets --model, --batch, --size, --stem, --inference")
    p.add_argument("--steps", type=int, default=3, help="timed steps per process (the round's figure is their median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps per process first")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--inference", action="store_true", help="eval mode, no grad: forward only")
    p.add_argument("--compare-torch", action="store_true", help="fail unless PyTorch can be compared")
    p.add_argument("--no-torch", action="store_true", help="time lucid only")
    p.add_argument("--torch-layout", choices=["best", "nchw", "channels_last"], default="best",
                   help="PyTorch's memory layout: best (default) runs NCHW and channels_last and compares with the faster")
    p.add_argument("--rounds", type=int, default=5, help="rounds of one process per side")
    p.add_argument("--profile", action="store_true", help="then profile lucid: time per op kind, fwd/bwd")
    p.add_argument("--profile-steps", type=int, default=3)
    p.add_argument("--wait-load", type=float, default=0.0,
                   help="first wait (up to 10 min) until the 1-minute load average is below this")
    p.add_argument("--worker", choices=["lucid", "torch"], help=argparse.SUPPRESS)
    p.add_argument("--worker-dir", help=argparse.SUPPRESS)
    p.add_argument("--arch", help=argparse.SUPPRESS)
    p.add_argument("--want-torch", action="store_true", help=argparse.SUPPRESS)
    case = p.parse_known_args(argv)[0].case
    if case:  # the case's settings are defaults: flags given explicitly still win
        p.set_defaults(**CASES[case])
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

"""Where the time of a training step goes: per op kind, forward and backward separately.

    from lucid.autograd.profiler import profile

    with profile() as prof:
        with prof.phase("forward"):
            loss = F.cross_entropy(model(x), y)
        with prof.phase("backward"):
            loss.backward()
        with prof.phase("optimizer"):
            opt.step()
    print(prof.table())

While the context is open, every Function subclass's ``forward`` and ``backward`` and
a few sub-kernels (im2col, col2im, layout copies, the engine's gradient accumulation,
the optimizer update) are wrapped with timers; on exit the originals are put back, so
the profiler costs nothing when it is off. Times are exclusive: a region nested in
another (im2col inside a convolution) is not counted twice. What a phase's wall time
holds beyond the timed kernels is framework overhead: Python module calls, Tensor
creation and graph bookkeeping in forward, the engine's scheduling in backward.
Only the thread that opened the profiler is timed.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import sys
import threading
import time
from collections import defaultdict

from lucid.autograd.function import Function

# Op kind of a Function by the module that defines it.
KINDS = {
    "lucid.ops.conv": "conv GEMM",
    "lucid.ops.matmul": "linear GEMM",
    "lucid.ops.norm": "batch_norm",
    "lucid.ops.pool": "pooling",
    "lucid.ops.elementwise": "elementwise",
    "lucid.ops.activation": "elementwise",
    "lucid.ops.fused": "elementwise",
    "lucid.ops.loss": "loss",
    "lucid.ops.shape": "shape/reduce",
    "lucid.ops.reduce": "shape/reduce",
}

# Sub-kernels timed on their own: (module, attribute, kind, is_generator).
# Missing attributes are skipped, so kernels may be reorganised freely.
REGIONS = (
    ("lucid.ops.conv", "columns", "im2col", True),
    ("lucid.ops.conv", "col2im", "col2im", False),
    ("lucid.autograd.engine", "_accumulate_leaf", "grad accumulation", False),
    ("lucid.autograd.engine:_Pending", "add", "grad accumulation", False),
    ("lucid.optim.optimizer:Optimizer", "step", "optimizer update", False),
)
LAYOUT = "layout copy (to NHWC)"
OVERHEAD = "framework overhead"
ORDER = ("conv GEMM", "im2col", "col2im", LAYOUT, "linear GEMM", "batch_norm", "elementwise", "pooling",
         "loss", "shape/reduce", "grad accumulation", "optimizer update")


def _subclasses(cls) -> list[type]:
    out, stack = [], [cls]
    while stack:
        for sub in stack.pop().__subclasses__():
            out.append(sub)
            stack.append(sub)
    return out


def kind_of(cls: type) -> str:
    """The op kind a Function subclass is reported under."""
    return KINDS.get(cls.__module__, cls.__module__.rsplit(".", 1)[-1])


class profile:
    """Context manager collecting exclusive time per (phase, kind, op); see the module docstring.

    Attributes:
        times: {(phase, kind, name): seconds}; name is the Function class or region.
        calls: {(phase, kind, name): count}.
        walls: {phase: seconds} of the ``phase`` blocks; ``steps``: blocks per phase.
    """

    def __init__(self):
        self.times: dict = defaultdict(float)
        self.calls: dict = defaultdict(int)
        self.walls: dict = defaultdict(float)
        self.steps: dict = defaultdict(int)
        self._stack: list = []
        self._phase = "other"
        self._patched: list = []
        self._thread = None

    # -- timing core -------------------------------------------------------------
    def _timed(self, key, fn, *args, **kwargs):
        """Run fn, charging its time minus nested regions' to ``key`` (phase filled in here)."""
        if threading.get_ident() != self._thread:
            return fn(*args, **kwargs)
        phase, kind, name = key
        if phase is None:  # regions run in the phase of the op (or block) around them
            phase = self._stack[-1][0][0] if self._stack else self._phase
        frame = [(phase, kind, name), time.perf_counter(), 0.0]
        self._stack.append(frame)
        try:
            return fn(*args, **kwargs)
        finally:
            self._stack.pop()
            elapsed = time.perf_counter() - frame[1]
            self.times[frame[0]] += elapsed - frame[2]
            self.calls[frame[0]] += 1
            if self._stack:
                self._stack[-1][2] += elapsed

    @contextlib.contextmanager
    def phase(self, name: str):
        """Label a block (e.g. "forward") and record its wall time."""
        previous, self._phase = self._phase, name
        start = time.perf_counter()
        try:
            yield self
        finally:
            self.walls[name] += time.perf_counter() - start
            self.steps[name] += 1
            self._phase = previous

    # -- patching ------------------------------------------------------------------
    def _patch(self, owner, attr: str, replacement) -> None:
        self._patched.append((owner, attr, owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)))
        setattr(owner, attr, replacement)

    def _wrap_function(self, cls: type, method: str) -> None:
        original = cls.__dict__[method]
        phase = "forward" if method == "forward" else "backward"
        key_of = functools.lru_cache(maxsize=None)(lambda c: (phase, kind_of(c), c.__name__))

        @functools.wraps(original)
        def timed(fn_self, *args, **kwargs):
            return self._timed(key_of(type(fn_self)), original, fn_self, *args, **kwargs)

        self._patch(cls, method, timed)

    def _wrap_region(self, owner, attr: str, kind: str, generator: bool) -> None:
        original = owner.__dict__[attr] if isinstance(owner, type) else getattr(owner, attr)
        key = (None, kind, attr)
        if generator:
            @functools.wraps(original)
            def timed(*args, **kwargs):
                it = original(*args, **kwargs)
                while True:
                    try:
                        item = self._timed(key, next, it)
                    except StopIteration:
                        return
                    yield item
        else:
            @functools.wraps(original)
            def timed(*args, **kwargs):
                return self._timed(key, original, *args, **kwargs)

        self._patch(owner, attr, timed)

    def _wrap_layout(self) -> None:
        """Time to_nhwc calls that copy (NCHW memory in), wherever a kernel module imported it."""
        layout = importlib.import_module("lucid.ops.layout")
        original = layout.to_nhwc
        key = (None, LAYOUT, "to_nhwc")

        def timed(x):
            if x.transpose(0, 2, 3, 1).flags.c_contiguous:
                return original(x)
            return self._timed(key, original, x)

        for name, module in list(sys.modules.items()):
            if name.startswith("lucid.") and getattr(module, "to_nhwc", None) is original:
                self._patch(module, "to_nhwc", timed)

    def __enter__(self) -> "profile":
        self._thread = threading.get_ident()
        for cls in _subclasses(Function):
            for method in ("forward", "backward"):
                if method in cls.__dict__:
                    self._wrap_function(cls, method)
        for where, attr, kind, generator in REGIONS:
            module_name, _, class_name = where.partition(":")
            try:
                owner = importlib.import_module(module_name)
            except ImportError:
                continue
            owner = getattr(owner, class_name, None) if class_name else owner
            if owner is not None and (attr in owner.__dict__ if isinstance(owner, type) else hasattr(owner, attr)):
                self._wrap_region(owner, attr, kind, generator)
        self._wrap_layout()
        return self

    def __exit__(self, *exc) -> None:
        for owner, attr, original in reversed(self._patched):
            setattr(owner, attr, original)
        self._patched.clear()

    # -- reporting -------------------------------------------------------------------
    def by_kind(self) -> dict:
        """{(phase, kind): seconds per step}, framework overhead included per phase."""
        out: dict = defaultdict(float)
        for (phase, kind, _), seconds in self.times.items():
            out[phase, kind] += seconds / max(self.steps.get(phase, 1), 1)
        for phase, wall in self.walls.items():
            timed = sum(v for (p, _), v in out.items() if p == phase)
            out[phase, OVERHEAD] = wall / self.steps[phase] - timed
        return dict(out)

    def table(self, top: int = 12) -> str:
        """Milliseconds per step by kind and phase, then the ``top`` most expensive ops."""
        per = self.by_kind()
        phases = [p for p in ("forward", "backward", "optimizer") if p in self.walls]
        phases += sorted({p for p, _ in per} - set(phases))
        kinds = [k for k in ORDER if any((p, k) in per for p in phases)]
        kinds += sorted({k for _, k in per} - set(kinds) - {OVERHEAD}) + [OVERHEAD]
        total = sum(self.walls[p] / self.steps[p] for p in self.walls)
        steps = max(self.steps.values(), default=0)
        lines = [f"profile: ms per step (mean of {steps} steps)",
                 f"{'kind':26s}" + "".join(f"{p:>11s}" for p in phases) + f"{'total':>11s}{'share':>8s}"]
        for kind in kinds:
            row = [per.get((p, kind), 0.0) * 1e3 for p in phases]
            lines.append(f"{kind:26s}" + "".join(f"{v:11.1f}" for v in row) + f"{sum(row):11.1f}"
                         f"{100 * sum(row) / max(total * 1e3, 1e-9):7.1f}%")
        walls = [self.walls[p] / self.steps[p] * 1e3 if p in self.walls else 0.0 for p in phases]
        lines.append(f"{'phase wall':26s}" + "".join(f"{v:11.1f}" for v in walls) + f"{sum(walls):11.1f}")
        ops = sorted(self.times.items(), key=lambda kv: -kv[1])[:top]
        lines.append("top ops and regions (ms per step, calls per step):")
        for (phase, kind, name), seconds in ops:
            n = max(self.steps.get(phase, 1), 1)
            lines.append(f"  {phase:9s} {name:24s} {kind:22s} {seconds / n * 1e3:9.1f} {self.calls[phase, kind, name] / n:7.0f}")
        return "\n".join(lines)

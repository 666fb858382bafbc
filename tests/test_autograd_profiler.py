"""lucid.autograd.profiler: exclusive time per (phase, op kind), patched only while open."""
import time

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.autograd import Function
from lucid.autograd.profiler import OVERHEAD, profile
from lucid.ops import conv as conv_module
from lucid.ops import onednn
from lucid.ops.conv import Conv2d as ConvFn


class Sleepy(Function):
    """Identity that sleeps 20 ms in forward and 30 ms in backward."""

    def forward(self, x):
        time.sleep(0.02)
        return x.copy()

    def backward(self, g):
        time.sleep(0.03)
        return g


def test_sleeps_are_charged_to_the_op_and_phase():
    x = lucid.randn(4, requires_grad=True)
    with profile() as prof:
        for _ in range(2):
            with prof.phase("forward"):
                y = Sleepy.apply(x).sum()
            with prof.phase("backward"):
                y.backward()
    kind = "test_autograd_profiler"  # the module defining the Function
    fwd = prof.times["forward", kind, "Sleepy"]
    bwd = prof.times["backward", kind, "Sleepy"]
    assert 0.04 <= fwd < 0.2 and 0.06 <= bwd < 0.3
    assert prof.calls["forward", kind, "Sleepy"] == 2 and prof.calls["backward", kind, "Sleepy"] == 2
    per = prof.by_kind()
    assert 0.02 <= per["forward", kind] < 0.1 and 0.03 <= per["backward", kind] < 0.15
    # the phase wall is fully accounted for: timed kinds + overhead
    for phase in ("forward", "backward"):
        total = sum(v for (p, _), v in per.items() if p == phase)
        assert abs(total - prof.walls[phase] / 2) < 1e-9
        assert per[phase, OVERHEAD] >= 0


@pytest.fixture
def gemm_path():
    """The GEMM path's convolutions (im2col regions), also where oneDNN is installed."""
    onednn.set_enabled(False)
    yield
    onednn.set_enabled(None)


def test_nested_regions_are_exclusive_and_patches_are_removed(gemm_path):
    original_forward = ConvFn.__dict__["forward"]
    original_columns = conv_module.columns
    lucid.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
    x = lucid.randn(2, 3, 8, 8)
    with profile() as prof:
        with prof.phase("forward"):
            loss = model(x).sum()
        with prof.phase("backward"):
            loss.backward()
    assert ConvFn.__dict__["forward"] is original_forward  # zero cost when off
    assert conv_module.columns is original_columns
    per = prof.by_kind()
    for key in [("forward", "conv GEMM"), ("forward", "im2col"), ("forward", "batch_norm"), ("forward", "elementwise"),
                ("backward", "conv GEMM"), ("backward", "im2col"), ("backward", "batch_norm")]:
        assert per[key] > 0, key
    # exclusive: the kernels never add up to more than the phase's wall time
    for phase in ("forward", "backward"):
        kernels = sum(v for (p, k), v in per.items() if p == phase and k != OVERHEAD)
        assert kernels <= prof.walls[phase] + 1e-9
    table = prof.table()
    assert "conv GEMM" in table and "im2col" in table and OVERHEAD in table and "phase wall" in table


def test_results_are_unchanged_under_the_profiler():
    lucid.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    x = lucid.randn(2, 3, 9, 9, requires_grad=True)
    F.relu(model(x)).sum().backward()
    plain = x.grad.numpy().copy()
    x.grad = None
    with profile():
        F.relu(model(x)).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), plain)

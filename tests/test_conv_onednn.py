"""The oneDNN convolution kernels against the GEMM path, kernel by kernel, in float32.

oneDNN has no float64 convolutions, so the reference is the GEMM path in float64 and both
float32 paths must land within float32 rounding of it. Every case runs each kernel three
times: a oneDNN weight-gradient kernel once gave wrong sums on its first call only.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lucid
import lucid.ops as F
from lucid.ops import conv, conv_onednn, onednn
from lucid.ops.conv import conv_nhwc, conv_window, weight_matrix
from lucid.ops.window import Window

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN is not installed (the onednn extra)")

# (x shape NCHW, w shape, stride, padding, dilation, groups)
CASES = {
    "3x3 pad1 odd": ((2, 5, 9, 7), (6, 5, 3, 3), 1, 1, 1, 1),
    "3x3 stride2 even": ((2, 16, 14, 14), (32, 16, 3, 3), 2, 1, 1, 1),
    "3x3 stride2 odd": ((2, 16, 15, 13), (8, 16, 3, 3), 2, 1, 1, 1),
    "1x1": ((2, 16, 7, 7), (32, 16, 1, 1), 1, 0, 1, 1),
    "1x1 stride2 few channels": ((2, 4, 8, 8), (8, 4, 1, 1), 2, 0, 1, 1),
    "1x1 stride2 odd": ((3, 12, 9, 11), (24, 12, 1, 1), 2, 0, 1, 1),
    "7x7 stride2 pad3 stem": ((2, 3, 17, 17), (8, 3, 7, 7), 2, 3, 1, 1),
    "grouped 4 per group": ((2, 64, 8, 8), (64, 2, 3, 3), 1, 1, 1, 32),
    "grouped 4 per group, groups paired": ((2, 64, 10, 9), (64, 4, 3, 3), 1, 1, 1, 16),
    "grouped 4 per group, paired, stride2 bias-free odd": ((3, 32, 11, 11), (48, 4, 3, 3), 2, 1, 1, 8),
    "grouped 8 per group stride2": ((2, 64, 9, 9), (64, 8, 3, 3), 2, 1, 1, 8),
    "depthwise": ((2, 32, 8, 8), (32, 1, 3, 3), 1, 1, 1, 32),
    "dilation2 groups2": ((1, 6, 9, 9), (6, 3, 3, 3), 1, 2, 2, 2),
    "rect kernel, pair args": ((2, 3, 10, 9), (5, 3, 2, 4), (2, 1), (1, 0), 1, 1),
    "stride3 dilation2": ((2, 8, 11, 10), (16, 4, 3, 3), 3, 2, 2, 2),
    "pad > kernel extent": ((1, 2, 4, 3), (2, 2, 2, 2), 1, 2, 1, 1),
}


def _setup(case, seed=0):
    xs, ws, stride, padding, dilation, groups = CASES[case]
    rng = np.random.default_rng(seed)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    window, out_hw = conv_window(xs[2:], ws[2:], stride, padding, dilation)
    xh = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    gy = rng.standard_normal((xs[0], *out_hw, ws[0]))
    return xh, w, gy, window, out_hw, groups


def _close(got, reference, scale_from):
    """float32 rounding of sums of a few hundred products: 2e-5 of the reference's magnitude."""
    err = np.abs(got.astype(np.float64) - reference).max() / np.abs(scale_from).max()
    assert err < 2e-5, err


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_kernels_match_the_gemm_path(case):
    xh, w, gy, window, out_hw, groups = _setup(case)
    f32 = lambda a: a.astype(np.float32)  # noqa: E731
    ref_y = conv_nhwc(xh, weight_matrix(w, groups), window, out_hw)
    ref_gx = conv.conv_grad_input(gy, w, window, groups, xh.shape[1:3])
    ref_gw = conv.conv_grad_weight(xh, gy, window, groups, w.shape)
    for _ in range(3):
        y = conv_onednn.conv_forward(f32(xh), f32(w), None, window, groups, out_hw)
        gx = conv_onednn.conv_grad_input(f32(gy), f32(w), window, groups, xh.shape)
        gw = conv_onednn.conv_grad_weight(f32(xh), f32(gy), window, groups, w.shape)
        assert (y.dtype, gx.dtype, gw.dtype) == (np.float32,) * 3
        assert y.shape == ref_y.shape and gx.shape == xh.shape and gw.shape == w.shape
        assert gw.flags.c_contiguous and gx.flags.c_contiguous
        _close(y, ref_y, ref_y)
        _close(gx, ref_gx, ref_gx)
        _close(gw, ref_gw, ref_gw)


def test_bias_is_added():
    xh, w, _, window, out_hw, groups = _setup("3x3 pad1 odd")
    b = np.linspace(-1, 1, w.shape[0])
    ref = conv_nhwc(xh, weight_matrix(w, groups), window, out_hw) + b
    got = conv_onednn.conv_forward(xh.astype(np.float32), w.astype(np.float32), b.astype(np.float32), window,
                                   groups, out_hw)
    _close(got, ref, ref)


@pytest.fixture
def onednn_on():
    onednn.set_enabled(True)
    yield
    onednn.set_enabled(None)


@pytest.mark.parametrize("case", ["3x3 stride2 odd", "grouped 8 per group stride2", "1x1 stride2 odd"])
def test_conv2d_autograd_on_onednn_equals_gemm_path(case, onednn_on):
    xs, ws, stride, padding, dilation, groups = CASES[case]
    rng = np.random.default_rng(3)
    x0, w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in (xs, ws, ws[:1]))
    results = []
    for flag in (True, False):
        onednn.set_enabled(flag)
        x, w, b = (lucid.tensor(a, requires_grad=True) for a in (x0, w0, b0))
        y = F.conv2d(x, w, b, stride, padding, dilation, groups)
        (y * y).sum().backward()
        results.append([y.data, x.grad.data, w.grad.data, b.grad.data])
    for got, ref in zip(*results):
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_which_kernels_run_on_onednn(onednn_on):
    x32 = np.zeros((2, 64, 8, 8), np.float32)
    window, out_hw = conv_window((8, 8), (3, 3), 1, 1, 1)
    avx512 = "avx512" in conv_onednn.plan_for((2, 8, 8, 64), (64, 64, 3, 3), 1, window, out_hw).weights.implementation()
    dense = conv_onednn.kernels(x32, np.zeros((64, 64, 3, 3), np.float32), window, 1, out_hw)
    assert dense == {"forward", "input", "weight"} if avx512 else {"forward", "input"}
    two_groups = conv_onednn.kernels(x32, np.zeros((64, 32, 3, 3), np.float32), window, 2, out_hw)
    assert two_groups == dense
    many_groups = conv_onednn.kernels(x32, np.zeros((64, 8, 3, 3), np.float32), window, 8, out_hw)
    assert many_groups == {"forward", "input", "weight"}
    assert conv_onednn.kernels(x32.astype(np.float64), np.zeros((64, 64, 3, 3)), window, 1, out_hw) == set()
    onednn.set_enabled(False)
    assert conv_onednn.kernels(x32, np.zeros((64, 64, 3, 3), np.float32), window, 1, out_hw) == set()


def test_weight_gradient_rule():
    """oneDNN's AVX-512 weight gradients always; its AVX2 one from MANY_GROUPS groups; never its GEMM."""
    rule = conv_onednn.weight_on_onednn
    assert rule(1, "jit:avx512_core") and rule(2, "jit_1x1:avx512_core") and rule(32, "jit:avx512_core")
    assert not rule(1, "jit:avx2") and not rule(conv_onednn.MANY_GROUPS - 1, "jit:avx2")
    assert rule(conv_onednn.MANY_GROUPS, "jit:avx2")
    assert not rule(32, "gemm:jit") and not rule(1, "gemm:jit:avx512_core")


def test_four_channels_per_group_run_with_groups_paired(onednn_on):
    """oneDNN 3.2's AVX2 kernels run 4 channels per group as im2col + GEMM; the forward then merges
    pairs of groups (its AVX-512 ones have a direct kernel: no pairing)."""
    window, out_hw = conv_window((8, 8), (3, 3), 1, 1, 1)
    plan = conv_onednn.plan_for((2, 8, 8, 128), (128, 4, 3, 3), 32, window, out_hw)
    merged = conv_onednn.ConvPlan((2, 8, 8, 128), (128, 8, 3, 3), 16, window, out_hw)
    gemm_only = "gemm" in plan.forward.implementation() and "gemm" not in merged.forward.implementation()
    assert (plan.paired is not None) == gemm_only
    assert "forward" in conv_onednn.kernels(np.zeros((2, 128, 8, 8), np.float32), np.zeros((128, 4, 3, 3), np.float32),
                                            window, 32, out_hw)
    dense = conv_onednn.plan_for((2, 8, 8, 64), (64, 64, 3, 3), 1, window, out_hw)
    assert dense.paired is None
    w = np.random.default_rng(0).standard_normal((12, 2, 1, 1))  # 6 groups: outputs 2 per group, inputs 2 per group
    merged = conv_onednn.paired_weight(w, 6)
    assert merged.shape == (12, 4, 1, 1)
    for o in range(12):
        half = (o // 2) % 2  # output o is in group o // 2, the first or second of its pair
        expected = np.zeros(4)
        expected[2 * half: 2 * half + 2] = w[o, :, 0, 0]
        np.testing.assert_array_equal(merged[o, :, 0, 0], expected)


def test_grouped_conv2d_with_bias_through_paired_groups(onednn_on):
    rng = np.random.default_rng(4)
    x0, w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((2, 64, 9, 9), (64, 4, 3, 3), (64,)))
    got = F.conv2d(lucid.tensor(x0), lucid.tensor(w0), lucid.tensor(b0), 1, 1, 1, 16).data
    onednn.set_enabled(False)
    ref = F.conv2d(lucid.tensor(x0), lucid.tensor(w0), lucid.tensor(b0), 1, 1, 1, 16).data
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("bias", [False, True])
def test_paired_forward_equals_the_gemm_path(onednn_on, bias):
    """The merged-groups forward, forced on whatever kernels this CPU's oneDNN has."""
    rng = np.random.default_rng(5)
    x0, w0, b0 = (rng.standard_normal(s).astype(np.float32) for s in ((2, 9, 7, 32), (32, 4, 3, 3), (32,)))
    window, out_hw = conv_window((9, 7), (3, 3), 1, 1, 1)
    plans = onednn.Plans(conv_onednn.ConvPlan)
    plan = conv_onednn.plan_for(x0.shape, w0.shape, 8, window, out_hw, plans)
    plan._paired = conv_onednn.ConvPlan(x0.shape, (32, 8, 3, 3), 4, window, out_hw)
    got = conv_onednn.conv_forward(x0, w0, b0 if bias else None, window, 8, out_hw, plans)
    onednn.set_enabled(False)
    x = lucid.tensor(np.ascontiguousarray(x0.transpose(0, 3, 1, 2)))
    ref = F.conv2d(x, lucid.tensor(w0), lucid.tensor(b0) if bias else None, 1, 1, 1, 8).data.transpose(0, 2, 3, 1)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_plans_are_cached_and_bounded():
    plans = onednn.Plans(conv_onednn.ConvPlan, capacity=2)
    window = Window((3, 3), (1, 1), (1, 1), (1, 1))
    first = plans.get((1, 5, 5, 8), (8, 8, 3, 3), 1, window, (5, 5))
    assert plans.get((1, 5, 5, 8), (8, 8, 3, 3), 1, window, (5, 5)) is first
    plans.get((2, 5, 5, 8), (8, 8, 3, 3), 1, window, (5, 5))
    plans.get((3, 5, 5, 8), (8, 8, 3, 3), 1, window, (5, 5))
    assert len(plans.items) == 2
    assert plans.get((1, 5, 5, 8), (8, 8, 3, 3), 1, window, (5, 5)) is not first


def _run(code, **env):
    full = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=full, timeout=120)


CONV32 = ("import numpy as np, lucid, lucid.ops as F\n"
          "y = F.conv2d(lucid.tensor(np.ones((1, 8, 5, 5), np.float32)), lucid.tensor(np.ones((8, 8, 3, 3), np.float32)), padding=1)\n"
          "print(float(y.data.sum()))\n")


def test_required_but_missing_library_fails_loudly():
    r = _run(CONV32, LUCID_ONEDNN="1", LUCID_ONEDNN_LIBRARY="/nonexistent/libdnnl.so.3")
    assert r.returncode != 0
    assert "oneDNN cannot be used" in r.stderr and "/nonexistent/libdnnl.so.3" in r.stderr


def test_missing_library_in_auto_mode_runs_the_gemm_path():
    r = _run(CONV32 + "from lucid.ops import onednn; print(onednn.available())",
             LUCID_ONEDNN="auto", LUCID_ONEDNN_LIBRARY="/nonexistent/libdnnl.so.3")
    assert r.returncode == 0, r.stderr
    total, available = r.stdout.split()
    assert float(total) == 8 * 8 * 13 * 13  # per axis, the 5 positions see 2 + 3 + 3 + 3 + 2 taps
    assert available == "False"


def test_bad_setting_names_the_variable():
    r = _run(CONV32, LUCID_ONEDNN="yes")
    assert r.returncode != 0 and "LUCID_ONEDNN must be 0, 1 or auto, got 'yes'" in r.stderr


def test_forked_child_computes_the_same():
    """A child forked after the parent ran oneDNN on two OpenMP threads neither hangs nor differs.

    GNU OpenMP's pool does not survive a fork: the child's convolutions (also the backward
    of one the parent ran) take the GEMM path, and a oneDNN kernel called directly raises.
    """
    code = (
        "import os, numpy as np, lucid, lucid.ops as F\n"
        "from lucid.ops import conv_onednn, onednn\n"
        "from lucid.ops.conv import conv_window\n"
        "onednn.set_enabled(True)\n"
        "rng = np.random.default_rng(0)\n"
        "x = lucid.tensor(rng.standard_normal((4, 16, 12, 12)).astype(np.float32))\n"
        "w = lucid.tensor(rng.standard_normal((16, 16, 3, 3)).astype(np.float32))\n"
        "parent = F.conv2d(x, w, padding=1).data\n"
        "wr = lucid.tensor(w.data, requires_grad=True)\n"
        "y = F.conv2d(x, wr, padding=1)\n"
        "window, out_hw = conv_window((12, 12), (3, 3), 1, 1, 1)\n"
        "xh = np.ascontiguousarray(x.data.transpose(0, 2, 3, 1))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    child = F.conv2d(x, w, padding=1).data\n"
        "    y.backward(lucid.tensor(np.ones(y.shape, np.float32)))\n"
        "    try:\n"
        "        conv_onednn.conv_forward(xh, w.data, None, window, 1, out_hw)\n"
        "        refused = False\n"
        "    except Exception as e:\n"
        "        refused = 'forked' in str(e) and 'spawn' in str(e)\n"
        "    ok = np.allclose(child, parent, rtol=1e-4, atol=1e-4) and refused and wr.grad is not None\n"
        "    os._exit(0 if ok else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "print(os.waitstatus_to_exitcode(status))\n"
    )
    r = _run(code, OMP_NUM_THREADS="2")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "0"

"""Batch norm on oneDNN against the NumPy path in float64, through F.batch_norm and directly.

oneDNN has no float64 batch norm, so the reference is the NumPy path in float64 and the
oneDNN one (float32) must land within float32 rounding of it.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.ops import norm_onednn, onednn
from lucid.ops.norm import as_rows

pytestmark = pytest.mark.skipif(not onednn.available(), reason="oneDNN is not installed (the onednn extra)")


@pytest.fixture(autouse=True)
def onednn_default():
    yield
    onednn.set_enabled(None)


def _run_batch_norm(x0, g0, params, training, relu, dtype, use_onednn, needs=(True, True, True)):
    """y, grads of (x, weight, bias) and the running statistics after one F.batch_norm."""
    onednn.set_enabled(use_onednn)
    w0, b0, rm0, rv0 = params
    x = lucid.tensor(x0.astype(dtype), requires_grad=needs[0])
    w = None if w0 is None else lucid.tensor(w0.astype(dtype), requires_grad=needs[1])
    b = None if b0 is None else lucid.tensor(b0.astype(dtype), requires_grad=needs[2])
    rm, rv = lucid.tensor(rm0.astype(dtype)), lucid.tensor(rv0.astype(dtype))
    y = F.batch_norm(x, rm, rv, w, b, training=training, momentum=0.1, eps=1e-5, relu=relu)
    if any(needs):
        (y * lucid.tensor(g0.astype(dtype))).sum().backward()
    grads = [None if t is None or t.grad is None else t.grad.data for t in (x, w, b)]
    return [y.data, *grads, rm.data, rv.data]


def _params(rng, c, affine=True, offset=0.0):
    w, b = (rng.standard_normal(c), rng.standard_normal(c)) if affine else (None, None)
    return w, b, rng.standard_normal(c) + offset, rng.random(c) + 0.5


SHAPES = [(4, 7, 5, 3), (3, 5), (5, 6, 7), (2, 33, 4, 1), (8, 64, 9, 9)]


@pytest.mark.parametrize("shape", SHAPES, ids=str)
@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
def test_batch_norm_on_onednn_equals_numpy_float64(shape, training, relu):
    rng = np.random.default_rng(0)
    x0, g0 = rng.standard_normal(shape) * 2 + 0.5, rng.standard_normal(shape)
    params = _params(rng, shape[1])
    ref = _run_batch_norm(x0, g0, params, training, relu, np.float64, False)
    got = _run_batch_norm(x0, g0, params, training, relu, np.float32, True)
    for name, a, r in zip(["y", "dx", "dweight", "dbias", "running_mean", "running_var"], got, ref):
        assert a.dtype == np.float32 and a.shape == r.shape, name
        err = np.abs(a.astype(np.float64) - r).max() / np.abs(r).max()
        assert err < 2e-5, (name, err)


def test_statistics_keep_their_precision_when_the_mean_dominates():
    """|mean| = 50 std: the variance (and so y and the gradients) still within float32 rounding."""
    rng = np.random.default_rng(1)
    shape = (6, 16, 7, 7)
    x0, g0 = rng.standard_normal(shape) + 50.0, rng.standard_normal(shape)
    params = _params(rng, 16, offset=50.0)
    ref = _run_batch_norm(x0, g0, params, True, False, np.float64, False)
    got = _run_batch_norm(x0, g0, params, True, False, np.float32, True)
    for a, r in zip(got, ref):
        assert np.abs(a - r).max() / np.abs(r).max() < 5e-5


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("needs", [(True, False, False), (False, True, True), (False, False, True), (True, False, True)],
                         ids=str)
def test_only_the_gradients_asked_for(needs, training):
    """Each subset of (x, weight, bias) gradients; the bias alone once came back None on the NumPy path."""
    rng = np.random.default_rng(2)
    shape = (4, 8, 5, 5)
    x0, g0 = rng.standard_normal(shape), rng.standard_normal(shape)
    params = _params(rng, 8)
    ref = _run_batch_norm(x0, g0, params, training, True, np.float64, False, needs)
    got = _run_batch_norm(x0, g0, params, training, True, np.float32, True, needs)
    if needs[2]:  # the bias gradient of relu(batch_norm(x)): the gradient summed where the output is positive
        np.testing.assert_allclose(ref[3], (g0 * (ref[0] > 0)).sum(axis=(0, 2, 3)), rtol=1e-12)
    for i, need in enumerate(needs):
        assert (got[1 + i] is None) == (not need)
        if need:
            np.testing.assert_allclose(got[1 + i], ref[1 + i], rtol=0, atol=2e-5 * np.abs(ref[1 + i]).max())


def test_without_weight_and_bias():
    rng = np.random.default_rng(3)
    shape = (4, 6, 3, 5)
    x0, g0 = rng.standard_normal(shape), rng.standard_normal(shape)
    params = _params(rng, 6, affine=False)
    for training in (True, False):
        ref = _run_batch_norm(x0, g0, params, training, False, np.float64, False)
        got = _run_batch_norm(x0, g0, params, training, False, np.float32, True)
        assert got[2] is None and got[3] is None
        np.testing.assert_allclose(got[0], ref[0], rtol=0, atol=2e-5 * np.abs(ref[0]).max())
        np.testing.assert_allclose(got[1], ref[1], rtol=0, atol=2e-5 * np.abs(ref[1]).max())


def test_which_inputs_run_on_onednn():
    rows = np.zeros((10, 4), np.float32)
    onednn.set_enabled(True)
    assert norm_onednn.usable(rows)
    assert not norm_onednn.usable(rows.astype(np.float64))
    assert not norm_onednn.usable(np.zeros((4, 10), np.float32).T)  # not contiguous
    assert not norm_onednn.usable(rows[:0])  # a SyncBatchNorm rank with an empty local batch
    onednn.set_enabled(False)
    assert not norm_onednn.usable(rows)


def test_sync_batch_norm_statistics_go_through_the_hook():
    """A stats_reduce hook (SyncBatchNorm's) is called in forward and backward on the oneDNN path too."""
    onednn.set_enabled(True)
    calls = []

    def reduce(packed):
        calls.append(packed.shape)
        return packed

    x = lucid.tensor(np.random.default_rng(4).standard_normal((4, 3, 2, 2)).astype(np.float32), requires_grad=True)
    rm, rv = lucid.tensor(np.zeros(3, np.float32)), lucid.tensor(np.ones(3, np.float32))
    F.batch_norm(x, rm, rv, training=True, stats_reduce=reduce).sum().backward()
    assert calls == [(3, 3), (2, 3)]


@pytest.mark.parametrize("relu", [False, True], ids=["", "relu"])
@pytest.mark.parametrize("split", [1, 3], ids=["one-sample", "three-samples"])
def test_statistics_over_two_simulated_ranks_equal_the_whole_batch(relu, split):
    """Float32 on oneDNN with a stats_reduce adding rank B's sums (SyncBatchNorm's path) equals batch
    norm of the whole batch in float64: output, input gradient, running statistics; the weight and
    bias gradients are rank A's local share."""
    rng = np.random.default_rng(8)
    x0, g0 = rng.standard_normal((5, 6, 3, 4)) * 3 + 10, rng.standard_normal((5, 6, 3, 4))  # |mean| >> std
    params = _params(rng, 6)

    def run(xs, gs, dtype, reduce):
        w0, b0, rm0, rv0 = params
        x = lucid.tensor(xs.astype(dtype), requires_grad=True)
        w, b = (lucid.tensor(v.astype(dtype), requires_grad=True) for v in (w0, b0))
        rm, rv = lucid.tensor(rm0.astype(dtype)), lucid.tensor(rv0.astype(dtype))
        y = F.batch_norm(x, rm, rv, w, b, training=True, momentum=0.1, eps=1e-5, stats_reduce=reduce, relu=relu)
        y.backward(lucid.tensor(gs.astype(dtype)))
        return [y.data, x.grad.data, w.grad.data, b.grad.data, rm.data, rv.data]

    onednn.set_enabled(False)
    whole = run(x0, g0, np.float64, None)
    # rank B's sums as it would contribute them: forward moments, backward sums about the global mean
    gm = g0 * (whole[0] > 0) if relu else g0
    xb, gb = x0[split:], gm[split:]
    mean = x0.mean(axis=(0, 2, 3)).reshape(1, -1, 1, 1)
    xhat = (x0 - mean) / np.sqrt(x0.var(axis=(0, 2, 3)).reshape(1, -1, 1, 1) + 1e-5)
    other = {3: np.stack([np.full(6, xb[:, 0].size), xb.sum(axis=(0, 2, 3)), (xb**2).sum(axis=(0, 2, 3))]),
             2: np.stack([gb.sum(axis=(0, 2, 3)), (gb * (xb - mean)).sum(axis=(0, 2, 3))])}
    calls = []

    def reduce(packed):
        calls.append(packed.shape)
        return packed + other[packed.shape[0]]

    onednn.set_enabled(True)
    got = run(x0[:split], g0[:split], np.float32, reduce)
    assert calls == [(3, 6), (2, 6)]
    local = (gm * xhat)[:split].sum(axis=(0, 2, 3)), gm[:split].sum(axis=(0, 2, 3))
    ref = [whole[0][:split], whole[1][:split], *local, whole[4], whole[5]]
    for name, a, r in zip(["y", "dx", "dweight", "dbias", "running_mean", "running_var"], got, ref):
        np.testing.assert_allclose(a, r, rtol=0, atol=3e-5 * max(1.0, np.abs(r).max()), err_msg=name)


def test_given_statistics_kernels_treat_them_as_constants():
    """"given" mode: y from the given mean/variance, dx = relu'(y) dy gamma invstd, local scale/shift grads."""
    rng = np.random.default_rng(9)
    rows = rng.standard_normal((29, 7)).astype(np.float32)
    w, b = rng.standard_normal(7).astype(np.float32), rng.standard_normal(7).astype(np.float32)
    mean, var = rng.standard_normal(7), rng.random(7) + 0.5
    y, saved = norm_onednn.batch_norm_forward(rows, w, b, 1e-5, True, mean, var, training=True)
    invstd = 1 / np.sqrt(var + 1e-5)
    xhat = (rows.astype(np.float64) - mean) * invstd
    np.testing.assert_allclose(y, np.maximum(xhat * w + b, 0), atol=2e-5)
    dy = rng.standard_normal((29, 7)).astype(np.float32)
    dx, dw, db = norm_onednn.batch_norm_backward(dy, rows, w, 1e-5, True, saved, given=True)
    dm = dy * (y > 0)
    np.testing.assert_allclose(dx, dm * w * invstd, atol=2e-5)
    np.testing.assert_allclose(dw, (dm * xhat).sum(0), atol=2e-4)
    np.testing.assert_allclose(db, dm.sum(0), atol=2e-4)


def test_one_value_per_channel_is_refused():
    onednn.set_enabled(True)
    x = lucid.tensor(np.ones((1, 4, 1, 1), np.float32))
    rm, rv = lucid.tensor(np.zeros(4, np.float32)), lucid.tensor(np.ones(4, np.float32))
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        F.batch_norm(x, rm, rv, training=True)


def test_retained_graph_backpropagates_twice():
    onednn.set_enabled(True)
    rng = np.random.default_rng(5)
    x = lucid.tensor(rng.standard_normal((4, 8, 3, 3)).astype(np.float32), requires_grad=True)
    bn = nn.BatchNorm2d(8)
    y = F.relu(bn(x))
    (y * y).sum().backward(retain_graph=True)
    first = x.grad.data.copy()
    (y * y).sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 * first, rtol=1e-6, atol=1e-6)


def test_module_training_steps_match_numpy():
    """nn.BatchNorm2d over three training steps and an eval pass: outputs and running statistics."""
    rng = np.random.default_rng(6)
    batches = [rng.standard_normal((4, 5, 6, 6)).astype(np.float32) for _ in range(3)]
    results = []
    for flag in (True, False):
        onednn.set_enabled(flag)
        bn = nn.BatchNorm2d(5)
        for xb in batches:
            bn(lucid.tensor(xb))
        bn.eval()
        results.append([bn(lucid.tensor(batches[0])).data, bn.running_mean.data, bn.running_var.data])
    for got, ref in zip(*results):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_kernels_directly_on_rows():
    """batch_norm_forward / batch_norm_backward on (M, C) rows against the closed form."""
    rng = np.random.default_rng(7)
    rows = rng.standard_normal((37, 11)).astype(np.float32)
    w, b = rng.standard_normal(11).astype(np.float32), rng.standard_normal(11).astype(np.float32)
    y, saved = norm_onednn.batch_norm_forward(rows, w, b, 1e-5, False)
    x64 = rows.astype(np.float64)
    mean, var = x64.mean(0), x64.var(0)
    xhat = (x64 - mean) / np.sqrt(var + 1e-5)
    np.testing.assert_allclose(y, xhat * w + b, atol=1e-5)
    np.testing.assert_allclose(saved[0], mean, atol=1e-6)
    np.testing.assert_allclose(saved[1], var, rtol=1e-5)
    dy = rng.standard_normal((37, 11)).astype(np.float32)
    dx, dw, db = norm_onednn.batch_norm_backward(dy, rows, w, 1e-5, False, saved)
    d64 = dy.astype(np.float64)
    ref_dx = w / np.sqrt(var + 1e-5) * (d64 - d64.mean(0) - xhat * (d64 * xhat).mean(0))
    np.testing.assert_allclose(dx, ref_dx, atol=2e-5)
    np.testing.assert_allclose(dw, (d64 * xhat).sum(0), atol=2e-4)
    np.testing.assert_allclose(db, d64.sum(0), atol=2e-4)
    assert as_rows(rows) is rows


@pytest.mark.parametrize("hook", ["", ", stats_reduce=lambda p: p"], ids=["batch", "given-statistics"])
def test_forked_child_backpropagates_on_numpy(tmp_path, hook):
    """A child forked after a oneDNN forward back-propagates through it on the NumPy path, to the same grads."""
    code = (
        "import os, numpy as np, lucid, lucid.nn.functional as F\n"
        "from lucid.ops import onednn\n"
        "onednn.set_enabled(True)\n"
        "rng = np.random.default_rng(0)\n"
        "x = lucid.tensor(rng.standard_normal((4, 16, 6, 6)).astype(np.float32), requires_grad=True)\n"
        "w = lucid.tensor(rng.standard_normal(16).astype(np.float32), requires_grad=True)\n"
        "b = lucid.tensor(rng.standard_normal(16).astype(np.float32), requires_grad=True)\n"
        "rm, rv = lucid.tensor(np.zeros(16, np.float32)), lucid.tensor(np.ones(16, np.float32))\n"
        f"y = F.batch_norm(x, rm, rv, w, b, training=True, relu=True{hook})\n"
        "g = lucid.tensor(rng.standard_normal(y.shape).astype(np.float32))\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    (y * g).sum().backward()\n"
        "    np.save('child.npy', np.concatenate([x.grad.data.ravel(), w.grad.data, b.grad.data]))\n"
        f"    y2 = F.batch_norm(x, rm, rv, w, b, training=True, relu=True{hook})\n"
        "    os._exit(0 if np.allclose(y2.data, y.data, atol=1e-5) else 3)\n"
        "_, status = os.waitpid(pid, 0)\n"
        "(y * g).sum().backward()\n"
        "child = np.load('child.npy')\n"
        "parent = np.concatenate([x.grad.data.ravel(), w.grad.data, b.grad.data])\n"
        "print(os.waitstatus_to_exitcode(status), np.abs(child - parent).max() / np.abs(parent).max())\n"
    )
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env,
                       cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    status, err = r.stdout.split()
    assert status == "0" and float(err) < 2e-5, r.stdout

"""batch_norm: training/eval values, PyTorch's running-stat formula, gradients, the stats_reduce hook."""
import numpy as np
import pytest
from ops_arrays import host, tensor

import lucid
import lucid.ops as F
from lucid.autograd import gradcheck
from lucid.ops.layout import is_channels_last


def reference(x, w, b, eps=1e-5):
    """Training-mode batch norm over all axes but 1, with the biased variance."""
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, -1) + (1,) * (x.ndim - 2)
    mean, var = x.mean(axis=axes), x.var(axis=axes)
    return (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + eps) * w.reshape(shape) + b.reshape(shape)


def test_running_stats_hand_computed():
    # channel 0 holds 1, 2, 3, 4: mean 2.5, biased var 1.25, unbiased var 5/3
    x = np.array([[[[1.0, 2.0]], [[0.0, 0.0]]], [[[3.0, 4.0]], [[2.0, 2.0]]]])  # (2, 2, 1, 2)
    rm, rv = lucid.tensor([0.5, 0.0], dtype="float64"), lucid.tensor([2.0, 1.0], dtype="float64")
    y = F.batch_norm(tensor(x), rm, rv, training=True, momentum=0.1, eps=0.0)
    np.testing.assert_allclose(host(rm), [0.9 * 0.5 + 0.1 * 2.5, 0.1 * 1.0])
    np.testing.assert_allclose(host(rv), [0.9 * 2.0 + 0.1 * 5 / 3, 0.9 * 1.0 + 0.1 * 4 / 3])
    np.testing.assert_allclose(host(y)[:, 0].ravel(), (np.array([1, 2, 3, 4]) - 2.5) / np.sqrt(1.25))
    np.testing.assert_allclose(host(y)[:, 1].ravel(), [-1, -1, 1, 1])


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 3, 4, 5)], ids=["2d", "3d", "4d"])
def test_training_values_and_gradients(shape, device):
    rng = np.random.default_rng(0)
    x, w, b = rng.standard_normal(shape) * 2 + 1, rng.standard_normal(3), rng.standard_normal(3)
    y = F.batch_norm(tensor(x, device), None, None, tensor(w, device), tensor(b, device), training=True)
    np.testing.assert_allclose(host(y), reference(x, w, b), rtol=1e-10, atol=1e-12)
    xt, wt, bt = tensor(x, device, grad=True), tensor(w, device, grad=True), tensor(b, device, grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [xt, wt, bt])


def test_training_gradients_channels_last_without_affine(device):
    x = tensor(np.random.default_rng(1).standard_normal((2, 3, 3, 4)), device, grad=True, channels_last=True)
    assert gradcheck(lambda x: F.batch_norm(x, None, None, training=True), [x])
    assert is_channels_last(F.batch_norm(x, None, None, training=True).data)


@pytest.mark.parametrize("shape", [(5, 3), (2, 3, 4, 5)], ids=["2d", "4d"])
def test_eval_uses_running_stats(shape, device):
    rng = np.random.default_rng(2)
    x, w, b = rng.standard_normal(shape), rng.standard_normal(3), rng.standard_normal(3)
    rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
    rmt, rvt = tensor(rm.copy(), device), tensor(rv.copy(), device)
    y = F.batch_norm(tensor(x, device), rmt, rvt, tensor(w, device), tensor(b, device), training=False, eps=1e-3)
    s = (1, -1) + (1,) * (len(shape) - 2)
    expected = (x - rm.reshape(s)) / np.sqrt(rv.reshape(s) + 1e-3) * w.reshape(s) + b.reshape(s)
    np.testing.assert_allclose(host(y), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(host(rmt), rm)  # eval never touches the buffers
    np.testing.assert_array_equal(host(rvt), rv)
    xt, wt, bt = tensor(x, device, grad=True), tensor(w, device, grad=True), tensor(b, device, grad=True)
    assert gradcheck(lambda x, w, b: F.batch_norm(x, rmt, rvt, w, b, training=False), [xt, wt, bt])


def test_float32_large_mean_keeps_precision():
    rng = np.random.default_rng(3)
    x64 = 1000.0 + 0.01 * rng.standard_normal((8, 4, 16, 16))
    x = lucid.Tensor(x64.astype(np.float32), requires_grad=True)
    rv = lucid.ones(4)
    y = F.batch_norm(x, None, rv, training=True, momentum=1.0)
    assert y.dtype == np.float32
    expected_var = x64.astype(np.float32).astype(np.float64).var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(host(rv), expected_var, rtol=1e-3)
    y.sum().backward()
    assert x.grad.dtype == np.float32


class Recorder:
    """A stats_reduce that records what it was given and returns it unchanged."""

    def __init__(self):
        self.calls = []

    def __call__(self, packed):
        self.calls.append(np.array(host(lucid.Tensor(packed))))
        return packed


def test_stats_reduce_receives_packed_local_statistics():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 3, 2, 2)) + 3.0
    rec = Recorder()
    xt = tensor(x, grad=True)
    y = F.batch_norm(xt, None, None, training=True, stats_reduce=rec)
    g = rng.standard_normal(x.shape)
    y.backward(lucid.Tensor(g))
    fwd, bwd = rec.calls
    np.testing.assert_allclose(fwd, [np.full(3, 8.0), x.sum(axis=(0, 2, 3)), (x**2).sum(axis=(0, 2, 3))])
    mean = x.mean(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(bwd, [g.sum(axis=(0, 2, 3)), (g * (x - mean)).sum(axis=(0, 2, 3))], atol=1e-12)


def _sum_with(other):
    """A stats_reduce that adds another rank's packed statistics (one fixed array per call kind)."""

    def reduce(packed):
        return packed + other[packed.shape[0]]

    return reduce


@pytest.mark.parametrize("split", [3, 0], ids=["two-shards", "empty-local-batch"])
def test_stats_reduce_over_two_simulated_ranks_equals_whole_batch(split):
    """Rank A (rows :split) reduces with rank B's statistics: same as batch norm on the whole batch."""
    rng = np.random.default_rng(5)
    x, w, b = rng.standard_normal((5, 3, 2, 3)) * 3 + 2, rng.standard_normal(3), rng.standard_normal(3)
    g = rng.standard_normal(x.shape)

    def run(xs, gs, reduce):
        xt, wt, bt = tensor(xs, grad=True), tensor(w, grad=True), tensor(b, grad=True)
        rm, rv = lucid.zeros(3, dtype="float64"), lucid.ones(3, dtype="float64")
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True, stats_reduce=reduce)
        y.backward(lucid.Tensor(gs))
        return host(y), host(xt.grad), host(wt.grad), host(bt.grad), host(rm), host(rv)

    whole = run(x, g, None)
    # rank B's local statistics, as it would contribute them to the all-reduce
    rec = Recorder()
    run(x[split:], g[split:], rec)
    b_stats = {3: rec.calls[0], 2: rec.calls[1]}
    # rank B's backward packed sums depend on the global mean: recompute them with it
    mean = x.mean(axis=(0, 2, 3)).reshape(1, 3, 1, 1)
    gb, xb = g[split:], x[split:]
    b_stats[2] = np.stack([gb.sum(axis=(0, 2, 3)), (gb * (xb - mean)).sum(axis=(0, 2, 3))])
    a = run(x[:split], g[:split], _sum_with(b_stats))
    np.testing.assert_allclose(a[0], whole[0][:split], rtol=1e-10, atol=1e-12)  # output
    np.testing.assert_allclose(a[1], whole[1][:split], rtol=1e-10, atol=1e-12)  # grad input
    np.testing.assert_allclose(a[4], whole[4], rtol=1e-12)  # running mean (global)
    np.testing.assert_allclose(a[5], whole[5], rtol=1e-12)  # running var (global count, unbiased)
    # weight/bias gradients stay local: both ranks' parts add up to the whole batch's
    xhat = (x - mean) / np.sqrt(x.var(axis=(0, 2, 3)).reshape(1, 3, 1, 1) + 1e-5)
    np.testing.assert_allclose(a[2], (g * xhat)[:split].sum(axis=(0, 2, 3)), atol=1e-10)
    np.testing.assert_allclose(a[3], g[:split].sum(axis=(0, 2, 3)), atol=1e-12)


def test_stats_reduce_is_not_called_in_eval():
    rec = Recorder()
    x = tensor(np.ones((2, 3, 2, 2)), grad=True)
    F.batch_norm(x, lucid.zeros(3), lucid.ones(3), training=False, stats_reduce=rec).sum().backward()
    assert rec.calls == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda x: F.batch_norm(x, lucid.zeros(4), lucid.ones(3)),
         r"running_mean of shape \(4,\) does not match input of shape \(2, 3, 4, 4\)"),
        (lambda x: F.batch_norm(x, None, None, lucid.ones(2), training=True), r"weight of shape \(2,\)"),
        (lambda x: F.batch_norm(x, None, None), r"running_mean and running_var must be given in evaluation mode"),
        (lambda x: F.batch_norm(x[:1, :, :1, :1], None, None, training=True), r"more than 1 value per channel"),
        (lambda x: F.batch_norm(x[0, 0, 0], None, None, training=True), r"expected 2-D, 3-D or 4-D input, got shape \(4,\)"),
    ],
)
def test_bad_input(call, message):
    with pytest.raises(ValueError, match=message):
        call(lucid.zeros(2, 3, 4, 4))


def test_running_statistics_must_be_tensors():
    """A NumPy array there used to fail deep inside with an AttributeError (its .data is a memoryview)."""
    with pytest.raises(TypeError, match=r"running_var must be a Tensor .* got ndarray; wrap an array with lucid.tensor"):
        F.batch_norm(lucid.zeros(2, 3, 4, 4), lucid.zeros(3), np.ones(3, np.float32))


def test_matches_torch_when_available():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(6)
    for shape in [(6, 3), (3, 3, 4, 5)]:
        for training in (True, False):
            x, w, b = rng.standard_normal(shape) * 3 + 5, rng.standard_normal(3), rng.standard_normal(3)
            rm, rv = rng.standard_normal(3), rng.random(3) + 0.5
            xt, wt, bt = tensor(x, grad=True), tensor(w, grad=True), tensor(b, grad=True)
            rmt, rvt = tensor(rm.copy()), tensor(rv.copy())
            y = F.batch_norm(xt, rmt, rvt, wt, bt, training, 0.1, 1e-5)
            g = rng.standard_normal(shape)
            y.backward(lucid.Tensor(g))
            tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
            trm, trv = torch.tensor(rm.copy()), torch.tensor(rv.copy())
            ty = torch.nn.functional.batch_norm(tx, trm, trv, tw, tb, training, 0.1, 1e-5)
            ty.backward(torch.tensor(g))
            pairs = [(y.data, ty), (xt.grad.data, tx.grad), (wt.grad.data, tw.grad), (bt.grad.data, tb.grad),
                     (rmt.data, trm), (rvt.data, trv)]
            for mine, ref in pairs:
                np.testing.assert_allclose(mine, ref.detach().numpy(), rtol=1e-9, atol=1e-11)


def test_many_blocks_on_threads_match_one_block(monkeypatch):
    """Blocked, threaded passes (tiny blocks) give the same values as one block."""
    from lucid.ops import blocked

    rng = np.random.default_rng(7)
    x, w, b = rng.standard_normal((4, 5, 6, 7)) + 2, rng.standard_normal(5), rng.standard_normal(5)
    g = rng.standard_normal(x.shape)
    results = []
    for block_bytes in (1 << 30, 64):
        monkeypatch.setattr(blocked, "BLOCK_BYTES", block_bytes)
        xt, wt, bt = tensor(x, grad=True), tensor(w, grad=True), tensor(b, grad=True)
        rv = lucid.ones(5, dtype="float64")
        y = F.batch_norm(xt, None, rv, wt, bt, training=True)
        y.backward(lucid.Tensor(g))
        results.append([host(y), host(xt.grad), host(wt.grad), host(bt.grad), host(rv)])
    for one, many in zip(*results):
        np.testing.assert_allclose(many, one, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(results[0][0], reference(x, w, b), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("shape", [(2, 4, 3, 7), (1, 2, 1, 13)], ids=["M42", "M13-prime"])
def test_wide_rows_match_narrow_rows(monkeypatch, shape, relu):
    """Few channels are regrouped into wide rows (k divides M); values and gradients are unchanged."""
    from lucid.ops import norm

    assert norm.wide_factor(np.zeros((42, 4))) == 21 and norm.wide_factor(np.zeros((13, 2))) == 13
    assert norm.wide_factor(np.zeros((8, 4)).T) == 1  # not dense rows: left narrow
    rng = np.random.default_rng(8)
    c = shape[1]
    x, w, b = rng.standard_normal(shape) * 3 + 5, rng.standard_normal(c), rng.standard_normal(c)
    g = rng.standard_normal(shape)
    results = []
    for wide_bytes in (1024, 0):
        monkeypatch.setattr(norm, "WIDE_ROW_BYTES", wide_bytes)
        xt, wt, bt = tensor(x, grad=True, channels_last=True), tensor(w, grad=True), tensor(b, grad=True)
        rm, rv = lucid.zeros(c, dtype="float64"), lucid.ones(c, dtype="float64")
        y = F.batch_norm(xt, rm, rv, wt, bt, training=True, relu=relu)
        y.backward(lucid.Tensor(g))
        results.append([host(y), host(xt.grad), host(wt.grad), host(bt.grad), host(rm), host(rv)])
    for wide, narrow in zip(*results):
        np.testing.assert_allclose(wide, narrow, rtol=1e-12, atol=1e-12)
    expected = reference(x, w, b)
    np.testing.assert_allclose(results[0][0], np.maximum(expected, 0) if relu else expected, rtol=1e-10, atol=1e-12)


def test_thread_count_setting(monkeypatch):
    from lucid.ops import blocked

    monkeypatch.setattr(blocked, "_threads", None)  # as if nothing (e.g. dist.init) had chosen yet
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert blocked.num_workers() == 3
    blocked.set_num_threads(1)
    assert blocked.num_workers() == 1
    calls = blocked.map_row_blocks(lambda a, b: (a, b), 10, blocked.BLOCK_BYTES // 2)
    assert calls == [(0, 2), (2, 4), (4, 6), (6, 8), (8, 10)]
    with pytest.raises(ValueError, match="positive number of threads"):
        blocked.set_num_threads(0)


def test_float16_statistics_accumulate_in_float32():
    rng = np.random.default_rng(8)
    x = (rng.standard_normal((16, 4, 32, 32)) * 3 + 100).astype(np.float16)  # sums overflow float16
    rv = lucid.ones(4)
    xt = lucid.Tensor(x, requires_grad=True)
    y = F.batch_norm(xt, None, rv, training=True, momentum=1.0)
    assert y.dtype == np.float16
    np.testing.assert_allclose(host(rv), x.astype(np.float64).var(axis=(0, 2, 3), ddof=1), rtol=1e-3)
    expected = reference(x.astype(np.float64), np.ones(4), np.zeros(4))
    np.testing.assert_allclose(host(y).astype(np.float64), expected, atol=0.05)  # input ulp is 0.02 after scaling
    y.backward(lucid.Tensor(np.full(x.shape, 0.1, np.float16)))  # constant dy: dx = 0
    assert xt.grad.dtype == np.float16
    assert np.abs(host(xt.grad).astype(np.float64)).max() < 1e-3

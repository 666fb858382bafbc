"""Fused GPU kernels (``lucid.ops.gpu_fused``, ``lucid.optim.multi_tensor``) on the fake device.

Each fused path must give the NumPy (CPU) path's values (float64 to ~1e-15, float32 to
1e-6) and launch fewer kernels; launch counts are deterministic, so they are asserted.
"""
import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
from lucid import optim
from lucid._backend import asnumpy
from lucid.ops import gpu_fused
from lucid.ops.layout import from_nhwc, is_channels_last

TOL = {np.float64: 1e-13, np.float32: 1e-6}


def nhwc(shape, seed, dtype=np.float64):
    n, c, h, w = shape
    return from_nhwc(np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype))


def launches(stats, fn):
    before = stats.kernels
    out = fn()
    return out, stats.kernels - before


def _bn_run(device, dtype, relu, training, reduce=None):
    x, g = nhwc((4, 8, 5, 6), 0, dtype), nhwc((4, 8, 5, 6), 1, dtype)
    rng = np.random.default_rng(2)
    w, b = rng.standard_normal(8).astype(dtype), rng.standard_normal(8).astype(dtype)
    X = lucid.Tensor(x, device=device, requires_grad=True)
    W, B = lucid.Tensor(w, device=device, requires_grad=True), lucid.Tensor(b, device=device, requires_grad=True)
    rm = lucid.Tensor(rng.standard_normal(8), device=device)
    rv = lucid.Tensor(rng.uniform(0.5, 2, 8), device=device)
    y = F.batch_norm(X, rm, rv, W, B, training=training, relu=relu, stats_reduce=reduce)
    y.backward(lucid.Tensor(g, device=device))
    return [asnumpy(t.data) for t in (y, X.grad, W.grad, B.grad, rm, rv)], y


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_fused_matches_numpy(fake_gpu, dtype, relu, training):
    cpu, _ = _bn_run("cpu", dtype, relu, training)
    gpu, y = _bn_run("gpu", dtype, relu, training)
    assert is_channels_last(y.data)
    for c, f in zip(cpu, gpu):  # relative to the largest value: float32 sums of cancelling terms
        np.testing.assert_allclose(f, c, rtol=0, atol=TOL[dtype] * max(np.abs(c).max(), 1))


def test_batch_norm_fused_with_stats_reduce_matches_numpy(fake_gpu):
    """SyncBatchNorm's hook: statistics summed over 3 identical "ranks" (count read from them)."""
    def reduce(packed):
        return packed * 3

    cpu, _ = _bn_run("cpu", np.float64, True, True, reduce)
    gpu, _ = _bn_run("gpu", np.float64, True, True, reduce)
    for c, f in zip(cpu, gpu):
        np.testing.assert_allclose(f, c, rtol=0, atol=1e-13 * max(np.abs(c).max(), 1))


def test_batch_norm_relu_fused_launches(fake_gpu):
    counts = {}
    for on in (False, True):
        with gpu_fused.enabled(on):
            x = lucid.Tensor(nhwc((4, 8, 5, 6), 0), device="gpu", requires_grad=True)
            rm, rv = lucid.zeros(8, device="gpu", dtype="float64"), lucid.ones(8, device="gpu", dtype="float64")
            k0 = _stats().kernels
            y = F.batch_norm(x, rm, rv, training=True, relu=True)
            k1 = _stats().kernels
            y.backward(lucid.ones_like(y))
            counts[on] = (k1 - k0, _stats().kernels - k1)
    # forward: 4 launches of local_moments' reductions and centring, ONE kernel for its float64
    # assembly, ONE for the per-channel arithmetic (mean, var, invstd, both running statistics, scale,
    # shift), ONE for the affine + ReLU chain; plus the fill of the count row
    # backward: ONE for the ReLU mask, grad_sums' 4 reductions/centring + ONE float64 assembly, ONE for
    # the per-channel coefficients (gw, gb, k1, k2, k3), ONE for the input gradient
    # (x*k2 + k3 + dy) * k1, and 2 in the engine
    assert counts[True] == (4 + 1 + 1 + 1 + 1, 1 + 4 + 1 + 1 + 1 + 2)
    assert counts[False] == (50, 40)


def _stats():
    import fakegpu

    return fakegpu.STATS


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_add_relu_fused_one_kernel_each_way_and_keeps_layout(fake_gpu, dtype):
    a, b, g = nhwc((2, 8, 5, 6), 0, dtype), nhwc((2, 8, 5, 6), 1, dtype), nhwc((2, 8, 5, 6), 2, dtype)
    counts = {}
    for on in (False, True):
        with gpu_fused.enabled(on):
            A, B = (lucid.Tensor(v, device="gpu", requires_grad=True) for v in (a, b))
            k0 = _stats().kernels
            out = lucid.ops.add_relu(A, B)
            k1 = _stats().kernels
            out.backward(lucid.Tensor(g, device="gpu"))
            counts[on] = (k1 - k0, _stats().kernels - k1)
            assert is_channels_last(out.data)
            np.testing.assert_array_equal(asnumpy(out.data), np.maximum(a + b, 0))
            np.testing.assert_array_equal(asnumpy(A.grad.data), g * (np.maximum(a + b, 0) > 0))
            np.testing.assert_array_equal(asnumpy(B.grad.data), asnumpy(A.grad.data))
    assert counts[True][0] == 1 and counts[False][0] == 2  # was add + maximum
    assert counts[False][1] - counts[True][1] == 1  # the gradient mask: was greater + multiply


def test_relu_backward_fused_matches_numpy(fake_gpu):
    x, g = nhwc((2, 8, 5, 6), 0, np.float32), np.random.default_rng(1).standard_normal((2, 8, 5, 6)).astype(np.float32)
    counts = []
    for on in (False, True):
        with gpu_fused.enabled(on):
            X = lucid.Tensor(x, device="gpu", requires_grad=True)
            y = lucid.ops.relu(X)
            k0 = _stats().kernels
            y.backward(lucid.Tensor(g, device="gpu"))  # g in another layout
            counts.append(_stats().kernels - k0)
            np.testing.assert_array_equal(asnumpy(X.grad.data), g * (x > 0))
    assert counts[0] - counts[1] == 1  # was greater + multiply


# -- multi-tensor optimizer -------------------------------------------------------------------
SHAPES = [(4, 3, 3, 3), (4,), (5, 4), (5,), (2, 2)] * 2
OPTIMIZERS = {
    "sgd": lambda g: optim.SGD(g, lr=0.1, momentum=0.9, weight_decay=1e-2),
    "nesterov_max": lambda g: optim.SGD(g, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2, maximize=True),
    "dampening": lambda g: optim.SGD(g, lr=0.1, momentum=0.9, dampening=0.3),
    "plain": lambda g: optim.SGD(g, lr=0.1),
    "adamw": lambda g: optim.AdamW(g, lr=0.1, weight_decay=1e-2),
    "amsgrad_max": lambda g: optim.AdamW(g, lr=0.1, amsgrad=True, maximize=True),
}


def _params(device, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return [lucid.nn.Parameter(lucid.Tensor(rng.standard_normal(s).astype(dtype), device=device)) for s in SHAPES]


def _grads(step, dtype):
    rng = np.random.default_rng(100 + step)
    return [rng.standard_normal(s).astype(dtype) for s in SHAPES]


def _train(device, make, dtype, steps=3, drop=None):
    ps = _params(device, dtype)
    opt = make([{"params": ps[:6]}, {"params": ps[6:], "weight_decay": 0.0}])
    counts = []
    for t in range(steps):
        for i, (p, g) in enumerate(zip(ps, _grads(t, dtype))):
            p.grad = None if (drop is not None and t == 1 and i == drop) else lucid.Tensor(g, device=device)
        counts.append(launches(_stats(), opt.step)[1])
    return [asnumpy(p.data) for p in ps], opt, counts


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_multi_tensor_step_matches_per_parameter(fake_gpu, name, dtype):
    cpu, _, _ = _train("cpu", OPTIMIZERS[name], dtype)
    gpu, opt, counts = _train("gpu", OPTIMIZERS[name], dtype)
    for c, f in zip(cpu, gpu):
        np.testing.assert_allclose(f, c, rtol=TOL[dtype], atol=TOL[dtype])
    with gpu_fused.enabled(False):
        _, _, unfused = _train("gpu", OPTIMIZERS[name], dtype)
    # per group: the concatenate of its gradients (6 and 4 copies: CuPy copies <= 8 arrays one by one)
    # and one fused kernel; per parameter, at least 2 kernels each (lr * d, p -= ...)
    assert counts[1:] == [(6 + 1) + (4 + 1)] * 2
    assert unfused[1] >= 2 * len(SHAPES) > counts[1]


def test_multi_tensor_one_gather_kernel_for_many_parameters(fake_gpu):
    ps = [lucid.nn.Parameter(lucid.zeros(3, 4, device="gpu")) for _ in range(20)]
    opt = optim.SGD(ps, lr=0.1, momentum=0.9)
    for p in ps:
        p.grad = lucid.ones(3, 4, device="gpu")
    _, first = launches(_stats(), opt.step)
    _, n = launches(_stats(), opt.step)
    assert first == 20 + 2  # the first step copies each parameter into the flat buffer
    assert n == 2  # concatenate (one kernel for > 8 arrays) + the fused update
    np.testing.assert_allclose(asnumpy(ps[7].data), -0.1 - 0.1 * 1.9)
    assert ps[7].data.base is not None  # a view of the group's flat buffer


def test_multi_tensor_falls_back_without_a_gradient_and_adopts_replaced_state(fake_gpu):
    counts = {}
    for name in ("sgd", "adamw"):
        cpu, _, _ = _train("cpu", OPTIMIZERS[name], np.float64, steps=4, drop=2)
        gpu, _, counts[name] = _train("gpu", OPTIMIZERS[name], np.float64, steps=4, drop=2)
        for c, f in zip(cpu, gpu):
            np.testing.assert_allclose(f, c, rtol=1e-13, atol=1e-13)
    # step 1: group 0 lacks a gradient and goes parameter by parameter; SGD is flat again after it,
    # AdamW's group 0 stays per parameter (its step counts now differ: 2 and 1)
    assert counts["sgd"][1] > counts["sgd"][2] == counts["sgd"][3] == (6 + 1) + (4 + 1)
    assert counts["adamw"][2] == counts["adamw"][3] > counts["adamw"][1] > (4 + 1)
    # a state_dict round trip replaces the state Tensors: the next step copies them into the flat buffers
    ps = _params("gpu", np.float64)
    opt = OPTIMIZERS["sgd"](ps)
    ref_ps = _params("cpu", np.float64)
    ref = OPTIMIZERS["sgd"](ref_ps)
    for t in range(3):
        for p, q, g in zip(ps, ref_ps, _grads(t, np.float64)):
            p.grad, q.grad = lucid.Tensor(g, device="gpu"), lucid.Tensor(g)
        if t == 2:
            opt.load_state_dict(ref.state_dict())
            lucid.nn.parameter.set_data(ps[0], ps[0].data.copy())
        opt.step()
        ref.step()
    for p, q in zip(ps, ref_ps):
        np.testing.assert_allclose(asnumpy(p.data), q.data, rtol=1e-13, atol=1e-13)


def test_multi_tensor_follows_parameters_to_another_device(fake_gpu):
    ps = _params("gpu", np.float64)
    ref_ps = _params("cpu", np.float64)
    opt, ref = OPTIMIZERS["sgd"](ps), OPTIMIZERS["sgd"](ref_ps)
    for t in range(3):
        if t == 1:  # after a flat step: the parameters move to gpu:1 (their state follows on load)
            for p in ps:
                lucid.nn.parameter.set_data(p, lucid.Tensor(asnumpy(p.data), device="gpu:1").data)
            for s in opt.state.values():
                s["momentum_buffer"] = lucid.Tensor(asnumpy(s["momentum_buffer"].data), device="gpu:1")
        for p, q, g in zip(ps, ref_ps, _grads(t, np.float64)):
            p.grad, q.grad = lucid.Tensor(g, device=p.device), lucid.Tensor(g)
        opt.step()
        ref.step()
    assert all(p.device == "gpu:1" for p in ps)
    for p, q in zip(ps, ref_ps):
        np.testing.assert_allclose(asnumpy(p.data), q.data, rtol=1e-13, atol=1e-13)

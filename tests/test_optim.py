"""SGD and AdamW against hand-computed updates; parameter groups; state_dict round trips."""
import io
import math

import numpy as np
import pytest

import lucid
from lucid import nn, optim

C = np.array([0.3, -1.2, 0.7, 2.0, -0.1])


def grad_of(p):
    """A gradient that depends on the parameter, so trajectories diverge if an update is off."""
    return p**3 - p + C


def run(opt_cls, steps, p0=None, dtype="float64", **kw):
    p = nn.Parameter(lucid.tensor(np.linspace(-1, 1, 5) if p0 is None else p0, dtype=dtype))
    opt = opt_cls([p], **kw)
    for _ in range(steps):
        p.grad = lucid.tensor(grad_of(p.detach().numpy()), dtype=dtype)
        opt.step()
    return p, opt


def sgd_reference(steps, lr, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False, maximize=False):
    p = np.linspace(-1, 1, 5)
    buf = None
    for _ in range(steps):
        g = grad_of(p)
        g = -g if maximize else g
        g = g + weight_decay * p
        if momentum:
            buf = g.copy() if buf is None else momentum * buf + (1 - dampening) * g
            g = g + momentum * buf if nesterov else buf
        p = p - lr * g
    return p


def adamw_reference(steps, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, maximize=False):
    p = np.linspace(-1, 1, 5)
    m = np.zeros(5)
    v = np.zeros(5)
    vmax = np.zeros(5)
    for t in range(1, steps + 1):
        g = grad_of(p)
        g = -g if maximize else g
        p = p * (1 - lr * weight_decay)
        m = betas[0] * m + (1 - betas[0]) * g
        v = betas[1] * v + (1 - betas[1]) * g * g
        vmax = np.maximum(vmax, v)
        vhat = (vmax if amsgrad else v) / (1 - betas[1] ** t)
        p = p - lr * (m / (1 - betas[0] ** t)) / (np.sqrt(vhat) + eps)
    return p


def test_sgd_hand_computed_scalar_steps():
    def steps(n, **kw):
        p = nn.Parameter(lucid.tensor([1.0], dtype="float64"))
        opt = optim.SGD([p], lr=0.1, **kw)
        out = []
        for _ in range(n):
            p.grad = lucid.tensor([1.0], dtype="float64")
            opt.step()
            out.append(p.item())
        return out

    np.testing.assert_allclose(steps(3, momentum=0.9), [0.9, 0.71, 0.439], rtol=1e-12)
    np.testing.assert_allclose(steps(2, momentum=0.9, nesterov=True), [0.81, 0.539], rtol=1e-12)
    np.testing.assert_allclose(steps(2, momentum=0.9, dampening=0.5), [0.9, 0.76], rtol=1e-12)
    np.testing.assert_allclose(steps(2, weight_decay=0.1), [0.89, 0.7811], rtol=1e-12)
    np.testing.assert_allclose(steps(1, maximize=True), [1.1], rtol=1e-12)


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.05),
        dict(lr=0.05, momentum=0.9),
        dict(lr=0.05, momentum=0.9, dampening=0.3),
        dict(lr=0.05, momentum=0.9, nesterov=True),
        dict(lr=0.05, momentum=0.8, weight_decay=0.1),
        dict(lr=0.05, momentum=0.8, weight_decay=0.1, nesterov=True, maximize=True),
        dict(lr=0.05, momentum=0.8, dampening=0.5, weight_decay=0.1, maximize=True),
        dict(lr=0.05, weight_decay=0.1, maximize=True),
    ],
)
def test_sgd_trajectory_matches_reference(kw):
    p, opt = run(optim.SGD, 6, **kw)
    np.testing.assert_allclose(p.detach().numpy(), sgd_reference(6, **kw), rtol=1e-12, atol=1e-14)
    assert ("momentum_buffer" in opt.state[p]) == bool(kw.get("momentum"))


def test_adamw_hand_computed_first_steps():
    p = nn.Parameter(lucid.tensor([1.0], dtype="float64"))
    opt = optim.AdamW([p], lr=0.1, weight_decay=0.01)
    p.grad = lucid.tensor([0.5], dtype="float64")
    opt.step()
    # decay 1 -> 0.999; m_hat = 0.5, sqrt(v_hat) = 0.5: the step is lr * 0.5 / (0.5 + eps)
    assert p.item() == pytest.approx(0.999 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-13)
    opt.step()
    assert p.item() == pytest.approx((0.999 - 0.1 * 0.5 / (0.5 + 1e-8)) * 0.999 - 0.1 * 0.5 / (0.5 + 1e-8), abs=1e-12)
    assert opt.state[p]["step"] == 2
    np.testing.assert_allclose(opt.state[p]["exp_avg"].numpy(), [0.095])
    np.testing.assert_allclose(opt.state[p]["exp_avg_sq"].numpy(), [0.00049975])


@pytest.mark.parametrize(
    "kw",
    [
        dict(lr=0.01),
        dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1),
        dict(lr=0.02, weight_decay=0.0, amsgrad=True),
        dict(lr=0.02, betas=(0.5, 0.9), amsgrad=True, maximize=True),
    ],
)
def test_adamw_trajectory_matches_reference(kw):
    p, opt = run(optim.AdamW, 8, **kw)
    np.testing.assert_allclose(p.detach().numpy(), adamw_reference(8, **kw), rtol=1e-12, atol=1e-14)
    assert ("max_exp_avg_sq" in opt.state[p]) == kw.get("amsgrad", False)


def test_amsgrad_differs_when_second_moment_falls():
    p1, _ = run(optim.AdamW, 8, lr=0.02, betas=(0.5, 0.5), amsgrad=True)
    p2, _ = run(optim.AdamW, 8, lr=0.02, betas=(0.5, 0.5), amsgrad=False)
    assert not np.allclose(p1.detach().numpy(), p2.detach().numpy())


@pytest.mark.parametrize(
    "opt_cls, kw", [(optim.SGD, dict(lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-4)), (optim.AdamW, dict(lr=0.1, amsgrad=True))]
)
def test_float32_stays_float32(opt_cls, kw):
    p, opt = run(opt_cls, 3, dtype="float32", **kw)
    assert p.dtype == np.float32
    for v in opt.state[p].values():
        if isinstance(v, lucid.Tensor):
            assert v.dtype == np.float32
    ref = (sgd_reference if opt_cls is optim.SGD else adamw_reference)(3, **kw)
    np.testing.assert_allclose(p.detach().numpy(), ref, rtol=1e-4, atol=1e-5)


def test_param_groups_with_different_weight_decay():
    w = nn.Parameter(lucid.full((3,), 2.0, dtype="float64"))
    b = nn.Parameter(lucid.full((3,), 2.0, dtype="float64"))
    for opt in (
        optim.SGD([{"params": [w]}, {"params": [b], "weight_decay": 0.0}], lr=0.1, weight_decay=0.5),
        optim.AdamW([{"params": [w]}, {"params": b, "weight_decay": 0.0}], lr=0.1, weight_decay=0.5),
    ):
        w.data[...] = 2.0
        b.data[...] = 2.0
        assert opt.param_groups[0]["weight_decay"] == 0.5 and opt.param_groups[1]["weight_decay"] == 0.0
        assert opt.param_groups[1]["lr"] == 0.1  # defaults fill what a group leaves out
        for _ in range(3):
            w.grad = lucid.zeros(3, dtype="float64")
            b.grad = lucid.zeros(3, dtype="float64")
            opt.step()
        np.testing.assert_allclose(w.detach().numpy(), 2.0 * 0.95**3, rtol=1e-12)
        np.testing.assert_allclose(b.detach().numpy(), 2.0, rtol=1e-12)


def test_no_weight_decay_on_bn_and_bias_groups_from_a_model():
    model = nn.Sequential(nn.Linear(4, 4), nn.BatchNorm2d(4))
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = optim.SGD([{"params": decay}, {"params": no_decay, "weight_decay": 0}], lr=0.1, momentum=0.9, weight_decay=5e-5)
    assert len(opt.param_groups[0]["params"]) == 1 and len(opt.param_groups[1]["params"]) == 3


def test_optimizer_bad_input():
    p = nn.Parameter(lucid.ones(2))
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        optim.SGD([{"params": [p]}, {"params": [p]}], lr=0.1)
    opt = optim.SGD([p], lr=0.1)
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [p]})
    with pytest.raises(ValueError, match="Nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="learning rate"):
        optim.AdamW([p], lr=-1)
    with pytest.raises(ValueError, match="beta"):
        optim.AdamW([p], betas=(0.9, 1.0))


def test_zero_grad_step_closure_and_missing_grads():
    a = nn.Parameter(lucid.ones(2))
    b = nn.Parameter(lucid.ones(2))
    opt = optim.SGD([a, b], lr=0.5)

    def closure():
        opt.zero_grad()
        loss = (a * a).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 2.0
    np.testing.assert_array_equal(a.detach().numpy(), [0.0, 0.0])  # 1 - 0.5 * 2
    np.testing.assert_array_equal(b.detach().numpy(), [1.0, 1.0])  # no grad: untouched
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    assert a.grad is not None and not a.grad.numpy().any()
    opt.zero_grad()
    assert a.grad is None


def test_add_param_group_then_step():
    a = nn.Parameter(lucid.ones(1))
    b = nn.Parameter(lucid.ones(1))
    opt = optim.SGD([a], lr=0.1)
    opt.add_param_group({"params": [b], "lr": 1.0})
    a.grad, b.grad = lucid.ones(1), lucid.ones(1)
    opt.step()
    assert a.item() == pytest.approx(0.9) and b.item() == pytest.approx(0.0)


def _train(model, opt, sched, steps, seed):
    lucid.manual_seed(seed)
    losses = []
    for _ in range(steps):
        x = lucid.randn(8, 4)
        y = lucid.randint(0, 3, (8,))
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    return losses


def _setup(opt_name):
    lucid.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))
    if opt_name == "sgd":
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-3)
    else:
        opt = optim.AdamW(model.parameters(), lr=0.01, amsgrad=True)
    warm = optim.lr_scheduler.LinearLR(opt, start_factor=0.1, total_iters=3)
    cos = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=10)
    sched = optim.lr_scheduler.SequentialLR(opt, [warm, cos], milestones=[3])
    return model, opt, sched


@pytest.mark.parametrize("opt_name", ["sgd", "adamw"])
def test_optimizer_and_scheduler_resume_through_save_load(opt_name, tmp_path):
    model, opt, sched = _setup(opt_name)
    _train(model, opt, sched, 4, seed=1)
    path = tmp_path / "ckpt.lucid"
    lucid.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict()}, path)
    expected = _train(model, opt, sched, 5, seed=2)
    final = [p.detach().numpy().copy() for p in model.parameters()]

    model2, opt2, sched2 = _setup(opt_name)
    ckpt = lucid.load(path)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["optimizer"])
    sched2.load_state_dict(ckpt["scheduler"])
    assert sched2.get_last_lr() != [] and sched2.last_epoch == 4
    resumed = _train(model2, opt2, sched2, 5, seed=2)
    assert resumed == expected
    for a, b in zip(final, model2.parameters()):
        np.testing.assert_array_equal(a, b.detach().numpy())
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]


def test_optimizer_state_dict_layout_and_private_copies():
    p, opt = run(optim.AdamW, 2, lr=0.1)
    sd = opt.state_dict()
    assert list(sd["state"]) == [0] and sd["param_groups"][0]["params"] == [0]
    assert sd["param_groups"][0]["betas"] == (0.9, 0.999)
    q = nn.Parameter(lucid.zeros(5, dtype="float32"))
    opt2 = optim.AdamW([q], lr=0.5)
    opt2.load_state_dict(sd)
    st = opt2.state[q]
    assert st["step"] == 2 and st["exp_avg"].dtype == np.float32  # cast to the parameter's dtype
    assert st["exp_avg"].data is not opt.state[p]["exp_avg"].data
    assert opt2.param_groups[0]["lr"] == 0.1


def test_optimizer_load_state_dict_mismatch():
    a, b = nn.Parameter(lucid.ones(1)), nn.Parameter(lucid.ones(1))
    sd = optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)


def test_plain_sgd_has_no_state_to_save():
    p, opt = run(optim.SGD, 2, lr=0.1)
    assert opt.state_dict()["state"] == {}  # as PyTorch: no momentum, no per-parameter state


def test_repr_lists_groups():
    opt = optim.SGD([nn.Parameter(lucid.ones(1))], lr=0.1, momentum=0.9)
    text = repr(opt)
    assert text.startswith("SGD (\nParameter Group 0\n") and "    lr: 0.1" in text and "    momentum: 0.9" in text
    assert math.isclose(opt.defaults["lr"], 0.1)


def test_save_load_file_object_round_trip():
    p, opt = run(optim.SGD, 2, lr=0.1, momentum=0.9)
    buf = io.BytesIO()
    lucid.save(opt.state_dict(), buf)
    buf.seek(0)
    sd = lucid.load(buf)
    np.testing.assert_array_equal(sd["state"][0]["momentum_buffer"].numpy(), opt.state[p]["momentum_buffer"].numpy())


@pytest.mark.parametrize(
    "opt_cls, kw",
    [
        (optim.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1)),
        (optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.2, maximize=True)),
        (optim.AdamW, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ],
)
def test_large_parameter_updated_block_by_block_matches_whole_array_reference(opt_cls, kw):
    """Parameters above optim.optimizer.BLOCK elements are updated in row blocks; a
    transposed (non-contiguous) gradient must pair up element by element all the same."""
    from lucid.optim.optimizer import BLOCK, blocks

    rng = np.random.default_rng(0)
    shape = (300, 500)
    assert shape[0] * shape[1] > BLOCK and len(blocks(np.empty(shape))) == 3
    p0 = rng.standard_normal(shape)
    grads = [np.ascontiguousarray(rng.standard_normal(shape[::-1])).T for _ in range(3)]
    p = nn.Parameter(lucid.tensor(p0))
    opt = opt_cls([p], **kw)
    for g in grads:
        p.grad = lucid.Tensor(g)
        opt.step()

    ref = nn.Parameter(lucid.tensor(p0))  # the same updates with blocking switched off
    import lucid.optim.optimizer as base

    ref_opt = opt_cls([ref], **kw)
    old, base.BLOCK = base.BLOCK, 10**9
    try:
        for g in grads:
            ref.grad = lucid.Tensor(np.ascontiguousarray(g))
            ref_opt.step()
    finally:
        base.BLOCK = old
    np.testing.assert_array_equal(p.detach().numpy(), ref.detach().numpy())

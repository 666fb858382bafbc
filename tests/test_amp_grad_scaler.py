"""GradScaler: scaling, unscaling, skipped steps on Inf/NaN, back-off and growth of the
scale, state_dict round trip, misuse errors; against PyTorch's GradScaler when importable."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
from lucid.amp import GradScaler


def model_and_optimizer(device="cpu"):
    lucid.manual_seed(0)
    m = nn.Linear(3, 2, device=device)
    return m, lucid.optim.SGD(m.parameters(), lr=0.1)


def backward(m, scaler, poison=None, device="cpu"):
    """One scaled backward of a fixed loss; ``poison`` puts inf/nan into the input (so into the weight gradient)."""
    x = np.ones((4, 3), np.float32)
    if poison is not None:
        x[1, 2] = poison
    with lucid.autocast("cpu" if device == "cpu" else "gpu"):
        loss = (m(lucid.tensor(x, device=device)) ** 2).mean()
    scaler.scale(loss).backward()
    return loss


def weights(m):
    return [lucid._backend.asnumpy(p.data).copy() for p in m.parameters()]


def test_scale_multiplies_and_unscale_divides_back(device):
    m, opt = model_and_optimizer(device)
    ref, _ = model_and_optimizer(device)
    scaler = GradScaler(init_scale=1024.0)
    loss = backward(m, scaler, device=device)
    assert scaler.scale(loss).item() == pytest.approx(loss.item() * 1024.0)
    assert scaler.scale([loss, (loss,)])[1][0].item() == pytest.approx(loss.item() * 1024.0)
    backward(ref, GradScaler(enabled=False), device=device)
    scaled = lucid._backend.asnumpy(m.weight.grad.data).copy()
    assert scaler.unscale_(opt) is True
    got = lucid._backend.asnumpy(m.weight.grad.data)
    np.testing.assert_allclose(got, scaled / 1024.0, rtol=1e-6)
    np.testing.assert_allclose(got, lucid._backend.asnumpy(ref.weight.grad.data), rtol=1e-2, atol=1e-3)
    before = weights(m)
    scaler.step(opt)
    assert not np.array_equal(weights(m)[0], before[0])  # the step was taken
    scaler.update()
    assert scaler.get_scale() == 1024.0 and scaler.state_dict()["_growth_tracker"] == 1


@pytest.mark.parametrize("poison", [np.inf, np.nan])
def test_overflow_skips_the_step_and_backs_off(poison, device):
    m, opt = model_and_optimizer(device)
    scaler = GradScaler(init_scale=2.0**10, growth_interval=3)
    for _ in range(2):  # two clean steps build up the growth tracker
        backward(m, scaler, device=device)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
    assert scaler.state_dict()["_growth_tracker"] == 2
    before = weights(m)
    backward(m, scaler, poison=poison, device=device)
    assert scaler.step(opt) is None
    for a, b in zip(weights(m), before):
        np.testing.assert_array_equal(a, b)  # nothing moved
    scaler.update()
    assert scaler.get_scale() == 2.0**9 and scaler.state_dict()["_growth_tracker"] == 0


def test_scale_grows_after_growth_interval_clean_steps_then_backs_off_again():
    m, opt = model_and_optimizer()
    scaler = GradScaler(init_scale=8.0, growth_factor=4.0, backoff_factor=0.25, growth_interval=3)
    scales = []
    for k in range(8):
        backward(m, scaler, poison=np.inf if k == 6 else None)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        scales.append(scaler.get_scale())
    assert scales == [8, 8, 32, 32, 32, 128, 32, 32]


def test_real_float16_overflow_backs_off_until_the_gradients_fit():
    """No injected Inf: a large scale overflows the float16 backward itself."""
    m, opt = model_and_optimizer()
    scaler = GradScaler(init_scale=2.0**24)
    taken = []
    while not taken or not taken[-1]:
        with lucid.autocast("cpu"):
            loss = m(lucid.ones(4, 3)).sum() * 100.0
        scaler.scale(loss).backward()
        before = weights(m)[0]
        scaler.step(opt)
        taken.append(not np.array_equal(weights(m)[0], before))
        scaler.update()
        opt.zero_grad()
    assert taken[0] is False and len(taken) > 2
    assert scaler.get_scale() == 2.0**24 * 0.5 ** (len(taken) - 1)
    assert scaler.get_scale() * 100.0 * 4 < 65504  # the float16 gradient of the linear output now fits


def test_found_inf_from_elsewhere_skips_even_with_finite_gradients():
    m, opt = model_and_optimizer()
    scaler = GradScaler(init_scale=256.0)
    backward(m, scaler)
    assert np.isfinite(m.weight.grad.data).all()
    assert scaler.unscale_(opt, found_inf=True) is False
    before = weights(m)
    assert scaler.step(opt) is None
    np.testing.assert_array_equal(weights(m)[0], before[0])
    scaler.update()
    assert scaler.get_scale() == 128.0
    opt.zero_grad()
    backward(m, scaler, poison=np.inf)  # a given verdict is taken as is: the caller checked
    assert scaler.unscale_(opt, found_inf=False) is True
    scaler.update()
    assert GradScaler(enabled=False).unscale_(opt, found_inf=True) is False
    assert GradScaler(enabled=False).unscale_(opt) is True


def test_state_dict_round_trip_continues_identically():
    m, opt = model_and_optimizer()
    a = GradScaler(init_scale=64.0, growth_interval=2)
    for k in range(3):
        backward(m, a, poison=np.inf if k == 0 else None)
        a.step(opt)
        a.update()
        opt.zero_grad()
    state = a.state_dict()
    assert state == {"scale": 64.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 2,
                     "_growth_tracker": 0}
    b = GradScaler()
    b.load_state_dict(lucid.load(_saved(state)))
    for s in (a, b):
        backward(m, s)
        s.unscale_(opt)
        s.update()
        opt.zero_grad()
    assert a.state_dict() == b.state_dict() and b.state_dict()["_growth_tracker"] == 1
    assert GradScaler(enabled=False).state_dict() == {}
    with pytest.raises(RuntimeError, match="state dict is empty"):
        GradScaler().load_state_dict({})


def _saved(state):
    import io

    buf = io.BytesIO()
    lucid.save(state, buf)
    buf.seek(0)
    return buf


def test_misuse_is_refused():
    m, opt = model_and_optimizer()
    scaler = GradScaler(init_scale=256.0)
    with pytest.raises(RuntimeError, match="No inf checks were recorded"):
        scaler.update()
    backward(m, scaler)
    scaler.unscale_(opt)
    with pytest.raises(RuntimeError, match="already been called on this optimizer"):
        scaler.unscale_(opt)
    scaler.step(opt)
    with pytest.raises(RuntimeError, match="step\\(\\) has already been called"):
        scaler.step(opt)
    with pytest.raises(RuntimeError, match="after step"):
        scaler.unscale_(opt)
    scaler.update()
    scaler.update(new_scale=3.0)
    assert scaler.get_scale() == 3.0
    for kwargs, match in (({"init_scale": 0}, "init_scale"), ({"growth_factor": 1.0}, "growth_factor"),
                          ({"backoff_factor": 1.0}, "backoff_factor"), ({"growth_interval": 0}, "growth_interval")):
        with pytest.raises(ValueError, match=match):
            GradScaler(**kwargs)
    with pytest.raises(TypeError, match="Tensor or a list"):
        scaler.scale(3.0)


def test_disabled_scaler_passes_through():
    m, opt = model_and_optimizer()
    scaler = GradScaler(enabled=False)
    loss = backward(m, scaler)
    assert scaler.scale(loss) is loss and scaler.get_scale() == 1.0 and not scaler.is_enabled()
    before = weights(m)
    scaler.step(opt)
    scaler.update()
    assert not np.array_equal(weights(m)[0], before[0])


def test_schedule_of_the_scale_matches_pytorch():
    torch = pytest.importorskip("torch")
    events = [False, False, True, False, False, False, True, True, False, False, False]
    ours = GradScaler(init_scale=4.0, growth_interval=3)
    theirs = torch.amp.GradScaler("cpu", init_scale=4.0, growth_interval=3)
    m, opt = model_and_optimizer()
    w = torch.nn.Parameter(torch.ones(2))
    topt = torch.optim.SGD([w], lr=0.1)
    for bad in events:
        backward(m, ours, poison=np.inf if bad else None)
        ours.step(opt)
        ours.update()
        opt.zero_grad()
        theirs.scale((w * (float("inf") if bad else 1.0)).sum()).backward()
        theirs.step(topt)
        theirs.update()
        topt.zero_grad()
        assert ours.get_scale() == theirs.get_scale()
        assert ours.state_dict()["_growth_tracker"] == theirs.state_dict()["_growth_tracker"]

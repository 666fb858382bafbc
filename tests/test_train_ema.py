"""ModelEma: the closed-form weighted average of the weights, timm's decay warmup, exact swap."""
import numpy as np
import pytest

import lucid
from lucid import nn
from lucid.train.ema import ModelEma


def tiny():
    lucid.manual_seed(0)
    return nn.Sequential(nn.Conv2d(2, 3, 3, bias=False), nn.BatchNorm2d(3), nn.Flatten(), nn.LazyLinear(4)).double()


def test_decay_schedule_is_timms():
    ema = ModelEma(tiny()[:2], 0.99)
    assert ema.decay_at(1) == 0.0
    assert ema.decay_at(2) == pytest.approx(1 - 2 ** (-2 / 3)) and ema.decay_at(10) == pytest.approx(1 - 10 ** (-2 / 3))
    assert ema.decay_at(10**6) == 0.99  # capped at the configured decay
    plain = ModelEma(tiny()[:2], 0.9, warmup=False)
    assert [plain.decay_at(s) for s in (1, 2, 50)] == [0.0, 0.9, 0.9]


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_equals_the_closed_form_average(warmup):
    model = tiny()[:2]
    ema = ModelEma(model, 0.8, warmup=warmup)
    rng = np.random.default_rng(1)
    history = {name: [] for name in model.state_dict()}
    decays = []
    for step in range(1, 9):
        for name, t in model.state_dict().items():  # an "optimizer step": new values everywhere
            if t.dtype == lucid.float64:
                t.data[...] = rng.standard_normal(t.shape)
            else:
                t.data[...] = step
            history[name].append(t.numpy().copy())
        ema.update(model, step)
        decays.append(ema.decay_at(step))
    for name, values in history.items():
        if values[0].dtype != np.float64:
            assert int(ema.weights[name].item()) == 8  # integers (num_batches_tracked) are copied
            continue
        # ema_T = sum_t v_t (1 - d_t) prod_{s > t} d_s
        expected = sum(v * (1 - decays[t]) * np.prod(decays[t + 1:]) for t, v in enumerate(values))
        np.testing.assert_allclose(ema.weights[name].numpy(), expected, rtol=1e-12, atol=1e-14, err_msg=name)


def test_unchanging_entries_stay_bit_identical_and_swap_is_exact():
    model = tiny()
    model.eval()(lucid.zeros(1, 2, 3, 3, dtype=lucid.float64))  # materialise the lazy layer
    ema = ModelEma(model, 0.9)
    frozen = model[0].weight.detach().numpy().copy()
    for step in range(1, 6):
        model[1].weight.data[...] += 0.1
        ema.update(model, step)
    np.testing.assert_array_equal(ema.weights["0.weight"].numpy(), frozen)
    assert not np.array_equal(ema.weights["1.weight"].numpy(), model[1].weight.detach().numpy())
    own = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    with ema.applied_to(model):
        for k, v in model.state_dict().items():
            np.testing.assert_array_equal(v.numpy(), ema.weights[k].numpy(), err_msg=k)
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), own[k], err_msg=k)
    other = ModelEma(model, 0.9)
    other.load_state_dict(ema.state_dict())
    np.testing.assert_array_equal(other.weights["1.weight"].numpy(), ema.weights["1.weight"].numpy())
    with pytest.raises(ValueError, match="EMA weights do not fit the model"):
        ModelEma(model[:2], 0.9).load_state_dict(ema.state_dict())
    with pytest.raises(ValueError, match=r"decay must be in \[0, 1\)"):
        ModelEma(model, 1.0)

"""lucid.nn.init: gains, fan computation, distribution statistics, seeding, in-place semantics."""
import math

import numpy as np
import pytest

import lucid
from lucid import nn
from lucid.nn import init


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1 and init.calculate_gain("conv2d") == 1 and init.calculate_gain("sigmoid") == 1
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2))
    assert init.calculate_gain("tanh") == pytest.approx(5 / 3)
    assert init.calculate_gain("selu") == pytest.approx(0.75)
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", math.sqrt(5)) == pytest.approx(math.sqrt(2 / 6))
    with pytest.raises(ValueError, match="unsupported nonlinearity"):
        init.calculate_gain("swish")


def _sample_std_ok(values, std, sigmas=6):
    """Sample std within `sigmas` standard errors (se of a normal sample's std ~ std / sqrt(2n))."""
    se = std / math.sqrt(2 * values.size)
    return abs(values.std() - std) < sigmas * se * 2  # x2 covers the uniform's larger kurtosis


@pytest.mark.parametrize("mode, fan", [("fan_in", 128 * 9), ("fan_out", 256 * 9)])
def test_kaiming_normal_std_matches_formula(mode, fan):
    lucid.manual_seed(0)
    w = nn.Parameter(lucid.empty(256, 128, 3, 3))
    data = w.data
    out = init.kaiming_normal_(w, mode=mode, nonlinearity="relu")
    assert out is w and w.data is data and w.is_leaf and w.grad_fn is None
    v = w.detach().numpy()
    std = math.sqrt(2.0) / math.sqrt(fan)
    assert _sample_std_ok(v, std)
    assert abs(v.mean()) < 6 * std / math.sqrt(v.size)


def test_kaiming_uniform_bound_and_std():
    lucid.manual_seed(0)
    w = lucid.empty(64, 32, 3, 3)
    init.kaiming_uniform_(w, a=0.0, nonlinearity="relu")
    v = w.numpy()
    std = math.sqrt(2.0 / (32 * 9))
    bound = math.sqrt(3.0) * std
    assert np.abs(v).max() <= bound and np.abs(v).max() > 0.999 * bound
    assert _sample_std_ok(v, std)


def test_xavier_uniform_and_normal():
    lucid.manual_seed(1)
    w = lucid.empty(300, 200)
    std = 1.5 * math.sqrt(2.0 / 500)
    init.xavier_uniform_(w, gain=1.5)
    assert np.abs(w.numpy()).max() <= math.sqrt(3) * std and _sample_std_ok(w.numpy(), std)
    init.xavier_normal_(w, gain=1.5)
    assert _sample_std_ok(w.numpy(), std)


def test_normal_uniform_constant_fills():
    lucid.manual_seed(2)
    t = lucid.empty(100_000)
    init.normal_(t, mean=3.0, std=0.5)
    assert abs(t.numpy().mean() - 3.0) < 0.01 and abs(t.numpy().std() - 0.5) < 0.01
    init.uniform_(t, -2.0, 4.0)
    assert t.numpy().min() >= -2.0 and t.numpy().max() < 4.0 and abs(t.numpy().mean() - 1.0) < 0.03
    init.constant_(t, 0.25)
    assert (t.numpy() == 0.25).all()
    init.zeros_(t)
    assert not t.numpy().any()
    init.ones_(t)
    assert (t.numpy() == 1).all()


def test_seeded_reproducibility_and_dtype_preserved():
    draws = []
    for seed in (7, 7, 8):
        lucid.manual_seed(seed)
        t = lucid.empty(16, 8, dtype="float64")
        init.kaiming_normal_(t)
        assert t.dtype == np.float64
        draws.append(t.numpy().copy())
    np.testing.assert_array_equal(draws[0], draws[1])
    assert not np.array_equal(draws[0], draws[2])
    h = lucid.empty(8, 8, dtype="float16")
    init.xavier_uniform_(h)
    assert h.dtype == np.float16 and np.isfinite(h.numpy()).all() and h.numpy().any()


def test_bad_input():
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        init.kaiming_normal_(lucid.empty(5))
    with pytest.raises(ValueError, match="fan_in, fan_out"):
        init.kaiming_uniform_(lucid.empty(5, 5), mode="fan_avg")

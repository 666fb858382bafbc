"""Learning-rate schedules against hand-computed sequences; state_dict round trips."""
import math

import numpy as np
import pytest

import lucid
from lucid import nn, optim
from lucid.optim import lr_scheduler as L


def make_opt(lrs=(1.0,)):
    groups = [{"params": [nn.Parameter(lucid.zeros(1))], "lr": lr} for lr in lrs]
    return optim.SGD(groups, lr=lrs[0])


def sequence(make, n=8, lrs=(1.0,)):
    """lr of group 0 after construction and after each of n-1 steps."""
    opt = make_opt(lrs)
    sched = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for _ in range(n - 1):
        opt.step()
        sched.step()
        out.append(opt.param_groups[0]["lr"])
    assert sched.get_last_lr()[0] == out[-1]
    return out


COS = lambda e, T, lo=0.0: lo + (1 - lo) * (1 + math.cos(math.pi * e / T)) / 2  # noqa: E731


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda o: L.StepLR(o, step_size=2, gamma=0.5), [1, 1, 0.5, 0.5, 0.25, 0.25, 0.125, 0.125]),
        (lambda o: L.MultiStepLR(o, milestones=[5, 2, 5], gamma=0.1), [1, 1, 0.1, 0.1, 0.1, 0.001, 0.001, 0.001]),
        (lambda o: L.ExponentialLR(o, gamma=0.9), [0.9**e for e in range(8)]),
        (
            lambda o: L.CosineAnnealingLR(o, T_max=4, eta_min=0.1),
            [1.0, 0.8681980515, 0.55, 0.2318019485, 0.1, 0.2318019485, 0.55, 0.8681980515],
        ),
        (lambda o: L.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=3), [0.25, 0.5, 0.75, 1, 1, 1, 1, 1]),
        (lambda o: L.LinearLR(o, start_factor=1.0, end_factor=0.5, total_iters=2), [1, 0.75, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]),
        (lambda o: L.LambdaLR(o, lambda e: 0.5**e), [0.5**e for e in range(8)]),
    ],
)
def test_schedule_sequences(make, expected):
    np.testing.assert_allclose(sequence(make), expected, rtol=1e-9)


def test_cosine_values_are_the_closed_form():
    got = sequence(lambda o: L.CosineAnnealingLR(o, T_max=7), n=20)
    np.testing.assert_allclose(got, [COS(e, 7) for e in range(20)], rtol=1e-12, atol=1e-15)


def test_linear_warmup_then_cosine_through_sequential_lr():
    def make(o):
        warm = L.LinearLR(o, start_factor=0.1, total_iters=2)
        cos = L.CosineAnnealingLR(o, T_max=4)
        return L.SequentialLR(o, [warm, cos], milestones=[2])

    expected = [0.1, 0.55, 1.0, 0.8535533906, 0.5, 0.1464466094, 0.0, 0.1464466094, 0.5, 0.8535533906]
    np.testing.assert_allclose(sequence(make, n=10), expected, rtol=1e-9, atol=1e-12)


def test_sequential_lr_with_three_phases_restarts_each_at_its_milestone():
    def make(o):
        return L.SequentialLR(
            o, [L.LinearLR(o, 0.5, total_iters=2), L.StepLR(o, 1, 0.5), L.ExponentialLR(o, 0.9)], milestones=[2, 4]
        )

    np.testing.assert_allclose(sequence(make), [0.5, 0.75, 1.0, 0.5, 1.0, 0.9, 0.81, 0.729], rtol=1e-12)


def test_each_group_scales_its_own_base_lr():
    opt = make_opt((1.0, 0.1))
    sched = L.StepLR(opt, step_size=1, gamma=0.5)
    sched.step()
    assert [g["lr"] for g in opt.param_groups] == [0.5, 0.05] == sched.get_last_lr()
    assert [g["initial_lr"] for g in opt.param_groups] == [1.0, 0.1]


def test_lambda_lr_per_group_and_state_dict_skips_functions():
    class Halve:
        def __init__(self):
            self.factor = 0.5

        def __call__(self, epoch):
            return self.factor**epoch

    opt = make_opt((1.0, 2.0))
    fn = Halve()
    sched = L.LambdaLR(opt, [lambda e: 1.0 / (e + 1), fn])
    sched.step()
    assert sched.get_last_lr() == [0.5, 1.0]
    state = sched.state_dict()
    assert state["lr_lambdas"] == [None, {"factor": 0.5}] and "optimizer" not in state
    fn.factor = 0.1
    sched.load_state_dict(state)
    assert fn.factor == 0.5
    with pytest.raises(ValueError, match="expected 2 lr_lambdas"):
        L.LambdaLR(opt, [lambda e: 1.0])


@pytest.mark.parametrize(
    "make",
    [
        lambda o: L.StepLR(o, 3, 0.5),
        lambda o: L.MultiStepLR(o, [2, 4]),
        lambda o: L.CosineAnnealingLR(o, 6, 0.01),
        lambda o: L.ExponentialLR(o, 0.8),
        lambda o: L.LambdaLR(o, lambda e: 1 / (1 + e)),
        lambda o: L.SequentialLR(o, [L.LinearLR(o, 0.2, total_iters=3), L.CosineAnnealingLR(o, 5)], [3]),
    ],
)
def test_state_round_trip_through_save_load_continues_identically(make, tmp_path):
    opt = make_opt()
    sched = make(opt)
    for _ in range(4):
        opt.step()
        sched.step()
    lucid.save({"opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "s.lucid")
    expected = []
    for _ in range(5):
        sched.step()
        expected.append(opt.param_groups[0]["lr"])

    opt2 = make_opt()
    sched2 = make(opt2)
    state = lucid.load(tmp_path / "s.lucid")
    opt2.load_state_dict(state["opt"])
    sched2.load_state_dict(state["sched"])
    got = []
    for _ in range(5):
        sched2.step()
        got.append(opt2.param_groups[0]["lr"])
    assert got == expected


def test_resuming_with_last_epoch_needs_initial_lr():
    opt = make_opt()
    with pytest.raises(KeyError, match="initial_lr"):
        L.StepLR(opt, 2, last_epoch=3)
    opt.param_groups[0]["initial_lr"] = 1.0
    sched = L.StepLR(opt, 2, gamma=0.5, last_epoch=3)  # the initial step moves to epoch 4
    assert sched.last_epoch == 4 and opt.param_groups[0]["lr"] == 0.25


def test_scheduler_bad_arguments():
    opt = make_opt()
    with pytest.raises(ValueError, match="total_iters"):
        L.LinearLR(opt, total_iters=0)
    with pytest.raises(ValueError, match="start_factor"):
        L.LinearLR(opt, start_factor=0.0)
    with pytest.raises(ValueError, match="milestones"):
        L.SequentialLR(opt, [L.StepLR(opt, 1), L.StepLR(opt, 1)], milestones=[])
    with pytest.raises(ValueError, match="different optimizer"):
        L.SequentialLR(opt, [L.StepLR(make_opt(), 1)], milestones=[])
    with pytest.raises(TypeError, match="not an Optimizer"):
        L.StepLR(object(), 1)

"""clip_grad_norm_: PyTorch's semantics (global norm over all gradients, coefficient
max_norm / (norm + 1e-6) capped at 1, the norm before clipping returned)."""
import math

import numpy as np
import pytest

import lucid
from lucid.nn import Parameter
from lucid.nn.utils import clip_grad_norm_


def params_with_grads(scale=3.0, seed=0):
    rng = np.random.default_rng(seed)
    params = []
    for shape in [(3, 4), (5,), (2, 2, 3, 3)]:
        p = Parameter(lucid.tensor(rng.standard_normal(shape)))
        p.grad = lucid.tensor(scale * rng.standard_normal(shape))
        params.append(p)
    return params


def flat(params):
    return np.concatenate([p.grad.numpy().ravel() for p in params])


@pytest.mark.parametrize("norm_type, reference", [(2.0, lambda g: np.sqrt((g * g).sum())), (1.0, lambda g: np.abs(g).sum()),
                                                  (3.0, lambda g: (np.abs(g) ** 3).sum() ** (1 / 3)),
                                                  (math.inf, lambda g: np.abs(g).max())])
def test_global_norm_after_clipping_equals_the_bound(norm_type, reference):
    params = params_with_grads()
    before = flat(params)
    total = clip_grad_norm_(params, 0.5, norm_type)
    assert total.item() == pytest.approx(reference(before), rel=1e-12) and total.dtype == lucid.float64
    after = flat(params)
    np.testing.assert_allclose(after, before * 0.5 / (reference(before) + 1e-6), rtol=1e-12)
    assert reference(after) == pytest.approx(0.5, rel=1e-5)


def test_below_the_bound_nothing_changes_and_missing_grads_are_skipped():
    params = params_with_grads(scale=0.01)
    params.append(Parameter(lucid.zeros(4)))  # no gradient
    before = flat(params[:3])
    total = clip_grad_norm_(iter(params), 100.0)
    np.testing.assert_array_equal(flat(params[:3]), before)
    assert total.item() == pytest.approx(np.linalg.norm(before), rel=1e-12) and params[3].grad is None
    single = params_with_grads()[0]
    assert clip_grad_norm_(single, 1.0).item() > 1.0 and np.linalg.norm(single.grad.numpy()) == pytest.approx(1.0, rel=1e-5)
    empty = clip_grad_norm_([Parameter(lucid.zeros(2))], 1.0)
    assert empty.item() == 0.0 and empty.dtype == lucid.float32


def test_non_finite_norm():
    params = params_with_grads()
    params[1].grad.data[0] = np.inf
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is non-finite"):
        clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isinf(clip_grad_norm_(params, 1.0).item()) and np.isnan(flat(params)).any()
    with pytest.raises(ValueError, match="norm_type must be > 0"):
        clip_grad_norm_(params, 1.0, norm_type=0)


def test_matches_pytorch():
    torch = pytest.importorskip("torch")
    for norm_type in (2.0, math.inf, 1.5):
        ours, theirs = params_with_grads(), params_with_grads()
        tp = [torch.nn.Parameter(torch.tensor(p.detach().numpy())) for p in theirs]
        for t, p in zip(tp, theirs):
            t.grad = torch.tensor(p.grad.numpy())
        a, b = clip_grad_norm_(ours, 2.0, norm_type), torch.nn.utils.clip_grad_norm_(tp, 2.0, norm_type)
        assert a.item() == pytest.approx(b.item(), rel=1e-12)
        np.testing.assert_allclose(flat(ours), np.concatenate([t.grad.numpy().ravel() for t in tp]), rtol=1e-12)

"""Elementwise, reduction, shape, matmul, activation and loss ops: values and gradients."""
import numpy as np
import pytest

import lucid
import lucid.ops as F
from lucid.autograd import gradcheck


def leaf(*shape, device="cpu", positive=False):
    t = lucid.randn(*shape, dtype="float64", device=device)
    if positive:
        t = t.abs() + 0.5
    t.requires_grad = True
    return t


@pytest.mark.parametrize(
    "fn",
    [
        lambda a, b: a + b,
        lambda a, b: a - b,
        lambda a, b: a * b,
        lambda a, b: a / b,
        lambda a, b: a**b,
        lambda a, b: 2.0 - a * 3.0 + 1.0 / b,
        lambda a, b: lucid.maximum(a, b) + lucid.minimum(a, b * 0.5),
    ],
    ids=["add", "sub", "mul", "div", "pow", "scalars", "max_min"],
)
def test_binary_grads_with_broadcasting(fn, device):
    a = leaf(2, 3, device=device, positive=True)
    b = leaf(3, device=device, positive=True)
    assert gradcheck(fn, [a, b])
    b2 = leaf(2, 1, device=device, positive=True)
    assert gradcheck(fn, [a, b2])


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: -x,
        lambda x: x.exp(),
        lambda x: x.log(),
        lambda x: x.sqrt(),
        lambda x: (x - 1.0).abs(),
        lambda x: x.tanh(),
        lambda x: x.sigmoid(),
        lambda x: (x - 1.0).relu(),
        lambda x: x.clip(0.8, 1.5),
        lambda x: x**3,
        lambda x: 2.0**x,
    ],
    ids=["neg", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "clip", "pow3", "rpow"],
)
def test_unary_grads(fn, device):
    assert gradcheck(fn, [leaf(3, 4, device=device, positive=True)])


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.sum(),
        lambda x: x.sum(1),
        lambda x: x.sum((0, 2), keepdim=True),
        lambda x: x.mean(-1),
        lambda x: x.mean(),
        lambda x: x.var(1),
        lambda x: x.var(unbiased=False),
        lambda x: x.max(),
        lambda x: x.max(dim=1).values,
        lambda x: x.min(dim=2, keepdim=True).values,
    ],
    ids=["sum", "sum1", "sum02k", "mean-1", "mean", "var1", "var_biased", "max", "max1", "min2k"],
)
def test_reduction_grads(fn, device):
    assert gradcheck(fn, [leaf(2, 3, 4, device=device)])


def test_max_splits_gradient_between_ties():
    x = lucid.tensor([1.0, 3.0, 3.0], requires_grad=True)
    x.max().backward()
    np.testing.assert_allclose(x.grad.numpy(), [0.0, 0.5, 0.5])


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: x.reshape(4, 6),
        lambda x: x.permute(2, 0, 1),
        lambda x: x.transpose(0, 1),
        lambda x: x[1:, ::2, [0, 3, 3]],
        lambda x: x[:, 1],
        lambda x: x.expand(3, 2, 3, 4),
        lambda x: F.pad(x, (1, 2, 0, 1)),
        lambda x: lucid.cat([x, x * 2.0], 1),
        lambda x: lucid.stack([x, x.exp()], 3),
        lambda x: x.split([1, 2], dim=1)[1],
        lambda x: x.chunk(3, dim=2)[1] * x.chunk(3, dim=2)[0],
        lambda x: x.flatten(1),
        lambda x: x.unsqueeze(0).squeeze(0),
    ],
    ids=["reshape", "permute", "transpose", "advanced_index", "index", "expand", "pad", "cat", "stack", "split", "chunk", "flatten",
         "squeeze"],
)
def test_shape_grads(fn, device):
    assert gradcheck(fn, [leaf(2, 3, 4, device=device)])


def test_matmul_and_linear_grads(device):
    a, b = leaf(3, 4, device=device), leaf(4, 2, device=device)
    assert gradcheck(lambda a, b: a @ b, [a, b])
    assert gradcheck(lambda a, b: a @ b, [leaf(2, 3, 4, device=device), b])  # batched, broadcast b
    assert gradcheck(lambda a, v: a @ v, [a, leaf(4, device=device)])
    assert gradcheck(lambda v, b: v @ b, [leaf(4, device=device), b])
    x, w, bias = leaf(5, 4, device=device), leaf(3, 4, device=device), leaf(3, device=device)
    assert gradcheck(F.linear, [x, w, bias])
    assert gradcheck(F.linear, [leaf(2, 5, 4, device=device), w, bias])
    np.testing.assert_allclose(F.linear(x, w, bias).detach().numpy(), x.detach().numpy() @ w.detach().numpy().T + bias.detach().numpy())


def test_softmax_values_and_grads(device):
    x = leaf(3, 5, device=device)
    s = F.softmax(x, dim=1).detach().numpy()
    e = np.exp(x.detach().numpy())
    np.testing.assert_allclose(s, e / e.sum(1, keepdims=True))
    np.testing.assert_allclose(F.log_softmax(x, 1).detach().numpy(), np.log(s))
    assert gradcheck(lambda t: F.softmax(t, 0), [x])
    assert gradcheck(lambda t: F.log_softmax(t, -1), [x])
    big = lucid.tensor([[1000.0, 0.0]])
    assert np.isfinite(F.log_softmax(big, 1).numpy()).all()


def test_cross_entropy_values(device):
    logits = lucid.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.2]], dtype="float64", device=device)
    target = lucid.tensor([0, 2], device=device)
    logp = np.log(np.exp(logits.numpy()) / np.exp(logits.numpy()).sum(1, keepdims=True))
    per = -logp[[0, 1], [0, 2]]
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="none").numpy(), per)
    np.testing.assert_allclose(F.cross_entropy(logits, target).item(), per.mean())
    np.testing.assert_allclose(F.cross_entropy(logits, target, reduction="sum").item(), per.sum())
    eps = 0.1
    smooth = (1 - eps) * per + eps * (-logp.mean(1))
    np.testing.assert_allclose(F.cross_entropy(logits, target, label_smoothing=eps).item(), smooth.mean())
    ignored = lucid.tensor([0, -100], device=device)
    np.testing.assert_allclose(F.cross_entropy(logits, ignored).item(), per[0])


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_cross_entropy_grads(reduction, smoothing, device):
    x = leaf(4, 5, device=device)
    t = lucid.tensor([0, 4, 2, 2], device=device)
    assert gradcheck(lambda a: F.cross_entropy(a, t, reduction=reduction, label_smoothing=smoothing), [x])
    probs = F.softmax(lucid.randn(4, 5, dtype="float64", device=device), 1).detach()
    assert gradcheck(lambda a: F.cross_entropy(a, probs, reduction=reduction, label_smoothing=smoothing), [x])


def test_cross_entropy_bad_input():
    with pytest.raises(ValueError, match="target of shape"):
        F.cross_entropy(lucid.zeros(4, 3), lucid.zeros(3, dtype="int64"))
    with pytest.raises(IndexError, match="out of range"):
        F.cross_entropy(lucid.zeros(2, 3), lucid.tensor([0, 3]))
    with pytest.raises(ValueError, match="reduction"):
        F.cross_entropy(lucid.zeros(2, 3), lucid.tensor([0, 1]), reduction="avg")


def test_topk_accuracy():
    logits = lucid.tensor([[0.1, 0.5, 0.4], [0.9, 0.05, 0.05], [0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])
    target = lucid.tensor([2, 0, 0, 2])
    top1, top2 = F.accuracy(logits, target, topk=(1, 2))
    assert top1 == 25.0 and top2 == 50.0


def test_dropout_scaling_and_grad():
    x = lucid.ones(1000, requires_grad=True)
    y = F.dropout(x, 0.25, training=True)
    kept = y.detach().numpy() != 0
    assert 650 < kept.sum() < 850
    np.testing.assert_allclose(y.detach().numpy()[kept], 1 / 0.75, rtol=1e-6)
    y.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), kept / 0.75, rtol=1e-6)
    assert F.dropout(x, 0.25, training=False) is x


def test_float32_stays_float32():
    x = lucid.randn(4, 5, requires_grad=True)
    t = lucid.tensor([0, 1, 2, 3])
    outs = [x.max(), x.var(), F.softmax(x, 1), F.cross_entropy(x, t, label_smoothing=0.1), x.sigmoid(), x / 3, x.mean(0)]
    for o in outs:
        assert o.dtype == np.float32
    sum(o.sum() for o in outs).backward()
    assert x.grad.dtype == np.float32

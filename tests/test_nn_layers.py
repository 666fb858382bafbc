"""Thin layers and containers: forward values against NumPy, gradients by finite differences."""
import math
from collections import OrderedDict

import numpy as np
import pytest

import lucid
from lucid import nn
from lucid.autograd import gradcheck


def _np(t):
    return t.detach().numpy()


def test_linear_forward_matches_numpy_and_gradcheck_float64():
    lucid.manual_seed(0)
    lin = nn.Linear(5, 3, dtype="float64")
    assert lin.weight.shape == (3, 5) and lin.bias.shape == (3,) and lin.weight.dtype == np.float64
    x = lucid.randn(2, 4, 5, dtype="float64", requires_grad=True)
    np.testing.assert_allclose(_np(lin(x)), _np(x) @ _np(lin.weight).T + _np(lin.bias), rtol=1e-12)
    assert gradcheck(lambda x, w, b: lin(x), [x, lin.weight, lin.bias])


def test_linear_without_bias_and_default_init_bounds():
    lucid.manual_seed(0)
    lin = nn.Linear(400, 300, bias=False)
    assert lin.bias is None and [n for n, _ in lin.named_parameters()] == ["weight"]
    w = _np(lin.weight)
    bound = 1 / math.sqrt(400)  # kaiming_uniform_(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.01 * bound
    lin2 = nn.Linear(400, 300)
    assert np.abs(_np(lin2.bias)).max() <= bound


def test_identity_and_flatten():
    x = lucid.randn(2, 3, 4, 5)
    assert nn.Identity(54, unused=1)(x) is x
    assert nn.Flatten()(x).shape == (2, 60)
    assert nn.Flatten(0, 2)(x).shape == (24, 5)
    np.testing.assert_array_equal(_np(nn.Flatten()(x)), x.numpy().reshape(2, 60))


def test_activation_modules_match_numpy():
    x = lucid.randn(4, 6)
    a = x.numpy()
    np.testing.assert_allclose(_np(nn.ReLU()(x)), np.maximum(a, 0))
    np.testing.assert_allclose(_np(nn.Sigmoid()(x)), 1 / (1 + np.exp(-a)), rtol=1e-6)
    e = np.exp(a - a.max(axis=0, keepdims=True))
    np.testing.assert_allclose(_np(nn.Softmax(dim=0)(x)), e / e.sum(axis=0), rtol=1e-6)
    e1 = np.exp(a - a.max(axis=1, keepdims=True))
    sm1 = e1 / e1.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(_np(nn.Softmax(dim=1)(x)), sm1, rtol=1e-6)
    np.testing.assert_allclose(_np(nn.Softmax()(x)), sm1, rtol=1e-6)  # implicit dim=1 for 2-d input
    np.testing.assert_allclose(_np(nn.LogSoftmax(dim=-1)(x)), np.log(sm1), rtol=1e-5, atol=1e-6)
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)" and repr(nn.ReLU(inplace=True)) == "ReLU(inplace=True)"


def test_dropout_train_eval_and_seed():
    drop = nn.Dropout(p=0.25)
    x = lucid.ones(200, 100)
    lucid.manual_seed(3)
    y = _np(drop(x))
    kept = y != 0
    assert set(np.unique(y)) == {0.0, np.float32(1 / 0.75)}
    assert abs(kept.mean() - 0.75) < 0.01
    lucid.manual_seed(3)
    np.testing.assert_array_equal(_np(drop(x)), y)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError, match="between 0 and 1"):
        nn.Dropout(1.5)


def _ce_reference(logits, target, smoothing=0.0, ignore=-100):
    n, c = logits.shape
    logp = logits - logits.max(1, keepdims=True)
    logp = logp - np.log(np.exp(logp).sum(1, keepdims=True))
    losses = np.zeros(n)
    valid = target != ignore
    for i in range(n):
        if valid[i]:
            q = np.full(c, smoothing / c)
            q[target[i]] += 1 - smoothing
            losses[i] = -(q * logp[i]).sum()
    return losses, valid


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_module(reduction):
    lucid.manual_seed(0)
    logits = lucid.randn(6, 4, dtype="float64", requires_grad=True)
    target = lucid.tensor([0, 3, 1, -100, 2, 3])
    loss_fn = nn.CrossEntropyLoss(reduction=reduction, label_smoothing=0.1)
    losses, valid = _ce_reference(logits.detach().numpy(), target.numpy(), 0.1)
    expected = {"mean": losses.sum() / valid.sum(), "sum": losses.sum(), "none": losses}[reduction]
    np.testing.assert_allclose(_np(loss_fn(logits, target)), expected, rtol=1e-10)
    assert gradcheck(lambda x: loss_fn(x, target), [logits])


def test_cross_entropy_loss_rejects_unsupported_arguments():
    with pytest.raises(NotImplementedError, match="weight"):
        nn.CrossEntropyLoss(weight=lucid.ones(3))
    with pytest.raises(ValueError, match="reduction"):
        nn.CrossEntropyLoss(reduction="avg")


def test_sequential_indexing_slicing_and_forward():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c] and list(sub._modules) == ["1", "2"]
    x = lucid.randn(4, 2)
    np.testing.assert_array_equal(_np(seq(x)), _np(c(b(a(x)))))
    with pytest.raises(IndexError, match="out of range"):
        seq[3]
    seq[1] = nn.Sigmoid()
    assert list(seq._modules) == ["0", "1", "2"] and isinstance(seq[1], nn.Sigmoid)
    del seq[0]
    assert list(seq._modules) == ["0", "1"] and seq[1] is c
    seq.append(nn.Identity())
    assert len(seq) == 3 and isinstance(seq[2], nn.Identity)
    named = nn.Sequential(OrderedDict(first=a, second=b))
    assert named.first is a and [n for n, _ in named.named_parameters()] == ["first.weight", "first.bias"]


def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(layers) == 3 and [n for n, _ in layers.named_parameters()][-1] == "2.bias"
    layers.append(nn.ReLU())
    layers.insert(0, nn.Identity())
    assert isinstance(layers[0], nn.Identity) and isinstance(layers[-1], nn.ReLU)
    assert list(layers._modules) == ["0", "1", "2", "3", "4"]
    del layers[0]
    assert isinstance(layers[0], nn.Linear) and len(layers) == 4
    assert isinstance(layers[1:3], nn.ModuleList) and len(layers[1:3]) == 2
    layers += [nn.Sigmoid()]
    assert len(layers) == 5
    d = nn.ModuleDict({"enc": nn.Linear(2, 2), "act": nn.ReLU()})
    assert list(d) == ["enc", "act"] and "enc" in d and isinstance(d["act"], nn.ReLU)
    d["dec"] = nn.Linear(2, 1)
    assert list(d.keys()) == ["enc", "act", "dec"] and len(d) == 3
    assert [n for n, _ in d.named_parameters()] == ["enc.weight", "enc.bias", "dec.weight", "dec.bias"]
    assert isinstance(d.pop("act"), nn.ReLU) and len(d) == 2
    with pytest.raises(KeyError):
        d["missing"]

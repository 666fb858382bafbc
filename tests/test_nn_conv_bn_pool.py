"""Conv2d, BatchNorm2d and the pooling modules against NumPy references; module-level semantics."""
import math

import numpy as np
import pytest
from ops_arrays import naive_conv2d

import lucid
from lucid import nn
from lucid.autograd import gradcheck


def _np(t):
    return t.detach().numpy()


# -- NumPy references -------------------------------------------------------------
def pool_out(size, k, s, p, d, ceil_mode):
    span = size + 2 * p - d * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def max_pool_ref(x, k, s, p, d=1, ceil_mode=False):
    n, c, h, w = x.shape
    ho, wo = pool_out(h, k, s, p, d, ceil_mode), pool_out(w, k, s, p, d, ceil_mode)
    out = np.full((n, c, ho, wo), -np.inf)
    for i in range(ho):
        for j in range(wo):
            for a in range(k):
                for b in range(k):
                    r, q = i * s - p + a * d, j * s - p + b * d
                    if 0 <= r < h and 0 <= q < w:
                        out[:, :, i, j] = np.maximum(out[:, :, i, j], x[:, :, r, q])
    return out


def avg_pool_ref(x, k, s, p, ceil_mode=False, count_include_pad=True, divisor_override=None):
    n, c, h, w = x.shape
    ho, wo = pool_out(h, k, s, p, 1, ceil_mode), pool_out(w, k, s, p, 1, ceil_mode)
    out = np.zeros((n, c, ho, wo))
    for i in range(ho):
        for j in range(wo):
            r0, q0 = i * s - p, j * s - p
            r1, q1 = min(r0 + k, h + p), min(q0 + k, w + p)
            pool_size = (r1 - r0) * (q1 - q0)
            r0, q0, r1, q1 = max(r0, 0), max(q0, 0), min(r1, h), min(q1, w)
            total = x[:, :, r0:r1, q0:q1].sum(axis=(2, 3))
            div = divisor_override or (pool_size if count_include_pad else (r1 - r0) * (q1 - q0))
            out[:, :, i, j] = total / div
    return out


def adaptive_avg_ref(x, oh, ow):
    n, c, h, w = x.shape
    out = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            r0, r1 = (i * h) // oh, -(-((i + 1) * h) // oh)
            q0, q1 = (j * w) // ow, -(-((j + 1) * w) // ow)
            out[:, :, i, j] = x[:, :, r0:r1, q0:q1].mean(axis=(2, 3))
    return out


# -- Conv2d -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=3),
        dict(kernel_size=3, stride=2, padding=1, bias=False),
        dict(kernel_size=(3, 1), padding=(1, 0), dilation=2),
        dict(kernel_size=3, padding=1, groups=2),
        dict(kernel_size=1),
    ],
)
def test_conv2d_forward_matches_numpy(kw):
    conv = nn.Conv2d(4, 6, **kw)
    x = lucid.randn(2, 4, 9, 8)
    ref = naive_conv2d(
        x.numpy().astype(np.float64), _np(conv.weight).astype(np.float64),
        None if conv.bias is None else _np(conv.bias).astype(np.float64),
        conv.stride, conv.padding, conv.dilation, conv.groups,
    )
    out = conv(x)
    assert out.shape == ref.shape
    np.testing.assert_allclose(_np(out), ref, rtol=1e-4, atol=1e-5)


def test_conv2d_parameters_and_default_init():
    conv = nn.Conv2d(8, 16, 3, groups=2)
    assert conv.weight.shape == (16, 4, 3, 3) and conv.bias.shape == (16,)
    bound = 1 / math.sqrt(4 * 9)
    w = _np(conv.weight)
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.9 * bound
    assert np.abs(_np(conv.bias)).max() <= bound
    assert conv.stride == (1, 1) and conv.padding == (0, 0) and conv.dilation == (1, 1)


def test_conv2d_gradcheck_float64():
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, groups=2, dtype="float64")
    x = lucid.randn(1, 2, 5, 5, dtype="float64", requires_grad=True)
    assert gradcheck(lambda x, w, b: conv(x), [x, conv.weight, conv.bias])


def test_conv2d_same_and_valid_padding():
    x = lucid.randn(1, 2, 7, 6)
    same = nn.Conv2d(2, 3, 3, padding="same", dilation=2)
    assert same(x).shape == (1, 3, 7, 6) and same._padding == (2, 2)
    assert "padding=same" in repr(same)
    assert nn.Conv2d(2, 3, 3, padding="valid")(x).shape == (1, 3, 5, 4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(2, 3, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="uneven"):
        nn.Conv2d(2, 3, 2, padding="same")


def test_conv2d_bad_arguments():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(3, 4, 3, groups=2)
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(2, 2, 3, padding_mode="reflect")
    with pytest.raises(ValueError, match="kernel_size"):
        nn.Conv2d(2, 2, (3, 3, 3))
    with pytest.raises(ValueError):
        nn.Conv2d(3, 4, 3)(lucid.randn(1, 5, 8, 8))


# -- BatchNorm2d ----------------------------------------------------------------------
def _bn_ref(a, w, b, eps=1e-5):
    mean = a.mean(axis=(0, 2, 3), keepdims=True)
    var = a.var(axis=(0, 2, 3), keepdims=True)
    return (a - mean) / np.sqrt(var + eps) * w[None, :, None, None] + b[None, :, None, None]


def test_batchnorm2d_training_forward_and_running_stats():
    bn = nn.BatchNorm2d(3)
    bn.weight.data[...] = [1.0, 2.0, 0.5]
    bn.bias.data[...] = [0.0, -1.0, 3.0]
    rm, rv = np.zeros(3), np.ones(3)
    for step in range(1, 3):
        x = lucid.randn(4, 3, 5, 5) * 2 + 1
        a = x.numpy().astype(np.float64)
        out = bn(x)
        np.testing.assert_allclose(_np(out), _bn_ref(a, _np(bn.weight), _np(bn.bias)), rtol=1e-4, atol=1e-4)
        rm = 0.9 * rm + 0.1 * a.mean(axis=(0, 2, 3))
        rv = 0.9 * rv + 0.1 * a.var(axis=(0, 2, 3), ddof=1)  # unbiased, as PyTorch
        np.testing.assert_allclose(bn.running_mean.numpy(), rm, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(bn.running_var.numpy(), rv, rtol=1e-5)
        assert bn.num_batches_tracked.item() == step and bn.num_batches_tracked.dtype == np.int64


def test_batchnorm2d_eval_uses_running_stats_and_does_not_update():
    bn = nn.BatchNorm2d(2, eps=1e-3)
    bn.running_mean.data[...] = [1.0, -2.0]
    bn.running_var.data[...] = [4.0, 0.25]
    bn.weight.data[...] = [3.0, 1.0]
    bn.eval()
    x = lucid.randn(3, 2, 4, 4)
    a = x.numpy()
    expected = (a - np.array([1.0, -2.0])[None, :, None, None]) / np.sqrt(np.array([4.0, 0.25]) + 1e-3)[None, :, None, None]
    expected = expected * np.array([3.0, 1.0])[None, :, None, None]
    np.testing.assert_allclose(_np(bn(x)), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bn.running_mean.numpy(), [1.0, -2.0])
    assert bn.num_batches_tracked.item() == 0


def test_batchnorm2d_momentum_none_is_cumulative_average():
    bn = nn.BatchNorm2d(2, momentum=None)
    batches = [lucid.randn(2, 2, 3, 3) + i for i in range(3)]
    for x in batches:
        bn(x)
    means = [x.numpy().mean(axis=(0, 2, 3)) for x in batches]
    variances = [x.numpy().var(axis=(0, 2, 3), ddof=1) for x in batches]
    np.testing.assert_allclose(bn.running_mean.numpy(), np.mean(means, axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), np.mean(variances, axis=0), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 3


def test_batchnorm2d_without_running_stats_or_affine():
    bn = nn.BatchNorm2d(3, affine=False, track_running_stats=False)
    assert list(bn.parameters()) == [] and bn.running_mean is None and bn.num_batches_tracked is None
    assert list(bn.state_dict()) == []
    x = lucid.randn(4, 3, 2, 2)
    bn.eval()  # still batch statistics: there are no running ones
    np.testing.assert_allclose(_np(bn(x)), _bn_ref(x.numpy().astype(np.float64), np.ones(3), np.zeros(3)), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("training", [True, False])
def test_batchnorm2d_gradcheck_float64(training):
    bn = nn.BatchNorm2d(3, dtype="float64")
    bn.weight.data[...] = [1.5, -0.5, 2.0]
    bn.bias.data[...] = [0.1, 0.2, 0.3]
    bn.running_var.data[...] = [2.0, 0.5, 1.0]
    bn.train(training)
    x = lucid.randn(2, 3, 3, 3, dtype="float64", requires_grad=True)
    assert gradcheck(lambda x, w, b: bn(x), [x, bn.weight, bn.bias])


def test_batchnorm2d_state_dict_and_legacy_checkpoint_without_counter():
    bn = nn.BatchNorm2d(2)
    assert list(bn.state_dict()) == ["weight", "bias", "running_mean", "running_var", "num_batches_tracked"]
    state = {k: v for k, v in nn.BatchNorm2d(2).state_dict().items() if k != "num_batches_tracked"}
    assert bn.load_state_dict(state).missing_keys == []  # an older checkpoint without the counter loads
    with pytest.raises(ValueError, match="4D input"):
        bn(lucid.randn(2, 2))


def test_batchnorm2d_reset_running_stats():
    bn = nn.BatchNorm2d(2)
    bn(lucid.randn(3, 2, 2, 2))
    bn.reset_running_stats()
    np.testing.assert_array_equal(bn.running_mean.numpy(), [0, 0])
    np.testing.assert_array_equal(bn.running_var.numpy(), [1, 1])
    assert bn.num_batches_tracked.item() == 0


# -- pooling ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=2, ceil_mode=True),
        dict(kernel_size=2, stride=1, dilation=2),
    ],
)
def test_max_pool2d_module(kw):
    x = lucid.randn(2, 3, 7, 6)
    pool = nn.MaxPool2d(**kw)
    k = kw["kernel_size"]
    ref = max_pool_ref(x.numpy(), k, kw.get("stride", k), kw.get("padding", 0), kw.get("dilation", 1), kw.get("ceil_mode", False))
    np.testing.assert_array_equal(_np(pool(x)), ref)


@pytest.mark.parametrize(
    "kw",
    [
        dict(kernel_size=2),
        dict(kernel_size=3, stride=2, padding=1),
        dict(kernel_size=3, stride=2, padding=1, count_include_pad=False),
        dict(kernel_size=3, stride=2, ceil_mode=True),
        dict(kernel_size=3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        dict(kernel_size=2, divisor_override=3),
    ],
)
def test_avg_pool2d_module(kw):
    x = lucid.randn(2, 3, 7, 6)
    pool = nn.AvgPool2d(**kw)
    ref = avg_pool_ref(
        x.numpy().astype(np.float64), kw["kernel_size"], kw.get("stride", kw["kernel_size"]), kw.get("padding", 0),
        kw.get("ceil_mode", False), kw.get("count_include_pad", True), kw.get("divisor_override"),
    )
    np.testing.assert_allclose(_np(pool(x)), ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("size, expected", [(1, (1, 1)), ((2, 3), (2, 3)), (3, (3, 3))])
def test_adaptive_avg_pool2d_module(size, expected):
    x = lucid.randn(2, 3, 5, 7)
    out = nn.AdaptiveAvgPool2d(size)(x)
    assert out.shape == (2, 3) + expected
    np.testing.assert_allclose(_np(out), adaptive_avg_ref(x.numpy().astype(np.float64), *expected), rtol=1e-5, atol=1e-6)
    assert repr(nn.AdaptiveAvgPool2d(size)) == f"AdaptiveAvgPool2d(output_size={size})"


def test_pool_modules_pass_gradients():
    x = lucid.randn(1, 2, 4, 4, dtype="float64", requires_grad=True)
    model = nn.Sequential(nn.MaxPool2d(2, 1), nn.AvgPool2d(2, 1, padding=1, count_include_pad=False), nn.AdaptiveAvgPool2d(2))
    assert gradcheck(model, [x])

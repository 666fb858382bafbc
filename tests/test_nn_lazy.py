"""Lazy modules: placeholders before the first forward, inferred sizes after, then eager behaviour."""
import numpy as np
import pytest

import lucid
from lucid import nn, optim


def _np(t):
    return t.detach().numpy()


def test_lazy_linear_before_forward_has_placeholders():
    lin = nn.LazyLinear(4)
    params = list(lin.parameters())
    assert len(params) == 2 and all(isinstance(p, nn.UninitializedParameter) for p in params)
    assert repr(lin) == "LazyLinear(in_features=0, out_features=4, bias=True)"
    with pytest.raises(ValueError, match="uninitialized parameter.*forward pass first"):
        _ = lin.weight.shape
    with pytest.raises(ValueError, match="uninitialized"):
        sum(p.numel() for p in lin.parameters())
    assert lin.has_uninitialized_params()


def test_lazy_linear_infers_in_features_and_becomes_linear():
    x = lucid.randn(3, 2, 5)
    lucid.manual_seed(3)
    eager = nn.Linear(5, 4)
    lucid.manual_seed(3)
    lazy = nn.LazyLinear(4)
    out = lazy(x)
    assert type(lazy) is nn.Linear and lazy.in_features == 5
    assert lazy.weight.shape == (4, 5) and type(lazy.weight) is nn.Parameter
    assert repr(lazy) == "Linear(in_features=5, out_features=4, bias=True)"
    # the same seeded draws as an eager Linear of the inferred size
    np.testing.assert_array_equal(_np(lazy.weight), _np(eager.weight))
    np.testing.assert_array_equal(_np(lazy.bias), _np(eager.bias))
    np.testing.assert_array_equal(_np(out), _np(eager(x)))
    assert not lazy._forward_pre_hooks  # the inference hook is gone
    lazy(lucid.randn(1, 5))


def test_optimizer_built_before_first_forward_updates_materialised_parameters():
    lazy = nn.LazyLinear(2, bias=False)
    opt = optim.SGD(lazy.parameters(), lr=0.5)
    x = lucid.ones(1, 3)
    loss = lazy(x).sum()
    before = _np(lazy.weight).copy()
    loss.backward()
    opt.step()
    np.testing.assert_allclose(_np(lazy.weight), before - 0.5, rtol=1e-6)
    assert opt.param_groups[0]["params"][0] is lazy.weight


def test_lazy_dtype_set_before_forward_is_used():
    lazy = nn.LazyLinear(2).double()
    out = lazy(lucid.randn(4, 3, dtype="float64"))
    assert lazy.weight.dtype == np.float64 and out.dtype == np.float64
    lazy16 = nn.LazyLinear(2, dtype="float16")
    lazy16(lucid.randn(1, 3, dtype="float16"))
    assert lazy16.weight.dtype == np.float16


def test_loading_a_state_dict_materialises_a_lazy_module():
    eager = nn.Linear(6, 3)
    lazy = nn.LazyLinear(3)
    lazy.load_state_dict(eager.state_dict())
    assert type(lazy) is nn.Linear and lazy.in_features == 6
    np.testing.assert_array_equal(_np(lazy.weight), _np(eager.weight))
    x = lucid.randn(2, 6)
    np.testing.assert_array_equal(_np(lazy(x)), _np(eager(x)))


def test_lazy_conv2d_infers_in_channels_and_matches_eager():
    x = lucid.randn(2, 6, 7, 7)
    lucid.manual_seed(5)
    eager = nn.Conv2d(6, 4, 3, stride=2, padding=1, groups=2)
    lucid.manual_seed(5)
    lazy = nn.LazyConv2d(4, 3, stride=2, padding=1, groups=2)
    assert [type(p) for p in lazy.parameters()] == [nn.UninitializedParameter] * 2
    out = lazy(x)
    assert type(lazy) is nn.Conv2d and lazy.in_channels == 6 and lazy.weight.shape == (4, 3, 3, 3)
    assert repr(lazy) == repr(eager)
    np.testing.assert_array_equal(_np(lazy.weight), _np(eager.weight))
    np.testing.assert_allclose(_np(out), _np(eager(x)), rtol=1e-6)


def test_lazy_conv2d_bad_input():
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.LazyConv2d(4, 3, groups=2)(lucid.randn(1, 3, 5, 5))
    with pytest.raises(ValueError, match="4D input"):
        nn.LazyConv2d(4, 3)(lucid.randn(3, 5, 5))
    with pytest.raises(ValueError, match="out_channels"):
        nn.LazyConv2d(5, 3, groups=2)


def test_lazy_batchnorm2d_infers_num_features_and_tracks_stats():
    bn = nn.LazyBatchNorm2d(momentum=None)
    assert [n for n, _ in bn.named_buffers()] == ["running_mean", "running_var", "num_batches_tracked"]
    assert isinstance(bn.running_mean, nn.UninitializedBuffer)
    x = lucid.randn(4, 3, 5, 5)
    bn(x)
    assert type(bn) is nn.BatchNorm2d and bn.num_features == 3
    assert type(bn.running_mean) is lucid.Tensor and bn.running_mean.shape == (3,)
    a = x.numpy()
    np.testing.assert_allclose(bn.running_mean.numpy(), a.mean(axis=(0, 2, 3)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(bn.running_var.numpy(), a.var(axis=(0, 2, 3), ddof=1), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    np.testing.assert_array_equal(_np(bn.weight), np.ones(3))
    np.testing.assert_array_equal(_np(bn.bias), np.zeros(3))


def test_lazy_batchnorm2d_without_affine_or_stats():
    bn = nn.LazyBatchNorm2d(affine=False, track_running_stats=False)
    assert list(bn.parameters()) == [] and list(bn.buffers()) == []
    out = bn(lucid.randn(2, 5, 3, 3))
    assert type(bn) is nn.BatchNorm2d and bn.num_features == 5 and out.shape == (2, 5, 3, 3)


def test_small_lazy_network_infers_every_layer():
    model = nn.Sequential(
        nn.LazyConv2d(8, 3, padding=1, bias=False), nn.LazyBatchNorm2d(), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.LazyLinear(10),
    )
    out = model(lucid.randn(2, 3, 8, 8))
    assert out.shape == (2, 10)
    assert [type(m).__name__ for m in model] == ["Conv2d", "BatchNorm2d", "ReLU", "AdaptiveAvgPool2d", "Flatten", "Linear"]
    assert sum(p.numel() for p in model.parameters()) == 8 * 3 * 9 + 2 * 8 + 8 * 10 + 10

"""BatchNormAct2d and its registry: norm + activation as one module, chosen when a block is built.

The fused ReLU case must equal relu(BatchNorm2d) (forward, gradients), keep BatchNorm2d's
state-dict keys, survive SyncBatchNorm conversion, freezing and lazy materialisation with
its activation, and unknown names must list the valid ones.
"""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.autograd.gradcheck import gradcheck
from lucid.distributed import SyncBatchNorm, SyncBatchNormAct
from lucid.train.finetune import freeze


def _x(seed=0, shape=(4, 3, 5, 5)):
    return lucid.tensor(np.random.default_rng(seed).standard_normal(shape), requires_grad=True)


def _pair(act_layer=nn.ReLU):
    """A BatchNormAct2d and a BatchNorm2d with the same (non-trivial) weights, in float64."""
    rng = np.random.default_rng(1)
    fused, plain = nn.BatchNormAct2d(3, act_layer=act_layer).double(), nn.BatchNorm2d(3).double()
    state = {"weight": rng.standard_normal(3), "bias": rng.standard_normal(3),
             "running_mean": rng.standard_normal(3), "running_var": rng.random(3) + 0.5}
    fused.load_state_dict(state, strict=False)
    plain.load_state_dict(state, strict=False)
    return fused, plain


@pytest.mark.parametrize("act_layer, act", [(nn.ReLU, F.relu), (nn.SiLU, lambda t: t * F.sigmoid(t))])
@pytest.mark.parametrize("training", [True, False])
def test_norm_act_is_act_of_batch_norm(act_layer, act, training):
    fused, plain = _pair(act_layer)
    fused.train(training), plain.train(training)
    x1, x2 = _x(), _x()
    y1, y2 = fused(x1), act(plain(x2))
    np.testing.assert_allclose(y1.detach().numpy(), y2.detach().numpy(), rtol=1e-12, atol=1e-12)
    probe = lucid.tensor(np.random.default_rng(2).standard_normal(y1.shape))
    (y1 * probe).sum().backward()
    (y2 * probe).sum().backward()
    np.testing.assert_allclose(x1.grad.numpy(), x2.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fused.weight.grad.numpy(), plain.weight.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fused.running_var.numpy(), plain.running_var.numpy(), rtol=1e-15)
    assert (y1.detach().numpy() >= 0).all() == (act_layer is nn.ReLU)


@pytest.mark.parametrize("act_layer", [nn.ReLU, nn.SiLU])
def test_norm_act_gradients_match_finite_differences(act_layer):
    fused, _ = _pair(act_layer)
    w, b = fused.weight, fused.bias
    assert gradcheck(lambda x, w, b: fused(x), [_x(3, (3, 3, 2, 2)), w, b])


def test_silu_module_and_its_gradient():
    x = _x(4, (2, 5))
    a = x.detach().numpy()
    np.testing.assert_allclose(nn.SiLU()(x).detach().numpy(), a / (1 + np.exp(-a)), rtol=1e-14)
    assert gradcheck(nn.SiLU(), [x])


def test_state_dict_keys_are_batchnorm_keys_and_load_both_ways():
    fused, plain = _pair()
    assert list(fused.state_dict()) == list(plain.state_dict())
    other = nn.BatchNormAct2d(3).double()
    other.load_state_dict(plain.state_dict(), strict=True)
    np.testing.assert_array_equal(other.running_mean.numpy(), plain.running_mean.numpy())
    nn.BatchNorm2d(3).double().load_state_dict(fused.state_dict(), strict=True)


def test_hooks_see_the_module_and_do_not_change_the_result():
    fused, _ = _pair()
    fused.eval()
    x = _x()
    before = fused(x).detach().numpy()
    seen = []
    fused.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    np.testing.assert_array_equal(fused(x).detach().numpy(), before)
    assert seen == [(4, 3, 5, 5)]


@pytest.mark.parametrize("act_layer", [nn.ReLU, nn.SiLU])
def test_convert_sync_batchnorm_keeps_the_activation(act_layer):
    model = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNormAct2d(3, act_layer=act_layer), nn.BatchNorm2d(3))
    model.double()
    x = _x()
    expected = model(x).detach().numpy()
    synced = SyncBatchNorm.convert_sync_batchnorm(model)
    assert type(synced[1]) is SyncBatchNormAct and type(synced[2]) is SyncBatchNorm
    assert type(synced[1].act) is act_layer and synced[1].weight is model[1].weight
    assert isinstance(synced[1], nn.BatchNormAct2d) and list(synced.state_dict()) == list(model.state_dict())
    np.testing.assert_allclose(synced(x).detach().numpy(), expected, rtol=1e-12)
    assert SyncBatchNorm.convert_sync_batchnorm(synced)[1] is synced[1]  # already synchronised


@pytest.mark.parametrize("act_layer, act", [(nn.ReLU, F.relu), (nn.SiLU, lambda t: t * F.sigmoid(t))])
def test_freezing_keeps_the_activation(act_layer, act):
    fused, plain = _pair(act_layer)
    frozen = nn.FrozenBatchNorm2d.from_batchnorm(fused)
    assert type(frozen) is nn.FrozenBatchNormAct2d and frozen.act is fused.act
    assert not frozen.weight.requires_grad and frozen.running_mean is fused.running_mean
    frozen.train()  # a frozen norm uses the running statistics in training mode too
    plain.eval()
    x = _x()
    np.testing.assert_allclose(frozen(x).detach().numpy(), act(plain(x)).detach().numpy(), rtol=1e-12)
    assert type(nn.FrozenBatchNorm2d.from_batchnorm(nn.BatchNorm2d(3))) is nn.FrozenBatchNorm2d


def test_freeze_turns_a_resnet_norm_act_into_frozen_norm_act():
    model = lucid.models.resnet_18(num_classes=3, layers=[1, 1], channels=(4, 8), stem_width=4, act_layer="silu")
    freeze(model, ["stem", "layer1"])
    assert type(model.stem.bn1) is nn.FrozenBatchNormAct2d and type(model.stem.bn1.act) is nn.SiLU
    assert type(model.layer1[0].bn2) is nn.FrozenBatchNorm2d and type(model.layer2[0].bn1) is nn.BatchNormAct2d


def test_lazy_norm_act_becomes_norm_act_with_its_activation():
    lazy = nn.LazyBatchNormAct2d(dtype="float64", act_layer=nn.SiLU)
    y = lazy(_x())
    assert type(lazy) is nn.BatchNormAct2d and lazy.num_features == 3 and type(lazy.act) is nn.SiLU
    assert (y.detach().numpy() < 0).any()  # SiLU, not ReLU


def test_registry_names_and_errors():
    assert nn.NORM_LAYERS.get("batchnorm") is nn.BatchNorm2d  # (other tests may register more)
    assert nn.ACT_LAYERS.get("relu") is nn.ReLU and nn.ACT_LAYERS.get("silu") is nn.SiLU
    assert nn.get_norm_act_layer(nn.BatchNorm2d, nn.SiLU)(5).num_features == 5
    with pytest.raises(ValueError, match=r"test: act_layer: unknown activation layer 'gelu'; valid names: relu, silu"):
        nn.resolve_layer(nn.ACT_LAYERS, "gelu", "test", "act_layer")
    with pytest.raises(ValueError, match=r"norm_layer 'Identity' has no norm\+activation class.*BatchNorm2d -> BatchNormAct2d"):
        nn.get_norm_act_layer(nn.Identity, nn.ReLU)

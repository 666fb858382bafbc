"""Models take their norm and activation as arguments (``norm_layer`` / ``act_layer``), by
registered name or class, from Python and from a run config; the default stays BatchNorm2d
with a fused ReLU (bit-identity to the older code: tests/test_models_reference.py)."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models import BasicBlock, Bottleneck, ResNeSt, _ResNeStBottleneck, create_model
from lucid.train.config import ConfigError, load_config
from lucid.train.model_setup import build_model


def _silu(t):
    return t * F.sigmoid(t)


def _modules(model, cls):
    return [name for name, m in model.named_modules() if type(m) is cls]


def test_default_is_batchnorm_with_fused_relu():
    model = create_model("resnet_50", num_classes=3, layers=[1, 1], channels=(4, 8), stem_width=8)
    assert type(model.stem.bn1) is nn.BatchNormAct2d and type(model.stem.bn1.act) is nn.ReLU
    block = model.layer1[0]
    assert [type(block.bn1), type(block.bn2), type(block.bn3)] == [nn.BatchNormAct2d, nn.BatchNormAct2d, nn.BatchNorm2d]
    assert type(block.downsample[1]) is nn.BatchNorm2d and type(block.act) is nn.ReLU


def test_hooks_watch_the_norm_act_module_without_changing_the_result():
    lucid.manual_seed(0)
    model = create_model("resnet_18", num_classes=4, stem_type="cifar")
    x = lucid.randn(2, 3, 8, 8)
    before = model(x).detach().numpy()
    seen = []
    handle = model.layer1[0].bn1.register_forward_hook(lambda m, args, out: seen.append(out.shape))
    np.testing.assert_array_equal(model(x).detach().numpy(), before)  # the same fused kernel runs
    handle.remove()
    assert seen == [(2, 64, 8, 8)]


@pytest.mark.parametrize("name", ["resnet_18", "resnet_50", "resnext_50_32x4d", "wide_resnet_50", "resnest_14"])
def test_act_layer_reaches_every_activation(name):
    model = create_model(name, num_classes=3, layers=[1, 1], channels=(16, 32), stem_width=8, act_layer="silu")
    assert _modules(model, nn.ReLU) == [] and len(_modules(model, nn.SiLU)) >= 5
    x = lucid.randn(2, 3, 32, 32)
    out = model(x)
    assert out.shape == (2, 3) and np.isfinite(out.detach().numpy()).all()


def test_basic_block_with_silu_is_the_composition():
    block = BasicBlock(4, 4, act_layer=nn.SiLU).double()
    for m in block.modules():  # non-trivial affine parameters
        if isinstance(m, nn.BatchNorm2d):
            m.weight.data[...] = np.linspace(0.5, 1.5, 4)
            m.bias.data[...] = np.linspace(-0.5, 0.5, 4)
    x = lucid.tensor(np.random.default_rng(0).standard_normal((2, 4, 6, 6)))
    block.eval()
    with lucid.no_grad():
        h = _silu(F.batch_norm(block.conv1(x), block.bn1.running_mean, block.bn1.running_var, block.bn1.weight,
                               block.bn1.bias, False, 0.0, block.bn1.eps))
        h = F.batch_norm(block.conv2(h), block.bn2.running_mean, block.bn2.running_var, block.bn2.weight,
                         block.bn2.bias, False, 0.0, block.bn2.eps)
        np.testing.assert_allclose(block(x).numpy(), _silu(h + x).numpy(), rtol=1e-12, atol=1e-14)


def test_blocks_and_resnest_accept_layer_classes():
    b = Bottleneck(8, 2, norm_layer=nn.BatchNorm2d, act_layer=nn.SiLU)
    assert type(b.bn2.act) is nn.SiLU and type(b.act) is nn.SiLU
    model = ResNeSt(_ResNeStBottleneck, [1, 1], channels=(16, 32), stem_width=8, num_classes=3, act_layer=nn.SiLU)
    assert type(model.layer1[0].conv2.bn0.act) is nn.SiLU and type(model.stem.conv1[2]) is nn.SiLU
    assert model.config.act_layer is nn.SiLU and model.config.act_class is nn.SiLU


class ScaledBatchNorm2d(nn.BatchNorm2d):
    """A user norm: BatchNorm2d whose output is halved."""

    def forward(self, input, relu=False):
        return super().forward(input, relu) * 0.5


class ScaledBatchNormAct2d(nn.NormActMixin, ScaledBatchNorm2d):
    def __init__(self, num_features, *, act_layer=nn.ReLU):
        super().__init__(num_features)
        self.act = act_layer()


nn.register_norm_layer("test_scaled_batchnorm", ScaledBatchNorm2d, ScaledBatchNormAct2d)


def test_registered_norm_layer_is_usable_from_a_run_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "resnet_18"\nnum_classes = 3\nnorm_layer = "test_scaled_batchnorm"\n'
                    'act_layer = "silu"\n[model.overrides]\nlayers = [1, 1]\nchannels = [4, 8]\nstem_width = 4\n'
                    '[data]\nimage_size = 16\n')
    cfg = load_config(str(path))
    model = build_model(cfg, "cpu", world=1)
    assert type(model.stem.bn1) is ScaledBatchNormAct2d and type(model.stem.bn1.act) is nn.SiLU
    assert type(model.layer2[0].downsample[1]) is ScaledBatchNorm2d
    assert float(model.layer1[0].bn2.weight.detach().numpy()[0]) == 1.0  # init_weights reached the user norm


@pytest.mark.parametrize("text, message", [
    ('name = "resnet_18"\nact_layer = "gelu"', "model.act_layer = 'gelu' is not a registered activation layer "
                                               "(valid: relu, silu)"),
    ('name = "resnet_18"\nnorm_layer = "gn"', "model.norm_layer = 'gn' is not a registered norm layer (valid: batchnorm"),
    ('name = "resnet_18"\nact_layer = "silu"\noverrides = { act_layer = "relu" }',
     "model.act_layer and model.overrides.act_layer are both set"),
])
def test_run_config_rejects_bad_layer_names(tmp_path, text, message):
    path = tmp_path / "run.toml"
    path.write_text(f"[model]\n{text}\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert message in str(info.value) and str(path) in str(info.value)


def test_model_without_layer_arguments_rejects_them(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\nname = "d2l_resnet_18"\nact_layer = "silu"\n')
    with pytest.raises(ValueError, match="model.act_layer = 'silu': model 'd2l_resnet_18' takes no act_layer"):
        build_model(load_config(str(path)), "cpu", world=1)


def test_user_block_without_layer_arguments():
    class Plain(lucid.models.ResidualBlock):
        expansion = 1

        def __init__(self, in_channels, planes, stride=1, downsample=None):
            super().__init__()
            self.conv = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1)
            self.bn2 = nn.BatchNorm2d(planes)
            self.downsample = downsample

        def forward(self, x):
            return self.join(self.bn2(self.conv(x)), x)

    cfg = lucid.models.ResNetConfig(Plain, [1, 1], channels=(4, 8), stem_width=4, num_classes=2)
    assert lucid.models.ResNet(cfg)(lucid.randn(1, 3, 16, 16)).shape == (1, 2)
    with pytest.raises(ValueError, match="block Plain takes no act_layer argument, so act_layer='SiLU' cannot apply"):
        lucid.models.ResNetConfig(Plain, [1, 1], channels=(4, 8), act_layer="silu")

"""Configs, registry and factories: validation and bad input (no forward passes)."""
import pytest

import lucid
import lucid.nn as nn
from lucid.models import (
    Bottleneck,
    ResNeSt,
    ResNeStConfig,
    ResNet,
    ResNetConfig,
    ResNeXt,
    ResNeXtConfig,
    _ResNeStBottleneck,
    create_model,
    list_models,
)

FACTORIES = [
    "resnet_18", "resnet_34", "resnet_50", "resnet_101", "resnet_152", "resnet_200", "resnet_269",
    "wide_resnet_50", "wide_resnet_101", "resnext_50_32x4d", "resnext_101_32x4d", "resnext_101_32x8d",
    "resnext_101_64x4d", "resnest_14", "resnest_26", "resnest_50", "resnest_101", "resnest_200", "resnest_269",
    "resnest_50_4s2x40d", "resnest_50_1s4x24d",
]


def test_every_factory_is_registered():
    assert set(FACTORIES) | {"d2l_resnet_18"} == set(list_models())
    assert list_models("resnext_*") == ["resnext_101_32x4d", "resnext_101_32x8d", "resnext_101_64x4d",
                                        "resnext_50_32x4d"]
    assert all(getattr(lucid.models, name).__name__ == name for name in FACTORIES)


def test_config_defaults_and_normalisation():
    cfg = ResNetConfig("basic", [2, 2, 2, 2])
    assert (cfg.num_classes, cfg.in_channels, cfg.stem_type, cfg.stem_width) == (1000, 3, None, 64)
    assert cfg.layers == (2, 2, 2, 2) and cfg.channels == (64, 128, 256, 512)
    assert (cfg.avg_down, cfg.block_args, cfg.zero_init_residual) == (False, {}, False)
    assert ResNetConfig(Bottleneck, [1]*4).block_class is Bottleneck
    nx = ResNeXtConfig([3, 4, 6, 3], 32, 4, num_classes=10)
    assert nx.block_kwargs() == {"cardinality": 32, "base_width": 4, "norm_layer": nn.BatchNorm2d,
                                 "act_layer": nn.ReLU} and nx.block_class is Bottleneck
    assert (cfg.norm_layer, cfg.act_layer, cfg.norm_class, cfg.act_class) == ("batchnorm", "relu", nn.BatchNorm2d, nn.ReLU)
    st = ResNeStConfig(layers=[3, 4, 6, 3])
    assert (st.stem_type, st.stem_width, st.avg_down, st.radix, st.avd) == ("deep", 32, True, 2, True)
    assert st.block_class is _ResNeStBottleneck


@pytest.mark.parametrize("kwargs, message", [
    (dict(block="basik"), "unknown block 'basik'; valid names: basic, bottleneck, resnest_bottleneck"),
    (dict(block=object), "block must be one of"),
    (dict(layers=[2, 2, 2]), "layers (2, 2, 2) has 3 stages but channels (64, 128, 256, 512) has 4"),
    (dict(channels=(64, 128)), "has 4 stages but channels (64, 128) has 2"),
    (dict(layers=[2, 0, 2, 2]), "layers[1] must be a positive integer, got 0"),
    (dict(layers=[]), "layers must not be empty"),
    (dict(channels=(64, -1, 256, 512)), "channels[1] must be a positive integer, got -1"),
    (dict(stem_width=0), "stem_width must be a positive integer"),
    (dict(num_classes=0), "num_classes must be a positive integer"),
    (dict(in_channels=2.5), "in_channels must be a positive integer"),
    (dict(stem_type="tiny"), "unknown stem_type 'tiny'; valid: None, 'deep', 'cifar'"),
    (dict(avg_down="yes"), "avg_down must be True or False"),
    (dict(norm_layer="groupnorm"), "ResNetConfig: norm_layer: unknown norm layer 'groupnorm'; valid names: batchnorm"),
    (dict(act_layer="gelu"), "ResNetConfig: act_layer: unknown activation layer 'gelu'; valid names: relu, silu"),
    (dict(act_layer=3), "act_layer must be a registered name (relu, silu) or a layer class, got 3"),
    (dict(norm_layer=nn.LazyBatchNorm2d), "norm_layer 'LazyBatchNorm2d' has no norm+activation class; register one"),
    (dict(block_args={"act_layer": nn.SiLU}), "block_args repeats ['act_layer']; set them as config fields"),
])
def test_resnet_config_rejects_bad_fields(kwargs, message):
    fields = dict(block="basic", layers=[2, 2, 2, 2]) | kwargs
    with pytest.raises((ValueError, TypeError)) as info:
        ResNetConfig(**fields)
    assert message in str(info.value)


@pytest.mark.parametrize("cls, kwargs, message", [
    (ResNeXtConfig, dict(layers=[1, 1], cardinality=0, base_width=4), "cardinality must be a positive integer"),
    (ResNeXtConfig, dict(layers=[1, 1], cardinality=32, base_width=-4), "base_width must be a positive integer"),
    (ResNeXtConfig, dict(layers=[1, 1], cardinality=2, base_width=4, block_args={"cardinality": 4}),
     "block_args repeats ['cardinality']"),
    (ResNeStConfig, dict(layers=[1, 1], radix=0), "radix must be a positive integer, got 0"),
    (ResNeStConfig, dict(layers=[1, 1], cardinality=-1), "cardinality must be a positive integer"),
    (ResNeStConfig, dict(layers=[1, 1], avd=1), "avd must be True or False"),
])
def test_family_configs_reject_out_of_range(cls, kwargs, message):
    extra = {} if "channels" in kwargs else {"channels": (64, 128)}
    with pytest.raises((ValueError, TypeError)) as info:
        cls(**kwargs, **extra)
    assert message in str(info.value)


def test_blocks_reject_widths_that_do_not_split():
    # group width 64 does not split into 1*3 groups; int(8*4/64) = 0 channels per group
    with pytest.raises(ValueError, match="do not split into cardinality\\*radix = 1\\*3"):
        ResNeSt("resnest_bottleneck", [1, 1], channels=(64, 128), radix=3)
    with pytest.raises(ValueError, match="bottleneck width int\\(planes\\*base_width/64\\) = int\\(8\\*4/64\\) is 0"):
        ResNeXt(ResNeXtConfig([1], 2, 4, channels=(8,)))
    with pytest.raises(ValueError, match="BasicBlock supports only cardinality=1 and base_width=64"):
        ResNet(ResNetConfig("basic", [1], channels=(8,), block_args={"base_width": 128}))
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        ResNet(ResNetConfig("basic", [1], channels=(8,), block_args={"radix": 2}))


def test_builders_check_their_config_type():
    with pytest.raises(TypeError, match="ResNeXt expects a ResNeXtConfig, got ResNetConfig"):
        ResNeXt(ResNetConfig("bottleneck", [1], channels=(8,)))
    with pytest.raises(TypeError, match="expects a ResNetConfig, ResNeXtConfig or ResNeStConfig, got dict"):
        ResNet({"block": "basic"})


def test_unknown_model_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        create_model("resnet_5O")
    assert "unknown model 'resnet_5O'" in str(info.value)
    assert all(name in str(info.value) for name in FACTORIES)


@pytest.mark.parametrize("name, override, message", [
    ("resnet_50", dict(block="basic"), "resnet_50 fixes block='bottleneck'; build ResNet(ResNetConfig(...))"),
    ("resnext_50_32x4d", dict(cardinality=8), "resnext_50_32x4d fixes cardinality=32"),
    ("resnext_101_32x8d", dict(base_width=4), "resnext_101_32x8d fixes base_width=8"),
    ("wide_resnet_50", dict(block_args={"base_width": 64}), "wide_resnet_50 fixes block_args={'base_width': 128}"),
    ("resnest_50", dict(radix=4), "resnest_50 fixes radix=2; build ResNeSt(block, layers, ...)"),
    ("resnet_18", dict(stem="deep"), "resnet_18: unknown override(s) ['stem']; valid: num_classes, act_layer, avg_down"),
])
def test_factories_reject_fixed_and_unknown_overrides(name, override, message):
    with pytest.raises(ValueError) as info:
        create_model(name, **override)
    assert message in str(info.value)


def test_factory_overrides_reach_the_config():
    model = create_model("resnet_18", num_classes=10, in_channels=1, stem_type="cifar", layers=[1, 1, 1, 1],
                         channels=(8, 16, 32, 64))
    cfg = model.config
    assert (cfg.num_classes, cfg.in_channels, cfg.stem_type, cfg.layers) == (10, 1, "cifar", (1, 1, 1, 1))
    assert tuple(model.stem.conv1.weight.shape) == (64, 1, 3, 3)  # stem_width default 64
    assert type(model.maxpool).__name__ == "Identity"
    nx = create_model("resnext_50_32x4d", layers=[1, 1, 1, 1])
    assert isinstance(nx, ResNeXt) and (nx.cardinality, nx.base_width) == (32, 4)
    st = create_model("resnest_50_4s2x40d", layers=[1, 1, 1, 1], num_classes=7)
    assert isinstance(st, ResNeSt) and (st.radix, st.cardinality, st.base_width, st.avd) == (4, 2, 40, True)
    assert st.config.avd_first is True and st.fc.weight.shape[0] == 7


def test_resnest_keeps_the_documented_signature():
    import inspect

    params = list(inspect.signature(ResNeSt).parameters.values())
    documented = [("block", inspect.Parameter.empty), ("layers", inspect.Parameter.empty), ("num_classes", 1000),
                  ("base_width", 64), ("stem_width", 32), ("cardinality", 1), ("radix", 2), ("avd", True)]
    assert [(p.name, p.default) for p in params[:8]] == documented
    assert params[8].kind is inspect.Parameter.VAR_KEYWORD


def test_stage_count_follows_layers():
    model = ResNet(ResNetConfig("basic", [1, 2, 1], channels=(4, 8, 16), stem_width=4, num_classes=3))
    assert [len(s) for s in model.stages] == [1, 2, 1]
    assert not hasattr(model, "layer4") and model.fc.weight.shape[1] == 16

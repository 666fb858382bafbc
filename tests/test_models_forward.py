"""Forward/backward of every factory, the documented examples, stems, shortcuts and init."""
import numpy as np
import pytest

import lucid
import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models import (
    BasicBlock,
    Bottleneck,
    ResidualBlock,
    ResNeSt,
    ResNet,
    ResNetConfig,
    ResNeXt,
    ResNeXtConfig,
    _ResNeStBottleneck,
    create_model,
    list_models,
)

FACTORIES = [name for name in list_models() if not name.startswith("d2l")]

# Nets deeper than 50 layers run with one block per stage (their layout is covered by the parameter counts).
DEEP = {"resnet_101", "resnet_152", "resnet_200", "resnet_269", "wide_resnet_101", "resnext_101_32x4d",
        "resnext_101_32x8d", "resnext_101_64x4d", "resnest_101", "resnest_200", "resnest_269"}


def _assert_all_grads_finite_and_nonzero(model):
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{name} got no gradient"
        g = p.grad.numpy()
        assert g.shape == tuple(p.shape), name
        assert np.isfinite(g).all(), f"{name} has a non-finite gradient"
        assert np.any(g != 0), f"{name} has an all-zero gradient"


@pytest.mark.parametrize("name", FACTORIES)
def test_factory_forward_backward(name):
    model = create_model(name, num_classes=10, **({"layers": [1, 1, 1, 1]} if name in DEEP else {}))
    out = model(lucid.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    F.cross_entropy(out, lucid.tensor([1, 7])).backward()
    _assert_all_grads_finite_and_nonzero(model)


def test_resnet_config_documented_example():
    config = ResNetConfig(block="basic", layers=[2, 2, 2, 2], num_classes=10, in_channels=1, stem_type="deep",
                          stem_width=32)
    model = ResNet(config)
    assert model.config is config and model.block is BasicBlock
    for attr in ("stem", "maxpool", "layer1", "layer2", "layer3", "layer4", "avgpool", "fc"):
        assert isinstance(getattr(model, attr), nn.Module), attr
    with lucid.no_grad():
        out = model(lucid.zeros(8, 1, 224, 224))
    assert out.shape == (8, 10)


def test_resnext_config_documented_example():
    config = ResNeXtConfig(layers=[3, 4, 6, 3], cardinality=32, base_width=4, num_classes=10, in_channels=1,
                           stem_type="deep", stem_width=32)
    model = ResNeXt(config)
    assert (model.cardinality, model.base_width, model.block) == (32, 4, Bottleneck)
    assert model.layer1[0].conv2.groups == 32 and tuple(model.layer1[0].conv2.weight.shape) == (128, 4, 3, 3)
    with lucid.no_grad():
        out = model(lucid.random.randn(1, 1, 224, 224))
    assert out.shape == (1, 10)


def test_resnest_documented_example():
    model = ResNeSt(block=_ResNeStBottleneck, layers=[3, 4, 6, 3], num_classes=1000, base_width=64, stem_width=32,
                    cardinality=1, radix=2, avd=True)
    model.eval()  # one image: training-mode BN would see one value per channel after the GAP in fc1 -> bn1
    output = model(lucid.random.randn(1, 3, 224, 224))
    assert output.shape == (1, 1000)


def test_input_channels_must_match_in_channels():
    model = create_model("resnet_18", in_channels=1, num_classes=3, layers=[1, 1, 1, 1])
    with pytest.raises(ValueError) as info:
        model(lucid.zeros(2, 3, 32, 32))
    assert "in_channels=1" in str(info.value) and "3 channels" in str(info.value)


@pytest.mark.parametrize("stem_type, size, stem_out, stage_out", [
    (None, 64, (2, 8, 32, 32), [(2, 8, 16, 16), (2, 16, 8, 8)]),
    ("deep", 64, (2, 16, 32, 32), [(2, 8, 16, 16), (2, 16, 8, 8)]),
    ("cifar", 28, (2, 8, 28, 28), [(2, 8, 28, 28), (2, 16, 14, 14)]),
])
def test_stems_and_stage_shapes(stem_type, size, stem_out, stage_out):
    model = ResNet(ResNetConfig("basic", [1, 1], channels=(8, 16), stem_width=8, stem_type=stem_type,
                                in_channels=1, num_classes=4))
    x = lucid.randn(2, 1, size, size)
    y = model.stem(x)
    assert y.shape == stem_out
    y = model.maxpool(y)
    for stage, shape in zip(model.stages, stage_out):
        y = stage(y)
        assert y.shape == shape
    assert model(x).shape == (2, 4)


def test_avg_down_shortcut_is_a_ceil_mode_average_pool_then_1x1_conv():
    model = ResNet(ResNetConfig("bottleneck", [1, 1], channels=(4, 8), stem_width=8, stem_type="cifar",
                                avg_down=True, num_classes=2))
    pool, conv, bn = model.layer2[0].downsample
    assert isinstance(pool, nn.AvgPool2d) and isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d)
    assert (pool.ceil_mode, pool.count_include_pad) == (True, False)
    assert tuple(conv.weight.shape) == (32, 16, 1, 1) and conv.stride in (1, (1, 1))
    assert isinstance(model.layer1[0].downsample[0], nn.Identity)  # stride 1: no pooling, same key layout
    # an odd 7x7 map halves to 4x4 in both branches only because the pool uses ceil_mode
    assert model(lucid.randn(2, 3, 7, 7)).shape == (2, 2)
    assert model.layer2(model.layer1(model.stem(lucid.randn(1, 3, 7, 7)))).shape == (1, 32, 4, 4)


def test_init_and_zero_init_residual():
    model = ResNet(ResNetConfig("bottleneck", [2], channels=(64,), stem_width=64, num_classes=5,
                                zero_init_residual=True))
    conv = model.layer1[0].conv2.weight.detach().numpy()  # fan_out = 64 * 3 * 3
    assert abs(conv.std() - np.sqrt(2.0 / (64 * 9))) < 0.1 * np.sqrt(2.0 / (64 * 9))
    for block in model.layer1:
        np.testing.assert_array_equal(block.bn3.weight.detach().numpy(), 0)
        np.testing.assert_array_equal(block.bn1.weight.detach().numpy(), 1)
        np.testing.assert_array_equal(block.bn1.bias.detach().numpy(), 0)
    # with zero-initialised residual branches each block starts as relu(shortcut(x))
    model.eval()
    x = lucid.randn(1, 256, 8, 8).relu()
    with lucid.no_grad():
        np.testing.assert_allclose(model.layer1[1](x).numpy(), x.numpy())


class _TinyBlock(ResidualBlock):
    """A user block: one conv-BN branch, expansion 2, a block_args option."""

    expansion = 2
    last_norm = "bn"

    def __init__(self, in_channels, planes, stride=1, downsample=None, scale=1.0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, planes * 2, 3, stride=stride, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(planes * 2)
        self.downsample, self.scale = downsample, scale

    def forward(self, x):
        return self.join(self.bn(self.conv(x)) * self.scale, x)


def test_custom_block_class_with_block_args():
    config = ResNetConfig(_TinyBlock, [1, 2], channels=(4, 8), stem_width=8, num_classes=3,
                          block_args={"scale": 0.5}, zero_init_residual=True)
    model = ResNet(config)
    assert model.block is _TinyBlock and [b.scale for b in model.layer2] == [0.5, 0.5]
    assert tuple(model.layer2[0].conv.weight.shape) == (16, 8, 3, 3) and model.layer2[0].downsample is not None
    assert model.layer1[0].downsample is None  # stem width 8 = 4 planes x expansion 2
    np.testing.assert_array_equal(model.layer2[1].bn.weight.detach().numpy(), 0)
    assert model(lucid.randn(2, 3, 32, 32)).shape == (2, 3) and model.fc.weight.shape[1] == 16

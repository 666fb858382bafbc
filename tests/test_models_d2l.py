"""d2l residual blocks and ResNet-18: the shapes and parameter count of the book."""
import numpy as np
import pytest

import lucid
from lucid.models import D2LResNet, Residual, ResNeXtBlock, create_model, d2l_resnet_18


def test_residual_keeps_shape():
    blk = Residual(3)
    assert blk(lucid.randn(4, 3, 6, 6)).shape == (4, 3, 6, 6)


def test_residual_with_1x1conv_halves_and_widens():
    blk = Residual(6, use_1x1conv=True, strides=2)
    assert blk(lucid.randn(4, 3, 6, 6)).shape == (4, 6, 3, 3)
    assert tuple(blk.conv3.weight.shape) == (6, 3, 1, 1) and blk.conv1.bias is not None


def test_resnext_block_keeps_shape():
    blk = ResNeXtBlock(32, 16, 1)
    assert blk(lucid.randn(4, 32, 96, 96)).shape == (4, 32, 96, 96)
    assert blk.conv2.groups == 2  # d2l's "groups" is channels per group: 32 // 16


def test_resnext_block_with_shortcut_conv():
    blk = ResNeXtBlock(16, 4, 0.5, use_1x1conv=True, strides=2)
    assert blk(lucid.randn(2, 8, 10, 10)).shape == (2, 16, 5, 5)
    with pytest.raises(ValueError, match="must be a positive multiple of groups=3"):
        ResNeXtBlock(16, 3, 0.5)


def test_d2l_resnet_18_stage_outputs_and_parameter_count():
    model = create_model("d2l_resnet_18")
    x = lucid.randn(1, 1, 96, 96)
    shapes = []
    for layer in model.net:
        x = layer(x)
        shapes.append(tuple(x.shape))
    assert shapes == [(1, 64, 24, 24), (1, 64, 24, 24), (1, 128, 12, 12), (1, 256, 6, 6), (1, 512, 3, 3), (1, 10)]
    assert sum(p.numel() for p in model.parameters()) == 11_178_378


def test_d2l_resnet_trains_one_step_on_rgb_input():
    model = D2LResNet(((1, 64), (1, 32)), num_classes=3, in_channels=3)  # b1 outputs 64 channels
    out = model(lucid.randn(2, 3, 32, 32))
    assert out.shape == (2, 3)
    lucid.nn.functional.cross_entropy(out, lucid.tensor([0, 2])).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and np.isfinite(p.grad.numpy()).all(), name
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        model(lucid.randn(2, 1, 32, 32))
    assert d2l_resnet_18(num_classes=5).net[-1][-1].out_features == 5

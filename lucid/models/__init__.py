"""The ResNet family: one config-driven builder, named presets, d2l blocks, weight import.

    from lucid.models import ResNet, ResNetConfig, create_model
    model = ResNet(ResNetConfig(block="basic", layers=[2, 2, 2, 2], num_classes=10))
    model = create_model("resnext_50_32x4d", num_classes=100)
"""
from lucid.models.blocks import BasicBlock, Bottleneck, ResidualBlock, add_act
from lucid.models.config import BLOCKS, ResNeStConfig, ResNetConfig, ResNeXtConfig
from lucid.models.d2l import D2LResNet, Residual, ResNeXtBlock, d2l_resnet_18, d2l_stage
from lucid.models.factories import (
    resnest_14,
    resnest_26,
    resnest_50,
    resnest_50_1s4x24d,
    resnest_50_4s2x40d,
    resnest_101,
    resnest_200,
    resnest_269,
    resnet_18,
    resnet_34,
    resnet_50,
    resnet_101,
    resnet_152,
    resnet_200,
    resnet_269,
    resnext_50_32x4d,
    resnext_101_32x4d,
    resnext_101_32x8d,
    resnext_101_64x4d,
    wide_resnet_50,
    wide_resnet_101,
)
from lucid.models.pretrained import load_pretrained, read_state_dict, reference_state_dict
from lucid.models.registry import create_model, list_models, register_model
from lucid.models.resnest import ResNeSt
from lucid.models.resnet import ResNet
from lucid.models.resnext import ResNeXt
from lucid.models.split_attention import SplitAttentionConv2d, _ResNeStBottleneck
from lucid.models.stem import Stem

__all__ = [
    "BLOCKS", "BasicBlock", "Bottleneck", "D2LResNet", "ResNeSt", "ResNeStConfig", "ResNeXt", "ResNeXtBlock",
    "ResNeXtConfig", "ResNet", "ResNetConfig", "Residual", "ResidualBlock", "SplitAttentionConv2d", "Stem", "_ResNeStBottleneck",
    "add_act", "create_model", "d2l_resnet_18", "d2l_stage", "list_models", "load_pretrained", "read_state_dict",
    "reference_state_dict", "register_model",
    "resnest_14", "resnest_26", "resnest_50", "resnest_50_1s4x24d", "resnest_50_4s2x40d", "resnest_101",
    "resnest_200", "resnest_269", "resnet_18", "resnet_34", "resnet_50", "resnet_101", "resnet_152", "resnet_200",
    "resnet_269", "resnext_50_32x4d", "resnext_101_32x4d", "resnext_101_32x8d", "resnext_101_64x4d",
    "wide_resnet_50", "wide_resnet_101",
]

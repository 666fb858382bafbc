"""ResNet: the ONE config-driven builder of ResNet, Wide ResNet, ResNeXt and ResNeSt.

forward(x) = fc(flatten(avgpool(layerN(...layer1(maxpool(stem(x)))))))

Stage i has ``config.layers[i]`` blocks of width ``config.channels[i]`` (times the
block's expansion); the first stage keeps the resolution, every later one halves it in
its first block, whose shortcut is a 1x1 conv + norm (after a 2x2 average pool when
``avg_down``, the ResNet-D shortcut). Module names follow torchvision under ``stem.``.
The norm and activation of every layer are the config's ``norm_layer`` / ``act_layer``.
"""
from __future__ import annotations

from typing import Any

import lucid.nn as nn
from lucid.models.config import _NetworkFields
from lucid.models.stem import Stem


def make_shortcut(in_channels: int, out_channels: int, stride: int, avg_down: bool,
                  norm_layer: Any = nn.BatchNorm2d) -> nn.Sequential:
    """Projection shortcut: conv1x1(stride)+norm, or ResNet-D's avgpool(2, ceil)+conv1x1+norm.

    The avg-down form keeps its pool at index 0 (an Identity at stride 1) so that the
    conv and norm sit at ``downsample.1`` / ``downsample.2`` as in timm and the ResNeSt code.
    """
    if not avg_down:
        return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                             norm_layer(out_channels))
    pool = (nn.AvgPool2d(stride, stride, ceil_mode=True, count_include_pad=False) if stride > 1
            else nn.Identity())
    return nn.Sequential(pool, nn.Conv2d(in_channels, out_channels, 1, bias=False), norm_layer(out_channels))


def make_stage(block: type, in_channels: int, planes: int, depth: int, stride: int, avg_down: bool,
               block_kwargs: dict, norm_layer: Any = nn.BatchNorm2d) -> nn.Sequential:
    """``depth`` blocks; the first one changes stride/width and gets the projection shortcut."""
    out_channels = planes * block.expansion
    shortcut = None
    if stride != 1 or in_channels != out_channels:
        shortcut = make_shortcut(in_channels, out_channels, stride, avg_down, norm_layer)
    blocks = [block(in_channels, planes, stride=stride, downsample=shortcut, **block_kwargs)]
    blocks += [block(out_channels, planes, **block_kwargs) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


def init_weights(model: nn.Module, zero_init_residual: bool, norm_layer: Any = nn.BatchNorm2d) -> None:
    """Kaiming-normal (fan_out, relu) convs, norm gamma 1 / beta 0, optionally zero last gammas."""
    norm_types = tuple(t for t in (nn.BatchNorm2d, norm_layer) if isinstance(t, type))
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, norm_types) and getattr(m, "weight", None) is not None:
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    if zero_init_residual:
        for m in model.modules():
            if hasattr(m, "zero_init_last"):
                m.zero_init_last()


class ResNet(nn.Module):
    """A residual network built from a validated config (see ``lucid.models.ResNetConfig``).

    Attributes: ``config``, ``block`` (the block class), ``stem``, ``maxpool`` (Identity for
    the "cifar" stem), ``layer1`` .. ``layerN`` (N = len(config.layers)), ``avgpool``, ``fc``.
    """

    def __init__(self, config: _NetworkFields):
        super().__init__()
        if not isinstance(config, _NetworkFields):
            raise TypeError(f"{type(self).__name__} expects a ResNetConfig, ResNeXtConfig or ResNeStConfig, "
                            f"got {type(config).__name__}")
        self.config = config
        self.block = config.block_class
        if config.zero_init_residual and not hasattr(self.block, "zero_init_last"):
            raise TypeError(f"zero_init_residual needs a block with zero_init_last(); {self.block.__name__} has none")
        self.stem = Stem(config.in_channels, config.stem_width, config.stem_type, config.norm_class, config.act_class)
        self.maxpool = nn.Identity() if config.stem_type == "cifar" else nn.MaxPool2d(3, stride=2, padding=1)
        width = self.stem.out_channels
        for i, (planes, depth) in enumerate(zip(config.channels, config.layers)):
            stage = make_stage(self.block, width, planes, depth, 1 if i == 0 else 2, config.avg_down,
                               config.block_kwargs(), config.norm_class)
            setattr(self, f"layer{i + 1}", stage)
            width = planes * self.block.expansion
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(width, config.num_classes)
        init_weights(self, config.zero_init_residual, config.norm_class)

    @property
    def stages(self) -> list[nn.Module]:
        """The residual stages layer1 .. layerN, in order."""
        return [getattr(self, f"layer{i + 1}") for i in range(len(self.config.layers))]

    def forward_features(self, x):
        """Stem, max-pool and the residual stages: the (N, C, H/32, W/32) feature map."""
        if x.ndim != 4 or x.shape[1] != self.config.in_channels:
            raise ValueError(
                f"{type(self).__name__}: expected input of shape (N, {self.config.in_channels}, H, W) "
                f"(in_channels={self.config.in_channels}), got {tuple(x.shape)} with "
                f"{x.shape[1] if x.ndim > 1 else 'no'} channels"
            )
        x = self.maxpool(self.stem(x))
        for stage in self.stages:
            x = stage(x)
        return x

    def forward(self, x):
        return self.fc(self.avgpool(self.forward_features(x)).flatten(1))


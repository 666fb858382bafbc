"""The residual blocks and ResNet-18 of "Dive into Deep Learning" (d2l, ResNet chapter).

Built from lazy modules as in the book: input channel counts are inferred at the
first forward, so the same ResNet-18 serves 1-channel Fashion-MNIST and RGB input.
Unlike torchvision's, these convolutions keep their bias. A BatchNorm followed by a ReLU
is one LazyBatchNormAct2d (the two fused into one kernel), the residual join ``add_act``.
"""
from __future__ import annotations

from typing import Sequence

import lucid.nn as nn
from lucid.models.blocks import add_act
from lucid.models.registry import register_model
from lucid.models.validation import check_positive

D2L_RESNET_18_ARCH = ((2, 64), (2, 128), (2, 256), (2, 512))


class Residual(nn.Module):
    """d2l's residual block: two 3x3 convs with BN, optional 1x1-conv shortcut.

    Y = relu(bn2(conv2(relu(bn1(conv1(X))))) + (conv3(X) if use_1x1conv else X))
    """

    def __init__(self, num_channels: int, use_1x1conv: bool = False, strides: int = 1):
        super().__init__()
        check_positive("Residual", num_channels=num_channels, strides=strides)
        self.conv1 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1, stride=strides)
        self.conv2 = nn.LazyConv2d(num_channels, kernel_size=3, padding=1)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides) if use_1x1conv else None
        self.bn1 = nn.LazyBatchNormAct2d()
        self.bn2 = nn.LazyBatchNorm2d()
        self.relu = nn.ReLU()

    def forward(self, X):
        Y = self.bn1(self.conv1(X))
        Y = self.bn2(self.conv2(Y))
        return add_act(self.relu, Y, X if self.conv3 is None else self.conv3(X))


class ResNeXtBlock(nn.Module):
    """d2l's ResNeXt block: 1x1 conv to ``round(num_channels*bot_mul)``, grouped 3x3, 1x1 back.

    As in the book, ``groups`` is the number of channels per group: the 3x3 conv has
    ``bot_channels // groups`` groups. The optional shortcut is a 1x1 conv + BN.
    """

    def __init__(self, num_channels: int, groups: int, bot_mul: float, use_1x1conv: bool = False,
                 strides: int = 1):
        super().__init__()
        check_positive("ResNeXtBlock", num_channels=num_channels, groups=groups, strides=strides)
        bot_channels = int(round(num_channels * bot_mul))
        if bot_channels < 1 or bot_channels % groups:
            raise ValueError(
                f"ResNeXtBlock: bottleneck channels round({num_channels}*{bot_mul}) = {bot_channels} must be a "
                f"positive multiple of groups={groups} (channels per group)"
            )
        self.conv1 = nn.LazyConv2d(bot_channels, kernel_size=1, stride=1)
        self.conv2 = nn.LazyConv2d(bot_channels, kernel_size=3, stride=strides, padding=1,
                                   groups=bot_channels // groups)
        self.conv3 = nn.LazyConv2d(num_channels, kernel_size=1, stride=1)
        self.bn1 = nn.LazyBatchNormAct2d()
        self.bn2 = nn.LazyBatchNormAct2d()
        self.bn3 = nn.LazyBatchNorm2d()
        self.relu = nn.ReLU()
        if use_1x1conv:
            self.conv4 = nn.LazyConv2d(num_channels, kernel_size=1, stride=strides)
            self.bn4 = nn.LazyBatchNorm2d()
        else:
            self.conv4 = self.bn4 = None

    def forward(self, X):
        Y = self.bn1(self.conv1(X))
        Y = self.bn2(self.conv2(Y))
        Y = self.bn3(self.conv3(Y))
        return add_act(self.relu, Y, X if self.conv4 is None else self.bn4(self.conv4(X)))


def d2l_stage(num_residuals: int, num_channels: int, first_block: bool = False) -> nn.Sequential:
    """``num_residuals`` Residual blocks; the first halves the resolution unless ``first_block``."""
    check_positive("d2l_stage", num_residuals=num_residuals, num_channels=num_channels)
    blocks = [Residual(num_channels, use_1x1conv=True, strides=2) if i == 0 and not first_block
              else Residual(num_channels) for i in range(num_residuals)]
    return nn.Sequential(*blocks)


class D2LResNet(nn.Module):
    """d2l's ResNet: ``net`` = Sequential(b1 stem, one stage per ``arch`` entry, head).

    b1 = 7x7/2 conv(64) -> BN -> ReLU -> 3x3/2 max-pool; stage i = ``arch[i]`` =
    (num_residuals, num_channels); head = global average pool -> flatten -> linear.
    ``in_channels`` (optional) makes forward reject inputs with another channel count.
    """

    def __init__(self, arch: Sequence[tuple[int, int]] = D2L_RESNET_18_ARCH, num_classes: int = 10,
                 in_channels: int | None = None):
        super().__init__()
        check_positive("D2LResNet", num_classes=num_classes)
        if in_channels is not None:
            check_positive("D2LResNet", in_channels=in_channels)
        self.arch, self.in_channels = tuple(tuple(a) for a in arch), in_channels
        b1 = nn.Sequential(nn.LazyConv2d(64, kernel_size=7, stride=2, padding=3), nn.LazyBatchNorm2d(),
                           nn.ReLU(), nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        stages = [d2l_stage(*a, first_block=(i == 0)) for i, a in enumerate(self.arch)]
        head = nn.Sequential(nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.LazyLinear(num_classes))
        self.net = nn.Sequential(b1, *stages, head)

    def forward(self, X):
        if self.in_channels is not None and (X.ndim != 4 or X.shape[1] != self.in_channels):
            raise ValueError(f"D2LResNet: expected input of shape (N, {self.in_channels}, H, W) "
                             f"(in_channels={self.in_channels}), got {tuple(X.shape)}")
        return self.net(X)


@register_model
def d2l_resnet_18(num_classes: int = 10, in_channels: int | None = None) -> D2LResNet:
    """d2l's ResNet-18, arch ((2,64),(2,128),(2,256),(2,512)); 11,178,378 parameters for
    1 input channel and 10 classes (known after the first forward: the modules are lazy)."""
    return D2LResNet(D2L_RESNET_18_ARCH, num_classes, in_channels)

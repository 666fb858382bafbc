"""Residual blocks of ResNet / Wide ResNet / ResNeXt: BasicBlock and Bottleneck.

Names follow torchvision (conv1, bn1, ..., downsample) so that reference weights map
one to one. Convolutions have no bias (a norm follows each); the 3x3 convolution
carries the stride; the bottleneck width is ``int(planes * base_width / 64) * cardinality``
and the block widens its output by ``expansion``.

Blocks take their norm and activation as arguments (timm's ``norm_layer`` /
``act_layer``; defaults BatchNorm2d and ReLU). A norm followed by the activation is
one module from ``nn.get_norm_act_layer`` (BatchNormAct2d: BatchNorm and ReLU fused
into one kernel); the residual join is ``add_act``.
"""
from __future__ import annotations

from typing import Any

import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models.validation import check_positive


def add_act(act: nn.Module, out, shortcut):
    """act(out + shortcut): the residual join of every block, kept in this one place.

    With a ReLU, one fused op (``lucid.ops.add_relu``): a single pass over memory, on all cores.
    """
    if nn.fuses_relu(act):
        return F.add_relu(out, shortcut)
    return act(out + shortcut)


def bottleneck_width(planes: int, base_width: int, cardinality: int) -> int:
    """Channels of a bottleneck's grouped 3x3 convolution (torchvision's formula)."""
    width = int(planes * base_width / 64)
    if width < 1:
        raise ValueError(
            f"bottleneck width int(planes*base_width/64) = int({planes}*{base_width}/64) is {width}; "
            "base_width is too small for this stage"
        )
    return width * cardinality


class ResidualBlock(nn.Module):
    """Base of the ResNet-family blocks: the shortcut join and zero-init of the last norm.

    Subclasses set ``last_norm`` (the attribute name of the norm ending the residual
    branch) and ``downsample`` (projection shortcut or None), and end ``forward`` with
    ``return self.join(out, x)``. ``act`` is the join's activation (``act_layer()``).
    """

    last_norm = "bn2"

    def __init__(self, act_layer: Any = nn.ReLU):
        super().__init__()
        self.act = act_layer()

    def zero_init_last(self) -> None:
        """Zero the last norm's gamma: the residual branch starts at zero, the block as act(shortcut)."""
        nn.init.zeros_(getattr(self, self.last_norm).weight)

    def join(self, out, x):
        """act(out + shortcut(x))."""
        return add_act(self.act, out, x if self.downsample is None else self.downsample(x))


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers and an identity (or projected) shortcut: ResNet-18/34.

    out = act(bn2(conv2(act(bn1(conv1(x))))) + shortcut(x)); bn1 is norm+act in one module.
    """

    expansion = 1
    last_norm = "bn2"

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1, base_width: int = 64, norm_layer: Any = nn.BatchNorm2d,
                 act_layer: Any = nn.ReLU):
        super().__init__(act_layer)
        check_positive("BasicBlock", in_channels=in_channels, planes=planes, stride=stride)
        if cardinality != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only cardinality=1 and base_width=64 (got {cardinality}, {base_width}); "
                "use block='bottleneck' for ResNeXt or Wide ResNet widths"
            )
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.get_norm_act_layer(norm_layer, act_layer)(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        return self.join(out, x)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 grouped (strided) conv, 1x1 expand by 4: ResNet-50+, Wide, ResNeXt.

    out = act(bn3(conv3(act(bn2(conv2(act(bn1(conv1(x)))))))) + shortcut(x)); bn1, bn2 are norm+act.
    """

    expansion = 4
    last_norm = "bn3"

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1, base_width: int = 64, norm_layer: Any = nn.BatchNorm2d,
                 act_layer: Any = nn.ReLU):
        super().__init__(act_layer)
        check_positive("Bottleneck", in_channels=in_channels, planes=planes, stride=stride,
                        cardinality=cardinality, base_width=base_width)
        width = bottleneck_width(planes, base_width, cardinality)
        norm_act = nn.get_norm_act_layer(norm_layer, act_layer)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = norm_act(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = norm_act(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        out = self.bn2(self.conv2(out))
        out = self.bn3(self.conv3(out))
        return self.join(out, x)

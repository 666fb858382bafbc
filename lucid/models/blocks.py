"""Residual blocks of ResNet / Wide ResNet / ResNeXt: BasicBlock and Bottleneck.

Names follow torchvision (conv1, bn1, ..., downsample) so that reference weights map
one to one. Convolutions have no bias (BatchNorm follows each); the 3x3 convolution
carries the stride; the bottleneck width is ``int(planes * base_width / 64) * cardinality``
and the block widens its output by ``expansion``.
"""
from __future__ import annotations

import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models.validation import check_positive


def add_relu(out, identity):
    """relu(out + identity): the residual join of every block, kept in this one place.

    One fused op (``lucid.ops.add_relu``): a single pass over memory, on all cores.
    """
    return F.add_relu(out, identity)


def bn_relu(bn: nn.Module, relu: nn.Module, x):
    """relu(bn(x)): one fused batch_norm(relu=True) pass when ``bn`` is a BatchNorm2d and ``relu`` a ReLU.

    When hooks watch either module (e.g. lucid.visual's shape tracing) or either was
    replaced by another kind of layer, the two modules run one after the other as usual.
    """
    if _plain(bn, nn.BatchNorm2d) and _plain(relu, nn.ReLU):
        return bn(x, relu=True)
    return relu(bn(x))


def _plain(module: nn.Module, cls: type) -> bool:
    """``module`` runs ``cls.forward`` and no hook watches it."""
    return (isinstance(module, cls) and type(module).forward is cls.forward
            and not module._forward_hooks and not module._forward_pre_hooks)


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
    """Base of the ResNet-family blocks: the shortcut join and zero-init of the last BN.

    Subclasses set ``last_norm`` (the attribute name of the BN ending the residual
    branch) and ``downsample`` (projection shortcut or None), and end ``forward`` with
    ``return self.join(out, x)``.
    """

    last_norm = "bn2"

    def zero_init_last(self) -> None:
        """Zero the last BN's gamma: the residual branch starts at zero, the block as relu(shortcut)."""
        nn.init.zeros_(getattr(self, self.last_norm).weight)

    def join(self, out, x):
        """relu(out + shortcut(x))."""
        return add_relu(out, x if self.downsample is None else self.downsample(x))


class BasicBlock(ResidualBlock):
    """Two 3x3 conv-BN layers and an identity (or projected) shortcut: ResNet-18/34.

    out = relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x))
    """

    expansion = 1
    last_norm = "bn2"

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1, base_width: int = 64):
        super().__init__()
        check_positive("BasicBlock", in_channels=in_channels, planes=planes, stride=stride)
        if cardinality != 1 or base_width != 64:
            raise ValueError(
                f"BasicBlock supports only cardinality=1 and base_width=64 (got {cardinality}, {base_width}); "
                "use block='bottleneck' for ResNeXt or Wide ResNet widths"
            )
        self.conv1 = nn.Conv2d(in_channels, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = bn_relu(self.bn1, self.relu, self.conv1(x))
        out = self.bn2(self.conv2(out))
        return self.join(out, x)


class Bottleneck(ResidualBlock):
    """1x1 reduce, 3x3 grouped (strided) conv, 1x1 expand by 4: ResNet-50+, Wide, ResNeXt.

    out = relu(bn3(conv3(relu(bn2(conv2(relu(bn1(conv1(x)))))))) + shortcut(x))
    """

    expansion = 4
    last_norm = "bn3"

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1, base_width: int = 64):
        super().__init__()
        check_positive("Bottleneck", in_channels=in_channels, planes=planes, stride=stride,
                        cardinality=cardinality, base_width=base_width)
        width = bottleneck_width(planes, base_width, cardinality)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, groups=cardinality, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = bn_relu(self.bn1, self.relu, self.conv1(x))
        out = bn_relu(self.bn2, self.relu, self.conv2(out))
        out = self.bn3(self.conv3(out))
        return self.join(out, x)

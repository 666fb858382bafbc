"""Split-attention convolution and the ResNeSt bottleneck (Zhang et al., 2020).

Follows the paper's reference code (zhanghang1989/ResNeSt, also timm's ``resnest``):
module names conv/bn0/fc1/bn1/fc2 inside the split-attention conv, so that reference
weights map one to one.
"""
from __future__ import annotations

from typing import Any

import lucid.nn as nn
import lucid.nn.functional as F
from lucid.models.blocks import ResidualBlock, bottleneck_width
from lucid.models.validation import check_positive


def _sum(tensors):
    total = tensors[0]
    for t in tensors[1:]:
        total = total + t
    return total


class SplitAttentionConv2d(nn.Module):
    """A grouped conv producing ``radix`` splits per cardinal group, fused by attention.

    y = conv(x) (groups = cardinality * radix) -> bn0 -> act, viewed as radix splits
    U_1..U_r of C channels; s = GAP(sum_r U_r); a = rsoftmax(fc2(act(bn1(fc1(s)))));
    out = sum_r a_r * U_r. The attention is a softmax over the radix axis within each
    cardinal group (a sigmoid when radix == 1). fc1/fc2 are grouped 1x1 convs with bias;
    fc1 has ``max(C * radix // 4, 32)`` channels. bn0 and bn1 are norm+activation modules
    of ``norm_layer`` / ``act_layer`` (BatchNormAct2d with a fused ReLU by default).
    """

    def __init__(self, channels: int, stride: int = 1, cardinality: int = 1, radix: int = 2,
                 reduction_factor: int = 4, norm_layer: Any = nn.BatchNorm2d, act_layer: Any = nn.ReLU):
        super().__init__()
        check_positive("SplitAttentionConv2d", channels=channels, stride=stride, cardinality=cardinality,
                       radix=radix, reduction_factor=reduction_factor)
        inter = max(channels * radix // reduction_factor, 32)
        if channels % (cardinality * radix) or inter % cardinality:
            raise ValueError(
                f"SplitAttentionConv2d: {channels} channels do not split into cardinality*radix = "
                f"{cardinality}*{radix} groups (and {inter} attention channels into {cardinality} groups); "
                "choose a cardinality and radix that divide the group width"
            )
        self.channels, self.cardinality, self.radix = channels, cardinality, radix
        self.conv = nn.Conv2d(channels, channels * radix, 3, stride=stride, padding=1,
                              groups=cardinality * radix, bias=False)
        norm_act = nn.get_norm_act_layer(norm_layer, act_layer)
        self.bn0 = norm_act(channels * radix)
        self.fc1 = nn.Conv2d(channels, inter, 1, groups=cardinality)
        self.bn1 = norm_act(inter)
        self.fc2 = nn.Conv2d(inter, channels * radix, 1, groups=cardinality)

    def radix_softmax(self, logits):
        """Attention weights (N, radix*C, 1, 1): softmax over the radix axis per cardinal group.

        fc2's output is ordered (cardinality, radix, C/cardinality); the result is ordered
        (radix, cardinality, C/cardinality) so that split r lines up with U_r.
        """
        n = logits.shape[0]
        if self.radix == 1:
            return F.sigmoid(logits)
        weights = logits.reshape(n, self.cardinality, self.radix, -1).transpose(1, 2)
        return F.softmax(weights, dim=1).reshape(n, -1, 1, 1)

    def forward(self, x):
        x = self.bn0(self.conv(x))
        splits = x.split(self.channels, dim=1) if self.radix > 1 else (x,)
        gap = F.adaptive_avg_pool2d(_sum(splits), 1)
        attention = self.fc2(self.bn1(self.fc1(gap)))
        attention = self.radix_softmax(attention)
        if self.radix == 1:
            return attention * x
        weights = attention.split(self.channels, dim=1)
        return _sum([w * u for w, u in zip(weights, splits)])


class _ResNeStBottleneck(ResidualBlock):
    """Bottleneck whose 3x3 conv is a split-attention conv; avd pools after it when strided.

    out = act(bn3(conv3(avd(splat(act(bn1(conv1(x))))))) + shortcut(x)), where avd is
    AvgPool2d(3, stride, padding=1) in blocks with stride > 1 (before the split-attention
    conv instead when ``avd_first``) and the split-attention conv then runs at stride 1.
    """

    expansion = 4
    last_norm = "bn3"

    def __init__(self, in_channels: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 cardinality: int = 1, base_width: int = 64, radix: int = 2, avd: bool = True,
                 avd_first: bool = False, norm_layer: Any = nn.BatchNorm2d, act_layer: Any = nn.ReLU):
        super().__init__(act_layer)
        check_positive("_ResNeStBottleneck", in_channels=in_channels, planes=planes, stride=stride,
                       cardinality=cardinality, base_width=base_width, radix=radix)
        width = bottleneck_width(planes, base_width, cardinality)
        use_avd = bool(avd) and stride > 1
        self.avd_first = bool(avd_first)
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = nn.get_norm_act_layer(norm_layer, act_layer)(width)
        self.conv2 = SplitAttentionConv2d(width, 1 if use_avd else stride, cardinality, radix,
                                          norm_layer=norm_layer, act_layer=act_layer)
        self.avd_layer = nn.AvgPool2d(3, stride, padding=1) if use_avd else None
        self.conv3 = nn.Conv2d(width, planes * self.expansion, 1, bias=False)
        self.bn3 = norm_layer(planes * self.expansion)
        self.downsample = downsample
        self.stride = stride

    def forward(self, x):
        out = self.bn1(self.conv1(x))
        if self.avd_layer is not None and self.avd_first:
            out = self.avd_layer(out)
        out = self.conv2(out)
        if self.avd_layer is not None and not self.avd_first:
            out = self.avd_layer(out)
        out = self.bn3(self.conv3(out))
        return self.join(out, x)

"""The ResNet stem: the layers before the first residual stage (max-pool excluded).

Children are named ``conv1``, ``bn1`` as torchvision's top-level stem (``bn1`` is the
norm+activation module, BatchNormAct2d by default), and the deep stem's ``conv1`` is the
Sequential(conv, norm, act, conv, norm, act, conv) of timm and the ResNeSt reference, so
reference keys map by adding the ``stem.`` prefix.
"""
from __future__ import annotations

from typing import Any

import lucid.nn as nn

STEM_TYPES = (None, "deep", "cifar")


class Stem(nn.Module):
    """conv1 -> bn1 (norm + activation), where conv1 depends on ``stem_type``:

    - None: one 7x7 stride-2 conv, in_channels -> width (torchvision).
    - "deep": three 3x3 convs in -> width -> width -> 2*width, the first with stride 2,
      norm and activation between them (ResNet-C/D, ResNeSt); the output has 2*width channels.
    - "cifar": one 3x3 stride-1 conv, in_channels -> width, for small images (the model
      then skips the max-pool as well).

    ``norm_layer`` / ``act_layer``: the norm class and activation class (BatchNorm2d, ReLU).
    """

    def __init__(self, in_channels: int, width: int, stem_type: str | None = None,
                 norm_layer: Any = nn.BatchNorm2d, act_layer: Any = nn.ReLU):
        super().__init__()
        if stem_type not in STEM_TYPES:
            raise ValueError(f"Stem: unknown stem_type {stem_type!r}; valid: {', '.join(map(repr, STEM_TYPES))}")
        self.stem_type = stem_type
        if stem_type == "deep":
            self.out_channels = 2 * width
            self.conv1 = nn.Sequential(
                nn.Conv2d(in_channels, width, 3, stride=2, padding=1, bias=False),
                norm_layer(width),
                act_layer(),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                norm_layer(width),
                act_layer(),
                nn.Conv2d(width, 2 * width, 3, padding=1, bias=False),
            )
        elif stem_type == "cifar":
            self.out_channels = width
            self.conv1 = nn.Conv2d(in_channels, width, 3, stride=1, padding=1, bias=False)
        else:
            self.out_channels = width
            self.conv1 = nn.Conv2d(in_channels, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.get_norm_act_layer(norm_layer, act_layer)(self.out_channels)

    def forward(self, x):
        return self.bn1(self.conv1(x))

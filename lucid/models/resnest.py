"""ResNeSt (Zhang et al., 2020): the ResNet builder with split-attention bottlenecks.

Architecture as the paper's reference code: deep stem (3x3 convs 3->w->w->2w),
average-pool shortcut (ResNet-D), split-attention 3x3 convs with radix-softmax
attention, and an "avd" 3x3 average pool carrying the stride of strided blocks.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

from lucid.models.config import ResNeStConfig
from lucid.models.resnet import ResNet


class ResNeSt(ResNet):
    """ResNeSt with the documented signature; ``options`` are further ResNeStConfig fields.

    Args:
        block: the block class (``_ResNeStBottleneck``) or a name from ``lucid.models.BLOCKS``.
        layers: blocks per stage, e.g. [3, 4, 6, 3] for ResNeSt-50.
        num_classes: outputs of the final linear layer.
        base_width: width per cardinal group, scaled by planes/64.
        stem_width: width w of the deep stem (its output has 2w channels).
        cardinality: cardinal groups K.
        radix: splits R per cardinal group (1 = sigmoid gating, SE-like).
        avd: pool the stride out of strided blocks with AvgPool2d(3, s, padding=1).
        **options: in_channels, stem_type, avg_down, channels, avd_first, block_args,
            zero_init_residual, norm_layer, act_layer (see ResNeStConfig).
    """

    def __init__(self, block: Any, layers: Sequence[int], num_classes: int = 1000, base_width: int = 64,
                 stem_width: int = 32, cardinality: int = 1, radix: int = 2, avd: bool = True, **options: Any):
        config = ResNeStConfig(block=block, layers=layers, num_classes=num_classes, base_width=base_width,
                               stem_width=stem_width, cardinality=cardinality, radix=radix, avd=avd, **options)
        super().__init__(config)
        self.base_width, self.cardinality, self.radix, self.avd = base_width, cardinality, radix, avd

    @classmethod
    def from_config(cls, config: ResNeStConfig) -> "ResNeSt":
        """The model a ResNeStConfig describes (``ResNeSt(**fields)``)."""
        if not isinstance(config, ResNeStConfig):
            raise TypeError(f"ResNeSt.from_config expects a ResNeStConfig, got {type(config).__name__}")
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})

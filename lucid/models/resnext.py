"""ResNeXt (Xie et al., 2017): the ResNet builder with grouped-convolution bottlenecks."""
from __future__ import annotations

from lucid.models.config import ResNeXtConfig
from lucid.models.resnet import ResNet


class ResNeXt(ResNet):
    """ResNet whose bottleneck 3x3 convs have ``cardinality`` groups.

    The bottleneck width of a stage with ``planes`` is
    ``int(planes * base_width / 64) * cardinality`` (32x4d: 128 channels in 32 groups
    for planes=64). Attributes beyond ResNet's: ``cardinality`` and ``base_width``.
    """

    def __init__(self, config: ResNeXtConfig):
        if not isinstance(config, ResNeXtConfig):
            raise TypeError(f"ResNeXt expects a ResNeXtConfig, got {type(config).__name__}")
        super().__init__(config)
        self.cardinality = config.cardinality
        self.base_width = config.base_width

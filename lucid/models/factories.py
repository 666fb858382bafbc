"""Named presets of the one builder: resnet_18 ... resnest_269, registered by name.

Each factory is ``name(num_classes=1000, **overrides)``. The fields that define the
family (the block, and cardinality / base width / radix where the name states them)
are fixed: overriding them is an error. Any other config field may be overridden,
e.g. ``resnet_18(num_classes=10, in_channels=1, stem_type="cifar")`` for small images,
or ``layers`` for a shallower test model.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable

from lucid.models.config import ResNeStConfig, ResNetConfig, ResNeXtConfig
from lucid.models.registry import register_model
from lucid.models.resnest import ResNeSt
from lucid.models.resnet import ResNet
from lucid.models.resnext import ResNeXt

# config class -> (builder, how a user builds other values of the fixed fields)
_BUILDERS = {
    ResNetConfig: (ResNet, "ResNet(ResNetConfig(...))"),
    ResNeXtConfig: (ResNeXt, "ResNeXt(ResNeXtConfig(...))"),
    ResNeStConfig: (ResNeSt.from_config, "ResNeSt(block, layers, ...)"),
}


def _preset(name: str, config_cls: type, fixed: dict[str, Any], defaults: dict[str, Any], summary: str) -> Callable:
    """Register a factory building ``config_cls(**fixed, **defaults, **overrides)``."""
    fields = {f.name for f in dataclasses.fields(config_cls)}
    overridable = sorted(fields - set(fixed) - {"num_classes"})
    build, hint = _BUILDERS[config_cls]

    def factory(num_classes: int = 1000, **overrides: Any):
        fixed_clash = sorted(set(overrides) & set(fixed))
        if fixed_clash:
            raise ValueError(
                f"{name} fixes {', '.join(f'{k}={fixed[k]!r}' for k in fixed_clash)}; build {hint} for other values"
            )
        unknown = sorted(set(overrides) - fields)
        if unknown:
            raise ValueError(f"{name}: unknown override(s) {unknown}; valid: num_classes, {', '.join(overridable)}")
        return build(config_cls(**fixed, **{**defaults, **overrides}, num_classes=num_classes))

    factory.__name__ = factory.__qualname__ = name
    factory.__doc__ = f"{summary}\n\nFixed: {fixed}. Defaults: {defaults}. Overridable: num_classes, {', '.join(overridable)}."
    return register_model(factory)


def _resnet(name: str, block: str, layers: list[int], **defaults: Any) -> Callable:
    return _preset(name, ResNetConfig, {"block": block}, {"layers": layers, **defaults},
                   f"ResNet-{name.split('_')[-1]} ({block} blocks {layers}, torchvision architecture).")


def _wide(name: str, layers: list[int]) -> Callable:
    return _preset(name, ResNetConfig, {"block": "bottleneck", "block_args": {"base_width": 128}},
                   {"layers": layers}, f"Wide ResNet ({layers}, bottleneck width x2: base_width 128).")


def _resnext(name: str, layers: list[int], cardinality: int, base_width: int) -> Callable:
    return _preset(name, ResNeXtConfig, {"cardinality": cardinality, "base_width": base_width, "block": "bottleneck"},
                   {"layers": layers}, f"ResNeXt {layers} {cardinality}x{base_width}d (torchvision architecture).")


def _resnest(name: str, layers: list[int], stem_width: int, radix: int = 2, cardinality: int = 1,
             base_width: int = 64, avd_first: bool = False) -> Callable:
    fixed = {"block": "resnest_bottleneck", "radix": radix, "cardinality": cardinality, "base_width": base_width}
    return _preset(name, ResNeStConfig, fixed, {"layers": layers, "stem_width": stem_width, "avd_first": avd_first},
                   f"ResNeSt {layers} {radix}s{cardinality}x{base_width}d (ResNeSt reference architecture).")


resnet_18 = _resnet("resnet_18", "basic", [2, 2, 2, 2])
resnet_34 = _resnet("resnet_34", "basic", [3, 4, 6, 3])
resnet_50 = _resnet("resnet_50", "bottleneck", [3, 4, 6, 3])
resnet_101 = _resnet("resnet_101", "bottleneck", [3, 4, 23, 3])
resnet_152 = _resnet("resnet_152", "bottleneck", [3, 8, 36, 3])
resnet_200 = _resnet("resnet_200", "bottleneck", [3, 24, 36, 3])
resnet_269 = _resnet("resnet_269", "bottleneck", [3, 30, 48, 8])

wide_resnet_50 = _wide("wide_resnet_50", [3, 4, 6, 3])
wide_resnet_101 = _wide("wide_resnet_101", [3, 4, 23, 3])

resnext_50_32x4d = _resnext("resnext_50_32x4d", [3, 4, 6, 3], 32, 4)
resnext_101_32x4d = _resnext("resnext_101_32x4d", [3, 4, 23, 3], 32, 4)
resnext_101_32x8d = _resnext("resnext_101_32x8d", [3, 4, 23, 3], 32, 8)
resnext_101_64x4d = _resnext("resnext_101_64x4d", [3, 4, 23, 3], 64, 4)

resnest_14 = _resnest("resnest_14", [1, 1, 1, 1], stem_width=32)
resnest_26 = _resnest("resnest_26", [2, 2, 2, 2], stem_width=32)
resnest_50 = _resnest("resnest_50", [3, 4, 6, 3], stem_width=32)
resnest_101 = _resnest("resnest_101", [3, 4, 23, 3], stem_width=64)
resnest_200 = _resnest("resnest_200", [3, 24, 36, 3], stem_width=64)
resnest_269 = _resnest("resnest_269", [3, 30, 48, 8], stem_width=64)
resnest_50_4s2x40d = _resnest("resnest_50_4s2x40d", [3, 4, 6, 3], stem_width=32, radix=4, cardinality=2,
                              base_width=40, avd_first=True)
resnest_50_1s4x24d = _resnest("resnest_50_1s4x24d", [3, 4, 6, 3], stem_width=32, radix=1, cardinality=4,
                              base_width=24, avd_first=True)

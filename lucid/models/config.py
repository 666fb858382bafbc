"""Validated configurations of the ResNet family: ResNetConfig, ResNeXtConfig, ResNeStConfig.

One builder (``lucid.models.ResNet``) reads any of them; the families differ only in
the block and the per-block arguments (timm's "families are presets, not copies").
Every field is checked when the config is made, so a typo fails early with a message
that names the field and, for names, the valid choices.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Sequence

import lucid.nn as nn
from lucid.models.blocks import BasicBlock, Bottleneck
from lucid.models.split_attention import _ResNeStBottleneck
from lucid.models.stem import STEM_TYPES
from lucid.models.validation import check_positive, positive_tuple

BLOCKS: dict[str, type] = {
    "basic": BasicBlock,
    "bottleneck": Bottleneck,
    "resnest_bottleneck": _ResNeStBottleneck,
}


def resolve_block(block: Any, owner: str = "ResNetConfig") -> type:
    """The block class for a name in BLOCKS or a class with an integer ``expansion``."""
    if isinstance(block, str):
        if block not in BLOCKS:
            raise ValueError(f"{owner}: unknown block {block!r}; valid names: {', '.join(BLOCKS)} (or a block class)")
        return BLOCKS[block]
    if not isinstance(block, type) or not isinstance(getattr(block, "expansion", None), int):
        raise TypeError(
            f"{owner}: block must be one of {', '.join(BLOCKS)} or a block class with an integer "
            f"'expansion' attribute, got {block!r}"
        )
    return block


def layer_kwargs(block: type, norm_class: Any, act_class: Any, owner: str) -> dict[str, Any]:
    """``norm_layer`` / ``act_layer`` for the blocks: given when the block's constructor takes
    them; a block that does not (a user block building its own layers) gets neither, which
    is an error unless both are the defaults (BatchNorm2d, ReLU)."""
    params = inspect.signature(block).parameters
    anything = any(p.kind is p.VAR_KEYWORD for p in params.values())
    out = {}
    for name, value, default in (("norm_layer", norm_class, nn.BatchNorm2d), ("act_layer", act_class, nn.ReLU)):
        if anything or name in params:
            out[name] = value
        elif value is not default:
            raise ValueError(f"{owner}: block {block.__name__} takes no {name} argument, so {name}="
                             f"{getattr(value, '__name__', value)!r} cannot apply; leave {name} at its default")
    return out


@dataclass(kw_only=True)
class _NetworkFields:
    """Stem, stage-width, norm / activation and head fields shared by every config (keyword-only).

    ``norm_layer`` / ``act_layer``: a name registered in ``lucid.nn.NORM_LAYERS`` /
    ``lucid.nn.ACT_LAYERS`` ("batchnorm", "relu"; "silu") or a layer class.
    """

    num_classes: int = 1000
    in_channels: int = 3
    stem_type: str | None = None
    stem_width: int = 64
    avg_down: bool = False
    channels: Sequence[int] = (64, 128, 256, 512)
    block_args: dict[str, Any] = field(default_factory=dict)
    zero_init_residual: bool = False
    norm_layer: Any = "batchnorm"
    act_layer: Any = "relu"

    def __post_init__(self) -> None:
        owner = type(self).__name__
        self.block_class = resolve_block(self.block, owner)
        self.norm_class = nn.resolve_layer(nn.NORM_LAYERS, self.norm_layer, owner, "norm_layer")
        self.act_class = nn.resolve_layer(nn.ACT_LAYERS, self.act_layer, owner, "act_layer")
        try:
            nn.get_norm_act_layer(self.norm_class, self.act_class)
        except ValueError as exc:
            raise ValueError(f"{owner}: {exc}") from None
        self.layers = positive_tuple(owner, "layers", self.layers)
        self.channels = positive_tuple(owner, "channels", self.channels)
        if len(self.layers) != len(self.channels):
            raise ValueError(
                f"{owner}: layers {self.layers} has {len(self.layers)} stages but channels {self.channels} "
                f"has {len(self.channels)}; give one width per stage"
            )
        check_positive(owner, num_classes=self.num_classes, in_channels=self.in_channels, stem_width=self.stem_width)
        if self.stem_type not in STEM_TYPES:
            raise ValueError(f"{owner}: unknown stem_type {self.stem_type!r}; valid: {', '.join(map(repr, STEM_TYPES))}")
        for name in ("avg_down", "zero_init_residual"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{owner}: {name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.block_args, dict):
            raise TypeError(f"{owner}: block_args must be a dict of keyword arguments, got {self.block_args!r}")
        clash = sorted(set(self.block_args) & {*self.family_block_args(), "norm_layer", "act_layer"})
        if clash:
            raise ValueError(f"{owner}: block_args repeats {clash}; set them as config fields instead")
        self._layer_kwargs = layer_kwargs(self.block_class, self.norm_class, self.act_class, owner)

    def family_block_args(self) -> dict[str, Any]:
        """Per-block keyword arguments that the family's own fields define."""
        return {}

    def block_kwargs(self) -> dict[str, Any]:
        """Keyword arguments every block of the network receives."""
        return {**self.family_block_args(), **self._layer_kwargs, **self.block_args}


@dataclass
class ResNetConfig(_NetworkFields):
    """ResNet: ``block`` ("basic", "bottleneck" or a block class) and blocks per stage.

    Wide ResNet is ``block="bottleneck", block_args={"base_width": 128}``.
    """

    block: Any
    layers: Sequence[int]


@dataclass
class ResNeXtConfig(_NetworkFields):
    """ResNeXt: bottlenecks whose 3x3 conv has ``cardinality`` groups of ``base_width``-scaled width."""

    layers: Sequence[int]
    cardinality: int
    base_width: int
    block: Any = field(default="bottleneck", kw_only=True)

    def __post_init__(self) -> None:
        check_positive(type(self).__name__, cardinality=self.cardinality, base_width=self.base_width)
        super().__post_init__()

    def family_block_args(self) -> dict[str, Any]:
        return {"cardinality": self.cardinality, "base_width": self.base_width}


@dataclass(kw_only=True)
class ResNeStConfig(_NetworkFields):
    """ResNeSt: split-attention bottlenecks, deep stem and average-pool shortcut by default."""

    block: Any = "resnest_bottleneck"
    layers: Sequence[int]
    base_width: int = 64
    cardinality: int = 1
    radix: int = 2
    avd: bool = True
    avd_first: bool = False
    stem_type: str | None = "deep"
    stem_width: int = 32
    avg_down: bool = True

    def __post_init__(self) -> None:
        owner = type(self).__name__
        check_positive(owner, base_width=self.base_width, cardinality=self.cardinality, radix=self.radix)
        for name in ("avd", "avd_first"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{owner}: {name} must be True or False, got {getattr(self, name)!r}")
        super().__post_init__()

    def family_block_args(self) -> dict[str, Any]:
        return {"cardinality": self.cardinality, "base_width": self.base_width, "radix": self.radix,
                "avd": self.avd, "avd_first": self.avd_first}

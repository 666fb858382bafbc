"""Typed run configuration: TOML -> dataclasses, validated key by key.

A run config has five tables — ``[model]``, ``[data]``, ``[optim]``, ``[schedule]``,
``[run]`` — each a dataclass below. Every field carries its type and, where it
matters, a range check; an unknown key, a wrong type or an out-of-range value is a
``ConfigError`` naming the key and the file. ``--set a.b=value`` overrides use the
same path, with the value parsed as a TOML literal.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from typing import Any, Callable

from lucid.data.presets import PRESETS
from lucid.nn.layer_registry import ACT_LAYERS, NORM_LAYERS
from lucid.optim.registry import OPTIMIZERS
from lucid.registry import Registry
from lucid.train.data_sources import SOURCES
from lucid.train.schedules import SCHEDULES
from lucid.train.tensorboard import require_tensorboardx


class ConfigError(ValueError):
    """A config value is missing, unknown, of the wrong type or out of range."""


def _check(predicate: Callable[[Any], bool], message: str):
    return {"check": (predicate, message)}


def _positive():
    return _check(lambda v: v > 0, "must be > 0")


def _non_negative():
    return _check(lambda v: v >= 0, "must be >= 0")


def _registered(registry: Registry, args: str):
    """A name looked up in ``registry``; its keyword arguments are the dict field ``args``."""
    return {"registry": (registry, args)}


def _one_of(*choices):
    return _check(lambda v: v in choices, f"must be one of {', '.join(map(repr, choices))}")


@dataclass
class ModelConfig:
    """Which network: a registered factory name plus keyword overrides for it."""

    name: str = "resnet_18"
    num_classes: int = field(default=1000, metadata=_positive())
    overrides: dict = field(default_factory=dict)
    pretrained: str = ""  # a .safetensors / .npz state dict to start from ("" = random init)
    pretrained_source: str = field(default="auto", metadata=_one_of("auto", "torchvision", "timm", "lucid"))
    freeze: list = field(default_factory=list)  # module-name prefixes not trained, e.g. ["stem", "layer1"]
    norm_layer: str = ""  # a name in lucid.nn.NORM_LAYERS for every norm of the model ("" = the model's default)
    act_layer: str = ""  # a name in lucid.nn.ACT_LAYERS for every activation ("" = the model's default)


@dataclass
class DataConfig:
    """Where the images come from and how they are augmented and batched."""

    source: str = field(default="folder", metadata=_registered(SOURCES, "source_args"))
    source_args: dict = field(default_factory=dict)  # keyword arguments of the source, e.g. fake's train_samples
    root: str = "data"
    train_split: str = "train"
    val_split: str = "val"
    image_size: int = field(default=224, metadata=_positive())
    channels: int = field(default=3, metadata=_one_of(1, 3))
    train_preset: str = field(default="imagenet_train", metadata=_registered(PRESETS, "train_preset_args"))
    eval_preset: str = field(default="imagenet_eval", metadata=_registered(PRESETS, "eval_preset_args"))
    train_preset_args: dict = field(default_factory=dict)  # extra keyword arguments of the preset
    eval_preset_args: dict = field(default_factory=dict)
    batch_size: int = field(default=32, metadata=_positive())  # per rank
    eval_batch_size: int = field(default=0, metadata=_non_negative())  # 0 = batch_size
    workers: int = field(default=2, metadata=_non_negative())
    worker_mode: str = field(default="thread", metadata=_one_of("thread", "process"))  # DataLoader's worker_mode
    persistent_workers: bool = False  # keep the loaders' workers from epoch to epoch (with workers > 0)
    on_error: str = field(default="raise", metadata=_one_of("raise", "skip"))
    mixup_alpha: float = field(default=0.0, metadata=_non_negative())  # Beta(a, a) of mixup's lambda; 0 = off
    cutmix_alpha: float = field(default=0.0, metadata=_non_negative())  # Beta(a, a) of CutMix's lambda; 0 = off
    mix_prob: float = field(default=1.0, metadata=_check(lambda v: 0 <= v <= 1, "must be in [0, 1]"))  # per batch
    switch_prob: float = field(default=0.5, metadata=_check(lambda v: 0 <= v <= 1, "must be in [0, 1]"))  # CutMix share
    # where the images are normalised: "loader" (float32 samples) or "device" (uint8 batches,
    # normalised after the copy to the run's device: a quarter of the host copy and upload)
    normalize_on: str = field(default="loader", metadata=_one_of("loader", "device"))


@dataclass
class OptimConfig:
    """Optimizer; ``lr`` is per 256 images and scaled by the global batch (linear scaling rule).
    ``args`` are the registered optimizer's other keyword arguments (SGD's momentum, ...)."""

    name: str = field(default="sgd", metadata=_registered(OPTIMIZERS, "args"))
    args: dict = field(default_factory=dict)  # e.g. { momentum = 0.9, nesterov = true }; constructor defaults otherwise
    lr: float = field(default=0.1, metadata=_positive())
    scale_lr: bool = True
    weight_decay: float = field(default=1e-4, metadata=_non_negative())
    decay_bn_and_bias: bool = False
    label_smoothing: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "must be in [0, 1)"))
    backbone_lr_scale: float = field(default=1.0, metadata=_positive())  # lr factor outside the classifier
    clip_grad_norm: float = field(default=0.0, metadata=_non_negative())  # max global L2 norm; 0 = off


@dataclass
class ScheduleConfig:
    """Learning-rate schedule per step: linear warmup, then a registered schedule (cosine,
    multistep, constant, ...) with ``args`` as its keyword arguments."""

    name: str = field(default="cosine", metadata=_registered(SCHEDULES, "args"))
    args: dict = field(default_factory=dict)  # e.g. { milestones = [30, 60, 80], gamma = 0.1 }
    warmup_epochs: float = field(default=0.0, metadata=_non_negative())
    warmup_start_factor: float = field(default=0.01, metadata=_check(lambda v: 0 < v <= 1, "must be in (0, 1]"))


@dataclass
class RunConfig:
    """Length, seeding, parallelism options, intervals and where outputs go."""

    name: str = "run"
    output_dir: str = "runs"
    epochs: int = field(default=1, metadata=_positive())
    max_steps: int = field(default=0, metadata=_non_negative())  # 0 = no limit (debug runs use a few)
    seed: int = 0
    device: str = field(default="cpu", metadata=_one_of("cpu", "gpu"))  # "gpu": the local rank's GPU
    dtype: str = field(default="float32", metadata=_one_of("float32", "float64"))
    amp: str = field(default="none", metadata=_one_of("none", "fp16", "bf16"))  # mixed precision (lucid.amp)
    sync_bn: bool = True
    grad_accum: int = field(default=1, metadata=_positive())
    fp16_compression: bool = False
    log_interval: int = field(default=20, metadata=_positive())  # steps
    eval_interval: int = field(default=1, metadata=_non_negative())  # epochs; 0 = only at the end
    ckpt_interval: int = field(default=0, metadata=_non_negative())  # steps; 0 = at each epoch end
    keep_last: int = field(default=3, metadata=_positive())
    ckpt_minutes: float = field(default=0.0, metadata=_non_negative())  # time-based checkpoints; 0 = off
    preempt_grace_s: float = field(default=60.0, metadata=_positive())  # from a stop signal to giving up
    keep_best: bool = False  # also keep the checkpoint with the best val top-1
    ema_decay: float = field(default=0.0, metadata=_check(lambda v: 0 <= v < 1, "must be in [0, 1)"))  # 0 = off
    ema_warmup: bool = True  # timm's decay warmup: 1 - (1 + step)^(-2/3), capped at ema_decay
    progress: bool = True
    log_samples: bool = False  # append each step's sample ids to samples-rank<r>.jsonl (debugging)
    replica_check_interval: int = field(default=200, metadata=_non_negative())  # steps; 0 = off
    tensorboard: bool = False  # also write TensorBoard event files to <run_dir>/tensorboard (needs tensorboardX)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def to_toml(self) -> str:
        """The config as TOML text (what ``--print-config`` shows and checkpoints store)."""
        lines = []
        for section, values in self.to_dict().items():
            nested = {k: v for k, v in values.items() if isinstance(v, dict)}
            lines.append(f"[{section}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if k not in nested]
            for k, v in nested.items():
                lines.append(f"\n[{section}.{k}]")
                lines += [f"{kk} = {_toml_value(vv)}" for kk, vv in v.items()]
            lines.append("")
        return "\n".join(lines)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return repr(v)


_TYPES = {"str": str, "int": int, "float": float, "bool": bool, "list": list, "dict": dict}


def _type_ok(value: Any, type_name: str) -> tuple[bool, Any]:
    """Whether ``value`` fits the field type; ints are accepted (and converted) for floats."""
    kind = _TYPES[type_name]
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return ok, float(value) if ok else value
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool), value
    return isinstance(value, kind), value


def _build(cls, values: dict, where: str, source: str):
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: [{where}] must be a table, got {type(values).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{source}: unknown key {where}.{unknown[0]} (valid keys in [{where}]: {', '.join(sorted(fields))})"
        )
    kwargs = {}
    for name, value in values.items():
        f = fields[name]
        ok, value = _type_ok(value, f.type)
        if not ok:
            raise ConfigError(f"{source}: {where}.{name} must be of type {f.type}, got {value!r}")
        check = f.metadata.get("check")
        if check and not check[0](value):
            raise ConfigError(f"{source}: {where}.{name} = {value!r} {check[1]}")
        kwargs[name] = value
    built = cls(**kwargs)
    for f in fields.values():
        if "registry" in f.metadata:
            _check_registered(built, f.name, *f.metadata["registry"], where, source)
    return built


def _check_registered(section, name_field: str, registry: Registry, args_field: str, where: str, source: str) -> None:
    """The named entry exists and accepts the keyword arguments given for it."""
    name = getattr(section, name_field)
    if name not in registry:
        raise ConfigError(
            f"{source}: {where}.{name_field} = {name!r} is not a registered {registry.kind} "
            f"(valid: {', '.join(registry.names())})"
        )
    try:
        registry.check(name, getattr(section, args_field), f"{where}.{args_field}")
    except ValueError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def config_from_dict(data: dict, source: str = "<config>") -> TrainConfig:
    """Validate a nested dict (as read from TOML) into a TrainConfig."""
    sections = {f.name: f.default_factory for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - set(sections))
    if unknown:
        raise ConfigError(f"{source}: unknown table [{unknown[0]}] (valid tables: {', '.join(sections)})")
    built = {}
    for name, factory in sections.items():
        built[name] = _build(type(factory()), data.get(name, {}), name, source)
    cfg = TrainConfig(**built)
    _check_consistency(cfg, source)
    return cfg


def _check_consistency(cfg: TrainConfig, source: str) -> None:
    mixing = [f"data.{k} = {getattr(cfg.data, k)}" for k in ("mixup_alpha", "cutmix_alpha") if getattr(cfg.data, k) > 0]
    if mixing and cfg.model.num_classes < 2:
        raise ConfigError(
            f"{source}: {' and '.join(mixing)} mixes the labels of two samples, which needs model.num_classes >= 2, "
            f"got model.num_classes = {cfg.model.num_classes}"
        )
    if any(not isinstance(p, str) or not p for p in cfg.model.freeze):
        raise ConfigError(f"{source}: model.freeze must be a list of module-name prefixes, got {cfg.model.freeze!r}")
    for key, registry in (("norm_layer", NORM_LAYERS), ("act_layer", ACT_LAYERS)):
        value = getattr(cfg.model, key)
        if value and value not in registry:
            raise ConfigError(f"{source}: model.{key} = {value!r} is not a registered {registry.kind} "
                              f"(valid: {', '.join(registry.names())})")
        if value and key in cfg.model.overrides:
            raise ConfigError(f"{source}: model.{key} and model.overrides.{key} are both set; keep one")
    if cfg.run.tensorboard:
        try:
            require_tensorboardx()
        except ImportError as exc:
            raise ConfigError(f"{source}: {exc}") from None
    if cfg.run.amp != "none" and cfg.run.dtype != "float32":
        raise ConfigError(
            f"{source}: run.amp = {cfg.run.amp!r} needs run.dtype = 'float32' (mixed precision keeps float32 "
            f"master weights), got run.dtype = {cfg.run.dtype!r}"
        )
    if cfg.schedule.warmup_epochs > cfg.run.epochs:
        raise ConfigError(
            f"{source}: schedule.warmup_epochs = {cfg.schedule.warmup_epochs} is longer than run.epochs = {cfg.run.epochs}"
        )


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value); the value is a TOML literal, else a bare string."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. optim.lr=0.05")
    key, raw = text.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if len(path) < 2 or not all(path):
        raise ConfigError(f"--set {text!r}: the key must be table.key, e.g. run.epochs=3")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return path, value


def load_config(path: str, overrides: list[str] = ()) -> TrainConfig:
    """Read a TOML run config, apply ``--set`` overrides, validate."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for text in overrides:
        keys, value = parse_override(text)
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {text!r}: {k} is not a table in {path}")
        node[keys[-1]] = value
    source = path + (" (with --set overrides)" if overrides else "")
    return config_from_dict(data, source)

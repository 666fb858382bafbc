"""RefNet arguments (benchmarks/torch_reference.py) for a lucid model config, without importing torch.

Kept apart from the torch module so that lucid's benchmark worker can describe the
architecture to the PyTorch worker and still measure only its own memory.
"""


def reference_kwargs(config) -> dict:
    """RefNet arguments for the architecture of a lucid ResNetConfig / ResNeXtConfig / ResNeStConfig."""
    from lucid.models import BasicBlock, ResNeStConfig

    if config.stem_type not in (None, "cifar") and not isinstance(config, ResNeStConfig):
        raise ValueError(f"no PyTorch reference for stem_type={config.stem_type!r} outside ResNeSt")
    if config.avg_down != isinstance(config, ResNeStConfig):
        raise ValueError("the PyTorch reference has the avg-down shortcut exactly for ResNeSt")
    kwargs = dict(layers=list(config.layers), channels=tuple(config.channels), num_classes=config.num_classes,
                  stem_width=config.stem_width, in_channels=config.in_channels, cifar=config.stem_type == "cifar")
    block_args = config.block_kwargs()
    kwargs.update(groups=block_args.get("cardinality", 1), base_width=block_args.get("base_width", 64))
    if isinstance(config, ResNeStConfig):
        if config.stem_type != "deep" or not config.avd or config.avd_first:
            raise ValueError("the PyTorch ResNeSt reference has the deep stem and avd after the 3x3 only")
        kwargs.update(resnest=True, radix=config.radix)
    else:
        kwargs["bottleneck"] = config.block_class is not BasicBlock
    return kwargs

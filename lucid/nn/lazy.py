"""Lazy layers: LazyLinear, LazyConv2d, LazyBatchNorm2d (and LazyBatchNormAct2d) infer their
input size at the first forward.

Until then their parameters (and BatchNorm's running statistics) are
``UninitializedParameter`` / ``UninitializedBuffer`` placeholders: ``parameters()``
lists them, so an optimizer can be built right away (it holds the same objects, which
are materialised in place), but their shape and element count are unknown and asking
for them raises ValueError. The first forward (or loading a state_dict that holds
every such entry) allocates and initialises them, sets ``in_features`` /
``in_channels`` / ``num_features`` and turns the module into a plain Linear / Conv2d /
BatchNorm2d, exactly as PyTorch's lazy modules do.
"""
from __future__ import annotations

import itertools
from typing import Any, Callable

from lucid.nn.activation import ReLU
from lucid.nn.conv import Conv2d
from lucid.nn.linear import Linear
from lucid.nn.module import Module
from lucid.nn.norm_act import BatchNormAct2d
from lucid.nn.normalization import BatchNorm2d
from lucid.nn.parameter import UninitializedBuffer, UninitializedParameter, is_uninitialized


class LazyModuleMixin:
    """Mixin (listed before the eager class) that defers shape inference to the first forward.

    A subclass sets ``cls_to_become``, implements ``initialize_parameters(*inputs)`` and
    ``_infer_sizes()`` (the inferred size from materialised tensors, for state_dict loads).
    """

    cls_to_become: type | None = None

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._initialize_hook = self.register_forward_pre_hook(_infer_parameters)

    def has_uninitialized_params(self) -> bool:
        return any(is_uninitialized(t) for t in itertools.chain(self._parameters.values(), self._buffers.values()))

    def initialize_parameters(self, *inputs: Any) -> None:
        raise NotImplementedError

    def _infer_sizes(self) -> None:
        raise NotImplementedError

    def _become_eager(self) -> None:
        self._initialize_hook.remove()
        del self._initialize_hook
        self._infer_sizes()
        self.__class__ = self.cls_to_become

    def _load_from_state_dict(self, state_dict: dict, prefix: str, missing: list, expected: set, errors: list) -> None:
        """Loading materialises the placeholders with the stored shapes."""
        super()._load_from_state_dict(state_dict, prefix, missing, expected, errors)
        if not self.has_uninitialized_params():
            self._become_eager()


def _infer_parameters(module: LazyModuleMixin, args: tuple) -> None:
    """Forward pre-hook: materialise from the first input, then stop being lazy."""
    module.initialize_parameters(*args)
    if module.has_uninitialized_params():
        raise RuntimeError(f"{type(module).__name__} has not been fully initialized")
    module._become_eager()


def _placeholders(module, names: tuple, cls: type, device: Any, dtype: Any) -> None:
    """Replace the (empty) tensors ``names`` that the eager __init__ made by placeholders."""
    register = module.register_parameter if cls is UninitializedParameter else module.register_buffer
    for name in names:
        if getattr(module, name) is not None:
            register(name, cls(device=device, dtype=dtype))


class LazyLinear(LazyModuleMixin, Linear):
    """A Linear whose ``in_features`` is the last dimension of the first input."""

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__(0, 0, bias, device, dtype)
        self.out_features = out_features
        _placeholders(self, ("weight", "bias"), UninitializedParameter, device, dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        if self.has_uninitialized_params():
            self.in_features = input.shape[-1]
            self.weight.materialize((self.out_features, self.in_features))
            if self.bias is not None:
                self.bias.materialize((self.out_features,))
            self.reset_parameters()

    def _infer_sizes(self) -> None:
        self.in_features = self.weight.shape[1]


class LazyConv2d(LazyModuleMixin, Conv2d):
    """A Conv2d whose ``in_channels`` is dimension 1 of the first (N, C, H, W) input."""

    cls_to_become = Conv2d

    def __init__(
        self,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__(0, 0, kernel_size, stride, padding, dilation, groups, bias, padding_mode, device, dtype)
        if out_channels % groups:
            raise ValueError(f"LazyConv2d: out_channels ({out_channels}) must be divisible by groups ({groups})")
        self.out_channels = out_channels
        _placeholders(self, ("weight", "bias"), UninitializedParameter, device, dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.in_channels != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        if not self.has_uninitialized_params():
            return
        if input.ndim != 4:
            raise ValueError(f"LazyConv2d: expected 4D input (N, C, H, W), got shape {input.shape}")
        if input.shape[1] % self.groups:
            raise ValueError(f"LazyConv2d: input channels ({input.shape[1]}) must be divisible by groups ({self.groups})")
        self.in_channels = input.shape[1]
        self.weight.materialize((self.out_channels, self.in_channels // self.groups, *self.kernel_size))
        if self.bias is not None:
            self.bias.materialize((self.out_channels,))
        self.reset_parameters()

    def _infer_sizes(self) -> None:
        self.in_channels = self.weight.shape[1] * self.groups


class LazyBatchNorm2d(LazyModuleMixin, BatchNorm2d):
    """A BatchNorm2d whose ``num_features`` is dimension 1 of the first (N, C, H, W) input."""

    cls_to_become = BatchNorm2d

    def __init__(
        self,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__(0, eps, momentum, affine, track_running_stats, device, dtype)
        _placeholders(self, ("weight", "bias"), UninitializedParameter, device, dtype)
        _placeholders(self, ("running_mean", "running_var"), UninitializedBuffer, device, dtype)

    def reset_parameters(self) -> None:
        if not self.has_uninitialized_params() and self.num_features != 0:
            super().reset_parameters()

    def initialize_parameters(self, input: Any) -> None:
        if input.ndim != 4:
            raise ValueError(f"LazyBatchNorm2d: expected 4D input (N, C, H, W), got shape {input.shape}")
        self.num_features = input.shape[1]
        if self.has_uninitialized_params():
            for t in itertools.chain(self._parameters.values(), self._buffers.values()):
                if is_uninitialized(t):
                    t.materialize((self.num_features,))
            self.reset_parameters()

    def _infer_sizes(self) -> None:
        reference = self.running_mean if self.running_mean is not None else self.weight
        if reference is not None:
            self.num_features = reference.shape[0]


class LazyBatchNormAct2d(LazyBatchNorm2d, BatchNormAct2d):
    """A BatchNormAct2d (BatchNorm2d + ``act_layer()``, fused when a ReLU) whose ``num_features``
    is dimension 1 of the first input; it becomes a BatchNormAct2d."""

    cls_to_become = BatchNormAct2d

    def __init__(self, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *,
                 act_layer: Callable[[], Module] = ReLU):
        super().__init__(eps, momentum, affine, track_running_stats, device, dtype)
        self.act = act_layer()

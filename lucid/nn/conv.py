"""Conv2d: 2-D convolution over (N, C, H, W) input (cross-correlation, as PyTorch)."""
from __future__ import annotations

from typing import Any

from lucid.nn import functional as F
from lucid.nn.linear import add_weight_and_bias, reset_weight_and_bias
from lucid.nn.module import Module
from lucid.tensor import Tensor


def _pair(value: Any, name: str) -> tuple[int, int]:
    """``3`` -> (3, 3); a pair stays a pair; anything else is a ValueError naming the argument."""
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    pair = tuple(value)
    if len(pair) != 2 or not all(isinstance(v, int) for v in pair):
        raise ValueError(f"{name} must be an int or a pair of ints, got {value!r}")
    return pair


def _conv_padding(padding: Any, kernel_size: tuple, stride: tuple, dilation: tuple) -> tuple[int, int]:
    """Numeric padding for ``padding`` given as ints or as PyTorch's 'valid' / 'same'."""
    if padding == "valid":
        return (0, 0)
    if padding == "same":
        if stride != (1, 1):
            raise ValueError("Conv2d: padding='same' is not supported for strided convolutions")
        totals = [d * (k - 1) for k, d in zip(kernel_size, dilation)]
        if any(t % 2 for t in totals):
            raise ValueError(
                f"Conv2d: padding='same' with kernel_size={kernel_size}, dilation={dilation} needs "
                "uneven padding, which lucid does not support; pad explicitly with F.pad"
            )
        return (totals[0] // 2, totals[1] // 2)
    if isinstance(padding, str):
        raise ValueError(f"Conv2d: invalid padding string {padding!r}; use 'valid', 'same' or ints")
    return _pair(padding, "padding")


class Conv2d(Module):
    """out[n, o] = bias[o] + sum_{c in group(o)} weight[o, c] (star) input[n, c].

    Args:
        in_channels, out_channels: channels of input and output.
        kernel_size, stride, padding, dilation: ints or (h, w) pairs; padding may also
            be 'valid' or 'same' (stride 1, even total padding).
        groups: split channels into this many independent convolutions.
        bias: learn an additive per-output-channel bias.
        padding_mode: only 'zeros'.

    Attributes:
        weight: (out_channels, in_channels // groups, kh, kw), kaiming_uniform_(a=sqrt(5)).
        bias: (out_channels,), U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = in/groups*kh*kw.
    """

    def __init__(
        self,
        in_channels: int,
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
        super().__init__()
        if groups <= 0:
            raise ValueError(f"Conv2d: groups must be a positive integer, got {groups}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"Conv2d: in_channels ({in_channels}) and out_channels ({out_channels}) must be divisible by groups ({groups})"
            )
        if padding_mode != "zeros":
            raise ValueError(f"Conv2d: only padding_mode='zeros' is supported, got {padding_mode!r}")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.kernel_size = _pair(kernel_size, "kernel_size")
        self.stride = _pair(stride, "stride")
        self.dilation = _pair(dilation, "dilation")
        self.padding = padding if isinstance(padding, str) else _pair(padding, "padding")
        self._padding = _conv_padding(padding, self.kernel_size, self.stride, self.dilation)
        self.groups = groups
        self.padding_mode = padding_mode
        add_weight_and_bias(self, (out_channels, in_channels // groups, *self.kernel_size), bias, device, dtype)

    def reset_parameters(self) -> None:
        reset_weight_and_bias(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.conv2d(input, self.weight, self.bias, self.stride, self._padding, self.dilation, self.groups)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, stride={self.stride}"
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

"""Identity and Linear (fully connected) layers."""
from __future__ import annotations

import math
from typing import Any

from lucid import creation
from lucid.nn import functional as F
from lucid.nn import init
from lucid.nn.module import Module
from lucid.nn.parameter import Parameter
from lucid.tensor import Tensor


class Identity(Module):
    """Returns its input unchanged; accepts and ignores any constructor arguments."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """y = x W^T + b over the last dimension of x.

    Args:
        in_features: size of each input sample's last dimension.
        out_features: size of each output sample's last dimension.
        bias: learn an additive bias.
        device, dtype: where and in which floating type the parameters live.

    Attributes:
        weight: (out_features, in_features), U(-1/sqrt(in), 1/sqrt(in)) at init
            (kaiming_uniform_ with a=sqrt(5), as PyTorch).
        bias: (out_features,), U(-1/sqrt(in), 1/sqrt(in)).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None):
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        add_weight_and_bias(self, (out_features, in_features), bias, device, dtype)

    def reset_parameters(self) -> None:
        reset_weight_and_bias(self.weight, self.bias)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


def add_weight_and_bias(module: Module, shape: tuple, bias: bool, device: Any, dtype: Any) -> None:
    """``module.weight`` of ``shape`` and ``module.bias`` of shape[0] (or a None bias
    parameter), then ``module.reset_parameters()``: the set-up of Linear and Conv2d."""
    module.weight = Parameter(creation.empty(shape, device=device or "cpu", dtype=dtype))
    if bias:
        module.bias = Parameter(creation.empty(shape[0], device=device or "cpu", dtype=dtype))
    else:
        module.register_parameter("bias", None)
    module.reset_parameters()


def reset_weight_and_bias(weight: Parameter, bias: Parameter | None) -> None:
    """PyTorch's default for Linear and Conv: kaiming_uniform_(a=sqrt(5)) and a fan-in bound bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(bias, -bound, bound)

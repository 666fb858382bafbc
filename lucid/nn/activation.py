"""Activation modules: ReLU, SiLU, Sigmoid, Softmax, LogSoftmax."""
from __future__ import annotations

from lucid.nn import functional as F
from lucid.nn.module import Module
from lucid.tensor import Tensor


class ReLU(Module):
    """max(x, 0) elementwise.

    ``inplace`` is accepted for PyTorch compatibility; lucid always returns a new
    tensor (the output is what backward keeps, so nothing is saved by overwriting x).
    """

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.relu(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class SiLU(Module):
    """x * sigmoid(x) elementwise (the swish of EfficientNet and ResNet-RS)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return input * F.sigmoid(input)

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class Sigmoid(Module):
    """1 / (1 + exp(-x)) elementwise."""

    def forward(self, input: Tensor) -> Tensor:
        return F.sigmoid(input)


def _implicit_dim(ndim: int) -> int:
    """PyTorch's legacy choice when no ``dim`` is given: 0 for 0-, 1- and 3-d input, else 1."""
    return 0 if ndim in (0, 1, 3) else 1


class _AlongDim(Module):
    """An activation normalised along ``dim`` (Softmax, LogSoftmax): ``function(input, dim)``,
    where a subclass sets ``function``."""

    def __init__(self, dim: int | None = None):
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:
        return self.function(input, _implicit_dim(input.ndim) if self.dim is None else self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_AlongDim):
    """exp(x_i) / sum_j exp(x_j) along ``dim``."""

    function = staticmethod(F.softmax)


class LogSoftmax(_AlongDim):
    """log(softmax(x)) along ``dim``, computed stably."""

    function = staticmethod(F.log_softmax)

"""Dropout: zero activations at random while training."""
from __future__ import annotations

from lucid.nn import functional as F
from lucid.nn.module import Module
from lucid.tensor import Tensor


class Dropout(Module):
    """Zero each element with probability ``p`` in training mode and scale the rest by 1/(1-p).

    Identity in eval mode. Masks come from ``lucid.random`` (seed with lucid.manual_seed).
    ``inplace`` is accepted for PyTorch compatibility and has no effect.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:
        return F.dropout(input, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"

"""Flatten: merge a range of dimensions into one."""
from __future__ import annotations

from lucid.nn.module import Module
from lucid.tensor import Tensor


class Flatten(Module):
    """Reshape dims ``start_dim..end_dim`` into one; by default (N, C, H, W) -> (N, C*H*W)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: Tensor) -> Tensor:
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"

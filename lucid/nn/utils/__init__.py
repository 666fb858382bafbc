"""Helpers that act on a model's parameters (``torch.nn.utils``)."""
from lucid.nn.utils.clip_grad import clip_grad_norm_

__all__ = ["clip_grad_norm_"]

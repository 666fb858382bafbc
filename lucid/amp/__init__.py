"""Mixed precision (PyTorch's ``torch.amp``): ``autocast`` regions and the ``GradScaler``.

Training in float16 keeps float32 parameters, optimizer state and BatchNorm
statistics; only the matrix products run in float16 (``lucid.amp.policy``), and
dynamic loss scaling keeps small float16 gradients from flushing to zero.
"""
from lucid.amp.autocast import autocast, get_autocast_dtype, is_autocast_enabled, low_precision_dtype
from lucid.amp.grad_scaler import GradScaler

__all__ = ["GradScaler", "autocast", "get_autocast_dtype", "is_autocast_enabled", "low_precision_dtype"]

"""Normalisation followed by an activation as one module: BatchNormAct2d (timm's idea).

A model block that wants relu(bn(x)) builds a BatchNormAct2d, chosen when the block is
built (``lucid.nn.get_norm_act_layer``), rather than pairing a BatchNorm2d and a ReLU
at run time. With a ReLU (the default) the two run as ONE fused op,
``F.batch_norm(..., relu=True)``: one pass over memory forward, and backward masks the
gradient by the output's sign inside the normalisation's own pass. With another
activation the module computes ``act(batch_norm(x))`` in two steps.

The activation is the child ``act``. It has no parameters, so the state-dict keys are
exactly BatchNorm2d's and weights move freely between the two. In the fused case
``act``'s own forward (and its hooks) is not called: hook the BatchNormAct2d itself.
"""
from __future__ import annotations

from typing import Any, Callable

from lucid.nn.activation import ReLU
from lucid.nn.module import Module
from lucid.nn.normalization import BatchNorm2d
from lucid.tensor import Tensor


def fuses_relu(act: Module) -> bool:
    """Whether ``act`` is exactly ``nn.ReLU``: the activation that the fused kernels
    (``batch_norm(relu=True)``, ``add_relu``) compute. A subclass may compute something else."""
    return type(act) is ReLU


class NormActMixin:
    """``forward = act(norm(input))``, one fused kernel when ``act`` is a ReLU.

    Listed before a norm class whose ``forward(input, relu=False)`` can fuse a ReLU
    (BatchNorm2d, SyncBatchNorm, FrozenBatchNorm2d); the subclass sets ``self.act``.
    """

    act: Module

    def forward(self, input: Tensor) -> Tensor:
        if fuses_relu(self.act):
            return super().forward(input, relu=True)
        return self.act(super().forward(input))


class BatchNormAct2d(NormActMixin, BatchNorm2d):
    """BatchNorm2d followed by ``act_layer()``: ``y = act(batch_norm(x))``.

    Same arguments, parameters, buffers and state-dict keys as BatchNorm2d, plus the
    keyword ``act_layer`` (a class or factory of an activation module, default ReLU,
    which fuses into the normalisation). ``SyncBatchNorm.convert_sync_batchnorm`` turns
    it into a ``SyncBatchNormAct``, ``FrozenBatchNorm2d.from_batchnorm`` into a
    ``FrozenBatchNormAct2d``: the activation is kept.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float | None = 0.1, affine: bool = True,
                 track_running_stats: bool = True, device: Any = None, dtype: Any = None, *,
                 act_layer: Callable[[], Module] = ReLU):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.act = act_layer()

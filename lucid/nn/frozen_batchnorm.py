"""FrozenBatchNorm2d: BatchNorm that always normalises with its running statistics.

What fine-tuning with frozen layers needs (torchvision's ``FrozenBatchNorm2d``, timm's
``freeze_batch_norm_2d``): ``model.train()`` puts a BatchNorm2d back into batch
statistics and updates its running mean and variance; a frozen one never does, and its
``weight`` / ``bias`` do not require gradients. The state-dict keys are BatchNorm2d's,
so weights move freely between frozen and trainable models. It is not a BatchNorm2d
subclass, so ``SyncBatchNorm.convert_sync_batchnorm`` leaves it alone. A BatchNormAct2d
(BatchNorm2d + activation) freezes into a FrozenBatchNormAct2d with the same activation.
"""
from __future__ import annotations

from lucid.nn import functional as F
from lucid.nn.module import Module
from lucid.nn.norm_act import BatchNormAct2d, NormActMixin
from lucid.tensor import Tensor


class FrozenBatchNorm2d(Module):
    """y = (x - running_mean) / sqrt(running_var + eps) * weight + bias, in train and eval mode.

    Build it with ``FrozenBatchNorm2d.from_batchnorm(bn)``: it shares ``bn``'s tensors
    (weight and bias get ``requires_grad=False``).
    """

    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    @classmethod
    def from_batchnorm(cls, bn: Module) -> "FrozenBatchNorm2d":
        """A frozen copy sharing ``bn``'s tensors (a BatchNorm2d or SyncBatchNorm with running statistics);
        a FrozenBatchNormAct2d sharing ``bn.act`` when ``bn`` is a BatchNormAct2d (or SyncBatchNormAct)."""
        if getattr(bn, "running_mean", None) is None or getattr(bn, "running_var", None) is None:
            raise ValueError(f"FrozenBatchNorm2d: {type(bn).__name__} without running statistics cannot be frozen")
        if isinstance(bn, BatchNormAct2d):
            out = FrozenBatchNormAct2d(bn.num_features, bn.eps, act=bn.act)
        else:
            out = cls(bn.num_features, bn.eps)
        for name, param in bn._parameters.items():
            if param is not None:
                param.requires_grad = False
            out.register_parameter(name, param)
        for name, buf in bn._buffers.items():
            out.register_buffer(name, buf, persistent=name not in bn._non_persistent_buffers)
        out.train(bn.training)
        return out

    def forward(self, input: Tensor, relu: bool = False) -> Tensor:
        """Normalise with the running statistics; ``relu=True`` fuses a ReLU as BatchNorm2d does."""
        return F.batch_norm(input, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps,
                            relu=relu)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


class FrozenBatchNormAct2d(NormActMixin, FrozenBatchNorm2d):
    """FrozenBatchNorm2d followed by the activation ``act`` (fused when it is a ReLU), what
    ``FrozenBatchNorm2d.from_batchnorm`` makes of a BatchNormAct2d."""

    def __init__(self, num_features: int, eps: float = 1e-5, *, act: Module):
        super().__init__(num_features, eps)
        self.act = act

"""BatchNorm2d: per-channel batch normalisation with running statistics (PyTorch semantics)."""
from __future__ import annotations

from typing import Any

from lucid import creation
from lucid.nn import functional as F
from lucid.nn import init
from lucid.nn.module import Module
from lucid.nn.parameter import Parameter
from lucid.tensor import Tensor


class BatchNorm2d(Module):
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel of (N, C, H, W) input.

    Training mode normalises with the batch's mean and biased variance and updates
    ``running_mean`` / ``running_var`` (unbiased variance) as
    ``running = (1 - momentum) * running + momentum * batch``; eval mode uses the
    running statistics. ``momentum=None`` uses a cumulative average:
    momentum = 1 / num_batches_tracked.

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: running-statistics update factor, or None for a cumulative average.
        affine: learn ``weight`` (init 1) and ``bias`` (init 0).
        track_running_stats: keep running statistics; without them batch statistics are
            used in eval mode too.

    Attributes:
        weight, bias: (C,) Parameters, or None when not affine.
        running_mean, running_var: (C,) buffers (init 0 and 1), or None.
        num_batches_tracked: int64 scalar buffer counting training batches, or None.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ):
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        device = device or "cpu"
        if affine:
            self.weight = Parameter(creation.empty(num_features, device=device, dtype=dtype))
            self.bias = Parameter(creation.empty(num_features, device=device, dtype=dtype))
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", creation.zeros(num_features, device=device, dtype=dtype))
            self.register_buffer("running_var", creation.ones(num_features, device=device, dtype=dtype))
            self.register_buffer("num_batches_tracked", creation.zeros((), device=device, dtype="int64"))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self) -> None:
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def momentum_for_step(self) -> float:
        """Count a training batch and return the momentum to hand to the kernel.

        With ``momentum=None`` that is 1 / num_batches_tracked (a cumulative average).
        """
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            if self.momentum is None:
                factor = 1.0 / int(self.num_batches_tracked.data)
        return factor

    input_dims: tuple[int, ...] = (4,)  # SyncBatchNorm also takes (N, C) and (N, C, L)

    def stats_reduce(self):
        """The kernel's ``stats_reduce`` hook: None here; SyncBatchNorm sums over ranks."""
        return None

    def forward(self, input: Tensor, relu: bool = False) -> Tensor:
        """Normalise ``input``; ``relu=True`` returns relu of the result as one fused op (lucid only)."""
        if input.ndim not in self.input_dims:
            dims = " or ".join(f"{d}D" for d in self.input_dims)
            raise ValueError(f"{type(self).__name__}: expected {dims} input (got {input.ndim}D input of shape {input.shape})")
        momentum = self.momentum_for_step()
        batch_stats = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if use_running else None,
            self.running_var if use_running else None,
            self.weight,
            self.bias,
            batch_stats,
            momentum,
            self.eps,
            stats_reduce=self.stats_reduce(),
            relu=relu,
        )

    def _load_from_state_dict(self, state_dict: dict, prefix: str, missing: list, expected: set, errors: list) -> None:
        """A state without ``num_batches_tracked`` (older checkpoints) keeps the current count."""
        super()._load_from_state_dict(state_dict, prefix, missing, expected, errors)
        key = prefix + "num_batches_tracked"
        if key in missing:
            missing.remove(key)

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )

"""SyncBatchNorm: BatchNorm2d whose training statistics come from the whole global batch.

It is BatchNorm2d with one change: in training mode the kernel
(``lucid.ops.batch_norm``) gets ``stats_reduce`` = a sum all-reduce over ranks. The
kernel packs its local per-channel statistics into one small float64 array — in
forward [count, sum x, sum x^2], in backward [sum dy, sum dy*(x - mean)] — and
every entry is a plain sum over samples, so summing over ranks gives exactly the
statistics of the concatenated batch: ranks with different (even zero) local batch
sizes are weighted by their counts, and the running statistics (unbiased variance
over the global count) are identical on every rank. Eval mode uses the running
statistics and communicates nothing. ``process_group`` limits the sum to a group's
ranks (None: the world). ``SyncBatchNormAct`` is the same for a BatchNormAct2d
(normalisation + activation, a ReLU fused into the kernel).
"""
from __future__ import annotations

from lucid.distributed import comm as _comm
from lucid.distributed.collectives import all_reduce
from lucid.distributed.group import ProcessGroup
from lucid.nn.module import Module
from lucid.nn.norm_act import BatchNormAct2d
from lucid.nn.normalization import BatchNorm2d


def sum_over_ranks(packed, group: ProcessGroup | None = None):
    """The ``stats_reduce`` of SyncBatchNorm: sum the packed statistics over the ranks, in place."""
    return all_reduce(packed, "sum", group=group)


class SyncBatchNorm(BatchNorm2d):
    """Batch normalisation over the batch of all ranks together (PyTorch's nn.SyncBatchNorm).

    Same arguments, parameters and buffers as ``BatchNorm2d`` plus ``process_group``
    (the ranks whose batches are normalised together; None: the world); the input may
    be (N, C), (N, C, L) or (N, C, H, W). Every rank of the group must call forward
    (and backward) in training mode, also a rank whose local batch is empty (N = 0).
    """

    input_dims = (2, 3, 4)

    def __init__(self, *args, process_group: ProcessGroup | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.process_group = process_group

    def stats_reduce(self):
        """Sum the packed statistics over the group's ranks while training with more than one."""
        if not self.training or _comm.world_size(self.process_group) == 1:
            return None
        group = self.process_group
        return lambda packed: sum_over_ranks(packed, group)

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: ProcessGroup | None = None) -> Module:
        """Replace every BatchNorm2d in ``module`` by a SyncBatchNorm sharing its parameters and buffers
        (a BatchNormAct2d by a SyncBatchNormAct sharing its activation too).

        Returns the converted module (a new object when ``module`` itself is a
        BatchNorm2d); training mode and state are kept; each converted layer
        normalises over ``process_group`` (None: the world).
        """
        out = module
        if isinstance(module, BatchNorm2d) and not isinstance(module, SyncBatchNorm):
            target = SyncBatchNormAct if isinstance(module, BatchNormAct2d) else cls
            out = target.__new__(target)
            Module.__init__(out)
            # settings (num_features, eps, momentum, affine, ..., training), not registries or hooks
            out.__dict__.update({k: v for k, v in module.__dict__.items() if not k.startswith("_")})
            out.process_group = process_group
            for name, param in module._parameters.items():
                out.register_parameter(name, param)
            for name, buf in module._buffers.items():
                out.register_buffer(name, buf, persistent=name not in module._non_persistent_buffers)
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out


class SyncBatchNormAct(SyncBatchNorm, BatchNormAct2d):
    """SyncBatchNorm followed by the activation ``act`` (fused when it is a ReLU): what
    ``convert_sync_batchnorm`` makes of a BatchNormAct2d. Built directly it takes
    BatchNormAct2d's arguments (``act_layer`` included) and ``process_group``."""

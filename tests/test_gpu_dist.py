"""DDP on the fake GPU under a real mpiexec, through each GPU transport.

Each rank's model and batches live on its fake GPU (local rank mod 2, selected before
MPI_Init from MPI_LOCALRANKID); gradients go through pinned host staging, CUDA-aware
MPI (the fake's device memory is host memory, so MPI reads the
``__cuda_array_interface__`` pointer directly) or the fake NCCL built on MPI. The
result must match one process training on the global batch on the CPU, as on CPU.
"""
import pytest
from dist_scripts.mpirun import run_ok
from test_dist_ddp import check_training

TRANSPORTS = {"staged": "StagedTransport", "cuda_aware": "CudaAwareTransport", "nccl": "NCCLTransport"}


@pytest.mark.parametrize("transport", sorted(TRANSPORTS))
def test_ddp_on_fake_gpus_equals_one_process(transport):
    res = run_ok("ddp_train.py", 2, "syncbn", "even", "train", transport, timeout=120)
    check_training(res, "syncbn")
    for rank, got in res.items():
        assert got["device"] == f"gpu:{rank}"
        assert got["transport"] == TRANSPORTS[transport]


def test_nonfinite_step_skipped_on_every_rank_through_nccl():
    res = run_ok("ddp_train.py", 2, "syncbn", "even", "nan", "nccl", timeout=120)
    check_training(res, "syncbn", oks=(True, False, True), skipped=1)

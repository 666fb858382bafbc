"""In-process pieces of lucid.distributed that need no launcher."""
import time

import numpy as np
import pytest

from lucid.distributed import gpu, watchdog
from lucid.distributed.backends import decide, local_report
from lucid.distributed.failure import nonfinite, scale_and_check


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_scale_and_check_finds_one_bad_value_anywhere(bad):
    x = np.ones(200_001, np.float32)
    assert scale_and_check(x.copy(), 0.5) is False
    for pos in (0, 65_536, 200_000):
        y = x.copy()
        y[pos] = bad
        assert scale_and_check(y, 0.5) is True
        assert nonfinite(y)


def test_scale_and_check_scales_and_casts():
    x = np.arange(10.0)
    out = np.empty(10, np.float16)
    assert scale_and_check(x, 0.5, out=out, chunk=3) is False
    np.testing.assert_array_equal(out, (np.arange(10.0) * 0.5).astype(np.float16))
    y = np.arange(10.0)
    scale_and_check(y, 0.25, chunk=4)
    np.testing.assert_array_equal(y, np.arange(10.0) * 0.25)


def test_fp16_check_sums_in_float32():
    """70,000 fp16 ones sum past fp16's max (65504): finite values, so no false alarm."""
    assert scale_and_check(np.ones(70_000, np.float16), chunk=1 << 17) is False


def test_backend_choice_and_errors_are_the_same_for_every_rank():
    cpu = local_report("auto", "cpu")
    assert decide([cpu, cpu]) == "mpi"
    assert decide([local_report("mpi", "cpu")] * 3) == "mpi"
    with pytest.raises(ValueError, match="unknown backend 'gloo'; valid backends: 'auto', 'mpi', 'nccl', 'cuda_aware', 'staged'"):
        decide([local_report("gloo", "cpu")] * 2)
    unavailable = "backend 'nccl' is not available: on rank 0, it moves GPU buffers and these parameters are on 'cpu'; use 'mpi'"
    with pytest.raises(ValueError, match=unavailable):
        decide([local_report("nccl", "cpu")] * 2)
    gpu_report = local_report("staged", "gpu:0")  # no GPU on this machine: says so
    with pytest.raises(ValueError, match="backend 'staged' is not available: on rank 0, CuPy sees no usable GPU"):
        decide([gpu_report, gpu_report])
    with pytest.raises(ValueError, match="ranks disagree on the backend: rank 0 has 'mpi', rank 1 has 'auto'"):
        decide([local_report("mpi", "cpu"), cpu])
    with pytest.raises(ValueError, match="ranks disagree on the device: rank 0 has 'cpu', rank 1 has 'gpu:0'"):
        decide([cpu, local_report("auto", "gpu:0")])
    # "auto" takes the first GPU backend usable on EVERY rank: nccl missing on rank 1 -> cuda_aware
    a = {"name": "auto", "kind": "gpu", "device": "gpu:0", "why": {"mpi": "x", "nccl": None, "cuda_aware": None, "staged": None}}
    b = dict(a, why=dict(a["why"], nccl="no nccl"))
    assert decide([a, a]) == "nccl" and decide([a, b]) == "cuda_aware"


def test_cuda_aware_detection(monkeypatch):
    monkeypatch.setenv("LUCID_CUDA_AWARE_MPI", "1")
    assert gpu.cuda_aware_mpi() is True
    monkeypatch.setenv("LUCID_CUDA_AWARE_MPI", "0")
    assert gpu.cuda_aware_mpi() is False
    monkeypatch.delenv("LUCID_CUDA_AWARE_MPI")
    assert gpu.cuda_aware_mpi() is False  # this MPICH build has no CUDA support


def test_watch_records_outermost_wait_and_clears():
    dog = watchdog.Watchdog(timeout=60, on_timeout=print)
    watchdog._active, saved = dog, watchdog._active
    try:
        with watchdog.watch("outer"):
            with watchdog.watch("inner"):
                assert dog.current[0] == "outer"
            assert dog.current[0] == "outer"
            assert time.monotonic() - dog.current[1] < 5
        assert dog.current is None
    finally:
        dog.stop()
        watchdog._active = saved


def test_limit_flags_values_that_would_overflow_float16():
    out = np.empty(1000, np.float16)
    big_but_fine = np.full(1000, 60000.0, np.float32)  # sum of squares >> 65504**2, yet every value fits
    assert scale_and_check(big_but_fine, 1.0, out=out, limit=65504.0, chunk=256) is False
    assert float(out[0]) == 60000.0
    too_big = np.zeros(1000, np.float32)
    too_big[777] = 140000.0
    assert scale_and_check(too_big, 1.0, out=out, limit=65504.0, chunk=256) is True
    assert scale_and_check(too_big.copy(), 0.25, out=out, limit=65504.0, chunk=256) is False  # 35000 after scaling


def test_sync_batchnorm_lives_in_distributed_and_needs_no_world_of_many():
    import lucid
    import lucid.nn as nn
    from lucid.distributed import SyncBatchNorm

    with pytest.raises(AttributeError, match=r"from lucid.distributed import SyncBatchNorm"):
        _ = nn.SyncBatchNorm
    bn = SyncBatchNorm(3)
    assert bn.stats_reduce() is None  # a world of one has nobody to sum with
    out = bn(lucid.randn(4, 3))  # 2-D input is accepted (BatchNorm2d only takes 4-D)
    assert out.shape == (4, 3)


def test_lucid_mpiexec_picks_the_launcher(monkeypatch, tmp_path):
    from lucid.distributed.launcher import find_mpiexec

    fake = tmp_path / "mpirun"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("LUCID_MPIEXEC", str(fake))
    assert find_mpiexec() == str(fake)
    monkeypatch.setenv("LUCID_MPIEXEC", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="LUCID_MPIEXEC"):
        find_mpiexec()

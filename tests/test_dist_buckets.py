"""Bucket reducer on plain leaf tensors under a real mpiexec (no nn needed).

The script computes, on every rank, the gradient of the global batch in one process
and reports the largest difference per parameter; these tests assert on those.
"""
import numpy as np
import pytest
from dist_scripts import mpirun
from dist_scripts.mpirun import run_ok

from lucid.distributed.buckets import plan_buckets


class P:
    def __init__(self, n, dtype="float32", device="cpu"):
        self.data = np.zeros(n, dtype)
        self.dtype, self.device = self.data.dtype, device


def test_plan_reverse_order_caps_and_dtype_split():
    params = [P(10), P(300), P(5), P(5, "float64"), P(100)]  # float32 = 4 bytes
    plan = plan_buckets(params, cap_bytes=400, first_cap_bytes=40)
    # reversed: 4 (400 B >= first cap 40 -> closes), 3 (float64, own dtype), then 2, 1, 0
    assert plan == [[4], [3], [2, 1], [0]]
    assert plan_buckets(params, cap_bytes=10**9, first_cap_bytes=10**9) == [[4], [3], [2, 1, 0]]


def _check(res, tol, world):
    for r, got in res.items():
        assert got["bucket_names"] == [["E"], ["V", "U", "b2", "W2"], ["b1", "W1"]]
        for key in ("step1_err", "accum_err", "double_err"):
            errs = got[key]
            assert errs.pop("U") == "none", "a parameter no rank used must keep grad None"
            limit = 2 * tol if key == "double_err" else tol  # twice the values, twice the fp16 rounding
            assert max(errs.values()) <= limit, (r, key, errs)
        assert got["step1_ok"] and got["accum_ok"] and got["no_sync_finish"]
        # E is registered last -> bucket 0 -> ready last; buckets always start in index
        # order, and backward itself started (and finished) all of them
        assert got["started_before_finish"] == [0, 1, 2]
        assert got["started_all"] == [0, 1, 2]
        assert got["nan_step_ok"] is False and got["skipped"] == [1, 4]
        assert got["reduced_by_backward"] and got["double_steps"] == 3 and got["double_finish"]
        assert got["nan_grads_none"]  # a skipped step leaves nothing for an optimizer to apply


@pytest.mark.parametrize("world", [2, 3])
def test_reduced_gradients_equal_global_batch(world):
    res = run_ok("buckets_plain.py", world, "none", timeout=60)
    _check(res, 1e-12, world)
    for got in res.values():
        assert got["wire_dtype"] == "float64"
        # every gradient is a view into its bucket at its planned offset, and backward
        # accumulated into the very tensor attach_grads() installed (no copy)
        for name, (shares, offset, same_object) in got["views"].items():
            assert shares and offset == got["offsets"][name] and same_object, name


def test_fp16_compression_and_postdivide():
    res = run_ok("buckets_plain.py", 2, "fp16", "postdivide", timeout=60)
    _check(res, 2e-3, 2)  # fp16 wire: ~3 significant digits
    assert all(got["wire_dtype"] == "float16" for got in res.values())


def _has_half_type() -> bool:
    """Whether the MPI library the tests launch sums float16 itself (MPICH yes, Open MPI 4 no)."""
    code = "from lucid.distributed.backends.mpi import half_route; print(half_route())"
    run = mpirun.launch(1, ["-c", code], timeout=30, env={"LUCID_MPI_HALF": ""})
    assert run.returncode == 0, run.stderr
    return run.stdout.strip().splitlines()[-1] == "native"


@pytest.mark.parametrize("half", ["native", "op"])
def test_fp16_predivide(half):
    """"op": float16 as 16-bit words with a user-defined MPI sum, the route where MPI has no half type.

    Forcing "native" on a library without a half type must fail with a message naming the
    setting and the way out, on every rank.
    """
    if half == "native" and not _has_half_type():
        run = mpirun.mpirun("buckets_plain.py", 3, "fp16", timeout=60, env={"LUCID_MPI_HALF": half})
        assert run.returncode != 0
        assert "LUCID_MPI_HALF=native, but this MPI library" in run.stderr and "has no float16 type" in run.stderr
        return
    res = run_ok("buckets_plain.py", 3, "fp16", timeout=60, env={"LUCID_MPI_HALF": half})
    _check(res, 2e-3, 3)


def test_pinned_staging_logic_with_numpy_stand_ins():
    """The GPU staging transport, with NumPy arrays standing in for device and pinned memory."""
    res = run_ok("buckets_plain.py", 2, "none", "predivide", "staged", timeout=60)
    _check(res, 1e-12, 2)
    for r, got in res.items():
        assert got["host_allocations"] == 3  # one staging buffer per bucket, reused for all 5 steps
        before, after = got["staged_before_after"]
        assert before == [r + 1.0] * 3 and after == [3.0] * 3

"""Process groups (dist.new_group) under a real mpiexec -n 3."""
import pytest
from dist_scripts.mpirun import run_ok


@pytest.mark.parametrize(
    "mode, needle",
    [
        ("range", "ValueError: new_group: ranks [5] are out of range for a world of 3 ranks (valid: 0..2)"),
        ("duplicate", "ValueError: new_group: ranks [1] are listed more than once in [0, 1, 1]"),
        ("differ", "ValueError: new_group: every rank must pass the same ranks; rank 0 passed [0, 1], rank 1 passed [0, 2]"),
        ("notalist", "TypeError: new_group: ranks must be a sequence of ints, got 7 (int)"),
    ],
)
def test_bad_groups_fail_on_every_rank(mode, needle):
    res = run_ok("groups.py", 3, mode, timeout=30)
    for got in res.values():
        assert got["error"] == needle


def test_collectives_metrics_syncbn_and_ddp_over_a_group():
    res = run_ok("groups.py", 3, "use", timeout=60)
    for r in (0, 2):
        got = res[r]
        assert got["is_member"] and got["ranks"] == [0, 2]
        assert got["group_rank"] == (0 if r == 0 else 1) and got["group_size"] == 2
        assert got["sum"] == [1.0 + 3.0] and got["gathered"] == [0, 2]
        assert got["metrics"] == {"n": 4.0}
        assert got["bn_mean_err"] < 1e-12
        assert got["ref_err"] < 1e-12  # DDP over the group = one process on both members' batches
    assert res[0]["weights"] == res[2]["weights"]  # the group's replicas agree
    got = res[1]
    assert not got["is_member"]
    assert got["error"] == "all_reduce: world rank 1 is not a member of the process group of ranks [0, 2]"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("auto", None),
        ("gloo", "unknown backend 'gloo'; valid backends: 'auto', 'mpi', 'nccl', 'cuda_aware', 'staged'"),
        (
            "nccl",
            "backend 'nccl' is not available: on rank 0, it moves GPU buffers and these parameters are on 'cpu'; "
            "use 'mpi' (or 'auto')",
        ),
        ("per-rank", "DistributedDataParallel: ranks disagree on the backend: rank 0 has 'mpi', rank 1 has 'auto'"),
    ],
)
def test_backend_is_agreed_or_the_same_error_on_every_rank(name, expected):
    res = run_ok("backend_choice.py", 3, name, timeout=30)
    for got in res.values():
        assert got["error"] == expected
        assert got["transport"] == (None if expected else "mpi")

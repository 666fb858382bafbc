"""Collectives under a real mpiexec: values on every rank, errors on every rank."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from dist_scripts.mpirun import ROOT, SCRIPTS, run_ok


def expected(w: int) -> dict:
    ranks = range(w)
    x = np.arange(14.0).reshape(7, 2)
    total = x * sum(r + 1 for r in ranks)
    split = np.array_split(np.arange(7), w)
    return {
        "sum": [sum(r + 1.0 for r in ranks), sum(2.0 * (r + 1) for r in ranks)],
        "mean_tensor": [np.mean(list(ranks)), 10 * np.mean(list(ranks))],
        "max": [w - 1, 0],
        "min": [0, -(w - 1)],
        "scalar_sum": sum(r + 1 for r in ranks),
        "scalar_mean": np.mean(list(ranks)),
        "noncontig": (np.arange(6.0).reshape(2, 3) * sum(r + 1 for r in ranks)).tolist(),
        "broadcast": [float(w - 1)] * 3,
        "broadcast_scalar": 100,
        "gather_shapes": [[r + 1, 2] for r in ranks],
        "gather_values": [np.full((r + 1, 2), r).tolist() for r in ranks],
        "gather_tensor_types": ["Tensor"] * w,
        "gather_tensor": [float(r) for r in ranks],
        "bcast_obj": {"from": 0, "list": [0]},
        "gather_obj": [["rank", r] for r in ranks],
        "split": [(total[s], total[s] / w) for s in split],
    }


@pytest.mark.parametrize("world", [2, 3])
def test_collective_values_on_every_rank(world):
    res = run_ok("collectives.py", world, timeout=60)
    exp = expected(world)
    split = exp.pop("split")
    for r, got in res.items():
        for key, value in exp.items():
            assert got[key] == value, (r, key, got[key], value)  # small integers: exact
        assert got["mean_returns_same"] is True
        np.testing.assert_array_equal(got["reduce_scatter"], split[r][0])
        np.testing.assert_allclose(got["reduce_scatter_mean"], split[r][1], rtol=1e-15)
        assert "floating-point" in got["int_mean_error"]
        assert "rank 1 holds float64[1, 3] but rank 0 holds float64[1, 2]" in got["gather_mismatch"]
        assert got["world"] == [r, world, r, world, r == 0]


THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS")


def test_ranks_share_the_node_cores():
    """N ranks on one node each get cores // N BLAS threads, unless the user chose."""
    res = run_ok("collectives.py", 2, timeout=60, env={v: None for v in THREAD_VARS})
    share = max(1, (os.cpu_count() or 1) // 2)
    for got in res.values():
        assert got["thread_limit"] == share and got["blas_threads"] == [share] and got["kernel_threads"] == share
    if (os.cpu_count() or 1) < 2:
        return
    # a user's choice wins (2 > the 1-per-rank share on a 2-core machine)
    res = run_ok("collectives.py", 2, timeout=60, env={"OPENBLAS_NUM_THREADS": "2", "OMP_NUM_THREADS": "2"})
    for got in res.values():
        # OpenBLAS caps its threads at the cores the rank may run on (Open MPI's mpirun binds each rank to one)
        wanted = min(2, got["cores_bound"])
        assert got["thread_limit"] is None and got["blas_threads"] == [wanted] and got["kernel_threads"] == 2


def test_world_of_one_without_launcher():
    """No mpiexec: init() gives a world of one and every collective is the identity."""
    env = {"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]}  # Open MPI's singleton start looks up ssh/rsh on PATH
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "collectives.py")], capture_output=True, text=True, timeout=60, env=env
    )
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))
    got = json.loads(line[len("RESULT ") :])
    assert got["world"] == [0, 1, 0, 1, True]
    assert got["sum"] == [1.0, 2.0]
    assert got["gather_values"] == [[[0, 0]]]
    assert got["reduce_scatter"] == np.arange(14.0).reshape(7, 2).tolist()

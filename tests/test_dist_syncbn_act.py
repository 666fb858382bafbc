"""SyncBatchNormAct under a real MPI launcher: a converted BatchNormAct2d (BatchNorm + fused ReLU)
on each rank's slice equals BatchNormAct2d on the concatenated batch, forward and backward."""
import pytest
from dist_scripts.mpirun import run_ok


@pytest.mark.parametrize("sizes", ["3,1,4", "2,0,3"])
@pytest.mark.parametrize("dtype, tol", [("float64", 1e-13), ("float32", 5e-6)])  # float32: oneDNN where installed
def test_sync_norm_act_equals_norm_act_on_the_concatenated_batch(sizes, dtype, tol):
    res = run_ok("syncbn_check.py", 3, sizes, dtype, 4, "act", timeout=60)
    for r, got in res.items():
        assert got["local_rows"] == int(sizes.split(",")[r])
        for key in ("y", "dx", "dw", "db", "rm", "rv"):
            assert got[key] <= tol, (r, key, got[key])
        assert got["negatives"] == 0  # the ReLU is applied
        assert got["eval_calls"] == 0

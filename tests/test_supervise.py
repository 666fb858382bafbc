"""launch.supervise around a real mpiexec -n 2: a rank SIGKILLed mid-run is relaunched with
--resume auto and the run ends with the uninterrupted run's metrics; --min-ranks relaunches
on fewer ranks; --max-restarts 0 returns the failure; usage errors are not retried."""
import os
import subprocess
import sys

import numpy as np
import pytest
from dist_scripts.mpirun import mpiexec
from test_train_resume import DEBUG, FLOAT64, ROOT, checkpoint_tensors, ckpt, losses, records, train

from launch.supervise import rank_option, resuming, with_ranks

FAULTS = os.path.join(ROOT, "tests", "train_scripts", "faults.py")


def supervise(out_dir, *options, env=None, timeout=240) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "launch.supervise", "--backoff", "0", *options, "--",
           mpiexec(), "-n", "2", sys.executable, FAULTS, "--config", DEBUG, "--set", f'run.output_dir="{out_dir}"',
           *FLOAT64, "--set", "run.max_steps=8"]
    full = dict(os.environ, PYTHONPATH=ROOT, **(env or {}))
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=full)


def test_killed_rank_is_relaunched_and_the_run_ends_as_uninterrupted(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, "--set", "run.max_steps=8")
    marker = tmp_path / "died"
    res = supervise(b, "--max-restarts", "2", env={"LUCID_TEST_DIE": f"1:5:{marker}"})
    assert res.returncode == 0, res.stderr
    assert marker.exists()
    assert "exit 9 (a rank died of SIGKILL" in res.stderr and "restart 1 of 2 in 0 s with --resume auto" in res.stderr
    assert "attempt 2: " in res.stderr and res.stderr.count("attempt ") == 2
    assert "resumed from" in res.stdout and "step_00000003 at step 3" in res.stdout
    assert losses(a) == losses(b)
    fa, fb = checkpoint_tensors(ckpt(a, 8)), checkpoint_tensors(ckpt(b, 8))
    for name in fa:
        np.testing.assert_array_equal(fa[name], fb[name], err_msg=name)
    assert records(a, "summary")[-1]["val_loss"] == records(b, "summary")[-1]["val_loss"]


def test_min_ranks_relaunches_on_fewer(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, "--set", "run.max_steps=8")
    res = supervise(b, "--max-restarts", "1", "--min-ranks", "1", env={"LUCID_TEST_DIE": f"1:5:{tmp_path / 'died'}"})
    assert res.returncode == 0, res.stderr
    assert "restart 1 of 1 on 1 ranks" in res.stderr and "resuming at world size 1" in res.stdout
    la, lb = losses(a), losses(b)
    np.testing.assert_allclose([lb[s] for s in range(1, 9)], [la[s] for s in range(1, 9)], rtol=1e-10)
    fa, fb = checkpoint_tensors(ckpt(a, 8)), checkpoint_tensors(ckpt(b, 8))
    for name in fa:
        np.testing.assert_allclose(fb[name], fa[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_max_restarts_zero_returns_the_failure(tmp_path):
    res = supervise(tmp_path, "--max-restarts", "0", env={"LUCID_TEST_DIE": f"1:2:{tmp_path / 'died'}"})
    assert res.returncode == 9, res.stderr  # MPICH's mpiexec reports the rank's SIGKILL as 9
    assert "no restarts left (--max-restarts 0)" in res.stderr and res.stderr.count("attempt ") == 1
    assert not records(tmp_path, "summary")


def test_usage_error_is_not_retried(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "launch.supervise", "--backoff", "0", "--", sys.executable, "-m", "launch.train",
         "--config", DEBUG, "--set", "run.epochs=-1"], capture_output=True, text=True, timeout=60, cwd=ROOT,
        env=dict(os.environ, PYTHONPATH=ROOT))
    assert res.returncode == 2 and "run.epochs = -1 must be > 0" in res.stderr
    assert "a usage error, which a restart would repeat; not restarting" in res.stderr


@pytest.mark.parametrize("cmd, found", [
    (["mpiexec", "-n", "4", "python"], (2, 4)),
    (["mpirun", "-np", "8", "python"], (2, 8)),
    (["srun", "--ntasks=3", "python"], (1, 3)),
    (["python", "-m", "launch.train"], None),
])
def test_rank_option(cmd, found):
    assert rank_option(cmd) == found
    if found:
        assert rank_option(with_ranks(cmd, 2))[1] == 2


def test_resuming_drops_overwrite():
    assert resuming(["x", "--overwrite", "--resume", "p"]) == ["x", "--resume", "p", "--resume", "auto"]

"""DistributedDataParallel and SyncBatchNorm under a real mpiexec.

ddp_train.py trains 3 SGD-momentum steps in float64 with DDP and, on every rank, a
reference copy of rank 0's model on the whole global batch in one process; these
tests require the two to agree within 1e-10 and all ranks to agree exactly.
"""
import json
import os
import subprocess
import sys

import pytest
from dist_scripts.mpirun import ROOT, SCRIPTS, run_ok

# SyncBN all-reduces per rank over 3 steps: one per layer in forward, one in backward
# when the input needs a gradient (bnonly's BN sits on the data: forward only)
SYNC_CALLS = {"syncbn": 3 * 6 * 2, "bnonly": 3 * 1, "plain": 0}


def check_training(res, model, oks=(True, True, True), skipped=0, steps=3):
    checksums = {tuple(got["checksum"]) for got in res.values()}
    assert len(checksums) == 1, "ranks disagree on parameters or buffers"
    for r, got in res.items():
        assert got["oks"] == list(oks) and got["skipped"] == skipped
        assert got["param_err"] <= 1e-10, (r, got["param_err"])
        assert got["buf_err"] <= 1e-10, (r, got["buf_err"])
        assert got["eval_err"] <= 1e-10, (r, got["eval_err"])
        assert got["train_reduce_calls"] == SYNC_CALLS[model] * steps // 3
        assert got["eval_reduce_calls"] == 0  # eval mode communicates nothing
        views, in_buckets, params = got["grad_views"]
        assert views == in_buckets == params  # every .grad after backward is its bucket view
        assert got["n_buckets"] > 1 or model == "bnonly"  # bnonly: 5 parameters, one bucket


@pytest.mark.parametrize("world", [2, 3])
@pytest.mark.parametrize("model", ["syncbn", "plain"])
def test_ddp_equals_one_process_on_the_global_batch(model, world):
    check_training(run_ok("ddp_train.py", world, model, "even", "train", timeout=60), model)


@pytest.mark.parametrize("world, split", [(2, "even"), (3, "uneven")])
@pytest.mark.parametrize("steps", [1, 3])
def test_pytorch_loop_without_finish_equals_one_process(world, split, steps):
    """loss.backward(); opt.step(); opt.zero_grad(): backward returns reduced gradients, so even
    a 1-step loop (or the last step of any) leaves identical replicas equal to one process."""
    res = run_ok("ddp_train.py", world, "syncbn", split, "torch", "cpu", str(steps), timeout=60)
    check_training(res, "syncbn", oks=(True,) * steps, steps=steps)


@pytest.mark.parametrize("model", ["syncbn", "plain"])
def test_uneven_batches_per_rank(model):
    res = run_ok("ddp_train.py", 3, model, "uneven", "train", timeout=60)
    assert res[0]["local_sizes"] == [3, 5, 7]
    check_training(res, model)


def test_one_sample_per_rank_with_syncbn():
    res = run_ok("ddp_train.py", 3, "syncbn", "one", "train", timeout=60)
    assert res[0]["local_sizes"] == [1, 1, 1]
    check_training(res, "syncbn")


def test_rank_with_empty_batch_syncbn():
    res = run_ok("ddp_train.py", 3, "bnonly", "empty", "train", timeout=60)
    assert res[0]["local_sizes"] == [5, 4, 0]
    check_training(res, "bnonly")


def test_no_sync_accumulation_equals_one_large_batch():
    check_training(run_ok("ddp_train.py", 2, "plain", "even", "nosync", timeout=60), "plain")


def test_nan_on_one_rank_makes_every_rank_skip():
    res = run_ok("ddp_train.py", 3, "syncbn", "even", "nan", timeout=60)
    check_training(res, "syncbn", oks=(True, False, True), skipped=1)


@pytest.mark.parametrize(
    "sizes, dtype, ndim, tol",
    [
        ("3,1,4", "float64", 4, 1e-13),
        ("1,1,1", "float64", 4, 1e-13),  # one sample per rank
        ("2,0,3", "float64", 4, 1e-13),  # a rank with an empty batch
        ("3,0,4", "float64", 2, 1e-13),  # (N, C) input
        ("3,1,4", "float32", 4, 5e-6),  # oneDNN normalising with the global statistics, where installed
        ("2,0,3", "float32", 4, 5e-6),  # the empty rank on the NumPy path, the others on oneDNN
    ],
)
def test_syncbn_equals_batchnorm_on_the_concatenated_batch(sizes, dtype, ndim, tol):
    res = run_ok("syncbn_check.py", 3, sizes, dtype, ndim, timeout=60)
    for r, got in res.items():
        assert got["local_rows"] == int(sizes.split(",")[r])
        for key in ("y", "dx", "dw", "db", "rm", "rv"):
            assert got[key] <= tol, (r, key, got[key])
        assert got["eval_calls"] == 0


@pytest.mark.parametrize(
    "mode, needle",
    [
        ("shape", "rank 0 has parameter '2.weight' float32[3, 5], rank 1 has parameter '2.weight' float32[4, 5]"),
        ("dtype", "rank 0 has parameter '0.weight' float32[5, 4], rank 1 has parameter '0.weight' float64[5, 4]"),
        ("extra", "rank 0 has no entry there, rank 1 has parameter '3.weight' float32[3, 3]"),
    ],
)
def test_mismatched_models_raise_on_every_rank(mode, needle):
    res = run_ok("mismatch.py", 2, mode, timeout=30)
    for got in res.values():
        assert got["error"] is not None and needle in got["error"], got["error"]


def test_world_of_one_without_launcher():
    """python script.py (no mpiexec): DDP and SyncBN are plain single-process training."""
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "ddp_train.py"), "syncbn", "uneven", "train"],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": os.environ["PATH"]},
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(next(ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT "))[len("RESULT ") :])
    assert got["oks"] == [True] * 3 and got["param_err"] <= 1e-12 and got["buf_err"] <= 1e-12
    assert got["train_reduce_calls"] == 0  # nothing to synchronise with

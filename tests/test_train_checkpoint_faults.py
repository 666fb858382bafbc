"""Checkpoint edge cases found by fault injection, each caused for real: every checkpoint
corrupt, a missing --resume path, a checkpoints/ folder as --resume, a full disk (a small
tmpfs) during a commit, a re-commit of an existing step, and the final checkpoint written once."""
import os
import subprocess
import sys
import uuid

import pytest
from test_train_resume import DEBUG, FLOAT64, ROOT, ckpt, losses, records, train

from lucid.distributed import checkpoint


def test_every_checkpoint_corrupt_fails_naming_each(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=6")
    for step, name in ((3, "shard-00000-of-00002.safetensors"), (6, "state.json")):
        with open(os.path.join(ckpt(tmp_path, step), name), "r+b") as fh:
            fh.seek(5)
            fh.write(b"\x00garbage\x00")
    os.makedirs(os.path.join(tmp_path, "debug", "checkpoints", "step_00000009"))  # torn: no manifest
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=8", "--resume", "auto", ok=False)
    assert res.returncode == 2, res.stderr
    err = res.stderr
    assert "no usable checkpoint under" in err and "starting fresh" not in res.stdout + err
    assert "step_00000009: not committed (no manifest.json)" in err
    assert "step_00000006: " in err and "state.json does not match its sha256" in err
    assert "step_00000003: " in err and "shard-00000-of-00002.safetensors does not match its sha256" in err
    assert max(losses(tmp_path)) == 6  # nothing trained from scratch over them


def test_resume_path_missing_and_checkpoints_folder(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=3")
    missing = os.path.join(tmp_path, "nowhere", "step_00000003")
    res = train(1, tmp_path, *FLOAT64, "--set", "run.max_steps=5", "--resume", missing, ok=False)
    assert res.returncode == 2 and f"{missing} does not exist" in res.stderr
    folder = os.path.join(tmp_path, "debug", "checkpoints")
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=5", "--resume", folder)
    assert f"resumed from {ckpt(tmp_path, 3)} at step 3" in res.stdout
    assert records(tmp_path, "summary")[-1]["steps"] == 5


def test_final_checkpoint_written_once(tmp_path):
    train(1, tmp_path, *FLOAT64, "--set", "run.ckpt_interval=0", "--set", "run.max_steps=0")
    steps = [r["step"] for r in records(tmp_path, "checkpoint")]
    assert steps == [16]  # one epoch of 16 steps at world 1: the epoch-end checkpoint is the final one


def _script(tmp_path, body: str) -> subprocess.CompletedProcess:
    path = tmp_path / "probe.py"
    path.write_text(body)
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))


def test_recommit_replaces_atomically_and_survives_a_kill_between_renames(tmp_path):
    """Re-committing a step moves the old copy aside first; a death between the two
    renames (caused by SIGKILL inside os.rename) leaves the old copy, which loads."""
    body = f"""
import os, signal, sys
import numpy as np
import lucid
from lucid.distributed import checkpoint
d = {str(tmp_path / 'ck')!r}
checkpoint.save(d, 4, {{"w": lucid.tensor(np.full(3, 1.0)), "step": 4}})
checkpoint.save(d, 4, {{"w": lucid.tensor(np.full(3, 2.0)), "step": 4}})
print(sorted(os.listdir(d)), checkpoint.load(checkpoint.committed(d)[-1])[0]["w"].numpy().tolist(), flush=True)
real = os.rename
def rename(a, b):
    real(a, b)
    if os.path.basename(b).startswith(".old-"):
        os.kill(os.getpid(), signal.SIGKILL)
os.rename = rename
checkpoint.save(d, 4, {{"w": lucid.tensor(np.full(3, 3.0)), "step": 4}})
"""
    res = _script(tmp_path, body)
    assert res.returncode == -9, res.stderr
    assert res.stdout.strip() == "['step_00000004'] [2.0, 2.0, 2.0]"
    d = str(tmp_path / "ck")
    names = sorted(os.listdir(d))
    assert "step_00000004" not in names and any(n.startswith(".old-step_00000004-") for n in names)
    (path,) = checkpoint.committed(d)
    state, _, _ = checkpoint.load(path)
    assert state["w"].numpy().tolist() == [2.0, 2.0, 2.0]
    checkpoint.save(d, 5, {"w": state["w"], "step": 5}, keep_last=1)
    assert sorted(os.listdir(d)) == ["step_00000005"]  # debris and the old step pruned


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1100 KiB tmpfs (root and mount(2) needed; skipped where it cannot be mounted)."""
    mnt = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1100k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_full_disk_during_checkpoint_leaves_no_tmp(tmp_path, small_tmpfs):
    # float32 debug model: one checkpoint ~700 KiB, so the second one cannot fit beside the first
    res = train(2, small_tmpfs, "--set", "run.ckpt_interval=3", "--set", "run.max_steps=6", ok=False)
    assert res.returncode != 0
    assert "No space left on device" in res.stderr and "was not written" in res.stderr
    folder = os.path.join(small_tmpfs, "debug", "checkpoints")
    assert sorted(os.listdir(folder)) == ["step_00000003"]  # no .tmp-* left to keep the disk full
    state, _, manifest = checkpoint.load(os.path.join(folder, "step_00000003"))
    assert state["step"] == 3 and manifest["world_size"] == 2


def test_failed_commit_removes_its_tmp(tmp_path):
    """ENOSPC while rank 0 writes the manifest (injected: the shards landed, the commit fails)."""
    body = f"""
import errno, os
import numpy as np
import lucid
from lucid.distributed import checkpoint
d = {str(tmp_path / 'ck')!r}
checkpoint.save(d, 1, {{"w": lucid.tensor(np.ones(3))}})
real = checkpoint._write_durable
def full(path, data):
    if path.endswith(checkpoint.MANIFEST):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    return real(path, data)
checkpoint._write_durable = full
try:
    checkpoint.save(d, 2, {{"w": lucid.tensor(np.ones(3))}})
except checkpoint.CheckpointError as exc:
    print("error:", exc)
print(sorted(os.listdir(d)))
"""
    res = _script(tmp_path, body)
    assert res.returncode == 0, res.stderr
    assert "was not committed: OSError: [Errno 28] No space left on device" in res.stdout
    assert res.stdout.strip().splitlines()[-1] == "['step_00000001']"


def test_launcher_world_mismatch_is_an_error(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, SLURM_NTASKS="4")
    res = subprocess.run([sys.executable, "-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"'],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert res.returncode == 2
    assert "the launcher started 4 processes (SLURM_NTASKS=4) but MPI reports a world of 1" in res.stderr
    assert "mpi4py was built against another MPI than the launcher" in res.stderr
    assert not os.path.exists(os.path.join(tmp_path, "debug"))
    env = dict(os.environ, PYTHONPATH=ROOT, OMPI_COMM_WORLD_SIZE="1")
    res = subprocess.run([sys.executable, "-c", "import lucid.distributed as d; print(d.init().size)"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT, env=env)
    assert res.stdout.strip() == "1", res.stderr

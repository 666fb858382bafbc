"""Rank-consistency guards under a real mpiexec: ranks started with different configs fail
on every rank naming the key, within 30 s; a replica changed mid-run is caught by the
periodic replica check."""
import os
import sys

import numpy as np
import pytest
from dist_scripts import mpirun

from lucid.distributed.consistency import ReplicaCheck, checksum, flatten

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG = os.path.join(ROOT, "configs", "debug.toml")


def launch_two(out_dir, set0: str, set1: str):
    """mpiexec -n 1 ... --set set0 : -n 1 ... --set set1 (one launcher, one world of 2)."""
    base = ["-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{out_dir}"']
    argv = [*base, "--set", set0, ":", "-n", "1", sys.executable, *base, "--set", set1]
    return mpirun.launch(1, argv, timeout=60, cwd=ROOT)


@pytest.mark.parametrize(
    "set0, set1, needle",
    [
        ("optim.lr=0.05", "optim.lr=0.07", "config.optim.lr: rank 0: 0.05, rank 1: 0.07"),
        ("run.sync_bn=true", "run.sync_bn=false", "config.run.sync_bn: rank 0: True, rank 1: False"),
        ("data.batch_size=6", "data.batch_size=5", "config.data.batch_size: rank 0: 6, rank 1: 5"),
    ],
)
def test_different_configs_fail_on_every_rank_naming_the_key(tmp_path, set0, set1, needle):
    res = launch_two(tmp_path, set0, set1)
    assert res.returncode != 0, res.stdout
    assert res.seconds < 30, res.seconds
    assert "ranks were started with different configs" in res.stderr, res.stderr
    assert needle in res.stderr, res.stderr
    assert not os.path.exists(os.path.join(tmp_path, "debug", "checkpoints")), "nothing may be trained or saved"


def test_a_perturbed_replica_is_caught_by_the_periodic_check(tmp_path):
    script = os.path.join(ROOT, "tests", "train_scripts", "perturb_replica.py")
    args = [DEBUG, "--set", f'run.output_dir="{tmp_path}"', "--set", "run.replica_check_interval=2", "--set", "run.epochs=1"]
    res = mpirun.launch(2, [script, *args], timeout=90, cwd=ROOT)
    assert "perturbed" in res.stdout
    assert res.returncode != 0, res.stdout + res.stderr
    assert "replica check at step 4: 'stem.conv1.weight' is no longer identical on every rank" in res.stderr, res.stderr


def test_unperturbed_run_passes_its_replica_checks(tmp_path):
    res = mpirun.launch(2, ["-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"',
                            "--set", "run.replica_check_interval=1", "--set", "run.epochs=1"], timeout=90, cwd=ROOT)
    assert res.returncode == 0, res.stderr


class _Module:
    def __init__(self, arrays):
        self.arrays = arrays

    def named_parameters(self):
        return [(f"p{i}", type("T", (), {"data": a})()) for i, a in enumerate(self.arrays)]

    def named_buffers(self):
        return []


def test_checksum_is_exact_and_bitwise():
    a = np.arange(10, dtype=np.float32)
    b = a.copy()
    b[3] = np.nextafter(b[3], np.float32(10))  # one ulp
    assert checksum([a])[0] == checksum([a.copy()])[0] and checksum([a])[0] != checksum([b])[0]
    assert flatten({"a": {"b": 1, "c": {}}, "d": 2}) == {"a.b": 1, "a.c": {}, "d": 2}
    with pytest.raises(ValueError, match="interval must be >= 0"):
        ReplicaCheck(_Module([a]), -1)

"""Training under a real mpiexec: the debug config end to end, exact resume at the same and
at other world sizes, and checkpoints that survive a killed rank or a corrupted shard."""
import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG = os.path.join(ROOT, "configs", "debug.toml")
FLOAT64 = ["--set", 'run.dtype="float64"', "--set", "run.ckpt_interval=3", "--set", "run.epochs=1", "--set", "run.log_samples=true"]


def launch(n: int, args: list, timeout: float = 120, script=None) -> subprocess.CompletedProcess:
    """``mpiexec -n n python -m launch.train args`` (or a script) in its own process group."""
    mpiexec = shutil.which("mpiexec", path=os.path.dirname(sys.executable)) or shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec is not on PATH")
    prog = [script] if script else ["-m", "launch.train"]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.Popen([mpiexec, "-n", str(n), sys.executable, *prog, *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"timed out after {timeout} s\n{out}\n{err}")
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def train(n: int, out_dir, *extra, ok=True) -> subprocess.CompletedProcess:
    res = launch(n, ["--config", DEBUG, "--set", f'run.output_dir="{out_dir}"', *extra])
    if ok:
        assert res.returncode == 0, f"exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    return res


def records(out_dir, kind: str) -> list[dict]:
    with open(os.path.join(out_dir, "debug", "metrics.jsonl")) as fh:
        return [r for r in map(json.loads, fh) if r["kind"] == kind]


def losses(out_dir) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in records(out_dir, "train")}


def sample_ids(out_dir) -> dict[int, list]:
    """step -> the sample ids every rank used in that step (sorted)."""
    steps: dict[int, list] = {}
    run = os.path.join(out_dir, "debug")
    for name in os.listdir(run):
        if name.startswith("samples-rank"):
            with open(os.path.join(run, name)) as fh:
                for r in map(json.loads, fh):
                    steps.setdefault(r["step"], []).extend(r["ids"])
    return {k: sorted(v) for k, v in steps.items()}


def checkpoint_tensors(path: str) -> dict[str, np.ndarray]:
    """Every tensor of a committed checkpoint, read straight from its shards."""
    from safetensors import safe_open

    with open(os.path.join(path, "manifest.json")) as fh:
        manifest = json.load(fh)
    out = {}
    for name, entry in manifest["tensors"].items():
        with safe_open(os.path.join(path, entry["file"]), framework="numpy") as f:
            out[name] = f.get_tensor(name)
    return out


def ckpt(out_dir, step: int) -> str:
    return os.path.join(out_dir, "debug", "checkpoints", f"step_{step:08d}")


def test_debug_config_end_to_end_on_two_ranks(tmp_path):
    res = train(2, tmp_path)
    summary = records(tmp_path, "summary")[-1]
    assert summary["steps"] == 16 and summary["skipped_steps"] == 0  # 96 samples / (6 x 2) x 2 epochs
    evals = records(tmp_path, "eval")
    assert [e["count"] for e in evals] == [30, 30]  # every validation image exactly once
    assert summary["val_top1"] == evals[-1]["top1"] and "done: 16 steps" in res.stdout + res.stderr
    trains = records(tmp_path, "train")
    assert [r["step"] for r in trains] == list(range(1, 17)) and trains[-1]["lr"] < trains[8]["lr"]
    kept = sorted(os.listdir(os.path.join(tmp_path, "debug", "checkpoints")))
    assert kept == ["step_00000008", "step_00000016"]
    with open(os.path.join(ckpt(tmp_path, 16), "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["world_size"] == 2 and manifest["step"] == 16
    shards = {e["file"] for e in manifest["tensors"].values()}
    assert shards == {"shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors"}
    sizes = [manifest["files"][s]["size"] for s in sorted(shards)]
    assert max(sizes) < 1.5 * min(sizes)  # byte-balanced shares


def test_resume_same_world_size_is_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, "--set", "run.max_steps=6")
    train(2, b, *FLOAT64, "--set", "run.max_steps=3")
    assert sorted(losses(b)) == [1, 2, 3]
    res = train(2, b, *FLOAT64, "--set", "run.max_steps=6", "--resume", "auto")
    assert "resumed from" in res.stdout + res.stderr
    assert losses(a) == losses(b)  # float64, step by step, bit for bit
    final_a, final_b = checkpoint_tensors(ckpt(a, 6)), checkpoint_tensors(ckpt(b, 6))
    assert final_a.keys() == final_b.keys()
    for name in final_a:
        np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)


@pytest.mark.parametrize("world", [1, 3])
def test_resume_at_another_world_size(tmp_path, world):
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, "--set", "run.max_steps=6")
    train(2, b, *FLOAT64, "--set", "run.max_steps=3")
    res = train(world, b, *FLOAT64, "--set", "run.max_steps=6", "--resume", "auto")
    assert f"resuming at world size {world}" in res.stdout + res.stderr
    ids_a, ids_b = sample_ids(a), sample_ids(b)
    assert ids_b == ids_a  # the same global batch at every step, whoever read it
    seen = [i for step in sorted(ids_b) for i in ids_b[step]]
    assert len(seen) == len(set(seen)) == 72  # 6 steps x global batch 12, none twice
    la, lb = losses(a), losses(b)
    assert sorted(lb) == list(range(1, 7))
    np.testing.assert_allclose([lb[s] for s in range(1, 7)], [la[s] for s in range(1, 7)], rtol=1e-10)
    final_a, final_b = checkpoint_tensors(ckpt(a, 6)), checkpoint_tensors(ckpt(b, 6))
    for name in final_a:
        np.testing.assert_allclose(final_b[name], final_a[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_rank_killed_while_checkpointing_keeps_previous(tmp_path):
    script = os.path.join(ROOT, "tests", "train_scripts", "kill_in_checkpoint.py")
    res = launch(2, ["6", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"', *FLOAT64, "--set", "run.max_steps=8"],
                 script=script)
    assert res.returncode != 0
    folder = os.path.join(tmp_path, "debug", "checkpoints")
    names = os.listdir(folder)
    assert "step_00000003" in names and "step_00000006" not in names
    assert any(n.startswith(".tmp-step_00000006") for n in names)  # the half-written one, never committed
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=8", "--resume", "auto")
    assert "resumed from" in res.stdout + res.stderr and "step_00000003" in res.stdout + res.stderr
    assert sorted(os.listdir(folder)) == ["step_00000006", "step_00000008"]  # keep_last 2; debris removed


def test_corrupted_shard_is_named_and_auto_resume_falls_back(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=6")
    shard = os.path.join(ckpt(tmp_path, 6), "shard-00001-of-00002.safetensors")
    with open(shard, "r+b") as fh:
        fh.seek(-16, os.SEEK_END)
        fh.write(b"\xff" * 16)
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=7", "--resume", ckpt(tmp_path, 6), ok=False)
    assert res.returncode != 0 and "shard-00001-of-00002.safetensors does not match its sha256" in res.stderr
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=7", "--resume", "auto")
    out = res.stdout + res.stderr
    assert "skipping checkpoint" in out and "shard-00001-of-00002.safetensors" in out
    assert "resumed from" in out and "step_00000003 at step 3" in out


def test_truncated_shard_is_detected(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=3")
    shard = os.path.join(ckpt(tmp_path, 3), "shard-00000-of-00002.safetensors")
    os.truncate(shard, os.path.getsize(shard) // 2)
    res = train(1, tmp_path, *FLOAT64, "--resume", ckpt(tmp_path, 3), ok=False)
    assert res.returncode != 0 and "shard-00000-of-00002.safetensors has" in res.stderr and "truncated" in res.stderr


def test_checkpoint_of_another_model_lists_keys(tmp_path):
    train(1, tmp_path, *FLOAT64, "--set", "run.max_steps=3")
    res = train(1, tmp_path, *FLOAT64, "--set", "model.overrides.channels=[8, 16, 32, 48]", "--resume", "auto", ok=False)
    assert res.returncode != 0
    assert "does not fit model 'resnet_18'" in res.stderr and "layer4.0.conv2.weight" in res.stderr


def test_export_and_evaluate(tmp_path):
    train(2, tmp_path)
    out = tmp_path / "model.safetensors"
    env = dict(os.environ, PYTHONPATH=ROOT)
    exp = subprocess.run([sys.executable, "-m", "launch.export", os.path.join(tmp_path, "debug", "checkpoints"),
                          "--out", str(out)], capture_output=True, text=True, cwd=ROOT, env=env)
    assert exp.returncode == 0, exp.stderr
    res = launch(2, ["--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"', "--weights", str(out)],
                 script=os.path.join(ROOT, "launch", "evaluate.py"))
    assert res.returncode == 0, res.stderr
    stats = json.loads(res.stdout.strip().splitlines()[-1])
    final = records(tmp_path, "summary")[-1]
    assert stats["top1"] == pytest.approx(final["val_top1"]) and stats["loss"] == pytest.approx(final["val_loss"])

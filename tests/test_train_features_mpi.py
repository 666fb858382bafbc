"""Training features under a real mpiexec: clipping identical on every rank, EMA resumed
exactly, the best checkpoint kept past keep_last and exported with --best / --ema."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from dist_scripts import mpirun
from safetensors.numpy import load_file
from test_train_resume import FLOAT64, checkpoint_tensors, ckpt, records, train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EMA = ["--set", "run.ema_decay=0.9"]


def test_clipping_after_the_average_is_identical_on_every_rank():
    res = mpirun.run_ok("clip_ddp.py", 2, "0.05")
    assert res[0]["before"] == res[1]["before"] > 0.05  # the averaged gradients' norm, the same everywhere
    assert res[0]["before"] == pytest.approx(res[0]["before_numpy"], rel=1e-5)
    assert res[0]["after"] == pytest.approx(0.05, rel=1e-5)
    assert res[0]["digest"] == res[1]["digest"]


def test_clip_grad_norm_in_training_logs_the_norm(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=3", "--set", "optim.clip_grad_norm=0.01")
    norms = [r["grad_norm"] for r in records(tmp_path, "train")]
    assert len(norms) == 3 and all(n > 0.01 for n in norms)  # the norm before clipping, per logged step


def test_resume_with_ema_is_exact(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, *EMA, "--set", "run.max_steps=6")
    train(2, b, *FLOAT64, *EMA, "--set", "run.max_steps=3")
    train(2, b, *FLOAT64, *EMA, "--set", "run.max_steps=6", "--resume", "auto")
    final_a, final_b = checkpoint_tensors(ckpt(a, 6)), checkpoint_tensors(ckpt(b, 6))
    ema = [n for n in final_a if n.startswith("ema/weights/")]
    assert len(ema) == len([n for n in final_a if n.startswith("model/")])
    for name in final_a:
        np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)
    assert not np.array_equal(final_a["ema/weights/fc.weight"], final_a["model/fc.weight"])
    ev_a, ev_b = records(a, "eval")[-1], records(b, "eval")[-1]
    assert {k: ev_a[k] for k in ("ema_top1", "ema_loss", "top1")} == {k: ev_b[k] for k in ("ema_top1", "ema_loss", "top1")}


def export(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "launch.export", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, env=dict(os.environ, PYTHONPATH=ROOT))


def test_keep_best_marks_and_keeps_the_best_and_export_picks_it(tmp_path):
    train(2, tmp_path, *EMA, "--set", "run.keep_best=true", "--set", "run.keep_last=1", "--set", "run.epochs=3")
    evals = records(tmp_path, "eval")
    assert [e["step"] for e in evals] == [8, 16, 24] and all("ema_top1" in e for e in evals)
    best = max(evals, key=lambda e: (e["top1"], -e["step"]))  # the first of the highest
    assert [e["step"] for e in evals if e["best"]][-1] == best["step"]
    folder = os.path.join(tmp_path, "debug", "checkpoints")
    kept = sorted(os.listdir(folder))
    assert kept == sorted({f"step_{best['step']:08d}", "step_00000024"})
    with open(os.path.join(folder, f"step_{best['step']:08d}", "manifest.json")) as fh:
        assert json.load(fh)["marks"]["best"] == {"val_top1": best["top1"], "step": best["step"]}
    out = tmp_path / "best.safetensors"
    res = export(folder, "--best", "--ema", "--out", out)
    assert res.returncode == 0, res.stderr
    stored = checkpoint_tensors(os.path.join(folder, f"step_{best['step']:08d}"))
    for name, value in load_file(str(out)).items():
        np.testing.assert_array_equal(value, stored[f"ema/weights/{name}"], err_msg=name)


def test_pruning_spares_the_newest_marked_checkpoint(tmp_path):
    res = mpirun.run_ok("checkpoint_marks.py", 2, str(tmp_path))
    assert res[0]["kept"] == ["step_00000002", "step_00000004", "step_00000005"]
    res = export(tmp_path, "--best", "--out", tmp_path / "w.safetensors")
    assert res.returncode == 0 and float(load_file(str(tmp_path / "w.safetensors"))["w"][0]) == 2.0
    res = export(tmp_path, "--ema", "--out", tmp_path / "w.safetensors")
    assert res.returncode == 2 and "holds no EMA weights" in res.stderr
    manifest = os.path.join(tmp_path, "step_00000002", "manifest.json")
    with open(manifest) as fh:
        unmarked = {k: v for k, v in json.load(fh).items() if k != "marks"}
    with open(manifest, "w") as fh:
        json.dump(unmarked, fh)
    res = export(tmp_path, "--best", "--out", tmp_path / "w.safetensors")
    assert res.returncode == 2 and "no checkpoint under" in res.stderr and "marked best" in res.stderr

"""Run directories under a real mpiexec -n 2: a fresh run into a folder holding checkpoints is
refused with the three ways out, --overwrite moves the old run aside, --resume auto after it
never loads the other run; config.toml, command.txt, run_start records and the banner;
metrics.jsonl after a resume marks it, and read_metrics gives the history without repeats."""
import os

from dist_scripts import mpirun
from test_train_resume import DEBUG, FLOAT64, ROOT, ckpt, records, train

from lucid.train.config import load_config
from lucid.train.run_dir import read_metrics


def test_reused_run_directory_is_refused_and_overwrite_moves_it(tmp_path):
    train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=6")
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=3", ok=False)
    assert res.returncode == 2
    run = os.path.join(tmp_path, "debug")
    assert f"{run} already holds a run (checkpoints step_00000003, step_00000006)" in res.stderr
    assert "--resume auto" in res.stderr and "run.name" in res.stderr and "--overwrite" in res.stderr
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["step_00000003", "step_00000006"]

    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=3", "--overwrite")
    (old,) = [n for n in os.listdir(tmp_path) if n.startswith("debug.old-")]
    assert f"was moved to {os.path.join(tmp_path, old)}" in res.stdout
    assert sorted(os.listdir(os.path.join(tmp_path, old, "checkpoints"))) == ["step_00000003", "step_00000006"]
    assert sorted(os.listdir(os.path.join(run, "checkpoints"))) == ["step_00000003"]
    assert [r["kind"] for r in records(tmp_path, "run_start")] == ["run_start"]  # a new metrics.jsonl

    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=5", "--resume", "auto")
    assert f"resumed from {ckpt(tmp_path, 3)} at step 3" in res.stdout  # this run's, never the old run's 6
    assert records(tmp_path, "summary")[-1]["steps"] == 5


def test_run_start_records_config_command_and_resume_marker(tmp_path):
    died = mpirun.launch(2, [os.path.join(ROOT, "tests", "train_scripts", "faults.py"), "--config", DEBUG,
                             "--set", f'run.output_dir="{tmp_path}"', *FLOAT64, "--set", "run.max_steps=6"],
                         timeout=120, cwd=ROOT, env={"LUCID_TEST_DIE": f"1:5:{tmp_path / 'died'}"})
    assert died.returncode != 0  # rank 1 SIGKILLed in step 5: steps 1-4 logged, checkpoint 3 committed
    res = train(2, tmp_path, *FLOAT64, "--set", "run.max_steps=6", "--resume", "auto")
    run = os.path.join(tmp_path, "debug")
    assert "run 'debug' in " in res.stdout and "on 2 rank(s) x cpu, global batch 12 (6 per rank x 2 x grad_accum 1)" in res.stdout
    assert f"resuming {ckpt(tmp_path, 3)} at step 3" in res.stdout
    starts = records(tmp_path, "run_start")
    assert [(s["resume_step"], s["world_size"], s["global_batch"], s["lr"]) for s in starts] == [(None, 2, 12, 0.05), (3, 2, 12, 0.05)]
    assert starts[1]["resume_from"] == ckpt(tmp_path, 3) and starts[1]["device"] == "cpu"
    cfg = load_config(os.path.join(run, "config.toml"))
    assert cfg.run.max_steps == 6 and cfg.run.dtype == "float64"
    with open(os.path.join(run, "command.txt")) as fh:
        lines = fh.read().splitlines()
    assert len(lines) == 2 and "--config" in lines[0] and lines[1].endswith("--resume auto")
    # the raw log has step 4 twice (logged, then redone after the resume from 3); the history once
    raw = [r["step"] for r in records(tmp_path, "train")]
    assert raw == [1, 2, 3, 4, 4, 5, 6]
    history = read_metrics(os.path.join(run, "metrics.jsonl"))
    assert [r["step"] for r in history if r["kind"] == "train"] == [1, 2, 3, 4, 5, 6]
    assert [r["kind"] for r in history].count("summary") == 1

"""[run] tensorboard = true: event files that TensorBoard's own reader reads back with the
values of metrics.jsonl; a missing tensorboardX is a clear error on every rank."""
import json
import os
import subprocess
import sys

import pytest
from dist_scripts import mpirun

from lucid.train.logging import MetricsLog
from lucid.train.tensorboard import scalars

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEBUG = os.path.join(ROOT, "configs", "debug.toml")
# launch.train with tensorboardX made unimportable (what an environment without it sees)
WITHOUT_TBX = "import sys; sys.modules['tensorboardX'] = None; from launch.train import main; sys.exit(main(sys.argv[1:]))"


def read_events(log_dir: str) -> dict[str, list[tuple[int, float]]]:
    """tag -> [(step, value)] through TensorBoard's EventAccumulator."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    acc = accumulator.EventAccumulator(log_dir, size_guidance={accumulator.SCALARS: 0})
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_scalars_of_a_record():
    record = {"kind": "train", "time": 1.5, "step": 7, "epoch": 0, "loss": 0.5, "lr": 0.1, "img_per_s": 12.5,
              "grad_norm": 3.25, "skipped": False, "path": "x"}
    assert scalars("train", record) == {"train/loss": 0.5, "train/lr": 0.1, "train/img_per_s": 12.5,
                                        "train/grad_norm": 3.25}
    assert scalars("summary", {"val_top1": 90.0}) == {}  # no step: not a curve


def test_metrics_log_writes_grad_norm_and_eval_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    log = MetricsLog(str(tmp_path), enabled=True, tensorboard=True)
    log.write("train", step=1, epoch=0, loss=2.5, lr=0.01, img_per_s=100.0, grad_norm=4.0)
    log.write("train", step=2, epoch=0, loss=2.0, lr=0.02, img_per_s=110.0, grad_norm=3.0)
    log.write("eval", step=2, epoch=0, count=30, top1=40.0, top5=90.0, loss=1.75)
    log.write("checkpoint", step=2, epoch=0, path="somewhere")
    events = read_events(str(tmp_path / "tensorboard"))
    assert events["train/grad_norm"] == [(1, 4.0), (2, 3.0)]
    assert events["train/loss"] == [(1, 2.5), (2, 2.0)]
    assert events["eval/top1"] == [(2, 40.0)] and events["eval/top5"] == [(2, 90.0)]
    assert not any(tag.startswith("checkpoint/") or tag.endswith("/count") for tag in events)


def test_training_run_writes_event_files_matching_metrics(tmp_path):
    pytest.importorskip("tensorboardX")
    res = subprocess.run([sys.executable, "-m", "launch.train", "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"',
                          "--set", "run.tensorboard=true", "--set", "run.epochs=1"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    run = tmp_path / "debug"
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    events = read_events(str(run / "tensorboard"))
    for kind, keys in (("train", ("loss", "lr", "img_per_s")), ("eval", ("top1", "top5", "loss"))):
        rows = [r for r in records if r["kind"] == kind]
        assert rows, kind
        for key in keys:
            got = events[f"{kind}/{key}"]
            assert [s for s, _ in got] == [r["step"] for r in rows]
            assert [v for _, v in got] == pytest.approx([r[key] for r in rows], rel=1e-6)  # float32 in the file
    assert len([r for r in records if r["kind"] == "train"]) == 16  # 96 samples / batch 6, logged every step


def test_missing_tensorboardx_is_a_clear_error_on_every_rank(tmp_path):
    args = ["-c", WITHOUT_TBX, "--config", DEBUG, "--set", f'run.output_dir="{tmp_path}"', "--set", "run.tensorboard=true"]
    res = mpirun.launch(2, args, timeout=120, cwd=ROOT)
    assert res.returncode != 0
    message = "run.tensorboard = true needs the tensorboardX package, which is not installed"
    assert (res.stdout + res.stderr).count(message) == 2, res.stdout + res.stderr
    assert "pip install" in res.stderr and not (tmp_path / "debug" / "metrics.jsonl").exists()

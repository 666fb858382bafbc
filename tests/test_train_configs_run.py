"""Every shipped config trains: 2 steps on fake data, one process and 2 ranks under mpiexec.

Only the sizes shrink (image size, batch, sample counts, workers): the model, its
overrides, presets, optimizer and schedule are the config's own, so a config whose
model cannot be built, wrapped by DDP or trained fails here."""
import glob
import json
import os
import tomllib

import pytest
from dist_scripts import mpirun

from lucid.models import create_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.toml")))
SIZE = 32


def small_overrides(path: str, out_dir) -> list[str]:
    """--set arguments that keep the config's model and presets but shrink its data and length."""
    with open(path, "rb") as fh:
        data = tomllib.load(fh)["data"]
    sets = {"data.source": '"fake"', "data.image_size": min(SIZE, data.get("image_size", 224)), "data.batch_size": 2,
            "data.eval_batch_size": 2, "data.workers": 0, "data.source_args": "{ train_samples = 8, val_samples = 6 }",
            "run.max_steps": 2, "run.log_interval": 1, "run.progress": "false", "run.output_dir": f'"{out_dir}"'}
    for table in ("train_preset_args", "eval_preset_args"):  # resize the images to the (smaller) size too
        if "resize" in data.get(table, {}):
            sets[f"data.{table}.resize"] = min(SIZE + 4, data[table]["resize"])
    return [a for k, v in sets.items() for a in ("--set", f"{k}={v}")]


@pytest.mark.parametrize("world", [1, 2])
@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_trains_two_steps(path, world, tmp_path):
    res = mpirun.launch(world, ["-m", "launch.train", "--config", path, *small_overrides(path, tmp_path)],
                        timeout=240, cwd=ROOT)
    assert res.returncode == 0, f"{os.path.basename(path)} at {world} rank(s): exit {res.returncode}\n{res.stdout}\n{res.stderr}"
    with open(path, "rb") as fh:
        config = tomllib.load(fh)
    model = config["model"]
    runs = os.listdir(tmp_path)
    assert len(runs) == 1
    with open(os.path.join(tmp_path, runs[0], "metrics.jsonl")) as fh:
        records = [json.loads(line) for line in fh]
    trains = [r for r in records if r["kind"] == "train"]
    assert [r["step"] for r in trains] == [1, 2] and all(r["loss"] == r["loss"] > 0 for r in trains)
    summary = [r for r in records if r["kind"] == "summary"][-1]
    assert summary["steps"] == 2 and summary["skipped_steps"] == 0
    assert [r["count"] for r in records if r["kind"] == "eval"] == [6]  # every validation image once
    ckpt = [r for r in records if r["kind"] == "checkpoint"][-1]["path"]
    with open(os.path.join(ckpt, "manifest.json")) as fh:
        manifest = json.load(fh)
    assert manifest["world_size"] == world
    # the checkpoint holds the config's model: every parameter of a fresh one, same shapes
    reference = create_model(model["name"], num_classes=model["num_classes"], **model.get("overrides", {}))
    if model["name"].startswith("d2l"):
        import lucid

        with lucid.no_grad():
            reference.eval()(lucid.zeros(1, config["data"]["channels"], SIZE, SIZE))
    stored = {n[len("model/"):]: e["shape"] for n, e in manifest["tensors"].items() if n.startswith("model/")}
    expected = {n: list(t.shape) for n, t in reference.state_dict().items() if t.ndim > 0}
    assert {n: s for n, s in stored.items() if n in expected} == expected

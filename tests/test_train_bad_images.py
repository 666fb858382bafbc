"""Unreadable images under data.on_error = "skip", with a real mpiexec -n 2: a folder holding a
truncated JPEG, a zero-byte .jpg and a text file named .jpg -> 3 skipped per epoch in metrics
and in the summary, listed in skipped-images.txt; evaluation counts exactly the readable
images (never a duplicate) and fails under "raise". Process workers kept between epochs
give the same run as threads; the worker settings reach both loaders."""
import io
import os

import numpy as np
import pytest
from PIL import Image
from test_train_resume import DEBUG, records, train


def jpeg(rng, size=48) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (size, size), dtype=np.uint8)).save(buf, "JPEG", quality=95)
    return buf.getvalue()


def make_tree(root, good_per_class: dict, rng) -> list[str]:
    """Class folders c0..c3 of good JPEGs; class c0 also gets the three bad files. Returns the bad paths."""
    for c, n in good_per_class.items():
        os.makedirs(os.path.join(root, c), exist_ok=True)
        for i in range(n):
            with open(os.path.join(root, c, f"img{i}.jpg"), "wb") as fh:
                fh.write(jpeg(rng))
    bad = [os.path.join(root, "c0", n) for n in ("truncated.jpg", "empty.jpg", "notes.jpg")]
    data = jpeg(rng)
    with open(bad[0], "wb") as fh:
        fh.write(data[: len(data) // 2])
    open(bad[1], "wb").close()
    with open(bad[2], "w") as fh:
        fh.write("this is a text file, not an image\n")
    return bad


def folder_run(data) -> list[str]:
    """launch.train options: the debug config on the ImageFolder tree ``data``, two epochs."""
    return ["--set", 'data.source="folder"', "--set", "data.source_args={}", "--set", f'data.root="{data}"',
            "--set", "data.image_size=16", "--set", "run.epochs=2"]


def untimed(rows: list[dict]) -> list[dict]:
    """Metrics records without their clock fields (which differ between any two runs)."""
    return [{k: v for k, v in r.items() if k not in ("time", "seconds", "img_per_s")} for r in rows]


def test_skipped_images_counted_listed_and_left_out_of_eval(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    bad_train = make_tree(data / "train", {"c0": 3, "c1": 6, "c2": 6, "c3": 6}, rng)  # 21 good + 3 bad = 2 global batches
    bad_val = make_tree(data / "val", {"c0": 3, "c1": 3, "c2": 3, "c3": 3}, rng)  # 12 readable + 3 bad
    out = tmp_path / "out"
    common = folder_run(data)
    res = train(2, out, *common, "--set", 'data.on_error="skip"')
    assert [r["skipped_images"] for r in records(out, "epoch")] == [3, 3]
    evals = records(out, "eval")
    assert [(e["count"], e["skipped_images"]) for e in evals] == [(12, 3), (12, 3)]  # never a duplicate counted
    summary = records(out, "summary")[-1]
    assert summary["skipped_images"] == 3 and summary["unreadable_val_images"] == 3
    assert "3 unreadable training images skipped, 3 validation images left out" in res.stdout
    with open(out / "debug" / "skipped-images.txt") as fh:
        listed = [line.rstrip("\n").split("\t") for line in fh]
    assert sorted((s, p) for s, p, _ in listed) == sorted([("train", p) for p in bad_train] + [("val", p) for p in bad_val])
    assert all(reason for _, _, reason in listed)

    res = train(2, tmp_path / "strict", *common, "--set", 'data.on_error="raise"', ok=False)
    assert res.returncode != 0 and "c0/" in res.stderr and ".jpg" in res.stderr


def test_process_workers_kept_between_epochs_give_the_threads_run(tmp_path):
    """data.worker_mode = "process" with persistent_workers under mpirun -n 2: the same losses,
    skip counts and evaluations as thread workers, over two epochs (the workers' skip records
    merged once per image and epoch)."""
    rng = np.random.default_rng(1)
    data = tmp_path / "data"
    make_tree(data / "train", {"c0": 3, "c1": 6, "c2": 6, "c3": 6}, rng)
    make_tree(data / "val", {"c0": 3, "c1": 3, "c2": 3, "c3": 3}, rng)
    common = [*folder_run(data), "--set", 'data.on_error="skip"', "--set", "data.workers=2"]
    train(2, tmp_path / "threads", *common)
    train(2, tmp_path / "processes", *common, "--set", 'data.worker_mode="process"', "--set", "data.persistent_workers=true")
    for kind in ("train", "epoch", "eval"):
        got, want = (untimed(records(tmp_path / run, kind)) for run in ("processes", "threads"))
        assert got == want and got, kind
    assert [r["skipped_images"] for r in records(tmp_path / "processes", "epoch")] == [3, 3]


def test_worker_settings_reach_both_loaders():
    from lucid.train.config import load_config
    from lucid.train.data_setup import build_data

    def loaders(*overrides):
        cfg = load_config(DEBUG, list(overrides))
        run_data = build_data(cfg.data, cfg.model.num_classes, 0, 1, cfg.run.seed)
        return [(ld.num_workers, ld.worker_mode, ld.persistent_workers) for ld in (run_data.train_loader, run_data.val_loader)]

    assert loaders("data.workers=2", 'data.worker_mode="process"', "data.persistent_workers=true") == [(2, "process", True)] * 2
    assert loaders("data.workers=2") == [(2, "thread", False)] * 2
    assert loaders("data.workers=0", "data.persistent_workers=true") == [(0, "thread", False)] * 2  # nothing to keep
    with pytest.raises(ValueError, match="data.worker_mode"):
        loaders('data.worker_mode="fork"')

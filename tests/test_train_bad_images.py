"""Unreadable images under data.on_error = "skip", with a real mpiexec -n 2: a folder holding a
truncated JPEG, a zero-byte .jpg and a text file named .jpg -> 3 skipped per epoch in metrics
and in the summary, listed in skipped-images.txt; evaluation counts exactly the readable
images (never a duplicate) and fails under "raise"."""
import io
import os

import numpy as np
from PIL import Image
from test_train_resume import records, train


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


def test_skipped_images_counted_listed_and_left_out_of_eval(tmp_path):
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    bad_train = make_tree(data / "train", {"c0": 3, "c1": 6, "c2": 6, "c3": 6}, rng)  # 21 good + 3 bad = 2 global batches
    bad_val = make_tree(data / "val", {"c0": 3, "c1": 3, "c2": 3, "c3": 3}, rng)  # 12 readable + 3 bad
    out = tmp_path / "out"
    common = ["--set", 'data.source="folder"', "--set", "data.source_args={}", "--set", f'data.root="{data}"',
              "--set", "data.image_size=16", "--set", "run.epochs=2"]
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

"""Distributed evaluation metrics equal the whole-set figures for any world size."""
import numpy as np
import pytest
from dist_scripts.mpirun import run_ok


def whole_set():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((23, 7))
    labels = rng.integers(0, 7, 23)
    losses = rng.random(23)
    order = np.argsort(-logits, axis=1)
    top1 = 100.0 * np.mean(order[:, 0] == labels)
    top5 = 100.0 * np.mean([labels[i] in order[i, :5] for i in range(23)])
    return top1, top5, losses.mean()


@pytest.mark.parametrize("world", [2, 3])
def test_meter_is_exact_over_uneven_shards(world):
    top1, top5, loss = whole_set()
    res = run_ok("metrics.py", world, timeout=60)
    counts = [res[r]["local_count"] for r in range(world)]
    assert len(set(counts)) > 1  # the shards really are uneven
    for got in res.values():
        assert got["count"] == 23
        assert got["top1"] == pytest.approx(top1, abs=1e-12)
        assert got["top5"] == pytest.approx(top5, abs=1e-12)
        assert got["loss"] == pytest.approx(loss, abs=1e-12)

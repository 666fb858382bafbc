"""Training with Mixup/CutMix, RandAugment and random erasing on the debug config under a
real mpiexec: it runs end to end, and the mixed loss of a step is the same on 1 and 2
ranks (the global batch is mixed, not each rank's share)."""
import numpy as np
import pytest
from test_train_resume import FLOAT64, checkpoint_tensors, ckpt, records, train

from lucid.train.config import config_from_dict
from lucid.train.data_setup import build_data

MIX = ["--set", "data.mixup_alpha=0.8", "--set", "data.cutmix_alpha=1.0", "--set", "optim.label_smoothing=0.1"]


def test_one_epoch_with_mixing_and_augmentation_on_two_ranks(tmp_path):
    args = 'data.train_preset_args={padding = 2, auto_augment = "trivialaugmentwide", random_erasing = 0.5}'
    train(2, tmp_path, *MIX, "--set", "run.epochs=1", "--set", args)
    summary = records(tmp_path, "summary")[-1]
    assert summary["steps"] == 8 and summary["skipped_steps"] == 0  # 96 samples / (6 x 2)
    losses = [r["loss"] for r in records(tmp_path, "train")]
    assert len(losses) == 8 and all(0 < v < 20 for v in losses)
    assert records(tmp_path, "eval")[-1]["count"] == 30


def test_mixed_loss_does_not_depend_on_the_world_size(tmp_path):
    steps = ["--set", "run.max_steps=3"]
    train(1, tmp_path / "one", *FLOAT64, *MIX, *steps, "--set", "data.batch_size=12")
    train(2, tmp_path / "two", *FLOAT64, *MIX, *steps)
    one = [r["loss"] for r in records(tmp_path / "one", "train")]
    two = [r["loss"] for r in records(tmp_path / "two", "train")]
    assert len(one) == len(two) == 3
    for a, b in zip(one, two):
        assert abs(a - b) <= 1e-9 * abs(a)


def test_resume_with_mixing_and_augmentation_is_exact(tmp_path):
    aug = ["--set", 'data.train_preset_args={padding = 2, auto_augment = "randaugment", random_erasing = 0.5}', *MIX]
    a, b = tmp_path / "a", tmp_path / "b"
    train(2, a, *FLOAT64, *aug, "--set", "run.max_steps=6")
    train(2, b, *FLOAT64, *aug, "--set", "run.max_steps=3")
    train(2, b, *FLOAT64, *aug, "--set", "run.max_steps=6", "--resume", "auto")
    final_a, final_b = checkpoint_tensors(ckpt(a, 6)), checkpoint_tensors(ckpt(b, 6))
    assert final_a.keys() == final_b.keys()
    for name in final_a:
        np.testing.assert_array_equal(final_a[name], final_b[name], err_msg=name)
    assert [r["loss"] for r in records(a, "train")][3:] == [r["loss"] for r in records(b, "train")][3:]


def test_a_preset_argument_the_transform_rejects_names_the_config_key():
    cfg = config_from_dict({"model": {"num_classes": 3}, "data": {
        "source": "fake", "image_size": 8, "channels": 1, "train_preset": "small_train", "eval_preset": "small_eval",
        "train_preset_args": {"random_erasing": 0.5, "erasing_value": "noise"}}})
    with pytest.raises(ValueError, match=r"data.train_preset_args = .* rejected by transform preset 'small_train': .*'noise'"):
        build_data(cfg.data, 3, 0, 1, 0)

"""uint8 batches normalised after assembly (``normalize=False`` presets, ``normalize_batch``,
``DevicePrefetcher(normalize=...)``) equal the per-sample float pipeline bit for bit."""
import json
import os

import numpy as np
import pytest

import lucid
from lucid._backend import asnumpy
from lucid.data import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    DataLoader,
    ImageFolder,
    imagenet_eval,
    imagenet_train,
    make_fake_image_folder,
    normalize_batch,
)
from lucid.data.device_prefetch import DevicePrefetcher
from lucid.data.presets import IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD, small_train
from lucid.data.transforms import Compose, Lighting, Normalize, Resize, ToArray
from lucid.ops.layout import is_channels_last


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("uint8")
    make_fake_image_folder(str(root), num_classes=2, per_class=5, sizes=((61, 47), (90, 70)), seed=3)
    return root


def _loader(tree, preset, **kwargs):
    return DataLoader(ImageFolder(tree, transform=preset(**kwargs)), batch_size=4, seed=7)


@pytest.mark.parametrize("preset,channels", [(imagenet_train, 3), (imagenet_eval, 3), (imagenet_train, 1)])
def test_normalized_uint8_batches_equal_the_float_pipeline(tree, preset, channels):
    mean, std = (IMAGENET_MEAN, IMAGENET_STD) if channels == 3 else (IMAGENET_GRAY_MEAN, IMAGENET_GRAY_STD)
    floats = list(_loader(tree, preset, size=32, channels=channels))
    raw = list(_loader(tree, preset, size=32, channels=channels, normalize=False))
    assert len(raw) == len(floats) == 3
    for (x, y), (u, v) in zip(floats, raw):
        assert u.dtype == lucid.uint8 and u.shape == x.shape == (len(y), channels, 32, 32)
        assert is_channels_last(u.data)
        got = normalize_batch(u, mean, std)
        assert got.dtype == lucid.float32 and is_channels_last(got.data)
        np.testing.assert_array_equal(got.numpy(), x.numpy())
        np.testing.assert_array_equal(v.numpy(), y.numpy())
    hwc = raw[0][0].data.transpose(0, 2, 3, 1)  # plain (N, H, W, C) arrays too
    np.testing.assert_array_equal(normalize_batch(hwc, mean, std), floats[0][0].data.transpose(0, 2, 3, 1))


def test_prefetcher_normalizes_on_the_cpu(tree):
    floats = list(_loader(tree, imagenet_train, size=24))
    got = list(DevicePrefetcher(_loader(tree, imagenet_train, size=24, normalize=False), "cpu", (IMAGENET_MEAN, IMAGENET_STD)))
    for (x, y), (g, h) in zip(floats, got):
        np.testing.assert_array_equal(g.numpy(), x.numpy())
        np.testing.assert_array_equal(h.numpy(), y.numpy())


def test_prefetcher_uploads_bytes_and_normalizes_on_the_gpu(fake_gpu, tree):
    floats = list(_loader(tree, imagenet_train, size=24))
    it = DevicePrefetcher(_loader(tree, imagenet_train, size=24, normalize=False), "gpu", (IMAGENET_MEAN, IMAGENET_STD))
    got = list(it)
    assert max(s.nbytes for s in it._slots) < 4 * 24 * 24 * 3 + 4096  # uint8 images (+ labels) went over
    for (x, y), (g, h) in zip(floats, got):
        assert g.device == "gpu:0" and g.dtype == lucid.float32
        np.testing.assert_array_equal(asnumpy(g.data), x.numpy())
        np.testing.assert_array_equal(asnumpy(h.data), y.numpy())


def test_bad_uses_are_named():
    with pytest.raises(ValueError, match="Normalize after ToArray"):
        Compose([Resize((8, 8)), ToArray(np.uint8), Normalize((0.5,), (0.5,))])
    with pytest.raises(ValueError, match="Lighting after ToArray"):
        Compose([ToArray(np.uint8), Lighting(0.1)])
    with pytest.raises(ValueError, match="dtype must be a float type or uint8"):
        ToArray(np.int32)
    with pytest.raises(ValueError, match="lighting and random_erasing"):
        imagenet_train(32, lighting=0.1, normalize=False)
    with pytest.raises(ValueError, match="lighting and random_erasing"):
        imagenet_train(32, random_erasing=0.25, normalize=False)
    with pytest.raises(TypeError, match="expected uint8 images, got float32"):
        normalize_batch(np.zeros((1, 4, 4, 3), np.float32), IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="3 mean/std values for images of 1 channel"):
        normalize_batch(np.zeros((1, 4, 4, 1), np.uint8), IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(ValueError, match="std > 0"):
        DevicePrefetcher(iter([]), "cpu", ((0.5, 0.5, 0.5), (0.2, 0.0, 0.2)))
    with pytest.raises(ValueError, match="not 8-bit"):
        Compose([ToArray(np.uint8)])(np.zeros((4, 4, 3), np.float32))
    assert small_train(8).transforms[-1].__class__ is Normalize  # the float pipeline stays the default


def _run(tmp_path, where, device="cpu", extra=()):
    from lucid.train.config import load_config
    from lucid.train.trainer import Trainer

    root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "debug.toml")
    cfg = load_config(root, [f'run.output_dir="{tmp_path / where}"', "run.max_steps=4", "run.epochs=1",
                             f'run.device="{device}"', f'data.normalize_on="{where}"', *extra])
    trainer = Trainer(cfg)
    summary = trainer.fit()
    with open(os.path.join(trainer.run_dir, "metrics.jsonl")) as f:
        losses = [r["loss"] for r in map(json.loads, f) if r["kind"] == "train"]
    return summary, losses


@pytest.mark.parametrize("device", ["cpu", "gpu"])
def test_a_run_normalizing_on_the_device_equals_one_normalizing_in_the_loader(tmp_path, device, request):
    if device == "gpu":
        request.getfixturevalue("fake_gpu")
    loader, loader_losses = _run(tmp_path, "loader", device)
    on_device, device_losses = _run(tmp_path, "device", device)
    assert loader_losses and device_losses == loader_losses
    for key in ("val_top1", "val_top5", "val_loss"):
        assert on_device[key] == loader[key]


def test_a_run_refuses_what_cannot_normalize_on_the_device(tmp_path):
    with pytest.raises(ValueError, match="mixup_alpha"):
        _run(tmp_path, "device", extra=["data.mixup_alpha=0.2"])
    with pytest.raises(ValueError, match="yields uint8 images that nothing would normalise"):
        _run(tmp_path, "loader", extra=['data.train_preset="imagenet_train"', "data.train_preset_args={ normalize = false }"])
    with pytest.raises(ValueError, match="data.train_preset 'small_train' to end in ToArray"):
        _run(tmp_path, "device", extra=["data.train_preset_args={ padding = 2, random_erasing = 0.5 }"])

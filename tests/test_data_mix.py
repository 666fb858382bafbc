"""Mixup/CutMix: timm's formulas (written here independently in NumPy), the area-corrected
CutMix lambda, the parameter draws, soft-target cross-entropy, config errors, and the
same mixed global batch at world sizes 1, 2 and 3 under a real mpiexec."""
import numpy as np
import pytest
from dist_scripts import mpirun

import lucid
import lucid.nn.functional as F
from lucid.autograd import gradcheck
from lucid.data.mix import MixParams, Mixup, cutmix_lam, mix_generator, rand_bbox
from lucid.distributed.group import ProcessGroup
from lucid.train.batch_mix import GlobalBatchMix, build_batch_mix
from lucid.train.config import ConfigError, config_from_dict


def soft_targets(labels, partner, lam, smoothing, classes):
    """timm's mixup_target: smoothed one-hot rows, lam * y + (1 - lam) * y_partner (float32)."""
    off = smoothing / classes
    on = 1.0 - smoothing + off
    y1 = np.full((len(labels), classes), off, np.float32)
    y1[np.arange(len(labels)), labels] = on
    y2 = np.full((len(labels), classes), off, np.float32)
    y2[np.arange(len(labels)), partner] = on
    return y1 * np.float32(lam) + y2 * np.float32(1.0 - lam)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.standard_normal((6, 5, 7, 3)).astype(np.float32), rng.integers(0, 5, 6)


def test_mixup_batch_and_targets_follow_timm(batch):
    x, y = batch
    m = Mixup(mixup_alpha=1.0, label_smoothing=0.1, num_classes=5)
    p = MixParams(lam=0.3)
    mixed = m.mix_images(x, x[::-1], p)
    np.testing.assert_array_equal(mixed, x * np.float32(0.3) + x[::-1] * np.float32(0.7))
    t = m.targets(y, y[::-1], p)
    np.testing.assert_array_equal(t, soft_targets(y, y[::-1], 0.3, 0.1, 5))
    np.testing.assert_allclose(t.sum(1), 1.0, rtol=1e-6)
    assert t[0, y[0]] >= 0.3 * 0.92  # on = 1 - 0.1 + 0.02 carries lam of the sample's own class
    np.testing.assert_array_equal(m.targets(y, y[::-1], MixParams()), soft_targets(y, y, 1.0, 0.1, 5))


def test_cutmix_pastes_the_box_from_the_partner(batch):
    x, y = batch
    m = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, label_smoothing=0.0, num_classes=5)
    box = (1, 4, 2, 7)  # rows 1..3, columns 2..6
    p = MixParams(lam=cutmix_lam(5, 7, box), cutmix=True, box=box)
    mixed = m.mix_images(x, x[::-1], p)
    expected = x.copy()
    expected[:, 1:4, 2:7] = x[::-1, 1:4, 2:7]
    np.testing.assert_array_equal(mixed, expected)
    assert p.lam == pytest.approx(1 - 15 / 35)
    np.testing.assert_array_equal(m.targets(y, y[::-1], p), soft_targets(y, y[::-1], 1 - 15 / 35, 0.0, 5))


class Centre:
    """A generator stand-in whose integers() returns a chosen box centre (cy, then cx)."""

    def __init__(self, *values):
        self.values = list(values)

    def integers(self, low, high):
        v = self.values.pop(0)
        assert low <= v < high
        return v


def test_cutmix_box_size_and_area_corrected_lambda_with_clipping():
    # lam 0.75 -> sides * sqrt(0.25): a 5 x 4 box in a 10 x 8 image
    assert rand_bbox(10, 8, 0.75, Centre(5, 4)) == (3, 8, 2, 6)
    assert cutmix_lam(10, 8, (3, 8, 2, 6)) == pytest.approx(1 - 20 / 80)
    # centred on the top-left corner: clipped to rows 0..2 and columns 0..1 (3 x 2 of 5 x 4)
    box = rand_bbox(10, 8, 0.75, Centre(0, 0))
    assert box == (0, 3, 0, 2)
    assert cutmix_lam(10, 8, box) == pytest.approx(1 - 6 / 80)  # not the requested 0.75
    m = Mixup(mixup_alpha=0.0, cutmix_alpha=1.0, num_classes=3)
    for step in range(50):
        p = m.params(mix_generator(0, step, 0), 10, 8)
        y0, y1, x0, x1 = p.box
        assert p.cutmix and 0 <= y0 <= y1 <= 10 and 0 <= x0 <= x1 <= 8
        assert p.lam == pytest.approx(1 - (y1 - y0) * (x1 - x0) / 80)


def test_parameter_draws_prob_switch_and_beta():
    both = Mixup(mixup_alpha=0.5, cutmix_alpha=1.0, prob=1.0, switch_prob=0.5, num_classes=3)
    draws = [both.params(mix_generator(5, s, 0), 16, 16) for s in range(400)]
    share = np.mean([p.cutmix for p in draws])
    assert 0.4 < share < 0.6
    lams = np.array([p.lam for p in draws if not p.cutmix])
    assert abs(lams.mean() - 0.5) < 0.06 and abs(lams.var() - 0.125) < 0.03  # Beta(0.5, 0.5): mean 1/2, var 1/8
    assert not any(Mixup(1.0, 1.0, prob=0.0, num_classes=3).params(mix_generator(5, s, 0), 8, 8).mixes for s in range(50))
    assert all(Mixup(1.0, 1.0, switch_prob=1.0, num_classes=3).params(mix_generator(1, s, 0), 8, 8).cutmix for s in range(50))
    assert not any(Mixup(1.0, 1.0, switch_prob=0.0, num_classes=3).params(mix_generator(1, s, 0), 8, 8).cutmix
                   for s in range(50))
    half = np.mean([Mixup(1.0, 0.0, prob=0.5, num_classes=3).params(mix_generator(2, s, 1), 8, 8).mixes for s in range(400)])
    assert 0.4 < half < 0.6


def test_mix_generator_is_a_function_of_seed_step_and_micro():
    a = mix_generator(3, 10, 1).random(4)
    np.testing.assert_array_equal(a, mix_generator(3, 10, 1).random(4))
    for other in [(4, 10, 1), (3, 11, 1), (3, 10, 0), (3, 10, 2)]:
        assert not np.array_equal(a, mix_generator(*other).random(4))
    with pytest.raises(ValueError, match="must be >= 0"):
        mix_generator(0, -1, 0)


def test_one_process_pairs_g_with_g_minus_one(batch):
    x, y = batch
    m = Mixup(mixup_alpha=1.0, num_classes=5, label_smoothing=0.0)
    mix = GlobalBatchMix(m, seed=0, rank=0, world=1, exchange=None)  # its own peer: no exchange at all
    step = next(s for s in range(20) if m.params(mix_generator(0, s, 0), 5, 7).mixes)
    p = m.params(mix_generator(0, step, 0), 5, 7)
    images = lucid.Tensor._wrap(x.transpose(0, 3, 1, 2), "cpu")
    mixed, targets = mix(images, lucid.tensor(y), step, 0)
    assert mixed.shape == (6, 3, 5, 7) and mixed.data.transpose(0, 2, 3, 1).flags.c_contiguous
    lam = np.float32(p.lam)
    np.testing.assert_array_equal(mixed.data.transpose(0, 2, 3, 1), x * lam + x[::-1] * np.float32(1 - p.lam))
    np.testing.assert_array_equal(targets.numpy(), soft_targets(y, y[::-1], p.lam, 0.0, 5))


def test_soft_target_cross_entropy_value_and_gradient():
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((4, 5))
    t = soft_targets(rng.integers(0, 5, 4), rng.integers(0, 5, 4), 0.35, 0.1, 5).astype(np.float64)
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    loss = F.cross_entropy(lucid.tensor(logits), lucid.tensor(t))
    np.testing.assert_allclose(loss.item(), (-(t * logp).sum(1)).mean(), rtol=1e-12)
    x = lucid.tensor(logits, requires_grad=True)
    assert gradcheck(lambda a: F.cross_entropy(a, lucid.tensor(t)), [x])


def config(**data):
    base = {"model": {"num_classes": 4}, "data": data}
    return config_from_dict(base, "run.toml")


@pytest.mark.parametrize("key, value, message", [
    ("mixup_alpha", -0.5, "data.mixup_alpha = -0.5 must be >= 0"),
    ("cutmix_alpha", -1.0, "data.cutmix_alpha = -1.0 must be >= 0"),
    ("mix_prob", 1.5, "data.mix_prob = 1.5 must be in [0, 1]"),
    ("mix_prob", -0.1, "data.mix_prob = -0.1 must be in [0, 1]"),
    ("switch_prob", 2.0, "data.switch_prob = 2.0 must be in [0, 1]"),
])
def test_bad_mix_settings_name_the_key_and_value(key, value, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        config(**{key: value})


def test_mixup_with_one_class_is_refused():
    with pytest.raises(ConfigError, match=r"data.cutmix_alpha = 1.0 mixes .* model.num_classes = 1"):
        config_from_dict({"model": {"num_classes": 1}, "data": {"cutmix_alpha": 1.0}}, "run.toml")
    with pytest.raises(ValueError, match="num_classes >= 2, got 1"):
        Mixup(num_classes=1)
    with pytest.raises(ValueError, match="mixup_alpha must be >= 0"):
        Mixup(mixup_alpha=-1)


class Member:
    """The communicator of a process group as this rank sees it (only its rank is read)."""

    def __init__(self, rank):
        self.rank = rank

    def Get_rank(self):
        return self.rank


def test_odd_global_batch_is_refused_and_off_means_none():
    cfg = config(mixup_alpha=0.2)
    with pytest.raises(ValueError, match=r"even G: data.batch_size 3 x 1 rank\(s\) = 3"):
        build_batch_mix(cfg, 3, ProcessGroup(Member(0), [0]))
    mix = build_batch_mix(cfg, 2, ProcessGroup(Member(1), [0, 1, 2]))
    assert (mix.rank, mix.world, mix.peer) == (1, 3, 1)
    assert build_batch_mix(cfg, 3, ProcessGroup(Member(0), [0, 3])).peer == 1
    assert build_batch_mix(config(), 3) is None


def test_same_global_batch_at_world_sizes_1_2_and_3():
    runs = {w: mpirun.run_ok("mix_global.py", w, "12", "2", "2", timeout=120) for w in (1, 2, 3)}
    ref = runs[1][0]["batches"]
    rng = np.random.default_rng(7)  # the script's dataset, rebuilt here
    images = rng.integers(0, 256, (48, 6, 5, 3), dtype=np.uint8).astype(np.float32) * np.float32(1 / 255)
    labels = rng.integers(0, 4, 48)
    kinds = set()
    for key, b in ref.items():
        ids = np.array(b["ids"])
        x, lam = images[ids], b["lam"]
        if b["cutmix"]:
            y0, y1, x0, x1 = b["box"]
            expected = x.copy()
            expected[:, y0:y1, x0:x1] = x[::-1, y0:y1, x0:x1]
        elif lam != 1.0:
            expected = x * np.float32(lam) + x[::-1] * np.float32(1 - lam)
        else:
            expected = x
        kinds.add("cutmix" if b["cutmix"] and lam != 1.0 else "mixup" if lam != 1.0 else "none")
        np.testing.assert_array_equal(np.array(b["images"], np.float32).transpose(0, 2, 3, 1), expected, err_msg=key)
        np.testing.assert_array_equal(np.array(b["targets"], np.float32), soft_targets(labels[ids], labels[ids][::-1], lam, 0.1, 4))
        assert b["channels_last"]
    assert kinds == {"cutmix", "mixup", "none"}
    for w in (2, 3):
        for key, b in ref.items():
            pos = {int(i): g for g, i in enumerate(b["ids"])}
            for r, res in runs[w].items():
                got = res["batches"][key]
                for i, sample in enumerate(got["ids"]):
                    g = pos[sample]
                    assert g == i * w + r  # the sampler deals global positions round-robin
                    np.testing.assert_array_equal(np.array(got["images"][i], np.float32), np.array(b["images"][g], np.float32))
                    np.testing.assert_array_equal(np.array(got["targets"][i], np.float32), np.array(b["targets"][g], np.float32))


def test_stream_numbers_batches_by_step_and_micro_step(batch):
    x, y = batch
    m = Mixup(mixup_alpha=1.0, cutmix_alpha=1.0, num_classes=5)
    mix = GlobalBatchMix(m, seed=4, rank=0, world=1, exchange=None, target_dtype="float64")
    batches = [(lucid.Tensor._wrap((x + j).transpose(0, 3, 1, 2), "cpu"), lucid.tensor(y)) for j in range(6)]
    streamed = list(mix.stream(iter(batches), first_step=5, accum=3))
    for j, (images, targets) in enumerate(streamed):
        want_images, want_targets = mix(*batches[j], 5 + j // 3, j % 3)
        np.testing.assert_array_equal(images.numpy(), want_images.numpy())
        np.testing.assert_array_equal(targets.numpy(), want_targets.numpy())
        assert targets.dtype == np.float64
    assert len({images.numpy().tobytes() for images, _ in streamed}) == 6


def test_device_batches_are_refused(batch):
    class OnGpu:
        device = "gpu:0"

    mix = GlobalBatchMix(Mixup(num_classes=5), seed=0, rank=0, world=1)
    with pytest.raises(ValueError, match="host batches .* got gpu:0"):
        mix(OnGpu(), OnGpu(), 0, 0)

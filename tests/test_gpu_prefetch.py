"""A training step without host waits: batches prefetched to the GPU, GPU checks deferred,
the loss kept on the device (fake device's sync and copy counters)."""
import os

import numpy as np
import pytest

import lucid
import lucid.nn.functional as F
from lucid._backend import asnumpy
from lucid.data.device_prefetch import DevicePrefetcher
from lucid.ops import device_asserts
from lucid.ops.layout import from_nhwc, is_channels_last

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _stats():
    import fakegpu

    return fakegpu.STATS


def _batches(n=3, seed=0):
    rng = np.random.default_rng(seed)
    return [(lucid.Tensor(from_nhwc(rng.standard_normal((4, 5, 6, 3)).astype(np.float32))),
             lucid.Tensor(rng.integers(0, 10, 4)), f"batch {i}") for i in range(n)]


def test_prefetcher_copies_from_pinned_memory_keeps_nhwc_and_never_waits(fake_gpu):
    host = _batches()
    stats = _stats()
    stats.reset()
    it = DevicePrefetcher(iter(host), "gpu:1")
    assert stats.pinned_copies == 2  # batch 0 is on its way before the first next()
    got = []
    for images, labels, name in it:
        got.append((images, labels, name))
        # step t runs while batch t+1 is copied: one batch ahead, never more
        assert stats.pinned_copies == 2 * min(len(got) + 1, len(host))
    assert stats.syncs == 0 and stats.pageable_copies == 0
    assert len(got) == len(host)
    for (hi, hl, hn), (di, dl, dn) in zip(host, got):
        assert di.device == dl.device == "gpu:1" and dn == hn
        with fake_gpu.cuda.Device(1):
            assert is_channels_last(di.data)  # what the stem convolution reads without a transpose
        np.testing.assert_array_equal(asnumpy(di.data), hi.data)
        np.testing.assert_array_equal(asnumpy(dl.data), hl.data)
    with pytest.raises(StopIteration):
        next(it)


def test_prefetcher_batches_stay_valid_after_the_next_copy(fake_gpu):
    """Pinned buffers are reused (2 slots), device arrays are not: an old batch keeps its values."""
    host = _batches(5, seed=1)
    got = list(DevicePrefetcher(iter(host), "gpu"))
    for (hi, _, _), (di, _, _) in zip(host, got):
        np.testing.assert_array_equal(asnumpy(di.data), hi.data)


def test_prefetcher_on_cpu_passes_batches_through():
    host = _batches()
    got = list(DevicePrefetcher(iter(host), "cpu"))
    assert all(a is b for h, g in zip(host, got) for a, b in zip(h, g))


def test_prefetcher_refuses_a_batch_already_on_a_device(fake_gpu):
    with pytest.raises(TypeError, match="batch field 0 is already on gpu:0"):
        DevicePrefetcher(iter([(lucid.zeros(2, device="gpu"),)]), "gpu")


def test_cross_entropy_target_check_waits_for_the_next_read(fake_gpu):
    logits = lucid.randn(4, 3, device="gpu", requires_grad=True)
    good = lucid.Tensor(np.array([0, 2, 1, -100]), device="gpu")
    stats = _stats()
    before = stats.syncs
    loss = F.cross_entropy(logits, good)
    loss.backward()
    assert stats.syncs == before  # nothing read yet
    assert device_asserts.pending() == 1
    value = loss.item()  # the pending check, then the value
    assert device_asserts.pending() == 0 and np.isfinite(value)
    bad = lucid.Tensor(np.array([0, 3, 1, 1]), device="gpu")
    loss = F.cross_entropy(logits, bad)
    assert np.isnan(asnumpy(loss.data))  # meanwhile the bad row poisons the loss (a step would be skipped)
    with pytest.raises(IndexError, match=r"target class out of range \[0, 3\)"):
        loss.item()
    assert device_asserts.pending() == 0


def test_cross_entropy_target_check_is_immediate_on_cpu():
    with pytest.raises(IndexError, match=r"out of range \[0, 3\)"):
        F.cross_entropy(lucid.randn(2, 3), lucid.Tensor(np.array([0, 3])))
    assert device_asserts.pending() == 0


def test_pending_checks_are_read_at_the_latest_every_limit(fake_gpu):
    logits = lucid.randn(2, 3, device="gpu")
    target = lucid.Tensor(np.array([0, 1]), device="gpu")
    stats = _stats()
    before = stats.syncs
    for _ in range(device_asserts.LIMIT):
        F.cross_entropy(logits, target)
    assert stats.syncs == before + 1 and device_asserts.pending() == 0  # LIMIT checks in one transfer

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


def test_trainer_step_waits_for_the_gpu_once_outside_logging(fake_gpu, tmp_path, monkeypatch):
    """Per step the host reads the DDP flags (skip or step: what the Trainer must know) in ONE
    transfer; the staged transport's copies (MPI reads host memory) are the only other waits."""
    import traceback

    from fake_cupy import _core

    from lucid.train.config import load_config
    from lucid.train.trainer import Trainer

    cfg = load_config(os.path.join(ROOT, "configs", "debug.toml"), [
        f'run.output_dir="{tmp_path}"', "run.max_steps=5", "run.epochs=1", 'run.device="gpu"', "run.log_interval=3",
        "run.progress=false"])
    trainer = Trainer(cfg)
    waits: list = []
    real_sync = _core.sync

    def sync():
        names = {f"{os.path.basename(f.filename)}:{f.name}" for f in traceback.extract_stack()[:-1]}
        waits[-1].append("flags" if "buckets.py:_read_flags" in names else
                         "staged copy" if any(n.startswith("staged.py:") for n in names) else sorted(names))
        real_sync()

    inner = trainer._train_step

    def step(*args, **kwargs):
        waits.append([])
        monkeypatch.setattr(_core, "sync", sync)
        try:
            return inner(*args, **kwargs)
        finally:
            monkeypatch.setattr(_core, "sync", real_sync)

    trainer._train_step = step
    trainer.fit()
    assert len(waits) == 5
    buckets = len(trainer.ddp.reducer.buckets)
    transport = type(trainer.ddp.reducer.transport).__name__
    staged = buckets if transport == "StagedTransport" else 0
    for w in waits:  # logging steps (3, 5) read the loss outside _train_step
        assert sorted(w, key=str) == ["flags"] + ["staged copy"] * staged, (transport, w)


def test_ddp_reads_the_flags_of_all_buckets_in_one_transfer(fake_gpu, monkeypatch):
    import lucid.distributed as dist
    from lucid.distributed import buckets

    model = lucid.nn.Sequential(*[lucid.nn.Linear(512, 512) for _ in range(4)]).to("gpu")  # 1 MiB weights
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=0.5)
    assert len(ddp.reducer.buckets) >= 3
    x = lucid.randn(2, 512, device="gpu")
    stats = _stats()
    inner = buckets.Reducer._read_flags
    seen = []

    def counted(self):
        before = stats.syncs
        ok = inner(self)
        seen.append(stats.syncs - before)
        return ok

    monkeypatch.setattr(type(ddp.reducer), "_read_flags", counted)
    ddp(x).sum().backward()  # the flags are read when the last bucket is reduced
    assert ddp.finish()
    assert seen == [1]
    assert all(p.grad is not None for p in model.parameters())

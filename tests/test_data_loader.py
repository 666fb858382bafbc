"""DataLoader: same batches for any worker count, resume, errors, worker cleanup, tqdm."""
import gc
import mmap
import multiprocessing
import os
import signal
import threading
import time

import numpy as np
import pytest

import lucid
from lucid.data import DataLoader, DistributedSampler, ImageFolder, ImageLoadError, imagenet_train, make_fake_image_folder
from lucid.data.transforms import Compose, Resize, ToArray
from lucid.data.workers import WorkerError

KINDS = (("RGB", "JPEG", ".jpg"), ("L", "PNG", ".png"), ("RGBA", "PNG", ".png"), ("CMYK", "JPEG", ".jpg"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    return make_fake_image_folder(tmp_path_factory.mktemp("loader"), num_classes=3, per_class=9, kinds=KINDS)


@pytest.fixture(scope="module")
def dataset(tree):
    return ImageFolder(tree, transform=imagenet_train(24, color_jitter=0.3, lighting=0.1))


def arrays(loader):
    return [(x.numpy().copy(), y.numpy().copy()) for x, y in loader]


def assert_same(a, b):
    assert len(a) == len(b)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_batch_contract(dataset):
    loader = DataLoader(dataset, batch_size=4, shuffle=True)
    assert len(loader) == 7
    batches = list(loader)
    images, labels = batches[0]
    assert isinstance(images, lucid.Tensor) and images.shape == (4, 3, 24, 24) and images.dtype == np.float32
    assert images.data.transpose(0, 2, 3, 1).flags.c_contiguous  # NHWC memory
    assert labels.dtype == np.int64 and labels.shape == (4,)
    assert [len(b[1]) for b in batches] == [4] * 6 + [3]
    assert sorted(np.concatenate([b[1].numpy() for b in batches]).tolist()) == sorted(dataset.targets)
    assert len(DataLoader(dataset, batch_size=4, drop_last=True)) == 6 == len(list(DataLoader(dataset, batch_size=4, drop_last=True)))


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_workers_give_the_same_batches_in_the_same_order(dataset, mode):
    reference = arrays(DataLoader(dataset, batch_size=5, shuffle=True, seed=3))
    parallel = arrays(DataLoader(dataset, batch_size=5, shuffle=True, seed=3, num_workers=2, worker_mode=mode))
    assert_same(reference, parallel)


def test_epochs_reshuffle_and_reaugment(dataset):
    loader = DataLoader(dataset, batch_size=27, shuffle=True)
    (x0, y0), = arrays(loader)
    (x1, y1), = arrays(loader)
    assert loader.epoch == 2 and not np.array_equal(y0, y1)
    again = DataLoader(dataset, batch_size=27, shuffle=True)
    again.set_epoch(1)
    assert_same(arrays(again), [(x1, y1)])


def test_mid_epoch_resume_reproduces_the_remaining_batches(dataset):
    sampler = DistributedSampler(len(dataset), 1, 0, seed=11)
    sampler.set_epoch(2)
    full = arrays(DataLoader(dataset, batch_size=4, sampler=sampler))
    sampler.set_epoch(2)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler, num_workers=2)
    it = iter(loader)
    for _ in range(3):
        next(it)
    state = loader.state_dict()
    assert state["epoch"] == 2 and state["consumed"] == 12
    it.close()
    fresh = DataLoader(dataset, batch_size=4, sampler=DistributedSampler(len(dataset), 1, 0, seed=11))
    fresh.load_state_dict(state)
    assert len(fresh) == 4
    assert_same(arrays(fresh), full[3:])


def test_resume_at_another_world_size_sees_the_rest_with_the_same_augmentation(dataset):
    n = len(dataset)
    single = DataLoader(dataset, batch_size=n, sampler=DistributedSampler(n, 1, 0, seed=5))
    order = single.sampler.global_order()
    ((x, _),) = arrays(single)
    reference = {int(i): x[k] for k, i in enumerate(order)}  # each index's augmented image

    two = [DataLoader(dataset, batch_size=2, sampler=DistributedSampler(n, 2, r, seed=5)) for r in range(2)]
    iters = [iter(ld) for ld in two]
    for _ in range(3):  # three steps of global batch 4 on 2 ranks
        for it in iters:
            next(it)
    state = two[0].state_dict()
    assert state == two[1].state_dict() and state["consumed"] == 12
    visits = []
    for r in range(3):
        ld = DataLoader(dataset, batch_size=2, sampler=DistributedSampler(n, 3, r, seed=5), num_workers=2)
        ld.load_state_dict(state)
        indices = ld.sampler.indices().tolist()
        images = np.concatenate([xb.numpy() for xb, _ in ld])
        assert len(images) == len(indices) == 5
        for i, img in zip(indices, images):
            np.testing.assert_array_equal(img, reference[i])  # rank/world size do not change augmentation
        visits += indices
    assert sorted(visits) == sorted(order[12:].tolist())


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    root = make_fake_image_folder(tmp_path_factory.mktemp("broken"), num_classes=2, per_class=6, kinds=KINDS[:1])
    with open(os.path.join(root, "class_1", "img_0003.jpg"), "wb") as f:
        f.write(b"\xff\xd8 not really a jpeg")
    return root


@pytest.mark.parametrize("workers,mode", [(0, "thread"), (2, "thread"), (2, "process")])
def test_worker_error_names_the_file(broken, workers, mode):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]))
    with pytest.raises(ImageLoadError, match=r"class_1.img_0003\.jpg"):
        for _ in DataLoader(ds, batch_size=2, num_workers=workers, worker_mode=mode):
            pass
    assert multiprocessing.active_children() == []


def alive(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return "\tZ" not in f.read()  # zombies count as gone
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("exc", [RuntimeError, KeyboardInterrupt])
def test_no_worker_process_survives_an_exception(dataset, exc):
    loader = DataLoader(dataset, batch_size=2, num_workers=2, worker_mode="process")
    pids = []
    with pytest.raises(exc):
        for k, _ in enumerate(loader):
            if k == 1:
                pids = [p.pid for p in multiprocessing.active_children()]
                raise exc("stop")
    assert len(pids) == 2
    assert multiprocessing.active_children() == []
    assert not any(alive(p) for p in pids)


def test_worker_processes_stop_when_the_error_is_in_a_worker(broken):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]))
    it = iter(DataLoader(ds, batch_size=1, num_workers=2, worker_mode="process"))
    next(it)
    pids = [p.pid for p in multiprocessing.active_children()]
    assert len(pids) == 2
    with pytest.raises(ImageLoadError):
        for _ in it:
            pass
    assert not any(alive(p) for p in pids)


def test_skip_policy_counts_and_warns_once_with_process_workers(broken):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]), on_error="skip")
    with pytest.warns(UserWarning, match="img_0003"):
        got = arrays(DataLoader(ds, batch_size=4, num_workers=2, worker_mode="process"))
    assert ds.skipped == 1
    ds0 = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]), on_error="skip")
    with pytest.warns(UserWarning):
        assert_same(got, arrays(DataLoader(ds0, batch_size=4)))


@pytest.mark.parametrize("persistent", [False, True], ids=["new-workers", "persistent"])
@pytest.mark.parametrize("workers,mode", [(0, "thread"), (2, "thread"), (2, "process")])
def test_skips_count_only_in_delivered_batches(broken, workers, mode, persistent):
    """A loop left after the first batch while the bad image's batch was computed ahead: nothing is
    counted or warned for it, in every mode; a whole pass counts it once."""
    if persistent and workers == 0:
        pytest.skip("persistent_workers needs workers")
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]), on_error="skip")
    bad = [i for i, (path, _) in enumerate(ds.samples) if path.endswith("img_0003.jpg") and "class_1" in path]
    assert bad == [9]  # in the third batch of four: in flight when the first is delivered
    loader = DataLoader(ds, batch_size=4, num_workers=workers, worker_mode=mode, persistent_workers=persistent)
    for _ in loader:
        break
    if workers and not persistent:  # the workers stop once their batches in flight are done
        deadline = time.monotonic() + 30
        while (data_threads() if mode == "thread" else multiprocessing.active_children()) and time.monotonic() < deadline:
            time.sleep(0.05)
    elif persistent:
        time.sleep(0.5)  # kept workers: their batches in flight are done by now
    assert ds.skipped == 0 and ds.skip_log.paths == []
    with pytest.warns(UserWarning, match="img_0003"):
        assert len(arrays(loader)) == 3
    assert ds.skipped == 1
    loader.close()


def data_threads():
    return {t for t in threading.enumerate() if t.name.startswith("lucid-data")}


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_persistent_workers_are_kept_and_give_the_same_epochs(dataset, mode):
    fresh = DataLoader(dataset, batch_size=5, shuffle=True, seed=3, num_workers=2, worker_mode=mode)
    kept = DataLoader(dataset, batch_size=5, shuffle=True, seed=3, num_workers=2, worker_mode=mode, persistent_workers=True)
    first = arrays(kept)
    workers = data_threads() if mode == "thread" else {p.pid for p in multiprocessing.active_children()}
    assert len(workers) == 2
    assert_same(arrays(fresh), first)
    assert_same(arrays(fresh), arrays(kept))  # the next epoch: reshuffled, re-augmented, by the same workers
    assert (data_threads() >= workers) if mode == "thread" else ({p.pid for p in multiprocessing.active_children()} == workers)
    kept.close()
    if mode == "process":
        assert multiprocessing.active_children() == [] and not any(alive(p) for p in workers)
    assert_same(arrays(fresh), arrays(kept))  # after close(): new workers


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_persistent_workers_drop_an_abandoned_iterations_batches(dataset, mode):
    """A loop left after one batch (three more in flight), then the rest: the same batches as without persistence."""
    def run(persistent):
        loader = DataLoader(dataset, batch_size=4, shuffle=True, seed=1, num_workers=2, worker_mode=mode,
                            persistent_workers=persistent)
        got = []
        for batch in loader:
            got.append((batch[0].numpy().copy(), batch[1].numpy().copy()))
            break
        got += arrays(loader) + arrays(loader)
        loader.close()
        return got

    assert_same(run(False), run(True))
    assert multiprocessing.active_children() == []


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_persistent_workers_follow_a_changed_dataset(broken, mode):
    """Kept workers stay while the dataset is unchanged (its skip counts growing included) and are
    replaced when a transform changes, in place or replaced, or the loader gets another dataset."""
    def folder(size):
        return ImageFolder(broken, transform=Compose([Resize((size, size)), ToArray()]), on_error="skip")

    def workers():
        return data_threads() if mode == "thread" else {p.pid for p in multiprocessing.active_children()}

    ds = folder(8)
    loader = DataLoader(ds, batch_size=4, num_workers=2, worker_mode=mode, persistent_workers=True)
    with pytest.warns(UserWarning, match="img_0003"):
        first = arrays(loader)
    kept = workers()
    assert_same(arrays(loader), first)
    assert ds.skipped == 2
    assert workers() == kept  # the skip log's count changed, nothing else: same workers
    ds.transform.transforms[0].size = (5, 5)  # in place: thread workers share it, process workers get it anew
    with pytest.warns(UserWarning):
        assert_same(arrays(loader), arrays(DataLoader(folder(5), batch_size=4)))
    assert (workers() == kept) if mode == "thread" else not (workers() & kept)
    ds.transform = Compose([Resize((6, 6)), ToArray()])
    with pytest.warns(UserWarning):
        assert_same(arrays(loader), arrays(DataLoader(folder(6), batch_size=4)))
    loader.dataset = folder(7)
    with pytest.warns(UserWarning):
        assert_same(arrays(loader), arrays(DataLoader(folder(7), batch_size=4)))
    loader.close()


def test_persistent_workers_survive_a_dataset_error_and_are_stopped_by_garbage_collection(broken):
    ds = ImageFolder(broken, transform=Compose([Resize((8, 8)), ToArray()]))
    loader = DataLoader(ds, batch_size=1, num_workers=2, worker_mode="process", persistent_workers=True)
    for _ in range(2):  # the error again, not a stale batch of the first pass, and the same workers
        with pytest.raises(ImageLoadError, match=r"img_0003"):
            for _ in loader:
                pass
        pids = {p.pid for p in multiprocessing.active_children()}
        assert len(pids) == 2
    del loader
    gc.collect()
    assert multiprocessing.active_children() == [] and not any(alive(p) for p in pids)


def test_persistent_worker_that_died_is_reported_then_replaced(dataset):
    loader = DataLoader(dataset, batch_size=9, num_workers=2, worker_mode="process", persistent_workers=True)
    reference = arrays(loader)
    victim = multiprocessing.active_children()[0]
    os.kill(victim.pid, signal.SIGKILL)
    victim.join(5)
    with pytest.raises(WorkerError, match=f"pid {victim.pid}. exited unexpectedly"):
        arrays(loader)
    loader.set_epoch(0)
    assert_same(reference, arrays(loader))  # new workers
    assert victim.pid not in {p.pid for p in multiprocessing.active_children()}
    loader.close()


def test_process_batches_are_not_copied_and_stay_intact_while_held(dataset):
    """Worker processes' batches map their shared-memory slot; a slot is written again only
    once every view of the batch is gone, so batches kept (14 of them, more than the 4 slots in
    flight) keep their values, and dropped ones let the slots be reused."""
    reference = arrays(DataLoader(dataset, batch_size=2, shuffle=True, seed=5))
    loader = DataLoader(dataset, batch_size=2, shuffle=True, seed=5, num_workers=2, worker_mode="process",
                        persistent_workers=True)
    held = list(loader)
    owner = held[-2][0].numpy()  # (the first batches, sent before the slots existed, came pickled)
    while isinstance(owner, np.ndarray):
        owner = owner.base
    assert isinstance(owner.obj, mmap.mmap)  # a view of its slot's mapping, not a copy
    assert_same(reference, [(x.numpy(), y.numpy()) for x, y in held])
    slots = set(loader._backend._shms)
    del held
    for _ in range(3):  # batches dropped as they go: the slots are reused, no new ones
        for _batch in loader:
            pass
    assert set(loader._backend._shms) == slots
    first = next(iter(loader))[0]
    expected = first.numpy().copy()
    loader.close()  # a batch still held outlives the loader and its shared memory's names
    np.testing.assert_array_equal(first.numpy(), expected)
    assert not any(os.path.exists(f"/dev/shm/{name}") for name in slots)


def test_tqdm_and_collate_fn(dataset):
    tqdm = pytest.importorskip("tqdm").tqdm
    loader = DataLoader(dataset, batch_size=4)
    bar = tqdm(loader, disable=True)
    assert bar.total == len(loader) == 7 and sum(1 for _ in bar) == 7
    seen = DataLoader(dataset, batch_size=3, collate_fn=lambda samples: [s[1] for s in samples], num_workers=2)
    assert [b for b in seen][0] == [0, 0, 0]


def test_argument_errors(dataset):
    with pytest.raises(ValueError, match="shuffle"):
        DataLoader(dataset, sampler=DistributedSampler(len(dataset)), shuffle=True)
    with pytest.raises(ValueError, match="worker_mode"):
        DataLoader(dataset, worker_mode="fork")
    with pytest.raises(ValueError, match="persistent_workers=True needs num_workers > 0"):
        DataLoader(dataset, persistent_workers=True)
    with pytest.raises(TypeError, match="state_dict"):
        DataLoader(dataset, sampler=[0, 1, 2]).state_dict()
    with pytest.raises(TypeError, match="picklable"):
        next(iter(DataLoader(dataset, collate_fn=lambda s: s, num_workers=1, worker_mode="process")))
    assert multiprocessing.active_children() == []


MALLOC_SCRIPT = """
import sys
from lucid import _malloc
from lucid.data import DataLoader


class Tuned:
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return float(i), int(_malloc.tuned())


if __name__ == "__main__":
    if sys.argv[1] == "tune":
        assert _malloc.tune()
    loader = DataLoader(Tuned(), batch_size=2, num_workers=2, worker_mode="process")
    print(sorted(int(v) for _, labels in loader for v in labels.numpy()))
"""


@pytest.mark.parametrize("parent", ["tune", "leave"])
def test_worker_processes_tune_malloc_as_their_parent(tmp_path, parent):
    """Worker processes start from a fresh interpreter: they apply lucid._malloc's settings
    themselves when the main process has (as training does), and only then."""
    import subprocess
    import sys

    script = tmp_path / "tuned_workers.py"
    script.write_text(MALLOC_SCRIPT)
    env = {k: v for k, v in os.environ.items() if k != "LUCID_MALLOC_TUNING"}
    env["PYTHONPATH"] = os.pathsep.join([os.path.dirname(os.path.dirname(os.path.abspath(__file__))), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, str(script), parent], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\n")[-2] == str([1, 1, 1, 1] if parent == "tune" else [0, 0, 0, 0])

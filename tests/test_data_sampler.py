"""DistributedSampler: sharding, padding, eval mode, and resume at another world size."""
import json
from collections import Counter

import numpy as np
import pytest

from lucid.data import DistributedSampler


def shards(n, world, **kw):
    return [list(DistributedSampler(n, world, r, **kw)) for r in range(world)]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [1, 10, 11, 13])
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_cover_the_epoch_with_wraparound_padding(world, n, shuffle):
    parts = shards(n, world, shuffle=shuffle, seed=3)
    per_rank = -(-n // world)
    assert [len(p) for p in parts] == [per_rank] * world
    assert [len(DistributedSampler(n, world, r)) for r in range(world)] == [per_rank] * world
    order = DistributedSampler(n, world, 0, shuffle=shuffle, seed=3).global_order()
    padded = np.resize(order, per_rank * world)  # order, then its start again
    for r in range(world):
        assert parts[r] == padded[r::world].tolist()
    counts = Counter(i for p in parts for i in p)
    assert set(counts) == set(range(n))
    assert sum(counts.values()) - n == per_rank * world - n  # only the padding repeats


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("n", [10, 11, 13])
def test_drop_last_shards_are_disjoint_and_equal(world, n):
    parts = shards(n, world, shuffle=True, seed=1, drop_last=True)
    flat = [i for p in parts for i in p]
    assert len(flat) == len(set(flat)) == n // world * world
    assert {len(p) for p in parts} == {n // world}


def test_unshuffled_order_is_plain_and_epochs_reshuffle():
    assert list(DistributedSampler(7, 2, 1, shuffle=False)) == [1, 3, 5, 0]
    s = DistributedSampler(100, 2, 0, seed=5)
    first = list(s)
    assert list(s) == first  # same epoch, same order (PyTorch: set_epoch changes it)
    s.set_epoch(1)
    assert list(s) != first
    other_rank = DistributedSampler(100, 2, 1, seed=5)
    other_rank.set_epoch(1)
    assert set(list(s)).isdisjoint(list(other_rank))


def consume(sampler, local):
    """Iterate like a DataLoader that handed out ``local`` indices of this rank."""
    got = list(sampler)[:local]
    sampler.mark_consumed(local)
    return got


@pytest.mark.parametrize("new_world", [1, 3, 4])
@pytest.mark.parametrize("n,consumed_local", [(50, 7), (51, 10), (23, 0), (23, 11)])
def test_resume_from_world_2_visits_exactly_the_remaining_samples(new_world, n, consumed_local):
    old = [DistributedSampler(n, 2, r, seed=9) for r in range(2)]
    seen = []
    for s in old:
        s.set_epoch(4)
        seen += consume(s, consumed_local)
    state = json.loads(json.dumps(old[0].state_dict()))  # what a checkpoint stores
    assert state["epoch"] == 4 and state["consumed"] == min(n, 2 * consumed_local)
    order = old[0].global_order()
    assert sorted(seen) == sorted(order[: state["consumed"]].tolist())

    new = [DistributedSampler(n, new_world, r, seed=9) for r in range(new_world)]
    resumed = []
    for s in new:
        s.load_state_dict(state)
        s.set_epoch(4)  # the trainer's epoch loop calls it again: the position stays
        resumed.append(list(s))
    remaining = order[state["consumed"] :].tolist()
    pad = -len(remaining) % new_world  # makes the ranks even, wrapping to the order's start
    visits = Counter(i for part in resumed for i in part)
    assert visits == Counter(remaining + np.resize(order, pad).tolist())
    if state["consumed"] >= pad:  # the padding repeats consumed samples: the rest once each
        assert all(visits[i] == 1 for i in remaining)
    assert {len(p) for p in resumed} == {-(-len(remaining) // new_world)}


def test_global_batches_keep_their_content_across_world_sizes():
    """Global batch k is the same set of samples at any world size (per-rank batch * world fixed)."""
    n, global_batch = 48, 12

    def global_batches(world, state=None):
        parts = []
        for r in range(world):
            s = DistributedSampler(n, world, r, seed=2)
            if state:
                s.load_state_dict(state)
            parts.append(list(s))
        b = global_batch // world
        steps = len(parts[0]) // b
        return [sorted(i for p in parts for i in p[k * b : (k + 1) * b]) for k in range(steps)]

    full = global_batches(2)
    assert global_batches(3) == full == global_batches(4)
    state = {"epoch": 0, "consumed": 2 * global_batch, "num_samples": n, "seed": 2, "shuffle": True}
    assert global_batches(3, state) == full[2:]


@pytest.mark.parametrize("world", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("n", [0, 1, 7, 10])
def test_eval_mode_counts_every_sample_once(world, n):
    parts = shards(n, world, shuffle=False, eval_mode=True)
    assert sorted(i for p in parts for i in p) == list(range(n))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert [len(p) for p in parts] == [len(DistributedSampler(n, world, r, eval_mode=True)) for r in range(world)]


def test_finished_epoch_state_and_validation():
    s = DistributedSampler(10, 2, 0, seed=1)
    list(s)
    s.mark_epoch_done()
    state = s.state_dict()
    assert state["consumed"] == 10
    t = DistributedSampler(10, 3, 1, seed=1)
    t.load_state_dict(state)
    assert len(t) == 0 and list(t) == []
    assert len(list(t)) == 4  # a fresh pass of the same epoch starts from the beginning
    with pytest.raises(ValueError, match="num_samples"):
        DistributedSampler(11, 1, 0, seed=1).load_state_dict(state)
    with pytest.raises(ValueError, match="seed"):
        DistributedSampler(10, 1, 0, seed=2).load_state_dict(state)
    with pytest.raises(ValueError, match="rank"):
        DistributedSampler(10, 2, 2)
    with pytest.raises(ValueError, match="eval_mode"):
        DistributedSampler(10, 2, 0, eval_mode=True, drop_last=True)

"""Every transport completes a bucket through one path, whether its request finishes in
test() or in wait(): the reducer runs in-process on a simulated world of 3 identical
ranks, with fake MPI requests / NCCL events that finish on the first test() or only
when waited on, and the gradients must equal the all-reduced (averaged) values."""
import numpy as np
import pytest

import lucid
from lucid.distributed import Reducer
from lucid.distributed.backends import CudaAwareTransport, MPITransport, NCCLTransport, StagedTransport

WORLD = 3


def as_array(spec):
    """The array of an MPI buffer spec ([uint16 words, MPI type] is float16 via the user op)."""
    arr = spec[0] if isinstance(spec, list) else spec
    return arr.view(np.float16) if arr.dtype == np.uint16 else arr


class FakeRequest:
    """Sums like WORLD identical ranks, but only once complete: on the first Test() in mode
    "test", only in Wait() in mode "wait"."""

    def __init__(self, array, mode, log):
        self.array, self.mode, self.log, self.done = array, mode, log, False

    def _finish(self, how):
        self.array *= WORLD
        self.done = True
        self.log.append(how)

    def Test(self):
        if not self.done and self.mode == "test":
            self._finish("test")
        return self.done

    def Wait(self):
        if not self.done:
            self._finish("wait")


class FakeComm:
    def __init__(self, mode):
        self.mode, self.log = mode, []

    def Iallreduce(self, _in_place, spec, op=None):
        return FakeRequest(as_array(spec), self.mode, self.log)


class FakeEvent:
    def __init__(self, stream):
        self.stream = stream

    @property
    def done(self):
        if self.stream.mode == "test":
            self.stream.flush("test")
        return not self.stream.pending


class FakeStream:
    """A side stream whose queued all-reduces run when an event says done or the compute
    stream is ordered after them."""

    def __init__(self, mode):
        self.mode, self.pending, self.log = mode, [], []

    def flush(self, how):
        for arr in self.pending:
            arr *= WORLD
            self.log.append(how)
        self.pending.clear()

    def record(self):
        return FakeEvent(self)


def make_transport(kind, mode):
    """(transport, completion log, extra checks) for one kind of transport."""
    if kind == "nccl":
        stream = FakeStream(mode)
        follows = []
        t = NCCLTransport(
            None,
            all_reduce=lambda buf, s: s.pending.append(buf),
            stream=stream,
            follow_compute=follows.append,
            order_after=lambda event: stream.flush("wait"),
        )
        return t, stream.log, {"follows": follows}
    comm = FakeComm(mode)
    if kind == "mpi":
        return MPITransport(comm), comm.log, {}
    if kind == "cuda_aware":
        syncs = []
        return CudaAwareTransport(comm, before_start=lambda: syncs.append(1)), comm.log, {"syncs": syncs}
    allocs = []

    def alloc(size, dtype):
        allocs.append(size)
        return np.full(size, np.nan, dtype)  # a slot never copied in would show

    staged = StagedTransport(comm, alloc, lambda dev, host: np.copyto(host, dev), lambda host, dev: np.copyto(dev, host))
    return staged, comm.log, {"allocs": allocs}


@pytest.mark.parametrize("compression", [None, "fp16"])
@pytest.mark.parametrize("mode", ["test", "wait"])
@pytest.mark.parametrize("kind", ["mpi", "staged", "cuda_aware", "nccl"])
def test_bucket_lands_through_test_or_wait(kind, mode, compression, monkeypatch):
    monkeypatch.setenv("LUCID_MPI_HALF", "op")  # fp16 through the user-defined sum (Open MPI's route)
    rng = np.random.default_rng(0)
    values = [rng.standard_normal(s) for s in (40, 3, 25, 7)]
    params = [lucid.tensor(v.copy(), requires_grad=True) for v in values]
    coef = [rng.standard_normal(v.shape) for v in values]
    transport, log, extra = make_transport(kind, mode)
    reducer = Reducer(
        params, [f"p{i}" for i in range(4)], transport, WORLD,
        bucket_cap_mb=200 / 2**20, first_bucket_mb=50 / 2**20, compression=compression,
    )
    assert len(reducer.buckets) >= 3
    for _ in range(2):
        for p in params:
            p.grad = None
        reducer.attach_grads()
        loss = sum(((p * lucid.tensor(c)).sum() for p, c in zip(params, coef)), lucid.tensor(0.0, dtype=lucid.float64))
        loss.backward()  # identical ranks: the average is each rank's own gradient
        assert reducer.finish()
        tol = 2e-3 if compression else 1e-13
        for p, c in zip(params, coef):
            np.testing.assert_allclose(p.grad.numpy(), c, atol=tol * np.abs(c).max())
    assert len(log) == 2 * len(reducer.buckets) and set(log) == {mode}
    if kind == "staged":
        assert len(extra["allocs"]) == len(reducer.buckets)  # one host buffer per bucket, reused
    if kind == "cuda_aware":
        assert len(extra["syncs"]) == 2 * len(reducer.buckets)  # the compute stream synced before each start
    if kind == "nccl":
        assert len(extra["follows"]) == 2 * len(reducer.buckets)


def test_staged_device_buffer_keeps_its_values_until_the_request_lands():
    comm = FakeComm("wait")
    t = StagedTransport(comm, lambda n, d: np.full(n, np.nan, d), lambda d, h: np.copyto(h, d), lambda h, d: np.copyto(d, h))
    dev = np.array([1.0, 2.0])
    handle = t.start(dev)
    assert not t.test(handle) and dev.tolist() == [1.0, 2.0]
    t.wait(handle)
    assert dev.tolist() == [3.0, 6.0] and t.test(handle)
    t.wait(handle)  # landing happens once
    assert dev.tolist() == [3.0, 6.0]

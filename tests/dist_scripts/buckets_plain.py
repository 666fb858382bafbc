"""The bucket reducer on plain leaf tensors: views, order, unused params, no_sync, NaN skip, fp16.

Every rank also computes the reference gradient of the GLOBAL batch in-process, so it
can check its reduced gradients itself; the test asserts on the reported errors.
"""
import sys

import numpy as np
from script_io import report

import lucid
import lucid.distributed as dist
import lucid.ops as F
from lucid.distributed.backends import MPITransport, StagedTransport

dist.init()
r, w = dist.rank(), dist.world_size()
compression = sys.argv[1] if len(sys.argv) > 1 and sys.argv[1] != "none" else None
predivide = not (len(sys.argv) > 2 and sys.argv[2] == "postdivide")
rng = np.random.default_rng(0)
N = 7
X = rng.standard_normal((N, 5))
Y = rng.integers(0, 3, N)
init = {
    "E": rng.standard_normal(5),  # registered last but used first: its bucket is ready last
    "W1": rng.standard_normal((8, 5)),
    "b1": rng.standard_normal(8),
    "W2": rng.standard_normal((3, 8)),
    "b2": rng.standard_normal(3),
    "U": rng.standard_normal(4),  # never used: its grad must stay None everywhere
    "V": rng.standard_normal(2),  # used on rank 0 only
}
order = ["W1", "b1", "W2", "b2", "U", "V", "E"]  # registration order
shards = np.array_split(np.arange(N), w)


def make_params():
    return {k: lucid.tensor(v, requires_grad=True) for k, v in init.items()}


def local_loss(p, rows, rank, scale, with_v=True):
    x = lucid.tensor(X[rows]) * p["E"]
    h = F.relu(F.linear(x, p["W1"], p["b1"]))
    loss = F.cross_entropy(F.linear(h, p["W2"], p["b2"]), lucid.tensor(Y[rows]), reduction="sum") * scale
    if rank == 0 and with_v:
        loss = loss + (p["V"] * p["V"]).sum()
    return loss


def reference(rows_per_rank):
    """Gradient of the average over ranks of their losses, in one process."""
    p = make_params()
    total = None
    n = N
    for rank, rows in enumerate(rows_per_rank):
        if len(rows) == 0 and rank != 0:
            continue
        term = local_loss(p, rows, rank, w / n) * (1.0 / w)
        total = term if total is None else total + term
    total.backward()
    return {k: (None if t.grad is None else t.grad.numpy().copy()) for k, t in p.items()}


class LoggingTransport:
    """Delegates to a real transport and logs which bucket each start() was for."""

    def __init__(self, inner):
        self.inner = inner
        self.started = []

    def start(self, buffer):
        self.started.append(next(b.index for b in reducer.buckets if buffer is b.buffer or buffer is b.wire))
        return self.inner.start(buffer)

    def test(self, handle):
        return self.inner.test(handle)

    def wait(self, handle):
        self.inner.wait(handle)


allocations = []


def host_alloc(size, dtype):
    allocations.append(size)
    return np.full(size, np.nan, dtype)  # NaN: any slot not copied in would show


def copy_in(device, host):
    np.copyto(host, device)


def copy_out(host, device):
    np.copyto(device, host)


params = make_params()
staged = len(sys.argv) > 3 and sys.argv[3] == "staged"
comm = dist.comm.world().comm.Dup()
inner = StagedTransport(comm, host_alloc, copy_in, copy_out) if staged else MPITransport(comm)
transport = LoggingTransport(inner)
reducer = dist.Reducer(
    [params[k] for k in order], order, transport, w,
    bucket_cap_mb=100 / 2**20, first_bucket_mb=30 / 2**20, compression=compression, predivide=predivide,
)
out = {"n_buckets": len(reducer.buckets), "bucket_names": [b.names for b in reducer.buckets]}


def max_err(ref):
    errs = {}
    for k, t in params.items():
        if ref[k] is None or t.grad is None:
            errs[k] = "none" if ref[k] is None and t.grad is None else "mismatch"
        else:
            errs[k] = float(np.abs(t.grad.numpy() - ref[k]).max())
    return errs


def zero_grad():
    for t in params.values():
        t.grad = None


# step 1: uneven shards, views, order, unused and rank-0-only parameters
reducer.attach_grads()
loss = local_loss(params, shards[r], r, w / N)
grad_objects = {k: params[k].grad for k in order}
loss.backward()
out["started_before_finish"] = list(transport.started)
ok = reducer.finish()
out["step1_ok"] = ok
out["started_all"] = list(transport.started)
out["step1_err"] = max_err(reference(shards))
views = {}
for b in reducer.buckets:
    base = b.buffer.__array_interface__["data"][0]
    for name, p in zip(b.names, b.params):
        if p.grad is not None:
            offset = p.grad.data.__array_interface__["data"][0] - base
            views[name] = [bool(np.shares_memory(p.grad.data, b.buffer)), int(offset), p.grad is grad_objects[name]]
out["views"] = views
out["offsets"] = {n: int(sum(q.data.size for q in b.params[:i]) * 8) for b in reducer.buckets for i, n in enumerate(b.names)}

# step 2: two synchronised backwards without finish(): each returns reduced (PyTorch's
# semantics), so the gradients hold twice the global-batch gradient; finish() just reports
zero_grad()
reducer.attach_grads()
local_loss(params, shards[r], r, w / N).backward()
out["reduced_by_backward"] = reducer.steps == 2
local_loss(params, shards[r], r, w / N).backward()
ref = reference(shards)
out["double_err"] = max_err({k: None if v is None else 2 * v for k, v in ref.items()})
out["double_steps"] = reducer.steps
out["double_finish"] = reducer.finish()

# step 3: NaN on the last rank only -> every rank skips
zero_grad()
transport.started.clear()
reducer.attach_grads()
loss = local_loss(params, shards[r], r, w / N)
if r == w - 1:
    loss = loss * float("nan")
loss.backward()
out["nan_step_ok"] = reducer.finish()
out["nan_grads_none"] = all(t.grad is None for t in params.values())
out["skipped"] = [reducer.skipped_steps, reducer.steps]

# step 4: no_sync over two micro-batches == one batch; last rank runs no backward at all
zero_grad()
halves = [rows[: len(rows) // 2] for rows in shards], [rows[len(rows) // 2 :] for rows in shards]
reducer.sync = False
reducer.attach_grads()
if r != w - 1:
    local_loss(params, halves[0][r], r, w / N).backward()
out["no_sync_finish"] = reducer.finish()
reducer.sync = True
reducer.attach_grads()
if r != w - 1:
    local_loss(params, halves[1][r], r, w / N, with_v=False).backward()
out["accum_ok"] = reducer.finish()
skip_last = [rows if rank != w - 1 else rows[:0] for rank, rows in enumerate(shards)]
out["accum_err"] = max_err(reference(skip_last))
out["host_allocations"] = len(allocations)
if staged:  # the "device" buffer keeps its values until wait() copies the result back
    dev = np.full(3, r + 1.0)
    handle = inner.start(dev)
    before = dev.copy()
    inner.wait(handle)
    out["staged_before_after"] = [before, dev]
out["wire_dtype"] = str((reducer.buckets[0].wire if compression else reducer.buckets[0].buffer).dtype)
report(r, **out)

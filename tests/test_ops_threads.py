"""Thread sharing of kernels: map_batch shares, nested calls, BLAS on one thread inside, same results."""
import threading

import numpy as np
from threadpoolctl import threadpool_info

import lucid
import lucid.ops as ops
from lucid.ops import blocked


def blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_map_batch_covers_the_batch_in_contiguous_ordered_shares():
    seen = []
    out = blocked.map_batch(lambda a, b: (seen.append((a, b, threading.get_ident())), (a, b))[1], 7)
    assert out[0][0] == 0 and out[-1][1] == 7
    assert all(x[1] == y[0] for x, y in zip(out, out[1:]))  # contiguous, in order
    assert len(out) == min(blocked.num_workers(), 7)
    assert blocked.map_batch(lambda a, b: (a, b), 0) == [(0, 0)]


def test_nested_pool_work_runs_serially_in_the_worker():
    def share(a, b):
        inner = blocked.map_row_blocks(lambda i, j: j - i, 1000, 4096)  # would need the pool again
        return sum(inner), blocked.map_batch(lambda i, j: (i, j), 5)

    results = blocked.map_batch(share, 4)
    assert all(total == 1000 and len(batch) == 1 and batch[0] == (0, 5) for total, batch in results)


def test_blas_runs_on_one_thread_inside_and_is_restored_after():
    before = blas_threads()
    inside = blocked.map_batch(lambda a, b: blas_threads(), 2)
    assert all(all(n == 1 for n in counts) for counts in inside)
    with blocked.single_threaded_blas():
        with blocked.single_threaded_blas():
            pass
        assert all(n == 1 for n in blas_threads())  # the outer user still holds it
    assert blas_threads() == before


def test_convolutions_give_the_same_result_on_one_and_on_all_threads():
    rng = np.random.default_rng(0)
    x = lucid.Tensor(rng.standard_normal((6, 8, 12, 12)).astype(np.float32), requires_grad=True)
    w = lucid.Tensor(rng.standard_normal((16, 2, 3, 3)).astype(np.float32), requires_grad=True)

    def run():
        x.grad = w.grad = None
        y = ops.conv2d(x, w, stride=2, padding=1, groups=4)
        y.backward(lucid.Tensor(np.linspace(-1, 1, y.data.size, dtype=np.float32).reshape(y.shape)))
        return y.data.copy(), x.grad.data.copy(), w.grad.data.copy()

    many = run()
    blocked.set_num_threads(1)
    try:
        one = run()
    finally:
        blocked.set_num_threads(None)
    for a, b in zip(many, one):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_convolutions_of_an_empty_batch():
    for stride, padding, k in [(1, 1, 3), (2, 1, 3), (1, 0, 1), (2, 0, 1)]:
        x = lucid.zeros(0, 4, 6, 6, requires_grad=True)
        w = lucid.randn(8, 4, k, k, requires_grad=True)
        y = ops.conv2d(x, w, stride=stride, padding=padding)
        y.sum().backward()
        assert y.shape == (0, 8, 6 // stride, 6 // stride) and x.grad.shape == (0, 4, 6, 6)
        np.testing.assert_array_equal(w.grad.numpy(), np.zeros((8, 4, k, k), np.float32))

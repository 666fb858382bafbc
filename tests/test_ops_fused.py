"""Fused ops (add_relu) and the blocked relu: values, gradients, memory layout kept."""
import numpy as np
import pytest

import lucid
import lucid.ops as ops
from lucid.autograd import gradcheck
from lucid.ops.layout import from_nhwc, is_channels_last


def nhwc(shape, seed, dtype=np.float32):
    n, c, h, w = shape
    return from_nhwc(np.random.default_rng(seed).standard_normal((n, h, w, c)).astype(dtype))


# (4, 16, 64, 64) float32 is 1 MiB: several blocks, shared among the cores
@pytest.mark.parametrize("layout", ["nhwc", "nchw", "mixed"])
def test_add_relu_matches_relu_of_sum_and_keeps_the_layout(layout):
    a = nhwc((4, 16, 64, 64), 0)
    b = nhwc((4, 16, 64, 64), 1)
    if layout in ("nchw", "mixed"):
        b = np.ascontiguousarray(b)
    if layout == "nchw":
        a = np.ascontiguousarray(a)
    ta, tb = lucid.Tensor(a, requires_grad=True), lucid.Tensor(b, requires_grad=True)
    out = ops.add_relu(ta, tb)
    expected = np.maximum(a + b, 0)
    np.testing.assert_array_equal(out.data, expected)
    assert is_channels_last(out.data) == (layout != "nchw")
    g = nhwc((4, 16, 64, 64), 2)
    out.backward(lucid.Tensor(g))
    np.testing.assert_array_equal(ta.grad.data, g * (expected > 0))
    np.testing.assert_array_equal(tb.grad.data, g * (expected > 0))


def test_add_relu_broadcasts_and_takes_scalars():
    a = lucid.Tensor(nhwc((2, 3, 4, 5), 0, np.float64), requires_grad=True)
    bias = lucid.Tensor(np.random.default_rng(1).standard_normal((1, 3, 1, 1)), requires_grad=True)
    out = ops.add_relu(a, bias)
    np.testing.assert_allclose(out.data, np.maximum(a.data + bias.data, 0))
    assert gradcheck(lambda x, y: ops.add_relu(x, y), [a, bias])
    np.testing.assert_allclose(ops.add_relu(a, 0.5).data, np.maximum(a.data + 0.5, 0))
    with pytest.raises(ValueError, match=r"add_relu.*\(2, 3, 4, 5\).*\(3, 2\)"):
        ops.add_relu(a, lucid.zeros(3, 2, dtype="float64"))


def test_add_relu_gradcheck_same_shape():
    a = lucid.Tensor(nhwc((2, 3, 4, 4), 3, np.float64), requires_grad=True)
    b = lucid.Tensor(np.random.default_rng(4).standard_normal((2, 3, 4, 4)), requires_grad=True)
    assert gradcheck(lambda x, y: ops.add_relu(x, y), [a, b])


def test_relu_blocked_keeps_channels_last_and_matches_numpy():
    x = nhwc((4, 16, 64, 64), 5)
    t = lucid.Tensor(x, requires_grad=True)
    y = ops.relu(t)
    assert is_channels_last(y.data)
    np.testing.assert_array_equal(y.data, np.maximum(x, 0))
    g = np.random.default_rng(6).standard_normal(x.shape).astype(np.float32)  # NCHW memory: another layout
    y.backward(lucid.Tensor(g))
    np.testing.assert_array_equal(t.grad.data, g * (x > 0))


def test_relu_of_a_strided_view():
    x = np.random.default_rng(7).standard_normal((6, 8)).astype(np.float32)[::2, ::3]
    t = lucid.Tensor(x, requires_grad=True)
    y = ops.relu(t)
    np.testing.assert_array_equal(y.data, np.maximum(x, 0))
    y.sum().backward()
    np.testing.assert_array_equal(t.grad.data, (x > 0).astype(np.float32))


@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_relu_is_relu_of_batch_norm(training):
    rng = np.random.default_rng(8)
    x = lucid.Tensor(nhwc((4, 6, 5, 5), 9, np.float64) * 2 + 1, requires_grad=True)
    w = lucid.Tensor(rng.standard_normal(6), requires_grad=True)
    b = lucid.Tensor(rng.standard_normal(6), requires_grad=True)
    stats = [lucid.Tensor(rng.standard_normal(6)), lucid.Tensor(rng.uniform(0.5, 2, 6))]
    g = lucid.Tensor(rng.standard_normal((4, 6, 5, 5)))
    results = []
    for fused in (False, True):
        rm, rv = (lucid.Tensor(s.data.copy()) for s in stats)
        x.grad = w.grad = b.grad = None
        if fused:
            y = ops.batch_norm(x, rm, rv, w, b, training=training, relu=True)
        else:
            y = ops.relu(ops.batch_norm(x, rm, rv, w, b, training=training))
        y.backward(g)
        results.append([y.data, x.grad.data, w.grad.data, b.grad.data, rm.data, rv.data])
    for plain, fused in zip(*results):
        np.testing.assert_allclose(fused, plain, rtol=1e-12, atol=1e-12)
    assert is_channels_last(results[1][0]) and is_channels_last(results[1][1])
    assert gradcheck(lambda x, w, b: ops.batch_norm(x, None, None, w, b, training=True, relu=True), [x, w, b])
